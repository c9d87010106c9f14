"""End to end with seeded He-normal random Inception weights: our pipeline vs torch-fidelity's.

Images are tiny (24 + 24 at 32 px) because Inception runs at ~7 img/s on this CPU. One module-level
cache folder holds the features, so each image set goes through the network once.
"""

import json
import os

import numpy as np
import pytest
import torch
import torch_fidelity
from skimage.metrics import peak_signal_noise_ratio

from harness import cli
from harness.core.errors import UserError
from harness.data.npz import save_samples_npz
from harness.metrics import features as features_mod
from harness.metrics.evaluate import EvalOptions, evaluate_samples
from harness.metrics.inception import InceptionExtractor, tf1_resize
from harness.metrics.recon import codebook_stats, evaluate_reconstruction
from harness.metrics.refstats import build_reference_from_images, load_reference, sidecar_path, verify_reference
from harness.metrics.weights import resolve_weights


def smooth_images(n, size, seed, brightness=0.0):
    """Seeded blobs: low-resolution noise upsampled (natural-ish spectra), shifted in brightness."""
    g = torch.Generator().manual_seed(seed)
    low = torch.rand(n, 3, 6, 6, generator=g)
    img = torch.nn.functional.interpolate(low, size=(size, size), mode="bicubic", align_corners=False)
    img = img + 0.08 * torch.randn(n, 3, size, size, generator=g) + brightness
    return (img.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).contiguous().numpy()


_iter = features_mod.iter_batches


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("metrics_pipeline")
    weights = resolve_weights("random:0")
    cache = root / "cache"
    cache.mkdir()
    os.symlink(weights.path, cache / weights.path.name)  # CLI runs find the same weights file in this cache
    a, b = smooth_images(24, 32, 1), smooth_images(24, 32, 2, brightness=0.15)
    labels = np.repeat(np.arange(4), 6)  # class-sorted on purpose
    a_path = save_samples_npz(root / "a.npz", a, labels)
    b_path = save_samples_npz(root / "b.npz", b)
    ex = InceptionExtractor(weights, "cpu")
    ref = build_reference_from_images(b_path, root / "ref.npz", inception=ex, batch_size=10, cache=cache)
    return dict(root=root, cache=cache, weights=weights, a=a, b=b, a_path=a_path, b_path=b_path, ex=ex, ref=ref)


def test_resize_is_torch_fidelitys():
    from torch_fidelity.interpolate_compat_tensorflow import interpolate_bilinear_2d_like_tensorflow1x

    assert tf1_resize is interpolate_bilinear_2d_like_tensorflow1x
    x = torch.from_numpy(smooth_images(2, 32, 3)).permute(0, 3, 1, 2).float()
    a = tf1_resize(x, size=(299, 299), align_corners=False)
    b = interpolate_bilinear_2d_like_tensorflow1x(x, size=(299, 299), align_corners=False)
    assert torch.equal(a, b)
    # and it is not torch's half-pixel bilinear (the pitfall it exists to avoid)
    c = torch.nn.functional.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False)
    assert (a - c).abs().max() > 1.0


def test_pipeline_matches_torch_fidelity_calculate_metrics(world, monkeypatch, nchw_dataset):
    calls = []
    monkeypatch.setattr(
        features_mod, "iter_batches", lambda src, *a, **k: calls.append(str(src)) or _iter(src, *a, **k)
    )
    res = evaluate_samples(
        world["a_path"],
        world["ref"],
        EvalOptions(
            metrics=("fid", "is", "sfid", "prec", "recall", "kid"),
            inception=world["ex"],
            batch_size=7,
            cache=world["cache"],
            kid_subset_size=24,
        ),
    )
    tf = torch_fidelity.calculate_metrics(
        input1=nchw_dataset(world["a"]),
        input2=nchw_dataset(world["b"]),
        cuda=False,
        fid=True,
        isc=True,
        prc=True,
        kid=True,
        feature_extractor="inception-v3-compat",
        feature_layer_prc="2048",
        feature_extractor_weights_path=str(world["weights"].path),
        isc_splits=1,
        kid_subset_size=24,
        batch_size=24,
        cache=False,
        save_cpu_ram=True,
        verbose=False,
        samples_shuffle=False,
    )
    assert calls == [str(world["a_path"])]  # the reference's arr_0 features came from the build, not a 2nd pass
    m = res.metrics
    assert m["fid"] > 1.0  # the two sets really differ
    assert m["fid"] == pytest.approx(tf["frechet_inception_distance"], rel=1e-5)
    assert m["is"] == pytest.approx(tf["inception_score_mean"], rel=1e-4)  # 24 < 5000: one ADM chunk = 1 split
    assert m["kid"] == pytest.approx(tf["kernel_inception_distance_mean"], rel=1e-3, abs=1e-7)
    assert m["prec"] == pytest.approx(tf["precision"], abs=1e-6)
    assert m["recall"] == pytest.approx(tf["recall"], abs=1e-6)
    assert np.isfinite(m["sfid"]) and m["sfid"] > 0
    # provenance and honesty
    p = res.provenance
    assert p["weights"]["sha256"] == world["weights"].sha256 and p["resize"] == "tf1-bilinear-299"
    assert p["is_mode"] == "adm" and p["samples"]["n"] == 24 and p["samples"]["balanced"] is True
    assert res.paper_comparable is False and len(p["not_comparable_because"]) >= 3
    assert any("class-sorted" in w for w in res.warnings)


def test_sfid_hook_equals_second_implementation(world):
    ex = world["ex"]
    grabbed = {}
    h = ex.net.Mixed_6d.branch1x1.bn.register_forward_hook(lambda m, i, o: grabbed.setdefault("bn", o.detach()))
    try:
        out = ex(world["a"][:2])
    finally:
        h.remove()
    relu = torch.relu(grabbed["bn"])[:, :7].numpy()  # [B,7,17,17]
    manual = np.stack([np.transpose(r, (1, 2, 0)).ravel() for r in relu])  # HWC order per image
    assert out["spatial"].shape == (2, 2023)
    np.testing.assert_allclose(out["spatial"], manual, rtol=0, atol=1e-6)


def test_feature_cache_is_used_and_keyed_by_weights(world, monkeypatch):
    first = evaluate_samples(
        world["a_path"], world["ref"], EvalOptions(metrics=("fid", "prec"), inception=world["ex"], cache=world["cache"])
    )

    def boom(*a, **k):
        raise AssertionError("features should have come from the cache")

    monkeypatch.setattr(type(world["ex"]), "__call__", boom)
    again = evaluate_samples(
        world["a_path"], world["ref"], EvalOptions(metrics=("fid", "prec"), inception=world["ex"], cache=world["cache"])
    )
    assert again.metrics == first.metrics
    files = sorted(p.name for p in (world["cache"] / "features").iterdir())
    assert all(world["weights"].sha256[:16] in f for f in files)


def test_reference_file_and_sidecar(world):
    ref = load_reference(world["ref"])
    meta = json.loads(sidecar_path(world["ref"]).read_text())
    assert meta["weights"]["sha256"] == world["weights"].sha256 and meta["n"] == 24
    assert meta["image_size"] == [32, 32] and meta["resize"] == "tf1-bilinear-299"
    assert ref.mu.shape == (2048,) and ref.sigma.shape == (2048, 2048) and ref.mu_s.shape == (2023,)
    with np.load(world["ref"]) as z:
        np.testing.assert_array_equal(z["arr_0"], world["b"])
    report = verify_reference(world["ref"])
    assert report["has_sfid"] and report["n"] == 24


def test_cli_ref_stats_and_eval(world, monkeypatch, capsys):
    monkeypatch.setenv("ALITOK_BENCH_CACHE", str(world["cache"]))
    out = world["root"] / "cli_ref.npz"
    assert (
        cli.main(
            [
                "ref-stats",
                "build",
                str(world["b_path"]),
                "--out",
                str(out),
                "--inception",
                "random:0",
                "--device",
                "cpu",
            ]
        )
        == 0
    )
    assert cli.main(["ref-stats", "verify", str(out)]) == 0
    rec_dir = world["root"] / "records"
    assert (
        cli.main(
            [
                "eval",
                str(world["a_path"]),
                "--ref",
                str(out),
                "--metrics",
                "fid,is,prec,recall",
                "--inception",
                "random:0",
                "--device",
                "cpu",
                "--out",
                str(rec_dir),
                "--verbose",  # the table and the guard block (the default is one line)
            ]
        )
        == 0
    )
    text = capsys.readouterr().out
    assert "paper_comparable: NO" in text and "fid" in text
    (record_path,) = rec_dir.glob("eval_record*.json")
    record = json.loads(record_path.read_text())
    direct = evaluate_samples(
        world["a_path"], world["ref"], EvalOptions(metrics=("fid",), inception=world["ex"], cache=world["cache"])
    )
    assert record["kind"] == "eval" and record["paper_comparable"] is False
    assert record["metrics"]["fid"] == pytest.approx(direct.metrics["fid"], rel=1e-12)
    assert record["metric_provenance"]["weights"]["sha256"] == world["weights"].sha256
    # the known-mistake guard: 24 samples and a non-ADM reference are fatal, in the record and the printed block
    codes = {f["code"]: f["severity"] for f in record["protocol_findings"]}
    assert codes["fewer-than-50k"] == "fatal" and codes["gfid-reference-not-virtual"] == "fatal"
    assert codes["labels-unbalanced"] == "fatal"  # 4 of 1000 classes
    # FID's disjoint-subset spread (pool3 kept for prec/recall): in the record, read by report/compare, printed
    from harness.metrics.features import extract_features
    from harness.metrics.uncertainty import fid_subset_spread
    from harness.report import fields

    pool = extract_features(world["a_path"], world["ex"], cache=world["cache"]).pool
    ref = load_reference(out)
    expect = fid_subset_spread(pool, ref.mu, ref.sigma, k=10)
    assert record["uncertainty"]["fid"]["values"] == pytest.approx(expect["values"], rel=1e-9)
    assert fields.uncertainty(record, "fid") == pytest.approx(expect["std"], rel=1e-9) and expect["std"] > 0
    assert f"± {expect['std']:.4f} (disjoint-subsets(k=10,seed=0))" in text
    assert "protocol: N=24" in text and "FATAL fewer-than-50k" in text and "NO (" in text


def test_reference_from_an_iterator_of_batches(world, tmp_path):
    imgs = smooth_images(6, 16, 5)
    out = build_reference_from_images(
        iter([imgs[:4], imgs[4:]]),
        tmp_path / "it.npz",
        inception=world["ex"],
        batch_size=4,
        source_desc="two batches",
        cache=False,
    )
    with np.load(out) as z:
        np.testing.assert_array_equal(z["arr_0"], imgs)
        mu = z["mu"]
    direct = world["ex"](imgs)["pool"].astype(np.float64).mean(0)
    np.testing.assert_allclose(mu, direct, rtol=1e-5, atol=1e-6)
    assert json.loads(sidecar_path(out).read_text())["source"] == "two batches"


def test_reconstruction_metrics(world):
    real = smooth_images(8, 16, 6)
    g = np.random.default_rng(0)
    noisy = np.clip(real.astype(np.int16) + g.integers(-12, 13, real.shape), 0, 255).astype(np.uint8)
    same = evaluate_reconstruction(real, real, inception=world["ex"], cache=world["cache"])
    scale = np.trace(np.cov(features_mod.extract_features(real, world["ex"], cache=world["cache"]).pool, rowvar=False))
    assert abs(same["rfid"]) < 1e-9 * scale  # identical sets: zero up to round-off of the trace terms
    assert same["psnr"] == np.inf and same["ssim"] == pytest.approx(1.0)
    codes = torch.tensor([[0, 1, 2, 3], [4, 5, 6, 7]])  # 8 of 16 entries, uniform
    r = evaluate_reconstruction(real, noisy, inception=world["ex"], codes=codes, codebook_size=16, cache=world["cache"])
    expected_psnr = np.mean([peak_signal_noise_ratio(a, b, data_range=255) for a, b in zip(real, noisy)])
    assert r["psnr"] == pytest.approx(expected_psnr, rel=1e-12)
    assert 0.3 < r["ssim"] < 1.0 and r["rfid"] > 0
    assert r["codebook_usage"] == 0.5 and r["codebook_entropy"] == pytest.approx(3.0)
    assert codebook_stats(np.array([5, 5, 5]), 8) == {
        "codebook_usage": 0.125,
        "codebook_entropy": 0.0,
        "codebook_perplexity": 1.0,
    }
    # npz paths stream in batches (the ablation's 50k held-out images): the same numbers as the arrays
    real_npz = save_samples_npz(world["root"] / "recon_real.npz", real)
    noisy_npz = save_samples_npz(world["root"] / "recon_noisy.npz", noisy)
    streamed = evaluate_reconstruction(
        real_npz, noisy_npz, inception=world["ex"], codes=codes, codebook_size=16, batch_size=3, cache=False
    )
    assert streamed["psnr"] == pytest.approx(r["psnr"], rel=1e-15)
    assert streamed["ssim"] == pytest.approx(r["ssim"], rel=1e-15)
    # float64 moments of float32 features: the same up to summation order (~1e-12 of FID's scale)
    assert streamed["rfid"] == pytest.approx(r["rfid"], rel=1e-9) and streamed["n"] == 8
    with pytest.raises(UserError, match="differ in shape"):
        evaluate_reconstruction(
            real_npz, save_samples_npz(world["root"] / "three.npz", noisy[:3]), inception=world["ex"]
        )


def _stats_only_reference(world, name="mu_sigma_only.npz"):
    """A pytorch-fid style reference: mu and sigma only (sidecar rewritten for the new file)."""
    from harness.core.io import sha256_file

    src = load_reference(world["ref"])
    path = world["root"] / name
    np.savez(path, mu=src.mu, sigma=src.sigma)
    meta = dict(src.metadata, npz_sha256=sha256_file(path))
    sidecar_path(path).write_text(json.dumps(meta))
    return path


def test_mu_sigma_only_reference_skips_what_it_cannot_give(world, capsys):
    """Default list: FID computed, sFID and precision/recall skipped with a note. Named: an error.
    (Before: the default list aborted with 'reference has no mu_s/sigma_s'.)"""
    from harness.core.errors import InputFileError

    ref = _stats_only_reference(world)
    res = evaluate_samples(world["a_path"], ref, EvalOptions(inception=world["ex"], cache=world["cache"]))
    full = evaluate_samples(
        world["a_path"], world["ref"], EvalOptions(metrics=("fid",), inception=world["ex"], cache=world["cache"])
    )
    assert res.metrics["fid"] == pytest.approx(full.metrics["fid"], rel=1e-12)
    assert res.metrics["sfid"] is None and res.metrics["prec"] is None and res.metrics["recall"] is None
    assert set(res.provenance["skipped"]) == {"sfid", "prec", "recall"}  # IS computed: random weights have logits
    assert any("sfid unavailable, skipped" in w and "mu_s/sigma_s" in w for w in res.warnings)
    with pytest.raises(InputFileError, match="no mu_s/sigma_s: drop sfid"):
        evaluate_samples(
            world["a_path"], ref, EvalOptions(metrics="fid,sfid", inception=world["ex"], cache=world["cache"])
        )
    # the CLI with its default --metrics: exit 0 and the note printed
    rc = cli.main(
        [
            "eval",
            str(world["a_path"]),
            "--ref",
            str(ref),
            "--inception",
            "random:0",
            "--device",
            "cpu",
            "--out",
            str(world["root"] / "stats_only_eval"),
        ]
    )
    err = capsys.readouterr().err  # stdout holds the one result line; warnings go to stderr
    assert rc == 0 and "sfid unavailable, skipped" in err


def test_kid_subset_size_is_explicit_and_recorded(world):
    """KID refuses a subset larger than N (torch-fidelity's rule) instead of silently capping it."""
    from harness.metrics.kid import KIDSubsetError

    with pytest.raises(KIDSubsetError, match="subset size 1000 is larger than the sets"):
        evaluate_samples(
            world["a_path"], world["ref"], EvalOptions(metrics="kid", inception=world["ex"], cache=world["cache"])
        )
    res = evaluate_samples(
        world["a_path"],
        world["ref"],
        EvalOptions(metrics="kid", inception=world["ex"], cache=world["cache"], kid_subset_size=20, kid_subsets=30),
    )
    assert res.provenance["kid_subset_size"] == 20 and res.provenance["kid_subsets"] == 30


def test_ndarray_and_batches_evaluate_like_the_file(world):
    """evaluate_samples takes in-memory arrays and iterables of batches (before: TypeError on an ndarray)."""
    ref_only = ("fid", "sfid", "prec", "recall")
    from_file = evaluate_samples(
        world["a_path"], world["ref"], EvalOptions(metrics=ref_only, inception=world["ex"], cache=world["cache"])
    )
    from_array = evaluate_samples(
        world["a"], world["ref"], EvalOptions(metrics=ref_only, inception=world["ex"], cache=False)
    )
    batches = (world["a"][i : i + 5] for i in range(0, 24, 5))
    from_batches = evaluate_samples(
        batches, world["ref"], EvalOptions(metrics=ref_only, inception=world["ex"], cache=False)
    )
    for m in ref_only:
        assert from_array.metrics[m] == pytest.approx(from_file.metrics[m], rel=1e-6, abs=1e-9)
        assert from_batches.metrics[m] == pytest.approx(from_file.metrics[m], rel=1e-6, abs=1e-9)
    assert from_array.provenance["samples"]["n"] == 24


class _MeanPixelExtractor:
    """A second, toy feature network: per-image channel means (pool) and a 4x4 thumbnail (spatial)."""

    def __init__(self, device):
        from harness.metrics.weights import WeightsInfo

        self.device = torch.device("cpu")
        self.weights = WeightsInfo("toy", "toy", None, "0" * 64, has_logits=False)

    def __call__(self, batch):
        x = batch.astype(np.float64) / 255.0
        thumb = x.reshape(len(x), 4, x.shape[1] // 4, 4, x.shape[2] // 4, 3).mean(axis=(2, 4))
        return {"pool": x.mean(axis=(1, 2)), "spatial": thumb.reshape(len(x), -1)}


def test_a_new_metric_with_its_own_extractor_is_one_entry(world, monkeypatch):
    """One EXTRACTORS line and one Metric entry: evaluate, list and parse see it with no other change."""
    from harness.metrics import table
    from harness.metrics.fid import feature_statistics, frechet_distance

    monkeypatch.setitem(table.EXTRACTORS, "toy", (f"{__name__}:_MeanPixelExtractor", "channel means"))

    def colour_distance(x):
        ms, ss = feature_statistics(x.samples("toy", "pool"))
        mr, sr = feature_statistics(x.reference("toy", "pool"))
        return {"fd_toy": frechet_distance(ms, ss, mr, sr)}

    entry = table.Metric(
        "fd_toy", "Frechet distance of channel means", colour_distance, features="toy", needs_reference_images=True
    )
    monkeypatch.setattr(table.registry, "_entries", {**table.registry._entries, "fd_toy": entry})
    res = evaluate_samples(
        world["a_path"], world["ref"], EvalOptions(metrics="fid,fd_toy", inception=world["ex"], cache=False)
    )
    a, b = _MeanPixelExtractor(None)(world["a"])["pool"], _MeanPixelExtractor(None)(world["b"])["pool"]
    expected = frechet_distance(a.mean(0), np.cov(a, rowvar=False), b.mean(0), np.cov(b, rowvar=False))
    # kept feature rows are stored as float32 (as Inception's are), so agreement is to float32 round-off
    assert res.metrics["fd_toy"] == pytest.approx(expected, rel=1e-6)
    assert res.provenance["metric_features"]["fd_toy"] == "toy:pool"
    assert "fd_toy" in [m.name for m in table.parse("fd_toy,fid")]

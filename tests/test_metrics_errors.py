"""Bad input gets a clear one-line error (and exit 2 from the CLI); nothing is half-written."""

import json

import numpy as np
import pytest
import torch

from harness import cli
from harness.core.errors import InputFileError
from harness.data.npz import save_samples_npz
from harness.metrics.evaluate import EvalOptions, evaluate_samples
from harness.metrics.fid import FIDError, feature_statistics, frechet_distance
from harness.metrics.isc import inception_score
from harness.metrics.prc import precision_recall
from harness.metrics.provenance import is_class_sorted, label_summary, paper_comparable
from harness.metrics.refstats import REF_FORMAT, ReferenceMismatch, load_reference, sidecar_path, verify_reference
from harness.metrics.weights import load_state_file, resolve_weights


def _fake_ref(path, d=2048, n_img=8, size=32, meta=None, keys=("mu", "sigma", "mu_s", "sigma_s", "arr_0")):
    """A small reference file written directly (no Inception), optionally with a sidecar."""
    arrays = {
        "mu": np.zeros(d),
        "sigma": np.eye(d),
        "mu_s": np.zeros(7),
        "sigma_s": np.eye(7),
        "arr_0": np.zeros((n_img, size, size, 3), np.uint8),
    }
    np.savez(path, **{k: arrays[k] for k in keys})
    if meta is not None:
        from harness.metrics.weights import sha256_file

        side = {
            "format": REF_FORMAT,
            "npz_sha256": sha256_file(path),
            "arr_0": {"n": n_img},
            "image_size": [size, size],
            **meta,
        }
        sidecar_path(path).write_text(json.dumps(side))
    return path


@pytest.fixture(scope="module")
def random_weights():
    return resolve_weights("random:0")  # cached file; cheap after the first session


@pytest.fixture
def samples(tmp_path):
    imgs = np.random.default_rng(0).integers(0, 256, (6, 32, 32, 3), dtype=np.uint8)
    return save_samples_npz(tmp_path / "s.npz", imgs, np.arange(6) % 3)


def _meta_for(w, **over):
    from harness.metrics.inception import describe_pipeline

    d = describe_pipeline(w)
    meta = {
        "extractor": d["extractor"],
        "resize": d["resize"],
        "sfid_layer": d["sfid_layer"],
        "weights": {"spec": w.spec, "kind": w.kind, "sha256": w.sha256},
    }
    meta.update(over)
    return meta


# --- pure math ----------------------------------------------------------------------------------
@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_features(bad):
    f = np.random.default_rng(0).standard_normal((10, 4)).astype(np.float32)
    f[3, 2] = bad
    with pytest.raises(FIDError, match="non-finite"):
        feature_statistics(f)
    with pytest.raises(FIDError, match="non-finite"):
        precision_recall(f, np.ones((10, 4), np.float32))
    with pytest.raises(ValueError, match="NaN or inf"):
        inception_score(f)


def test_too_few_samples_and_shape_errors():
    with pytest.raises(FIDError, match="at least 2 samples"):
        feature_statistics(np.ones((1, 8), np.float32))
    with pytest.raises(FIDError, match="2-d"):
        feature_statistics(np.ones(8, np.float32))
    with pytest.raises(FIDError, match="differ in shape"):
        frechet_distance(np.zeros(3), np.eye(3), np.zeros(4), np.eye(4))
    with pytest.raises(FIDError, match="NaN or inf"):
        frechet_distance(np.zeros(2), np.array([[1, 0], [0, np.nan]]), np.zeros(2), np.eye(2))
    with pytest.raises(ValueError, match="more than k=3"):
        precision_recall(np.ones((3, 2)), np.random.default_rng(0).standard_normal((3, 2)))


def test_sqrtm_path_rejects_large_imaginary_part():
    # an indefinite "covariance" gives sqrtm a genuinely complex result: ADM raises, so do we
    s1 = np.diag([1.0, -4.0])
    with pytest.raises(FIDError, match="imaginary"):
        frechet_distance(np.zeros(2), s1, np.zeros(2), np.eye(2), method="sqrtm")


# --- labels and provenance ----------------------------------------------------------------------
def test_class_sorted_detection():
    assert is_class_sorted(np.repeat(np.arange(10), 50))
    assert is_class_sorted(np.repeat(np.arange(100), 2))  # sorted with repeats
    assert not is_class_sorted(np.arange(11))  # one image per class: order is harmless
    assert not is_class_sorted(np.tile(np.arange(10), 50))
    assert not is_class_sorted(np.random.default_rng(0).permutation(np.tile(np.arange(10), 50)))
    s = label_summary(np.tile(np.arange(1000), 50))
    ok, reasons = paper_comparable({"official": True}, 50_000, "uint8", s, "adm-virtual-imagenet256")
    assert ok and not reasons
    ok, reasons = paper_comparable(
        {"official": True, "kind": "official"},
        50_000,
        "uint8",
        label_summary(np.arange(50_000) % 999),
        "adm-virtual-imagenet256",
    )
    assert not ok and "balanced" in reasons[0]


# --- reference files ----------------------------------------------------------------------------
def test_reference_missing_keys(tmp_path):
    p = _fake_ref(tmp_path / "r.npz", keys=("mu", "mu_s", "sigma_s"))
    with pytest.raises(InputFileError, match=r"r\.npz: reference is missing key\(s\) sigma"):
        load_reference(p)


def test_reference_not_a_zip_and_missing(tmp_path):
    p = tmp_path / "junk.npz"
    p.write_bytes(b"not a zip")
    with pytest.raises(InputFileError, match="junk.npz"):
        load_reference(p)
    with pytest.raises(InputFileError, match="file not found"):
        load_reference(tmp_path / "nope.npz")


def test_sidecar_of_another_file_is_refused(tmp_path, random_weights):
    p = _fake_ref(tmp_path / "r.npz", d=4, meta=_meta_for(random_weights))
    np.savez(p, mu=np.ones(4), sigma=np.eye(4))  # file changed after the sidecar was written
    with pytest.raises(InputFileError, match="metadata describes a different file"):
        load_reference(p)


def test_verify_rejects_non_psd(tmp_path):
    p = tmp_path / "r.npz"
    np.savez(p, mu=np.zeros(3), sigma=np.diag([1.0, 1.0, -1.0]))
    with pytest.raises(InputFileError, match="positive semi-definite"):
        verify_reference(p)


def test_mismatched_weights_metadata_refused(tmp_path, samples, random_weights):
    other = dict(_meta_for(random_weights))
    other["weights"] = {"spec": "fid-helper", "kind": "fid-helper", "sha256": "f" * 64}
    ref = _fake_ref(tmp_path / "r.npz", meta=other)
    with pytest.raises(ReferenceMismatch, match="Inception weights fid-helper sha256 ffffffffffff"):
        evaluate_samples(samples, ref, EvalOptions(metrics=("fid",), inception="random:0"))


def test_mismatched_resize_metadata_refused(tmp_path, samples, random_weights):
    ref = _fake_ref(tmp_path / "r.npz", meta=_meta_for(random_weights, resize="pil-bicubic-299"))
    with pytest.raises(ReferenceMismatch, match="resize"):
        evaluate_samples(samples, ref, EvalOptions(metrics=("fid",), inception="random:0"))


def test_adm_reference_refuses_random_weights(tmp_path, samples):
    ref = _fake_ref(tmp_path / "VIRTUAL_imagenet256_labeled.npz")
    with pytest.raises(ReferenceMismatch, match="different network"):
        evaluate_samples(samples, ref, EvalOptions(metrics=("fid",), inception="random:0"))


def test_wrong_image_size_refused(tmp_path, samples, random_weights):
    ref = _fake_ref(tmp_path / "r.npz", size=64, meta=_meta_for(random_weights))
    with pytest.raises(ReferenceMismatch, match="64x64, samples are 32x32"):
        evaluate_samples(samples, ref, EvalOptions(metrics=("fid",), inception="random:0"))


def test_wrong_dtype_and_too_few_samples(tmp_path, random_weights):
    ref = _fake_ref(tmp_path / "r.npz", meta=_meta_for(random_weights))
    bad = tmp_path / "float.npz"
    np.savez(bad, arr_0=np.zeros((4, 32, 32, 3), np.float32))
    with pytest.raises(InputFileError, match="float.npz: arr_0 must be uint8"):
        evaluate_samples(bad, ref, EvalOptions(metrics=("fid",), inception="random:0"))
    one = save_samples_npz(tmp_path / "one.npz", np.zeros((1, 32, 32, 3), np.uint8))
    with pytest.raises(InputFileError, match="at least 2 samples"):
        evaluate_samples(one, ref, EvalOptions(metrics=("fid",), inception="random:0"))
    with pytest.raises(ValueError, match="unknown metric"):
        evaluate_samples(one, ref, EvalOptions(metrics=("fidd",), inception="random:0"))


# --- weights files ------------------------------------------------------------------------------
def test_wrong_architecture_and_corrupt_weights(tmp_path):
    p = tmp_path / "resnet.pth"
    torch.save({"conv1.weight": torch.zeros(64, 3, 7, 7)}, p)
    with pytest.raises(InputFileError, match="resnet.pth: state dict does not match Inception-v3"):
        load_state_file(p)
    q = tmp_path / "corrupt.pth"
    q.write_bytes(b"\x00garbage")
    with pytest.raises(InputFileError, match="corrupt.pth: not a loadable weights file"):
        resolve_weights(str(q))
    with pytest.raises(ValueError, match="random:SEED"):
        resolve_weights("random:abc")


# --- CLI: exit 2 and one line on stderr ---------------------------------------------------------
def test_cli_errors_exit_2(tmp_path, samples, capsys, random_weights):
    ref = _fake_ref(tmp_path / "r.npz", keys=("mu",))
    rc = cli.main(["eval", str(samples), "--ref", str(ref), "--inception", "random:0", "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and err.count("\n") == 0 and "missing key(s) sigma" in err
    assert not (tmp_path / "o").exists()  # nothing written
    rc = cli.main(["ref-stats", "verify", str(tmp_path / "absent.npz")])
    assert rc == 2 and "absent.npz" in capsys.readouterr().err
    rc = cli.main(["ref-stats", "build", str(tmp_path / "absent_dir"), "--out", str(tmp_path / "x.npz")])
    assert rc == 2 and not (tmp_path / "x.npz").exists()

"""Quality golden of `make test`: the committed tiny AliTok sampled with a fixed seed at CI size
(harness/suites/golden.yaml: 110 samples at 32 px, FID with fid-helper's real pool3 weights against 110
embedded val crops), compared with the committed baseline in results/golden/alitok-tiny (its record, which
names the CPU model that made it, and its samples.npz).

What a rerun may differ by, and the band for each:
- Same CPU model as the golden: the samples must be the golden's bytes (the generator, tokenizer and
  sampler are unchanged bit for bit), and FID may move only by the metric's own rounding (below).
- Another CPU model: kernels round differently, so some images may differ in their bytes. Each of the m
  changed images is counted as a fresh draw (an upper bound: a rounding change moves an image far less than
  a new seed does); replacing m of N samples moves the sample mean and covariance by sqrt(m/N) of what
  replacing all N does, and FID at this distance from the reference moves to first order with them, so
  the band is BAND_SDS seed-to-seed sd x sqrt(m/N), plus the metric band. m = 0 leaves the metric band;
  m = N gives the seed band (a rerun that changed every image is only held to seed noise).
- The metric band: FID is a degree-2 function of the pool3 features, so a relative feature error eps moves
  it by about 2 eps relative. Float32 features computed with another summation order (threads, memory
  format, another CPU's kernels) agree to ~2e-6..6e-6 absolute on features of order 0.1-1
  (tests/test_metrics_real_weights.py, harness/metrics/inception.py); eps = FEATURE_REL_EPS = 1e-4 is ten
  times that, so the band is 2e-4 x FID (0.053 at FID 266). Measured: the same spec and code gave FID
  266.45702 on an AMD EPYC and 266.45509 on an Intel Xeon (drift 0.0019, samples and metric together).
The metric alone is also checked on the committed samples, re-evaluated here, against the committed FID.
Regenerate the baseline after an intended change: `alitok-bench run golden --out results/golden --only
alitok-tiny` (and commit its samples.npz: .gitignore keeps it).
"""

import json
import math
import shutil
import statistics
from pathlib import Path

import numpy as np

from harness.cli import main
from harness.core.devices import cpu_model
from harness.report import fields
from harness.report.collect import collect

GOLDEN = Path(__file__).resolve().parent.parent / "results" / "golden"
BAND_SDS = 3.0
FEATURE_REL_EPS = 1e-4


def band_from_spread() -> tuple[float, float, int]:
    """(band, sd, n): FID sd over the committed golden and seed-sweep records at the golden size."""
    recs = [
        r for r in collect([GOLDEN]) if fields.label(r) == "alitok-tiny" or fields.variant(r) == "alitok-tiny-seeds"
    ]
    fids = [fields.metric(r, "fid") for r in recs]
    assert len(fids) == 5 and all(f is not None for f in fids), fids
    assert len({fields.seed(r) for r in recs}) == 5  # five different seeds
    sd = statistics.stdev(fids)
    return BAND_SDS * sd, sd, len(fids)


def metric_band(fid: float) -> float:
    return 2 * FEATURE_REL_EPS * fid


def changed_images(a: Path, b: Path) -> tuple[int, int]:
    """(images whose bytes differ, N) between two samples files of the same labels."""
    with np.load(a) as za, np.load(b) as zb:
        assert np.array_equal(za["labels"], zb["labels"])
        x, y = za["arr_0"], zb["arr_0"]
    assert x.shape == y.shape
    return int((x != y).reshape(len(x), -1).any(axis=1).sum()), len(x)


def test_spread_records_match_the_golden_suite():
    """The committed baselines were made by the golden suite as it is now (same size, metric, reference)."""
    from harness.suites.suite import get_suite

    suite = get_suite("golden")
    for r in collect([GOLDEN]):
        assert r["samples"]["n"] == suite.num_samples and set(r["metrics"]) == set(suite.metrics)
        assert r["metric_provenance"]["weights"]["kind"] == "fid-helper"
    band, sd, _ = band_from_spread()
    assert 0 < sd < 50 and band == BAND_SDS * sd
    golden = json.loads((GOLDEN / "alitok-tiny" / "run_record.json").read_text())
    assert golden["machine"]["cpu_model"]  # the golden says which CPU made its bytes
    with open(GOLDEN / "alitok-tiny" / "samples.npz", "rb") as f:
        import hashlib

        assert hashlib.sha256(f.read()).hexdigest() == golden["samples"]["npz_sha256"]  # the committed bytes


def test_tiny_generator_quality_golden(tmp_path, capsys):
    _, sd, n_seeds = band_from_spread()
    base_dir, out = GOLDEN / "alitok-tiny", tmp_path / "golden"
    base = json.loads((base_dir / "run_record.json").read_text())
    golden_fid = fields.metric(base, "fid")
    assert main(["run", "golden", "--out", str(out), "--device", "cpu", "--no-progress", "--only", "alitok-tiny"]) == 0
    new_path = out / "alitok-tiny" / "run_record.json"
    new = json.loads(new_path.read_text())
    m, n = changed_images(base_dir / "samples.npz", out / "alitok-tiny" / "samples.npz")
    same_cpu = base["machine"]["cpu_model"] == cpu_model()
    if same_cpu:  # the golden's machine: the generator must give the golden's bytes
        assert m == 0 and new["samples"]["npz_sha256"] == base["samples"]["npz_sha256"], (
            f"{m} of {n} images differ from the golden on its own CPU model ({cpu_model()})"
        )
    band = metric_band(golden_fid) + BAND_SDS * sd * math.sqrt(m / n)

    # the metric alone: the committed samples, evaluated here, give the committed FID within the metric band
    from harness.metrics.evaluate import EvalOptions, evaluate_samples

    (ref,) = (out / "reference").glob("*.npz")
    again = evaluate_samples(
        base_dir / "samples.npz", ref, EvalOptions(metrics=("fid",), inception="fid-helper", device="cpu")
    )
    assert abs(again.metrics["fid"] - golden_fid) <= metric_band(golden_fid), (again.metrics["fid"], golden_fid)

    gates = ["--fail", f"fid:+{band:.6f}", "--fail", f"fid:-{band:.6f}"]
    capsys.readouterr()
    rc = main(["compare", str(base_dir / "run_record.json"), str(new_path), *gates])
    text = capsys.readouterr().out
    assert rc == 0, (
        f"quality golden failed: FID {fields.metric(new, 'fid')} vs {golden_fid}, band +-{band:.4f} "
        f"({m} of {n} images changed; CPU {cpu_model()}, golden's {base['machine']['cpu_model']}; "
        f"seed sd {sd:.3f} over {n_seeds} seeds):\n{text}"
    )

    # the same gates fail on a planted regression just outside the band, either way
    for delta, gate in ((1.01 * band, f"fid:+{band:.6f}"), (-1.01 * band, f"fid:-{band:.6f}")):
        planted = tmp_path / f"planted{delta:+.3f}"
        shutil.copytree(out / "alitok-tiny", planted / "alitok-tiny", ignore=shutil.ignore_patterns("shards", "*.npz"))
        p = planted / "alitok-tiny" / "run_record.json"
        rec = json.loads(p.read_text())
        rec["metrics"]["fid"] = golden_fid + delta
        p.write_text(json.dumps(rec))
        capsys.readouterr()
        assert main(["compare", str(base_dir / "run_record.json"), str(p), *gates]) == 1
        assert f"FAIL {gate} [alitok-tiny]" in capsys.readouterr().out

"""Quality golden of `make test`: the committed tiny AliTok sampled with a fixed seed at CI size
(harness/suites/golden.yaml: 110 samples at 32 px, FID with fid-helper's real pool3 weights against 110
embedded val crops), compared with the committed baseline record in results/golden/ through
`alitok-bench compare`. The band is two-sided, 3 standard deviations of the seed-to-seed spread
measured at this size by the committed `alitok-tiny-seeds` records (seeds 1-4) plus the golden (seed 0):
a change in the generator, tokenizer, sampler or metric that moves FID by more than seed noise fails.
Regenerate the baselines after an intended change: `alitok-bench run golden --out results/golden`.
"""
import json
import shutil
import statistics
from pathlib import Path

from harness.cli import main
from harness.report import fields
from harness.report.collect import collect

GOLDEN = Path(__file__).resolve().parent.parent / "results" / "golden"
BAND_SDS = 3.0


def band_from_spread() -> tuple[float, float, int]:
    """(band, sd, n): FID sd over the committed golden and seed-sweep records at the golden size."""
    recs = [r for r in collect([GOLDEN]) if fields.label(r) == "alitok-tiny" or fields.variant(r) == "alitok-tiny-seeds"]
    fids = [fields.metric(r, "fid") for r in recs]
    assert len(fids) == 5 and all(f is not None for f in fids), fids
    assert len({fields.seed(r) for r in recs}) == 5                 # five different seeds
    sd = statistics.stdev(fids)
    return BAND_SDS * sd, sd, len(fids)


def test_spread_records_match_the_golden_suite():
    """The committed baselines were made by the golden suite as it is now (same size, metric, reference)."""
    from harness.suites import get_suite

    suite = get_suite("golden")
    for r in collect([GOLDEN]):
        assert r["samples"]["n"] == suite.num_samples and set(r["metrics"]) == set(suite.metrics)
        assert r["metric_provenance"]["weights"]["kind"] == "fid-helper"
    band, sd, _ = band_from_spread()
    assert 0 < sd < 50 and band == BAND_SDS * sd


def test_tiny_generator_quality_golden(tmp_path, capsys):
    band, sd, n = band_from_spread()
    out = tmp_path / "golden"
    assert main(["run", "golden", "--out", str(out), "--device", "cpu", "--no-progress", "--only", "alitok-tiny"]) == 0
    base, new = GOLDEN / "alitok-tiny" / "run_record.json", out / "alitok-tiny" / "run_record.json"
    gates = ["--fail", f"fid:+{band:.4f}", "--fail", f"fid:-{band:.4f}"]
    capsys.readouterr()
    rc = main(["compare", str(base), str(new), *gates])
    text = capsys.readouterr().out
    assert rc == 0, f"quality golden failed (band +-{band:.3f} = {BAND_SDS:g} sd of {n} seeds, sd {sd:.3f}):\n{text}"

    # the same gates fail on a planted regression just outside the band, either way
    for delta, gate in ((1.01 * band, f"fid:+{band:.4f}"), (-1.01 * band, f"fid:-{band:.4f}")):
        planted = tmp_path / f"planted{delta:+.0f}"
        shutil.copytree(out / "alitok-tiny", planted / "alitok-tiny", ignore=shutil.ignore_patterns("shards", "*.npz"))
        p = planted / "alitok-tiny" / "run_record.json"
        rec = json.loads(p.read_text())
        rec["metrics"]["fid"] = fields.metric(json.loads(base.read_text()), "fid") + delta
        p.write_text(json.dumps(rec))
        capsys.readouterr()
        assert main(["compare", str(base), str(p), *gates]) == 1
        assert f"FAIL {gate} [alitok-tiny]" in capsys.readouterr().out

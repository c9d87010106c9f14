"""End to end: `alitok-bench run demo` in a temporary folder (small N; the full demo is slow)."""

import json

import numpy as np
import pytest

from harness.cli import main
from harness.runs.records import load_records


def _header(text):
    return next(line for line in text.splitlines() if line.split()[:3] == ["label", "model", "N"])


def test_run_demo_small(tmp_path, capsys):
    out = tmp_path / "demo"
    argv = [
        "run",
        "demo",
        "--out",
        str(out),
        "--device",
        "cpu",
        "--no-progress",
        "--set",
        "num_samples=44",
        "--set",
        "metrics=[]",
        "--only",
        "real-data",
        "--only",
        "alitok-tiny",
    ]
    assert main(argv) == 0
    text = capsys.readouterr().out
    header = _header(text)
    assert "images/s" in header and "paper_comparable" in header
    assert any(line.split()[:3] == ["real-data", "real-data", "44"] for line in text.splitlines())
    assert any(line.split()[:3] == ["alitok-tiny", "alitok-tiny", "44"] for line in text.splitlines())
    with np.load(out / "real-data" / "samples.npz") as z:
        assert z["arr_0"].shape == (44, 32, 32, 3) and np.array_equal(z["labels"], np.arange(44) % 11)
    rec = json.loads((out / "real-data" / "run_record.json").read_text())
    assert rec["status"] == "ok" and rec["samples"]["n"] == 44 and rec["kind"] == "run"
    assert rec["spec"]["label"] == "real-data" and rec["spec"]["sweep_point"] == {}
    df = load_records(out)
    assert set(df[df.kind == "run"]["spec.label"]) == {"real-data", "alitok-tiny"}
    assert not (out / "alitok-tiny-tokenizer").exists()  # --only ran just the two labels
    assert (out / "summary.csv").is_file()
    first = (out / "real-data" / "samples.npz").read_bytes()
    # a rerun reuses every verified chunk and regathers the same bytes
    assert main(argv) == 0
    assert (out / "real-data" / "samples.npz").read_bytes() == first


@pytest.mark.slow
def test_run_demo_full(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["run", "demo", "--out", str(out), "--no-progress"]) == 0
    assert "real-data" in capsys.readouterr().out
    assert main(["report", str(out), "--out", str(out / "report")]) == 0
    assert (out / "report" / "fid_vs_speed.png").is_file() and (out / "report" / "grid_alitok-tiny.png").is_file()


def test_run_demo_with_metrics_wired(tmp_path, capsys):
    """The suite's metric path end to end (seeded random Inception keeps it cheap): reference built
    from the embedded val split, every model evaluated, numbers and provenance in the records."""
    out = tmp_path / "demo"
    argv = [
        "run",
        "demo",
        "--out",
        str(out),
        "--device",
        "cpu",
        "--no-progress",
        "--set",
        "num_samples=22",
        "--set",
        "inception=random:0",
        "--set",
        "reference_per_class=2",
        "--set",
        "kid_subset_size=20",
        "--only",
        "real-data",
        "--only",
        "alitok-tiny",
    ]
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "fid" in _header(text)
    for model in ("real-data", "alitok-tiny"):
        rec = json.loads((out / model / "run_record.json").read_text())
        assert rec["status"] == "ok", rec["notes"]
        assert np.isfinite(rec["metrics"]["fid"]) and rec["metrics"]["fid"] >= 0
        assert rec["metrics"]["is"] is not None  # random weights carry a classifier; fid-helper's do not
        assert rec["metric_provenance"]["weights"]["kind"] == "random"
        assert rec["paper_comparable"] is False
    assert list((out / "reference").glob("*.npz"))

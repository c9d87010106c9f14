"""The paper's speed ratios from one bench --upstream run: official against official and harness against harness
are taken from their own rows, never mixed, with the claims file's paper value beside them."""

import json

import pytest

from harness.report.claims import load_claims
from harness.report.fair_ratios import CLAIMS, fair_ratios, main


def _row(model, implementation, ips, lo, hi, batch=1, cfg=6.7, extrapolated=False):
    return {
        "model": model,
        "implementation": implementation,
        "batch_size": batch,
        "dtype": "fp32",
        "images_per_s": ips,
        "images_per_s_range": [lo, hi],
        "total_s": {"median": batch / ips, "iqr": 0.0},
        "extrapolated": extrapolated,
        "applied": {"cfg_scale": cfg},
    }


ROWS = [
    _row("alitok-xl-random", "project", 6.0, 5.0, 7.0),
    _row("alitok-xl-random-official", "upstream", 3.0, 2.0, 4.0),
    _row("lightningdit-xl-1-random", "project", 1.0, 0.5, 2.0, extrapolated=True),
    _row("lightningdit-xl-1-random-official", "upstream", 1.5, 1.0, 2.0, extrapolated=True),
    _row("alitok-l-random", "project", 8.0, 8.0, 8.0),
]


def test_each_ratio_from_its_own_implementation():
    entries = {e["claim"]: e for e in fair_ratios({"rows": ROWS}, load_claims(CLAIMS))}
    xl = entries["ratio-xl-lightningdit"]
    assert xl["paper"] == 10.5  # the claims file's value, not retyped here: 6.3 / 0.6 in its text
    assert xl["harness"]["ratio"] == pytest.approx(6.0 / 1.0) and xl["official"]["ratio"] == pytest.approx(3.0 / 1.5)
    # range: A's slowest over B's fastest .. A's fastest over B's slowest
    assert xl["harness"]["range"] == pytest.approx([5.0 / 2.0, 7.0 / 0.5])
    assert xl["official"]["extrapolated"] == ["lightningdit-xl-1-random-official"]
    rar = entries["ratio-l-rar-xxl"]
    assert "harness" not in rar and "official" not in rar
    assert rar["missing"] == "not measured in this run: alitok-l (official), rar-xxl (official), rar-xxl (harness)"
    # the no-CFG claim is not answered by a CFG run
    assert "without CFG" in entries["ratio-nocfg-lightningdit"]["missing"]


def test_cli_writes_both_files_and_refuses_a_run_without_official_rows(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    summary = {"rows": ROWS, "machine": {"device_name": "cpu-x", "torch_threads": 2}, "code": {"git_sha": "abc"}}
    (run / "bench_summary.json").write_text(json.dumps(summary))
    assert main([str(run), "--out", str(tmp_path / "out")]) == 0
    data = json.loads((tmp_path / "out" / "fair_ratios.json").read_text())
    assert {e["claim"] for e in data["ratios"]} >= {"ratio-xl-lightningdit", "ratio-l-rar-xxl"}
    md = (tmp_path / "out" / "fair_ratios.md").read_text()
    assert (
        "| ratio-xl-lightningdit | alitok-xl : lightningdit-xl-1 | 1 | fp32 | 10.5 | 2 (1..4) (extrapolated) | 6 " in md
    )
    summary["rows"] = [r for r in ROWS if r["implementation"] == "project"]
    (run / "bench_summary.json").write_text(json.dumps(summary))
    assert main([str(run), "--out", str(tmp_path / "out2")]) == 2
    assert "no official-code rows" in capsys.readouterr().err and not (tmp_path / "out2").exists()

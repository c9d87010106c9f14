"""Reports from records alone: tables carry uncertainty/comparability/protocol; output is deterministic."""

import hashlib
import json

import numpy as np
import pytest

from harness.report import fields, tables
from harness.report.collect import collect, frame, merge_by_label
from harness.report.plots import pareto_front
from harness.runs.records import RunRecord


def _rec(
    folder,
    label,
    *,
    fid=None,
    fid_std=None,
    ips=None,
    batch=None,
    cfg=None,
    prec=None,
    recall=None,
    is_=None,
    variant=None,
    findings=None,
    comparable=False,
    kind="eval",
    name="record.json",
    npz=None,
):
    metrics = {
        k: v
        for k, v in (("fid", fid), ("fid_std", fid_std), ("prec", prec), ("recall", recall), ("is", is_))
        if v is not None
    }
    rec = RunRecord(
        kind=kind,
        model={"name": label.split("_")[0], "sampling": {"cfg_scale": cfg} if cfg else {}},
        metrics=metrics,
        paper_comparable=comparable,
        env={"device_name": "test-cpu"},
        spec={"protocol": {"name": "demo", "num_samples": 220}},
        speed={k: v for k, v in (("images_per_s", ips), ("batch_size", batch)) if v is not None},
        samples={"n": 220, **({"npz": str(npz)} if npz else {})},
        run_id=f"run-{label}",
        created_at="2026-01-01T00:00:00+00:00",
    )
    d = rec.to_dict()
    d["label"] = label
    if variant:
        d["variant"] = variant
    if findings is not None:
        d["protocol_findings"] = findings
    path = folder / label / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(d))
    return path


@pytest.fixture
def results(tmp_path):
    root = tmp_path / "results"
    _rec(
        root,
        "fast",
        fid=20.0,
        fid_std=0.5,
        ips=100.0,
        batch=64,
        cfg=2.0,
        prec=0.6,
        recall=0.4,
        is_=50.0,
        findings=["N=220, not 50k"],
    )
    _rec(root, "slow-good", fid=10.0, ips=10.0, batch=128, cfg=4.0, prec=0.7, recall=0.3, is_=80.0)
    _rec(
        root,
        "dominated",
        fid=30.0,
        ips=5.0,
        batch=32,
        cfg=1.0,
        prec=0.5,
        recall=0.5,
        is_=30.0,
        variant="A",
        comparable=True,
    )
    _rec(root, "dominated-s1", fid=34.0, ips=5.0, variant="A")
    _rec(root, "fast_cfg4", fid=18.0, ips=100.0, cfg=4.0)  # a second guidance scale of "fast": a sweep
    return root


def test_accessors_tolerate_absence():
    rec = RunRecord(kind="eval").to_dict()
    assert fields.metric(rec, "fid") is None and fields.uncertainty(rec, "fid") is None
    assert fields.protocol_findings(rec) == [] and fields.guidance_scale(rec) is None
    assert fields.label(rec) == rec["run_id"]


def test_table_has_uncertainty_comparability_and_protocol_block(results):
    df = frame(collect([results]))
    assert list(df["label"]) == ["dominated", "dominated-s1", "fast", "fast_cfg4", "slow-good"]
    md = tables.to_markdown(df)
    assert "| fast | eval | 220 | 20.00 ± 0.50 |" in md  # ± only where the record has a sd
    assert "| slow-good | eval | 220 | 10.00 |" in md
    assert (
        "- **fast**: protocol demo; N=220; batch 64; guidance 2; hardware test-cpu; images/s: single pass, "
        "load not recorded, not a benchmark; not paper-comparable; N=220, not 50k" in md
    )
    assert "- **dominated**:" in md and "; paper-comparable" in md
    csv_lines = tables.to_csv(df).splitlines()
    header = csv_lines[0].split(",")
    fast = dict(zip(header, csv_lines[3].split(",")))
    assert fast["fid"] == "20" and fast["fid_unc"] == "0.5" and fast["paper_comparable"] == "False"
    tex = tables.to_latex(df)
    assert r"\toprule" in tex and r"\bottomrule" in tex and r"20.00 $\pm$ 0.50" in tex
    assert r"slow-good" in tex and "N=220, not 50k" in tex


def test_pareto_front_against_brute_force():
    rng = np.random.default_rng(0)
    x, y = rng.uniform(1, 100, 40), rng.uniform(1, 50, 40)
    front = set(pareto_front(x, y).tolist())
    brute = {
        i
        for i in range(40)
        if not any((x[j] >= x[i] and y[j] <= y[i]) and (x[j] > x[i] or y[j] < y[i]) for j in range(40))
    }
    assert front == brute


def test_merge_by_label_joins_speed_and_metrics(tmp_path):
    _rec(tmp_path, "m", fid=5.0, kind="eval", name="eval_record.json")
    _rec(tmp_path, "m", ips=42.0, kind="sample", name="sample_record.json")
    merged = merge_by_label(frame(collect([tmp_path])))
    assert len(merged) == 1 and merged.loc[0, "fid"] == 5.0 and merged.loc[0, "images_per_s"] == 42.0
    assert merged.loc[0, "kind"] == "eval+sample"


def _digest(folder):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def test_report_cli_regenerates_identical_files(results, tmp_path):
    from harness.cli import main

    rng = np.random.default_rng(0)
    npz = results / "samples.npz"  # a report reads sample files inside the results it is given only
    np.savez(npz, arr_0=rng.integers(0, 255, (12, 8, 8, 3), dtype=np.uint8), labels=np.repeat(np.arange(3), 4))
    _rec(results, "gridded", fid=15.0, ips=20.0, npz=npz)
    out = tmp_path / "report"
    assert main(["report", str(results), "--out", str(out)]) == 0
    first = _digest(out)
    for name in (
        "results.md",
        "results.csv",
        "results.tex",
        "fid_vs_speed.png",
        "fid_vs_speed.svg",
        "guidance_sweep.svg",
        "precision_recall.png",
        "speed_vs_batch.png",
        "ablation_bars.svg",
        "grid_gridded.png",
        "grid_gridded.svg",
    ):
        assert name in first, name
    for p in out.iterdir():
        p.unlink()
    assert main(["report", str(results), "--out", str(out)]) == 0
    assert _digest(out) == first
    assert b"<dc:date>" not in (out / "fid_vs_speed.svg").read_bytes()


def test_report_json_is_the_tidy_table_and_the_files_written(results, tmp_path, capsys):
    import json

    from harness.cli import main
    from harness.report.collect import summary_frame

    assert main(["report", str(results), "--out", str(tmp_path / "r"), "--no-grids", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)  # progress lines went to stderr
    assert [r["label"] for r in doc["rows"]] == list(summary_frame([results])["label"])
    assert sorted(doc["written"]) == sorted(p.name for p in (tmp_path / "r").iterdir())


def test_report_of_a_non_record_is_one_line_error(tmp_path, capsys):
    from harness.cli import main

    (tmp_path / "x_record.json").write_text('{"hello": 1}')
    assert main(["report", str(tmp_path), "--out", str(tmp_path / "o")]) == 2
    assert "not a run record" in capsys.readouterr().err


def test_ablation_and_sweep_statistics_match_numpy(tmp_path):
    from harness.report.plots import _by_scale, ablation_stats

    for i, (fid, cfg) in enumerate([(10.0, 2.0), (12.0, 2.0), (16.0, 2.0), (30.0, 1.0)]):
        _rec(tmp_path, f"m_s{i}", fid=fid, cfg=cfg, variant="A" if cfg == 2.0 else "B")
    df = merge_by_label(frame(collect([tmp_path])))
    stats = {g: (mean, sd, n) for g, mean, sd, n in ablation_stats(df, "fid")}
    assert stats["A"] == pytest.approx((np.mean([10, 12, 16]), np.std([10, 12, 16], ddof=1), 3))
    assert stats["B"][1] is None  # one record, no sd recorded: no error bar
    x, y, e = _by_scale(df, "fid")
    assert (
        list(x) == [1.0, 2.0] and y[1] == pytest.approx(38 / 3) and e[1] == pytest.approx(np.std([10, 12, 16], ddof=1))
    )

"""The demo's images/s is one unrepeated pass: stored as such with the load it ran under, a warning printed
and stored when the 1-minute load average exceeds the cores, and labelled in the report's tables and plots.
The load average is faked (os.getloadavg / os.cpu_count), so the test does not depend on this machine."""

import json
import os

from harness.report import plots, tables
from harness.report.collect import collect, frame, merge_by_label
from harness.suites.suite import get_suite, run_suite

SUITE = """
name: t
protocol: demo
num_samples: 11
entries:
  - label: floor
    model: {name: real-data}
"""


def _run(tmp_path, monkeypatch, load: float, cores: int):
    monkeypatch.setattr(os, "getloadavg", lambda: (load, load, load))
    monkeypatch.setattr(os, "cpu_count", lambda: cores)
    path = tmp_path / "t.yaml"
    path.write_text(SUITE)
    lines = []
    run_suite(get_suite(str(path)), tmp_path / "out", device="cpu", progress=False, root=tmp_path, echo=lines.append)
    return json.loads((tmp_path / "out" / "floor" / "run_record.json").read_text()), "\n".join(lines)


def test_busy_machine_warns_and_stores_the_load(tmp_path, monkeypatch):
    rec, printed = _run(tmp_path, monkeypatch, 9.3, 2)
    assert "warning: load average 9.3 exceeds the 2 cores" in printed
    speed = rec["speed"]
    assert speed["measurement"] == "single pass" and speed["loadavg_1m"] == 9.3 and speed["cpu_count"] == 2
    assert speed["load_warning"] is True
    assert any("load average 9.3 exceeds the 2 cores" in n for n in rec["notes"])
    df = frame(collect([tmp_path / "out"]))
    row = df.iloc[0]
    assert row["speed_basis"] == "single pass, load 9.3 on 2 cores" and bool(row["loaded"])
    md = tables.to_markdown(df)
    assert "(1 pass, load above cores)" in md and "not a reliable speed" in md


def test_quiet_machine_is_labelled_single_pass_without_warning(tmp_path, monkeypatch):
    rec, printed = _run(tmp_path, monkeypatch, 0.5, 2)
    assert "warning" not in printed and "single pass" in printed
    assert rec["speed"]["load_warning"] is False
    assert not any("load average" in n for n in rec["notes"])
    row = frame(collect([tmp_path / "out"])).iloc[0]
    assert row["speed_basis"] == "single pass, load 0.5 on 2 cores" and not row["loaded"]
    assert "(1 pass)" in tables.to_markdown(frame(collect([tmp_path / "out"])))


def _speed_record(folder, label, fid, ips, load, cores=2):
    from harness.runs.records import RunRecord

    rec = RunRecord(
        kind="run",
        model={"name": label},
        metrics={"fid": fid},
        speed={"images_per_s": ips, "measurement": "single pass", "loadavg_1m": load, "cpu_count": cores},
        spec={"protocol": {"name": "demo"}},
        samples={"n": 220},
        run_id=f"run-{label}",
        created_at="2026-01-01T00:00:00+00:00",
    ).to_dict()
    rec["label"] = label
    (folder / label).mkdir(parents=True)
    (folder / label / "run_record.json").write_text(json.dumps(rec))


def test_plot_marks_a_speed_taken_under_load(tmp_path):
    _speed_record(tmp_path, "quiet", 20.0, 100.0, 0.4)
    _speed_record(tmp_path, "busy", 30.0, 2.0, 9.3)
    fig = plots.fid_vs_speed(merge_by_label(frame(collect([tmp_path]))))
    ax = fig.axes[0]
    assert "one unrepeated pass" in ax.get_xlabel()
    faces = {}
    for c in ax.containers:  # one errorbar container per marker style
        line = c.lines[0]
        for x in line.get_xdata():
            faces[float(x)] = line.get_markerfacecolor()
    assert faces[2.0] == "none" and faces[100.0] != "none"  # the loaded system is hollow
    caption = " ".join(t.get_text() for t in fig.texts)
    assert "Load average above the core count during busy" in caption.replace("\n", " ")

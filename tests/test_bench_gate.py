"""The `make bench` regression gate: threshold from the measured spread, failure beyond it,
baselines picked by machine class."""
import json

import pytest

from harness.speed import gate


def _run(medians, iqr_frac=0.02, cls="intel-xeon-2cpu-2t"):
    return {"machine_info": {"machine_class": cls},
            "benchmarks": [{"fullname": n, "stats": {"median": m, "iqr": m * iqr_frac}} for n, m in medians.items()]}


def test_threshold_rule_from_run_to_run_and_within_run_spread():
    base = gate.make_baseline(_run({"a": 1.0, "b": 1.0, "c": 1.0}), _run({"a": 1.02, "b": 1.2, "c": 1.0}, 0.1))
    a, b, c = (base["benchmarks"][k] for k in "abc")
    assert a["median_s"] == pytest.approx(1.01)
    assert a["threshold"] == pytest.approx(0.2)  # 2 x IQR/median of the noisier run (0.1)
    assert b["run_to_run"] == pytest.approx(0.2 / 1.1)
    assert b["threshold"] == pytest.approx(3 * 0.2 / 1.1)  # 3 x run-to-run beats 2 x IQR
    assert c["threshold"] == pytest.approx(0.2)
    assert base["machine_class"] == "intel-xeon-2cpu-2t"


def test_check_fails_only_beyond_the_threshold():
    base = gate.make_baseline(_run({"a": 1.0, "b": 2.0}, 0.0), _run({"a": 1.0, "b": 2.0}, 0.0))  # floor 10 %
    failures, lines = gate.check(_run({"a": 1.09, "b": 2.3, "new": 1.0}), base)
    assert len(failures) == 1 and "b:" in failures[0]
    assert any(line.startswith("new") for line in lines)
    assert gate.check(_run({"a": 0.5}), base)[0] == []  # faster is never a failure; b missing is listed


def test_machine_class_slug():
    info = {"device_name": "Intel(R) Xeon(R) Processor", "cpu_count": 2, "torch_threads": 2}
    assert gate.machine_class(info) == "intel-r-xeon-r-processor-2cpu-2t"


def test_cli_save_check_and_missing_baseline(tmp_path, capsys):
    r1, r2, now = tmp_path / "r1.json", tmp_path / "r2.json", tmp_path / "now.json"
    r1.write_text(json.dumps(_run({"a": 1.0}, 0.0)))
    r2.write_text(json.dumps(_run({"a": 1.0}, 0.0)))
    now.write_text(json.dumps(_run({"a": 1.5}, 0.0)))
    base = tmp_path / "baselines"
    assert gate.main(["--check", str(now), "--baselines", str(base)]) == 0
    assert "no baseline" in capsys.readouterr().err
    assert gate.main(["--save", str(r1), str(r2), "--baselines", str(base)]) == 0
    assert (base / "intel-xeon-2cpu-2t.json").is_file()
    assert gate.main(["--check", str(now), "--baselines", str(base)]) == 1
    other = tmp_path / "other.json"
    other.write_text(json.dumps(_run({"a": 1.0}, cls="h200-16cpu-16t")))
    assert gate.main(["--save", str(r1), str(other), "--baselines", str(base)]) == 2
    assert gate.main(["--check", str(tmp_path / "nope.json"), "--baselines", str(base)]) == 2


CAL = "tests/benchmarks/test_bench_calibration.py::" + gate.CALIBRATION


def test_a_machine_slower_as_a_whole_passes_and_one_slower_path_fails():
    base = gate.make_baseline(_run({"a": 1.0, "b": 2.0, CAL: 0.5}, 0.0), _run({"a": 1.1, "b": 2.2, CAL: 0.55}, 0.0))
    assert base["normalized_by"] == gate.CALIBRATION and CAL not in base["benchmarks"]
    # 10 % apart in seconds, equal in calibration units: no run-to-run change, the 10 % floor applies
    assert base["benchmarks"]["a"]["run_to_run"] == pytest.approx(0.0)
    assert base["benchmarks"]["a"]["median_calibrations"] == pytest.approx(2.0)
    slow_machine = _run({"a": 1.6, "b": 3.2, CAL: 0.8})  # everything 1.52x the baseline's mean
    failures, lines = gate.check(slow_machine, base)
    assert failures == [] and lines[0].startswith("calib")
    one_path = _run({"a": 1.05, "b": 3.2, CAL: 0.525})  # the machine as in the baseline, b 52 % slower
    failures, _ = gate.check(one_path, base)
    assert len(failures) == 1 and " b:" in failures[0]


def test_without_the_calibration_the_gate_compares_seconds_and_says_so():
    base = gate.make_baseline(_run({"a": 1.0, CAL: 0.5}, 0.0), _run({"a": 1.0, CAL: 0.5}, 0.0))
    failures, lines = gate.check(_run({"a": 1.5}), base)
    assert lines[0].startswith("absolute seconds") and len(failures) == 1

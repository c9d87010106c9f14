"""The `make bench` regression gate: threshold from the measured spread, failure beyond it,
baselines picked by machine class."""

import json

import pytest

from harness.speed import gate


def _run(medians, iqr_frac=0.02, cls="intel-xeon-2cpu-2t", units=None):
    units = units or {}
    return {
        "machine_info": {"machine_class": cls},
        "benchmarks": [
            {
                "fullname": n,
                "stats": {"median": m, "iqr": m * iqr_frac},
                "extra_info": {"calibration": units[n]} if n in units else {},
            }
            for n, m in medians.items()
        ],
    }


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
    assert base["units"] == {"mixed": gate.CALIBRATION} and CAL not in base["benchmarks"]
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
    assert "absolute seconds" in lines[0] and len(failures) == 1


STREAM = "tests/benchmarks/test_bench_calibration.py::" + gate.STREAM_CALIBRATION


def test_stream_bound_work_is_judged_by_the_stream_calibration():
    """A VM phase that slows weight streaming 60 % and leaves compute as it was (seen here): the
    stream-bound step passes in stream units, and would have failed in the mixed unit; a step that
    slows on a machine that did not still fails."""
    units = {"step": "stream"}
    base = gate.make_baseline(
        _run({"step": 0.03, "fid": 1.0, CAL: 0.15, STREAM: 0.03}, 0.0, units=units),
        _run({"step": 0.03, "fid": 1.0, CAL: 0.15, STREAM: 0.03}, 0.0, units=units),
    )
    assert base["units"] == {"mixed": gate.CALIBRATION, "stream": gate.STREAM_CALIBRATION}
    assert (base["benchmarks"]["step"]["unit"], base["benchmarks"]["fid"]["unit"]) == ("stream", "mixed")
    slow_streaming = _run({"step": 0.048, "fid": 0.97, CAL: 0.14, STREAM: 0.048}, units=units)
    failures, lines = gate.check(slow_streaming, base)
    assert failures == [] and sum(line.startswith("calib") for line in lines) == 2
    mixed_only = {k: v for k, v in base.items()}
    mixed_only["benchmarks"] = {
        k: {**v, "unit": "mixed", "median_calibrations": v["median_s"] / 0.15} for k, v in base["benchmarks"].items()
    }
    assert len(gate.check(slow_streaming, mixed_only)[0]) == 1  # what the mixed unit alone made of it
    slower_code = _run({"step": 0.045, "fid": 1.0, CAL: 0.15, STREAM: 0.03}, units=units)
    failures, _ = gate.check(slower_code, base)
    assert len(failures) == 1 and " step:" in failures[0] and "stream calibrations" in failures[0]


def test_a_unit_missing_from_the_run_falls_back_to_mixed_and_says_so():
    units = {"step": "stream"}
    base = gate.make_baseline(
        _run({"step": 0.03, CAL: 0.15}, 0.0, units=units), _run({"step": 0.03, CAL: 0.15}, 0.0, units=units)
    )
    assert base["benchmarks"]["step"]["unit"] == "mixed"  # the runs had no stream calibration
    failures, lines = gate.check(_run({"step": 0.03, CAL: 0.15}, units=units), base)
    assert failures == [] and "in mixed calibrations" in lines[-1]


def test_a_baseline_from_before_the_stream_unit_still_checks():
    old = {
        "machine_class": "x",
        "normalized_by": gate.CALIBRATION,
        "calibration_s": [0.5, 0.5],
        "benchmarks": {"a": {"median_s": 1.0, "median_calibrations": 2.0, "threshold": 0.1}},
    }
    assert gate.check(_run({"a": 1.2, CAL: 0.6}), old)[0] == []  # the machine 20 % slower as a whole
    assert len(gate.check(_run({"a": 1.2, CAL: 0.5}), old)[0]) == 1

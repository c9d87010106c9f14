"""The speed regression gate behind `make bench`: pytest-benchmark results against a stored baseline.

A baseline is made from two runs of the suite on one machine class (``--save RUN1 RUN2``). For each
benchmark it keeps the mean of the two medians and a threshold set from the measured spread:

    threshold = max(MIN_THRESHOLD, 3 x |median1 - median2| / mean, 2 x IQR / median of the noisier run)

i.e. a regression must exceed three times the run-to-run change and twice the within-run spread
seen when the baseline was measured (and never less than 10 %). ``--check`` fails (exit 1) when a
benchmark's median exceeds ``baseline x (1 + threshold)``; benchmarks new since the baseline are
listed, not gated. The baseline is picked by machine class (device name, CPU count, torch threads).

Medians are compared as multiples of the machine calibration benchmark's median from the same run
(``test_bench_machine_calibration``: fixed matmul and memory-read work), in the baseline (its
run-to-run change too) and in the checked run: on a shared VM the whole machine was seen 30-70 %
slower from one hour to the next, which absolute times would report as regressions everywhere. A
run or baseline without the calibration is compared in absolute seconds, and the output says so.

    python -m harness.speed.gate --save results/bench/run1.json results/bench/run2.json --baselines results/bench/baselines
    python -m harness.speed.gate --check results/bench/pytest-benchmark-latest.json --baselines results/bench/baselines
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

from harness.errors import InputFileError, UserError

MIN_THRESHOLD = 0.10
CALIBRATION = "test_bench_machine_calibration"
RUN_TO_RUN_FACTOR = 3.0
IQR_FACTOR = 2.0


def machine_class(info: dict[str, Any]) -> str:
    """``<device name>-<cpus>cpu-<threads>t`` as a file-name-safe slug."""
    raw = f"{info.get('device_name', 'unknown')}-{info.get('cpu_count')}cpu-{info.get('torch_threads')}t"
    return re.sub(r"[^A-Za-z0-9.]+", "-", raw).strip("-").lower()


def _read(path: str | Path) -> dict[str, Any]:
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise InputFileError(path, f"not a readable pytest-benchmark JSON ({e})") from None
    if "benchmarks" not in data or "machine_info" not in data:
        raise InputFileError(path, "not a pytest-benchmark JSON (no benchmarks / machine_info)")
    return data


def _medians(data: dict[str, Any]) -> dict[str, dict[str, float]]:
    return {b["fullname"]: {"median": b["stats"]["median"], "iqr": b["stats"]["iqr"]} for b in data["benchmarks"]}


def _class_of(data: dict[str, Any], path) -> str:
    cls = data["machine_info"].get("machine_class")
    if not cls:
        raise InputFileError(path, "machine_info has no machine_class (run through tests/benchmarks/conftest.py)")
    return cls


def _calibration(medians: dict[str, dict[str, float]]) -> float | None:
    hits = [v["median"] for k, v in medians.items() if k.endswith(CALIBRATION)]
    return hits[0] if len(hits) == 1 else None


def make_baseline(run1: dict[str, Any], run2: dict[str, Any]) -> dict[str, Any]:
    a, b = _medians(run1), _medians(run2)
    ca, cb = _calibration(a), _calibration(b)
    normalized = ca is not None and cb is not None
    rows = {}
    for name in sorted(set(a) & set(b)):
        if name.endswith(CALIBRATION):
            continue
        m1, m2 = a[name]["median"], b[name]["median"]
        u1, u2 = (m1 / ca, m2 / cb) if normalized else (m1, m2)  # the compared unit: calibrations or seconds
        mean = (u1 + u2) / 2
        run_to_run = abs(u1 - u2) / mean
        within = max(a[name]["iqr"] / m1, b[name]["iqr"] / m2)
        rows[name] = {"median_s": (m1 + m2) / 2, "medians_s": [m1, m2], "run_to_run": run_to_run,
                      "within_run_iqr": within,
                      "threshold": max(MIN_THRESHOLD, RUN_TO_RUN_FACTOR * run_to_run, IQR_FACTOR * within)}
        if normalized:
            rows[name]["median_calibrations"] = mean
    return {"machine_class": run1["machine_info"]["machine_class"], "machine_info": run1["machine_info"],
            "rule": f"threshold = max({MIN_THRESHOLD}, {RUN_TO_RUN_FACTOR} x run-to-run, {IQR_FACTOR} x IQR/median)",
            "normalized_by": CALIBRATION if normalized else None,
            "calibration_s": [ca, cb] if normalized else None, "benchmarks": rows}


def check(current: dict[str, Any], baseline: dict[str, Any]) -> tuple[list[str], list[str]]:
    """``(failures, lines)``: one line per benchmark; a failure when median > baseline x (1 + threshold),
    medians in units of the run's calibration benchmark where both sides have it."""
    now = _medians(current)
    cal = _calibration(now)
    normalized = bool(baseline.get("normalized_by")) and cal is not None
    failures, lines = [], []
    if normalized:
        ref_cal = sum(baseline["calibration_s"]) / 2
        lines.append(f"calib    {CALIBRATION}: {cal:.4g} s vs {ref_cal:.4g} s ({cal / ref_cal - 1:+.1%}: the machine "
                     f"as a whole; every ratio below is in units of it)")
    else:
        lines.append("absolute seconds: the calibration benchmark is missing from this run or the baseline")
    for name, ref in baseline["benchmarks"].items():
        if name not in now:
            lines.append(f"missing  {name} (in the baseline, not in this run)")
            continue
        if normalized:
            ratio = now[name]["median"] / cal / ref["median_calibrations"]
        else:
            ratio = now[name]["median"] / ref["median_s"]
        raw = now[name]["median"] / ref["median_s"]
        bad = ratio > 1.0 + ref["threshold"]
        line = (f"{'FAIL' if bad else 'ok':8} {name}: median {now[name]['median']:.4g} s vs {ref['median_s']:.4g} s "
                f"({raw - 1:+.1%}{f'; {ratio - 1:+.1%} calibrated' if normalized else ''}, "
                f"threshold +{ref['threshold']:.0%})")
        lines.append(line)
        if bad:
            failures.append(line)
    lines += [f"new      {n} (not in the baseline)" for n in sorted(set(now) - set(baseline["benchmarks"]))
              if not n.endswith(CALIBRATION)]
    return failures, lines


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m harness.speed.gate", description=__doc__.splitlines()[0])
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--save", nargs=2, metavar=("RUN1", "RUN2"), help="make the baseline of this machine class")
    g.add_argument("--check", metavar="CURRENT", help="gate a run against the baseline of its machine class")
    p.add_argument("--baselines", required=True, help="folder of <machine class>.json baselines")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    folder = Path(args.baselines)
    try:
        if args.save:
            runs = [_read(x) for x in args.save]
            classes = {_class_of(d, x) for d, x in zip(runs, args.save)}
            if len(classes) != 1:
                raise UserError(f"--save: the two runs are from different machine classes ({', '.join(sorted(classes))})")
            base = make_baseline(*runs)
            folder.mkdir(parents=True, exist_ok=True)
            from harness.io import write_json_atomic

            write_json_atomic(folder / f"{base['machine_class']}.json", base)
            for name, r in base["benchmarks"].items():
                print(f"{name}: {r['median_s']:.4g} s, run-to-run {r['run_to_run']:.1%}, threshold {r['threshold']:.0%}")
            return 0
        current = _read(args.check)
        cls = _class_of(current, args.check)
        path = folder / f"{cls}.json"
        if not path.is_file():
            print(f"gate: no baseline for machine class {cls!r} in {folder}; nothing compared. Make one from two runs: "
                  f"python -m harness.speed.gate --save RUN1 RUN2 --baselines {folder}", file=sys.stderr)
            return 0
        failures, lines = check(current, json.loads(path.read_text()))
        print("\n".join(lines))
        print(f"gate: {len(failures)} regression(s) against {path}" if failures else f"gate: ok against {path}")
        return 1 if failures else 0
    except UserError as e:
        print(f"gate: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())

"""The speed regression gate behind `make bench`: pytest-benchmark results against a stored baseline.

A baseline is made from two runs of the suite on one machine class (``--save RUN1 RUN2``). For each
benchmark it keeps the mean of the two medians and a threshold set from the measured spread:

    threshold = max(MIN_THRESHOLD, 3 x |median1 - median2| / mean, 2 x IQR / median of the noisier run)

i.e. a regression must exceed three times the run-to-run change and twice the within-run spread
seen when the baseline was measured (and never less than 10 %). ``--check`` fails (exit 1) when a
benchmark's median exceeds ``baseline x (1 + threshold)``; benchmarks new since the baseline are
listed, not gated. The baseline is picked by machine class (device name, CPU count, torch threads).

Medians are compared as multiples of a machine calibration benchmark's median from the same run, in
the baseline (its run-to-run change too) and in the checked run: on a shared VM the whole machine was
seen 30-70 % slower from one hour to the next, which absolute times would report as regressions
everywhere. Two units (harness/speed/calibration.py), chosen by each benchmark in its
``extra_info["calibration"]``:

- ``mixed`` (the default; ``test_bench_machine_calibration``): fixed fp32 / float64 matmul and a
  256 MB read;
- ``stream`` (``test_bench_machine_calibration_stream``): a 4-row oneDNN Linear over 256 MB of packed
  weights, for work bound by streaming weights (a full-size decode step at batch 2). VM phases here
  slowed exactly that by 25-90 % while the mixed workload ran 4-8 % faster, and failed the step
  benchmarks on no code change (results/bench/README.md).

A benchmark whose unit is missing from either side falls back to ``mixed``, then to absolute seconds,
and its line says which it used.

    python -m harness.speed.gate --save results/bench/run1.json results/bench/run2.json --baselines results/bench/baselines
    python -m harness.speed.gate --check results/bench/pytest-benchmark-latest.json --baselines results/bench/baselines
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import Any

from harness.core.errors import InputFileError, UserError
from harness.core.io import read_json

MIN_THRESHOLD = 0.10
CALIBRATION = "test_bench_machine_calibration"
STREAM_CALIBRATION = "test_bench_machine_calibration_stream"
# a benchmark's unit, named in its extra_info["calibration"] (default "mixed"): the calibration benchmark
# whose median from the same run it is divided by
UNITS = {"mixed": CALIBRATION, "stream": STREAM_CALIBRATION}
RUN_TO_RUN_FACTOR = 3.0
IQR_FACTOR = 2.0


def machine_class(info: dict[str, Any]) -> str:
    """``<device name>-<cpus>cpu-<threads>t`` as a file-name-safe slug."""
    raw = f"{info.get('device_name', 'unknown')}-{info.get('cpu_count')}cpu-{info.get('torch_threads')}t"
    return re.sub(r"[^A-Za-z0-9.]+", "-", raw).strip("-").lower()


def _read(path: str | Path) -> dict[str, Any]:
    data = read_json(path)  # one line naming the file for bad UTF-8, bad JSON, absurd nesting
    if not isinstance(data, dict) or "benchmarks" not in data or "machine_info" not in data:
        raise InputFileError(path, "not a pytest-benchmark JSON (no benchmarks / machine_info)")
    return data


def _is(name: str, bench: str) -> bool:
    """``name`` (a pytest-benchmark fullname) is the benchmark function ``bench``."""
    return name == bench or name.endswith("::" + bench)


def _is_calibration(name: str) -> bool:
    return any(_is(name, c) for c in UNITS.values())


def _medians(data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        b["fullname"]: {
            "median": b["stats"]["median"],
            "iqr": b["stats"]["iqr"],
            "unit": (b.get("extra_info") or {}).get("calibration", "mixed"),
        }
        for b in data["benchmarks"]
    }


def _class_of(data: dict[str, Any], path) -> str:
    cls = data["machine_info"].get("machine_class")
    if not cls:
        raise InputFileError(path, "machine_info has no machine_class (run through tests/benchmarks/conftest.py)")
    return cls


def _calibrations(medians: dict[str, dict[str, Any]]) -> dict[str, float]:
    """``{unit: median seconds}`` of the calibration benchmarks present (each exactly once)."""
    out = {}
    for unit, bench in UNITS.items():
        hits = [v["median"] for k, v in medians.items() if _is(k, bench)]
        if len(hits) == 1:
            out[unit] = hits[0]
    return out


def _unit(asked: str, available: set[str]) -> str:
    """The unit a benchmark asks for where the runs have it, else ``mixed``, else plain seconds."""
    return asked if asked in available else "mixed" if "mixed" in available else "seconds"


def make_baseline(run1: dict[str, Any], run2: dict[str, Any]) -> dict[str, Any]:
    a, b = _medians(run1), _medians(run2)
    ca, cb = _calibrations(a), _calibrations(b)
    both = set(ca) & set(cb)
    rows = {}
    for name in sorted(set(a) & set(b)):
        if _is_calibration(name):
            continue
        m1, m2 = a[name]["median"], b[name]["median"]
        unit = _unit(a[name]["unit"], both)
        u1, u2 = (m1 / ca[unit], m2 / cb[unit]) if unit != "seconds" else (m1, m2)  # the compared unit
        mean = (u1 + u2) / 2
        run_to_run = abs(u1 - u2) / mean
        within = max(a[name]["iqr"] / m1, b[name]["iqr"] / m2)
        rows[name] = {
            "median_s": (m1 + m2) / 2,
            "medians_s": [m1, m2],
            "run_to_run": run_to_run,
            "within_run_iqr": within,
            "unit": unit,
            "threshold": max(MIN_THRESHOLD, RUN_TO_RUN_FACTOR * run_to_run, IQR_FACTOR * within),
        }
        if unit != "seconds":
            rows[name]["median_calibrations"] = mean
    return {
        "machine_class": run1["machine_info"]["machine_class"],
        "machine_info": run1["machine_info"],
        "rule": f"threshold = max({MIN_THRESHOLD}, {RUN_TO_RUN_FACTOR} x run-to-run, {IQR_FACTOR} x IQR/median)",
        "units": {u: UNITS[u] for u in sorted(both)},
        "calibration_s": {u: [ca[u], cb[u]] for u in sorted(both)},
        "benchmarks": rows,
    }


def _baseline_calibrations(baseline: dict[str, Any]) -> dict[str, float]:
    cal = baseline.get("calibration_s")
    if isinstance(cal, list):  # a baseline from before the stream unit: one calibration, "mixed"
        return {"mixed": sum(cal) / 2} if baseline.get("normalized_by") else {}
    return {u: sum(v) / 2 for u, v in (cal or {}).items()}


def check(current: dict[str, Any], baseline: dict[str, Any]) -> tuple[list[str], list[str]]:
    """``(failures, lines)``: one line per benchmark; a failure when median > baseline x (1 + threshold),
    medians in units of the benchmark's calibration from the same run where both sides have it."""
    now = _medians(current)
    cal, ref_cal = _calibrations(now), _baseline_calibrations(baseline)
    failures, lines = [], []
    for unit in sorted(set(cal) & set(ref_cal)):
        lines.append(
            f"calib    {UNITS[unit]}: {cal[unit]:.4g} s vs {ref_cal[unit]:.4g} s "
            f"({cal[unit] / ref_cal[unit] - 1:+.1%}: the machine for {unit}-bound work)"
        )
    for name, ref in baseline["benchmarks"].items():
        if name not in now:
            lines.append(f"missing  {name} (in the baseline, not in this run)")
            continue
        unit = ref.get("unit", "mixed" if ref_cal else "seconds")
        calibrated = unit in cal and "median_calibrations" in ref
        if calibrated:
            ratio = now[name]["median"] / cal[unit] / ref["median_calibrations"]
        else:
            ratio = now[name]["median"] / ref["median_s"]
        raw = now[name]["median"] / ref["median_s"]
        bad = ratio > 1.0 + ref["threshold"]
        how = f"; {ratio - 1:+.1%} in {unit} calibrations" if calibrated else "; absolute seconds"
        line = (
            f"{'FAIL' if bad else 'ok':8} {name}: median {now[name]['median']:.4g} s vs {ref['median_s']:.4g} s "
            f"({raw - 1:+.1%}{how}, threshold +{ref['threshold']:.0%})"
        )
        lines.append(line)
        if bad:
            failures.append(line)
    lines += [
        f"new      {n} (not in the baseline)"
        for n in sorted(set(now) - set(baseline["benchmarks"]))
        if not _is_calibration(n)
    ]
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
                raise UserError(
                    f"--save: the two runs are from different machine classes ({', '.join(sorted(classes))})"
                )
            base = make_baseline(*runs)
            folder.mkdir(parents=True, exist_ok=True)
            from harness.core.io import write_json_atomic

            write_json_atomic(folder / f"{base['machine_class']}.json", base)
            for name, r in base["benchmarks"].items():
                print(
                    f"{name}: {r['median_s']:.4g} s, run-to-run {r['run_to_run']:.1%}, threshold {r['threshold']:.0%}"
                )
            return 0
        current = _read(args.check)
        cls = _class_of(current, args.check)
        path = folder / f"{cls}.json"
        if not path.is_file():
            print(
                f"gate: no baseline for machine class {cls!r} in {folder}; nothing compared. Make one from two runs: "
                f"python -m harness.speed.gate --save RUN1 RUN2 --baselines {folder}",
                file=sys.stderr,
            )
            return 0
        failures, lines = check(current, read_json(path))
        print("\n".join(lines))
        print(f"gate: {len(failures)} regression(s) against {path}" if failures else f"gate: ok against {path}")
        return 1 if failures else 0
    except UserError as e:
        print(f"gate: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())

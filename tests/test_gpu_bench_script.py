"""scripts/gpu_bench.sh (`make gpu-bench`) run end to end on the CPU, scaled down: the script a GPU
machine gets once, for minutes, must not fail there on a typo. Same models as the GPU call would use
first (the AR and the diffusion side), batch 1, AliTok-B timed on 2 of its steps and LightningDiT on 1 of
its calls; the compiled run is switched off (it compiles for minutes on a CPU), and the upstream run is
pointed at an empty folder (its path is covered by tests/test_bench_upstream.py)."""

import json
import os
import subprocess
import sys
from pathlib import Path

from cli_runs import HANG_GUARD_S

ROOT = Path(__file__).resolve().parents[1]


def test_gpu_bench_script_runs_both_presets_side_by_side_on_cpu(tmp_path):
    env = {
        **os.environ,
        "PYTHON": sys.executable,
        "OUT": str(tmp_path),
        "GPU_BENCH_DEVICE": "cpu",
        "GPU_BENCH_MODELS": "alitok-b lightningdit-xl-1",
        "GPU_BENCH_DIFF_STEPS_LIMIT": "1",
        "GPU_BENCH_ARGS": "--batch-size 1 --repeats 1 --warmup 0 --steps-limit alitok-b=2 --threads 2 --low-memory",
        "GPU_BENCH_COMPILE": "0",
        "GPU_BENCH_NO_CAP": "1",
        "GPU_BENCH_UPSTREAM": str(tmp_path / "no-checkouts"),
    }
    # no wall-clock cap (the script's caps are sized for a GPU; a shared CPU runs this many times slower) and
    # one model in memory at a time (--low-memory), so a loaded machine with little free memory still passes
    proc = subprocess.run(
        ["bash", "scripts/gpu_bench.sh"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=HANG_GUARD_S
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "failed or timed out" not in proc.stdout, proc.stdout
    for preset, dtype in (("paper", "fp32"), ("gpu-check", "bf16")):
        summary = json.loads((tmp_path / preset / "bench_summary.json").read_text())
        rows = {r["model"]: r for r in summary["rows"]}
        assert set(rows) == {"alitok-b-random", "lightningdit-xl-1"} and summary["preset"] == preset
        assert {r["dtype"] for r in rows.values()} == {dtype} and {r["batch_size"] for r in rows.values()} == {1}
        assert rows["lightningdit-xl-1"]["steps_measured"] == 1 and rows["alitok-b-random"]["steps_measured"] == 2
        (pair,) = summary["ratios"]  # the two models measured side by side, in one call
        assert pair["extrapolated_models"] == ["alitok-b-random", "lightningdit-xl-1"]
    assert "skipped the compiled AliTok-B bf16 run" in proc.stdout
    assert "skipped upstream-vs-project (no official alitok checkout" in proc.stdout
    last = proc.stdout.rstrip().split("== ")[-1].splitlines()  # the last run's ratios, then its table
    assert last[0].endswith("paper/bench_summary.md") and last[1].startswith("- alitok-b-random : lightningdit")
    assert last[-1].startswith("| lightningdit-xl-1 | 1 | fp32 |")

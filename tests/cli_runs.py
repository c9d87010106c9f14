"""Subprocess runs for tests: ``python ARGS`` in one process, or under torchrun (gloo) with N processes,
with one environment (repo on the path, 1 thread, offline, no progress bars), and the weight comparison
the 1-vs-N-process tests share."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
# Subprocess timeouts only catch a hung child; they are never a speed limit. A CI machine shared with other
# work runs the suite many times slower than a quiet one (38 minutes instead of minutes at load 10-12).
HANG_GUARD_S = 3600


def env(**extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "OMP_NUM_THREADS": "1",
        "HF_HUB_OFFLINE": "1",
        "ALITOK_PROGRESS": "0",
        **extra,
    }


def python(
    *argv: str,
    nproc: int | None = None,
    cwd: Path = REPO,
    extra_env: dict[str, str] | None = None,
    timeout: int = HANG_GUARD_S,
) -> subprocess.CompletedProcess:
    """``python *argv``; with ``nproc``, ``python -m torch.distributed.run --standalone --nproc_per_node N *argv``."""
    launcher = [] if nproc is None else ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(nproc)]
    return subprocess.run(
        [sys.executable, *launcher, *argv],
        cwd=cwd,
        env=env(**(extra_env or {})),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def max_weight_diff(a: Path, b: Path) -> float:
    """Largest absolute difference between two checkpoints with the same keys."""
    from harness.nn.checkpoints.checkpoint import load_state_dict

    sa, sb = load_state_dict(a), load_state_dict(b)
    assert sa.keys() == sb.keys()
    return max(float((sa[k].double() - sb[k].double()).abs().max()) for k in sa)


def sample_killed_midway(args: list[str], out: Path, after_chunks: int = 3, timeout: float = HANG_GUARD_S) -> int:
    """Start ``harness sample ARGS --out OUT`` slowed per chunk (``ALITOK_BENCH_TEST_CHUNK_DELAY``), SIGKILL it
    once ``after_chunks`` shards exist; returns the number of shards on disk."""
    import signal
    import time

    proc = subprocess.Popen(
        [sys.executable, "-m", "harness", "sample", *args, "--out", str(out)],
        cwd=REPO,
        env=env(ALITOK_BENCH_TEST_CHUNK_DELAY="0.5"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + timeout
    while time.time() < deadline and len(list((out / "shards").glob("chunk_*.npz"))) < after_chunks:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    return len(list((out / "shards").glob("chunk_*.npz")))


def sample_one_and_two_processes(args: list[str], tmp_path: Path) -> bytes:
    """``harness sample ARGS`` in 1 process and in 2 gloo processes; asserts byte-identical ``samples.npz``
    and returns its bytes."""
    one = python("-m", "harness", "sample", *args, "--out", str(tmp_path / "one"))
    assert one.returncode == 0, one.stderr[-2000:]
    two = python("-m", "harness", "sample", *args, "--out", str(tmp_path / "two"), nproc=2)
    assert two.returncode == 0, two.stderr[-2000:]
    ref = (tmp_path / "one" / "samples.npz").read_bytes()
    assert (tmp_path / "two" / "samples.npz").read_bytes() == ref
    return ref

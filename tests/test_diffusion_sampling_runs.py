"""Diffusion sampling through the harness runner: 1 vs 2 gloo processes byte-identical, and a
SIGKILLed run resumed to the same bytes as an uninterrupted one (committed tiny DiT, DDPM)."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parent.parent
PY = sys.executable
ARGS = ["--model", "dit-tiny", "--protocol", "demo", "--num-samples", "30", "--chunk-size", "3",
        "--set", "model.sampling.steps=6", "--set", "model.sampling.cfg_scale=2.0", "--no-progress", "--device", "cpu"]


def _cli(*args, env=None):
    e = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", **(env or {})}
    return subprocess.run([PY, *args], cwd=REPO, env=e, capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_dit_tiny_one_vs_two_processes_and_kill_resume(tmp_path):
    one = _cli("-m", "harness", "sample", *ARGS, "--out", str(tmp_path / "one"))
    assert one.returncode == 0, one.stderr[-2000:]
    two = _cli("-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               "-m", "harness", "sample", *ARGS, "--out", str(tmp_path / "two"))
    assert two.returncode == 0, two.stderr[-2000:]
    ref = (tmp_path / "one" / "samples.npz").read_bytes()
    assert (tmp_path / "two" / "samples.npz").read_bytes() == ref
    with np.load(tmp_path / "one" / "samples.npz") as z:
        imgs = z["arr_0"]
        assert imgs.shape == (30, 32, 32, 3) and len({imgs[i].tobytes() for i in range(30)}) == 30

    out = tmp_path / "killed"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "ALITOK_BENCH_TEST_CHUNK_DELAY": "0.5"}
    proc = subprocess.Popen([PY, "-m", "harness", "sample", *ARGS, "--out", str(out)], cwd=REPO, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while time.time() < deadline and len(list((out / "shards").glob("chunk_*.npz"))) < 3:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = len(list((out / "shards").glob("chunk_*.npz")))
    assert 3 <= done < 10 and not (out / "samples.npz").exists()
    again = _cli("-m", "harness", "sample", *ARGS, "--out", str(out))
    assert again.returncode == 0, again.stderr[-2000:]
    assert "reused" in again.stdout
    assert (out / "samples.npz").read_bytes() == ref

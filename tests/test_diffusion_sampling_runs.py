"""Diffusion sampling through the harness runner: 1 vs 2 gloo processes byte-identical, and a
SIGKILLed run resumed to the same bytes as an uninterrupted one (committed tiny DiT, DDPM)."""

import numpy as np
import pytest
from cli_runs import python, sample_killed_midway, sample_one_and_two_processes

ARGS = [
    "--model",
    "dit-tiny",
    "--protocol",
    "demo",
    "--num-samples",
    "30",
    "--chunk-size",
    "3",
    "--set",
    "model.sampling.steps=6",
    "--set",
    "model.sampling.cfg_scale=2.0",
    "--no-progress",
    "--device",
    "cpu",
]


@pytest.mark.slow
def test_dit_tiny_one_vs_two_processes_and_kill_resume(tmp_path):
    ref = sample_one_and_two_processes(ARGS, tmp_path)
    with np.load(tmp_path / "one" / "samples.npz") as z:
        imgs = z["arr_0"]
        assert imgs.shape == (30, 32, 32, 3) and len({imgs[i].tobytes() for i in range(30)}) == 30

    out = tmp_path / "killed"
    done = sample_killed_midway(ARGS, out)
    assert 3 <= done < 10 and not (out / "samples.npz").exists()
    again = python("-m", "harness", "sample", *ARGS, "--out", str(out))
    assert again.returncode == 0, again.stderr[-2000:]
    assert "reused" in again.stdout
    assert (out / "samples.npz").read_bytes() == ref

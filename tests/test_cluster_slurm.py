"""The SLURM path against a real scheduler (``make test-slurm``: a one-node cluster on this machine,
scripts/slurm_local_cluster.sh): sbatch of the sampling job, the evaluation afterok it and the report;
``scontrol requeue`` of the sampling job once its first chunk is on disk; the rerun resumes from the
manifest, and the samples equal a one-process run byte for byte."""

from __future__ import annotations

import shutil
import subprocess
import time

import pytest
from cli_runs import python

pytestmark = pytest.mark.slurm

SUITE = """name: tiny-slurm
protocol: demo
num_samples: 75
entries:
  - {label: titok, model: {name: titok-ar-tiny}}
"""


def _wait(predicate, timeout: float) -> bool:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return True
        time.sleep(0.5)
    return False


def test_slurm_requeue_resumes_and_matches_one_process(tmp_path):
    if shutil.which("sbatch") is None or subprocess.run(["sinfo"], capture_output=True).returncode != 0:
        pytest.skip("no SLURM cluster here (make test-slurm starts one)")
    (tmp_path / "s.yaml").write_text(SUITE)
    one = python("-m", "harness", "run", str(tmp_path / "s.yaml"), "--device", "cpu", "--out", str(tmp_path / "one"))
    assert one.returncode == 0, one.stderr[-2000:]
    out = tmp_path / "cluster"
    sub = python(
        "-m",
        "harness",
        "run",
        str(tmp_path / "s.yaml"),
        "--executor",
        "slurm",
        "--device",
        "cpu",
        "--cpus-per-task",
        "1",
        "--time",
        "10",
        "--out",
        str(out),
        extra_env={"ALITOK_BENCH_TEST_CHUNK_DELAY": "3"},
    )
    assert sub.returncode == 0, sub.stderr[-2000:]
    import json

    jobs = json.loads((out / "_cluster" / "state.json").read_text())["jobs"]
    sample_id = next(j["job_id"] for j in jobs if j["kind"] == "sample")
    first = out / "titok" / "shards" / "chunk_00000.npz"
    assert _wait(first.exists, 300), "the sampling job wrote no chunk"
    first_mtime = first.stat().st_mtime_ns
    requeue = subprocess.run(["scontrol", "requeue", sample_id], capture_output=True, text=True)
    assert requeue.returncode == 0, requeue.stderr
    assert _wait(lambda: (out / "summary.csv").exists(), 600), subprocess.run(
        ["squeue"], capture_output=True, text=True
    ).stdout
    restarts = subprocess.run(["scontrol", "show", "job", sample_id], capture_output=True, text=True).stdout
    assert "Restarts=1" in restarts
    log = (out / "_cluster" / "logs" / f"{sample_id}_0_log.out").read_text()
    # killed mid-run (KillWait=2 s, 3 s per chunk): one completion for two starts; chunk 0 was kept, not redone
    assert log.count("Starting with JobEnvironment") == 2 and log.count("Job completed successfully") == 1, log
    assert first.stat().st_mtime_ns == first_mtime
    assert (out / "titok" / "samples.npz").read_bytes() == (tmp_path / "one" / "titok" / "samples.npz").read_bytes()
    status = python("-m", "harness", "run", "--status", str(out))
    assert status.returncode == 0 and status.stdout.count(" done ") == 3, status.stdout + status.stderr

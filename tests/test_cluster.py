"""Suites through submitit (harness/suites/cluster/): the local executor with a sampling task SIGKILLed mid-run,
resubmitted and resumed from its manifest, gives the bytes and the table of a one-process run; the SLURM
path submits the job arrays, dependencies and resources the plan says (read back from the sbatch scripts
submitit writes; ``sbatch`` itself is a recording stand-in, as no scheduler runs here)."""

from __future__ import annotations

import os
import signal
import stat
import time
from pathlib import Path

import pandas as pd
import submitit
from cli_runs import REPO

SUITE = """name: tiny-cluster
protocol: demo
num_samples: 75           # 3 chunks of the demo protocol's 25
entries:
  - {label: titok, model: {name: titok-ar-tiny}}
"""


def _children(pid: int) -> list[int]:
    """Processes whose parent is ``pid`` (submitit's local controller runs the task as its child)."""
    kids = []
    for stat_file in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat_file.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            kids.append(int(stat_file.parent.name))
    return kids


def test_local_executor_kill_requeue_matches_one_process(tmp_path, monkeypatch):
    from harness.suites.cluster import executor
    from harness.suites.cluster.jobs import task_folder
    from harness.suites.cluster.plan import Resources, plan_suite
    from harness.suites.suite import load_suite_file, run_suite

    (tmp_path / "s.yaml").write_text(SUITE)
    suite = load_suite_file(tmp_path / "s.yaml")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setenv("ALITOK_PROGRESS", "0")
    ref_table = run_suite(suite, tmp_path / "one", device="cpu", progress=False, echo=lambda *_: None)

    # two sampling jobs (chunks [0,2) and [2,3)), slowed so the kill lands between task 0's two chunks
    monkeypatch.setenv("PYTHONPATH", str(REPO))
    monkeypatch.setenv("ALITOK_BENCH_TEST_CHUNK_DELAY", "1.0")
    res = Resources(executor="local", tasks_per_entry=2, time_min=10)
    entries = plan_suite(suite, res)
    assert entries[0].chunk_ranges == ((0, 2), (2, 3))
    out = tmp_path / "cluster"
    live: dict = {}
    state = executor.submit(suite, out, entries, res, device="cpu", live=live)
    victim = next(j for j in state["jobs"] if j["task"] == 0)
    first = task_folder(out, "titok", 0, 2) / "shards" / "chunk_00000.npz"
    deadline = time.time() + 120
    while not first.exists() and time.time() < deadline:
        time.sleep(0.05)
    assert first.exists(), "task 0 wrote no chunk"
    first_mtime = first.stat().st_mtime_ns
    kids = _children(int(victim["job_id"]))
    assert kids, "no task process under the local controller"
    for pid in kids:
        os.kill(pid, signal.SIGKILL)
    monkeypatch.setenv("ALITOK_BENCH_TEST_CHUNK_DELAY", "0")
    lines: list[str] = []
    executor.follow_local(suite, out, res, device="cpu", echo=lines.append, live=live)

    assert any("resubmitted" in line for line in lines), lines
    final = executor.status(out)
    assert [j["tries"] for j in final if j["kind"] == "sample"] == [2, 1]
    assert all(j["status"] == "done" for j in final), final
    # the rerun resumed from the manifest: chunk 0, made before the kill, was not made again
    assert first.stat().st_mtime_ns == first_mtime
    assert (out / "titok" / "samples.npz").read_bytes() == (tmp_path / "one" / "titok" / "samples.npz").read_bytes()
    table = pd.read_csv(out / "summary.csv")
    cols = ["label", "model", "N", "paper_comparable", "status"]  # images/s is a timing, not a result
    pd.testing.assert_frame_equal(table[cols], ref_table[cols].astype(table[cols].dtypes.to_dict()))


def test_slurm_submission_scripts(tmp_path, monkeypatch):
    """What the SLURM path hands sbatch: a job array per entry over the planned chunk ranges with the
    requested resources and the preemption signal, evaluation afterok its array, the report afterok all."""
    from harness.suites.cluster import executor
    from harness.suites.cluster.plan import Resources, plan_suite
    from harness.suites.suite import load_suite_file

    log = tmp_path / "sbatch.log"
    fake = tmp_path / "bin" / "sbatch"
    fake.parent.mkdir()
    fake.write_text(
        f'#!/bin/sh\nn=$(wc -l < {log} 2>/dev/null || echo 0)\necho "$@" >> {log}\n'
        'echo "Submitted batch job $((1000 + n))"\n'
    )
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    (fake.parent / "srun").write_text("#!/bin/sh\nexit 1\n")  # submitit checks that srun exists; never run here
    (fake.parent / "srun").chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake.parent}:{os.environ['PATH']}")
    (tmp_path / "s.yaml").write_text(
        SUITE.replace("entries:", "entries:\n  - {label: lg, model: {name: llamagen-tiny}}")
    )
    suite = load_suite_file(tmp_path / "s.yaml")
    res = Resources(
        executor="slurm", gpus_per_job=8, nodes=2, time_min=90, partition="gpu", array_parallelism=1, tasks_per_entry=2
    )
    state = executor.submit(suite, tmp_path / "out", plan_suite(suite, res), res)
    ids = {(j["kind"], j["label"], j.get("task")): j["job_id"] for j in state["jobs"]}
    assert ids[("sample", "lg", 0)] == "1000_0" and ids[("sample", "titok", 1)] == "1001_1"
    assert ids[("evaluate", "lg", None)] == "1002" and ids[("report", "", None)] == "1004"
    logs = Path(state["folder"])
    array = (logs / "1000_submission.sh").read_text()
    for line in (
        "#SBATCH --array=0-1%1",
        "#SBATCH --gpus-per-node=8",
        "#SBATCH --ntasks-per-node=8",
        "#SBATCH --nodes=2",
        "#SBATCH --time=90",
        "#SBATCH --partition=gpu",
        "#SBATCH --signal=USR2@120",
    ):
        assert line in array, line
    assert "--dependency=afterok:1000_0:1000_1" in (logs / "1002_submission.sh").read_text()
    assert "--dependency=afterok:1002:1003" in (logs / "1004_submission.sh").read_text()
    # the pickled task of array element 1 of the second entry samples chunks [2, 3) of titok
    task = submitit.helpers.DelayedSubmission.load(logs / "1001_1_submitted.pkl").function
    assert (task.label, task.task, task.tasks, task.chunk_range) == ("titok", 1, 2, (2, 3))
    assert isinstance(task.checkpoint(), submitit.helpers.DelayedSubmission)  # requeue resubmits the same task


def test_slurm_status_and_cancel(tmp_path, monkeypatch, capsys):
    """``run --status OUT`` reads sacct; ``run --cancel OUT`` scancels every job the state file names that is not
    finished (one task per entry: submitit submits a plain job, not a one-element array)."""
    from harness.suites.cluster import executor
    from harness.suites.cluster.plan import Resources, plan_suite
    from harness.suites.suite import load_suite_file

    bin_dir, log = tmp_path / "bin", tmp_path / "calls.log"
    bin_dir.mkdir()
    scripts = {
        "sbatch": f'n=$(grep -c sbatch {log} 2>/dev/null || echo 0)\necho "sbatch $@" >> {log}\n'
        'echo "Submitted batch job $((7 + n))"',
        "srun": "exit 1",
        "scancel": f'echo "scancel $@" >> {log}',
        "sacct": 'echo "JobID|State|NodeList"\necho "7|RUNNING|n1"\necho "8|PENDING|"\necho "9|PENDING|"',
    }
    for name, body in scripts.items():
        (bin_dir / name).write_text(f"#!/bin/sh\n{body}\n")
        (bin_dir / name).chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    (tmp_path / "s.yaml").write_text(SUITE)
    suite = load_suite_file(tmp_path / "s.yaml")
    res = Resources(executor="slurm")
    executor.submit(suite, tmp_path / "out", plan_suite(suite, res), res)
    assert [(j["kind"], j["job_id"], j["status"]) for j in executor.status(tmp_path / "out")] == [
        ("sample", "7", "running"),
        ("evaluate", "8", "pending"),
        ("report", "9", "pending"),
    ]
    from harness.cli import main

    assert main(["run", "--status", str(tmp_path / "out")]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert [line.split()[:3] for line in printed] == [
        ["7", "sample", "running"],
        ["8", "evaluate", "pending"],
        ["9", "report", "pending"],
    ]
    assert executor.cancel(tmp_path / "out") == ["7", "8", "9"]
    assert [line for line in log.read_text().splitlines() if line.startswith("scancel")] == [
        "scancel 7",
        "scancel 8",
        "scancel 9",
    ]


def test_plan_counts_and_committed_plan():
    """The plan's arithmetic (closed form) and the committed plan file is what the command prints today."""
    from harness.runs.protocols import get_protocol, with_overrides
    from harness.sampling.plan import SamplingPlan
    from harness.suites.cluster.plan import Resources, chunk_ranges, plan_suite, render, totals
    from harness.suites.suite import get_suite

    suite = get_suite("imagenet256-gfid50k")
    res = Resources(executor="slurm", gpus_per_job=8)
    entries = plan_suite(suite, res)
    t = totals(entries, res)
    assert (t["sampling_tasks"], t["jobs"], t["gpus_at_once"]) == (6, 6 + 6 + 1, 6 * 8)
    assert abs(t["sampling_gpu_hours"] - 6 * 50_000 / 10.0 / 3600) < 1e-9
    committed = (REPO / "results/cluster/plan_imagenet256-gfid50k_8gpu.txt").read_text()
    assert committed == render(suite, entries, res) + "\n"
    # legacy_rank streams (8 ranks x 50 batches) are cut only at stream starts: 3 tasks -> 3 + 2 + 3 ranks (round(8 * i / 3))
    legacy = SamplingPlan(with_overrides(get_protocol("imagenet256-gfid50k"), seed_scheme="legacy_rank"), "h")
    assert chunk_ranges(legacy, 3) == ((0, 150), (150, 250), (250, 400))

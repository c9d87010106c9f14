"""Submit a planned suite through submitit, follow it (local: resubmit a killed task), status, cancel.

State: ``OUT/_cluster/state.json`` names the executor, submitit's log folder and every job id, so
``run --status OUT`` and ``run --cancel OUT`` work from another shell. SLURM: every task is submitted
at once (sampling tasks as one job array per entry, evaluation ``afterok`` its array, the report
``afterok`` every evaluation); a preempted or timed-out task is requeued by submitit through
``SampleTask.checkpoint``. Local: no scheduler dependencies, so the caller follows the jobs: a sampling
task that dies (killed, out of memory) is resubmitted up to ``max_retries`` times and resumes from its
manifest, then the evaluation and report jobs run.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import submitit

from harness.core.errors import UserError
from harness.core.io import write_json_atomic
from harness.suites.cluster.jobs import CLUSTER_DIR, EvaluateEntry, SampleTask, WriteReport
from harness.suites.cluster.plan import EntryPlan, Resources
from harness.suites.suite import SuiteSpec

STATE = "state.json"


def make_executor(res: Resources, folder: Path, name: str):
    if res.executor == "local":
        ex = submitit.LocalExecutor(folder=folder)
        ex.update_parameters(timeout_min=res.time_min, tasks_per_node=res.gpus_per_job, nodes=1)
        return ex
    ex = submitit.SlurmExecutor(folder=folder, max_num_timeout=10)
    params: dict[str, Any] = {
        "time": res.time_min,
        "nodes": res.nodes,
        "ntasks_per_node": res.gpus_per_job,
        "cpus_per_task": res.cpus_per_task,
        "signal_delay_s": 120,
        "array_parallelism": res.array_parallelism,
        "job_name": name,
    }
    if res.gpus:
        params["gpus_per_node"] = res.gpus_per_job
    if res.partition:
        params["partition"] = res.partition
    ex.update_parameters(**params)
    return ex


def _state_path(out: Path) -> Path:
    return Path(out) / CLUSTER_DIR / STATE


def _write_state(out: Path, state: dict) -> None:
    write_json_atomic(_state_path(out), state)


def read_state(out: Path) -> dict:
    path = _state_path(out)
    if not path.is_file():
        raise UserError(f"{path}: no submitted suite here (run with --executor local|slurm first)")
    return json.loads(path.read_text())


def submit(
    suite: SuiteSpec,
    out: Path,
    entries: list[EntryPlan],
    res: Resources,
    *,
    device: str = "auto",
    dtype: str = "fp32",
    tf32: bool = False,
    live: dict | None = None,
) -> dict:
    """Submit every sampling task (SLURM: also evaluation + report with dependencies); returns the state.
    ``live`` collects the submitted job objects by id (``follow_local`` polls them)."""
    out = Path(out)
    logs = out / CLUSTER_DIR / "logs"
    ex = make_executor(res, logs, f"{suite.name}-sample")
    state: dict[str, Any] = {"executor": res.executor, "folder": str(logs), "suite": suite.name, "jobs": []}
    sampling: dict[str, list] = {}
    for e in entries:
        tasks = [
            SampleTask(suite, str(out), e.label, i, len(e.chunk_ranges), r, device, dtype, tf32)
            for i, r in enumerate(e.chunk_ranges)
        ]
        jobs = ex.submit_array(tasks) if res.executor == "slurm" else [ex.submit(t) for t in tasks]
        sampling[e.label] = jobs
        if live is not None:
            live.update({j.job_id: j for j in jobs})
        state["jobs"] += [
            {
                "kind": "sample",
                "label": e.label,
                "task": i,
                "chunk_range": list(t.chunk_range),
                "job_id": j.job_id,
                "tries": 1,
            }
            for i, (t, j) in enumerate(zip(tasks, jobs))
        ]
    if res.executor == "slurm":
        evals = []
        for e in entries:
            ev = make_executor(dataclasses_replace(res, nodes=1, gpus_per_job=1), logs, f"{suite.name}-eval")
            ev.update_parameters(dependency="afterok:" + ":".join(j.job_id for j in sampling[e.label]))
            j = ev.submit(EvaluateEntry(suite, str(out), e.label, len(e.chunk_ranges), device, dtype, tf32))
            evals.append(j)
            state["jobs"].append({"kind": "evaluate", "label": e.label, "job_id": j.job_id, "tries": 1})
        rep = make_executor(dataclasses_replace(res, nodes=1, gpus_per_job=1, gpus=False), logs, f"{suite.name}-report")
        rep.update_parameters(dependency="afterok:" + ":".join(j.job_id for j in evals))
        j = rep.submit(WriteReport(suite, str(out)))
        state["jobs"].append({"kind": "report", "label": "", "job_id": j.job_id, "tries": 1})
    _write_state(out, state)
    return state


def dataclasses_replace(res: Resources, **changes) -> Resources:
    import dataclasses

    return dataclasses.replace(res, **changes)


def _job(state: dict, job_id: str):
    cls = submitit.LocalJob if state["executor"] == "local" else submitit.SlurmJob
    return cls(state["folder"], job_id)


def _outcome(state: dict, job_id: str, live: dict | None = None) -> tuple[str, str]:
    """('done'|'failed'|'running', detail) read from submitit's result pickle (works from any process);
    ``live``: job objects this process submitted (their process is polled, so a killed one is seen at once)."""
    job = (live or {}).get(job_id) or _job(state, job_id)
    if job_id in (live or {}) and not job.done():
        return "running", ""
    path = job.paths.result_pickle
    if path.exists():
        outcome, value = submitit.core.utils.pickle_load(path)
        return ("done", str(value)) if outcome == "success" else ("failed", str(value).strip().splitlines()[-1])
    if job_id in (live or {}):
        return "failed", "process gone without a result (killed)"
    if state["executor"] == "local":
        try:
            os.kill(int(job_id), 0)
        except (ProcessLookupError, ValueError):
            return "failed", "process gone without a result (killed)"
        except PermissionError:
            pass
        return "running", ""
    return job.get_info(mode="force").get("State", "unknown").lower(), ""  # one sacct call, not a cached state


def follow_local(
    suite: SuiteSpec,
    out: Path,
    res: Resources,
    *,
    device: str = "auto",
    dtype: str = "fp32",
    tf32: bool = False,
    max_retries: int = 3,
    poll_s: float = 0.5,
    echo: Callable = print,
    live: dict | None = None,
) -> None:
    """Wait for the local sampling tasks, resubmitting a dead one (it resumes from its manifest), then run
    each entry's evaluation and the report as local jobs."""
    out = Path(out)
    state = read_state(out)
    live = {} if live is None else live
    ex = make_executor(res, Path(state["folder"]), suite.name)
    by_label: dict[str, list[tuple[int, int]]] = {}
    for j in state["jobs"]:
        if j["kind"] == "sample":
            by_label.setdefault(j["label"], []).append(tuple(j["chunk_range"]))
    while True:
        pending = False
        for j in state["jobs"]:
            if j["kind"] != "sample":
                continue
            status, detail = _outcome(state, j["job_id"], live)
            if status == "running":
                pending = True
            elif status == "failed":
                if j["tries"] > max_retries:
                    raise UserError(f"{j['label']} task {j['task']}: failed {j['tries']} times; last: {detail}")
                task = SampleTask(
                    suite,
                    str(out),
                    j["label"],
                    j["task"],
                    len(by_label[j["label"]]),
                    tuple(j["chunk_range"]),
                    device,
                    dtype,
                    tf32,
                )
                new = ex.submit(task)
                live[new.job_id] = new
                echo(f"{j['label']} task {j['task']}: job {j['job_id']} {detail}; resubmitted as {new.job_id}")
                j.update(job_id=new.job_id, tries=j["tries"] + 1)
                _write_state(out, state)
                pending = True
        if not pending:
            break
        time.sleep(poll_s)
    for label, ranges in by_label.items():
        job = ex.submit(EvaluateEntry(suite, str(out), label, len(ranges), device, dtype, tf32))
        state["jobs"].append({"kind": "evaluate", "label": label, "job_id": job.job_id, "tries": 1})
        _write_state(out, state)
        echo(job.result())
    job = ex.submit(WriteReport(suite, str(out)))
    state["jobs"].append({"kind": "report", "label": "", "job_id": job.job_id, "tries": 1})
    _write_state(out, state)
    echo(f"report: {job.result()}")


def status(out: Path) -> list[dict]:
    state = read_state(out)
    return [{**j, "status": _outcome(state, j["job_id"])[0]} for j in state["jobs"]]


def cancel(out: Path) -> list[str]:
    """Cancel every job not finished (SLURM: scancel; local: SIGTERM to the job's process)."""
    state = read_state(out)
    cancelled = []
    for j in state["jobs"]:
        if _outcome(state, j["job_id"])[0] in ("done", "failed", "completed"):
            continue
        if state["executor"] == "local":
            try:
                os.kill(int(j["job_id"]), signal.SIGTERM)
            except ProcessLookupError:
                continue
        else:
            _job(state, j["job_id"]).cancel(check=False)
        cancelled.append(j["job_id"])
    return cancelled

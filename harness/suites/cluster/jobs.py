"""The callables a cluster job runs: a sampling task over a chunk range, an entry's evaluation, the report.

A sampling task is a submitit ``Checkpointable``: on preemption or timeout submitit calls
``checkpoint()``, which resubmits the same task; the new run resumes from the folder's manifest (verified
chunks are skipped), and the sampling identity makes the bytes independent of where the work was cut.
With several tasks per entry, each task samples into its own folder (one job per folder, see
``harness.core.locks``); the evaluation job merges their verified shards into the entry folder and gathers.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
from pathlib import Path

import submitit

from harness.runs.specs import RunSpec
from harness.sampling import shards
from harness.suites.entries import expand
from harness.suites.suite import SuiteSpec, run_protocol

CLUSTER_DIR = "_cluster"  # OUT/_cluster/: state.json, submitit logs, per-task sampling folders


def task_folder(out: Path, label: str, task: int, tasks: int) -> Path:
    """One task samples straight into the entry folder; several each into their own folder."""
    return Path(out) / label if tasks == 1 else Path(out) / CLUSTER_DIR / "tasks" / label / f"task_{task:03d}"


def _entry(suite: SuiteSpec, label: str):
    return next(r for r in expand(suite.entries) if r.label == label)


@dataclasses.dataclass
class SampleTask(submitit.helpers.Checkpointable):
    suite: SuiteSpec
    out: str
    label: str
    task: int
    tasks: int
    chunk_range: tuple[int, int]
    device: str = "auto"
    dtype: str = "fp32"
    tf32: bool = False

    def __call__(self) -> str:
        from harness.sampling.runner import sample

        env = submitit.JobEnvironment()
        if env.num_tasks > 1:  # one process per GPU: RANK, WORLD_SIZE, MASTER_ADDR/PORT, LOCAL_RANK from SLURM
            submitit.helpers.TorchDistributedEnvironment().export()
        run = _entry(self.suite, self.label)
        folder = task_folder(Path(self.out), self.label, self.task, self.tasks)
        sample(
            RunSpec(run.model, run_protocol(self.suite, run)),
            folder,
            device=self.device,
            dtype=self.dtype,
            tf32=self.tf32,
            progress=False,
            wait=True,
            chunk_range=self.chunk_range,
            gather_samples=False,
        )
        return str(folder)

    def checkpoint(self, *args, **kwargs) -> submitit.helpers.DelayedSubmission:
        """Requeue as is: the rerun skips every chunk the manifest proves done."""
        return submitit.helpers.DelayedSubmission(self, *args, **kwargs)


def merge_tasks(out: Path, label: str, tasks: int) -> None:
    """Link (or copy) every verified shard of the task folders into the entry folder and write its manifest."""
    entry = Path(out) / label
    if tasks == 1:
        return
    (entry / shards.SHARD_DIR).mkdir(parents=True, exist_ok=True)
    merged = {}
    for t in range(tasks):
        src = task_folder(out, label, t, tasks)
        spec = shards.read_folder_spec(src)
        if spec is None:
            from harness.core.errors import UserError

            raise UserError(f"{src}: no {shards.SPEC_FILE}; sampling task {t} of {label} never ran")
        if not (entry / shards.SPEC_FILE).is_file():
            shutil.copyfile(src / shards.SPEC_FILE, entry / shards.SPEC_FILE)
        for k, e in shards.all_verified_entries(src, spec["sampling_identity_hash"]).items():
            dst = shards.shard_path(entry, k)
            if not dst.exists():
                try:
                    os.link(shards.shard_path(src, k), dst)
                except OSError:
                    shutil.copyfile(shards.shard_path(src, k), dst)
            merged[k] = e
    old = shards.read_manifest(entry)
    lines = [e for k, es in old.items() if k not in merged for e in es] + list(merged.values())
    shards.write_manifest(entry, sorted(lines, key=lambda e: e["chunk"]))


@dataclasses.dataclass
class EvaluateEntry:
    """Gather an entry's samples (merging its tasks), evaluate them, write its record."""

    suite: SuiteSpec
    out: str
    label: str
    tasks: int
    device: str = "auto"
    dtype: str = "fp32"
    tf32: bool = False

    def __call__(self) -> str:
        from harness.runs.records import write_record
        from harness.suites.suite import sample_and_evaluate

        out = Path(self.out)
        merge_tasks(out, self.label, self.tasks)
        run = _entry(self.suite, self.label)
        rec, line = sample_and_evaluate(
            self.suite,
            run,
            out / self.label,
            run_protocol(self.suite, run),
            out,
            device=self.device,
            dtype=self.dtype,
            tf32=self.tf32,
        )
        write_record(rec, out / self.label, "run_record.json")
        return f"{self.label}: {line}"


@dataclasses.dataclass
class WriteReport:
    """The suite's summary.csv once every entry has its record."""

    suite: SuiteSpec
    out: str

    def __call__(self) -> str:
        from harness.core.io import atomic_path
        from harness.runs.records import load_records
        from harness.suites.suite import summary_table

        out = Path(self.out)
        table = summary_table(load_records(out), self.suite)
        with atomic_path(out / "summary.csv", "w") as f:
            table.to_csv(f, index=False)
        return str(out / "summary.csv")

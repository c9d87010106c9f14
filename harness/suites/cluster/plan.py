"""What a cluster run of a suite asks for: per entry, sampling tasks over chunk ranges, one evaluation
job after them, one report job at the end; with the GPUs and the GPU-hours they take.

GPU-hours are an estimate: N samples / (images/s per GPU) / 3600 per entry. The images/s per GPU
comes from ``--images-per-gpu-s`` when given, else from ``ASSUMED_IMAGES_PER_GPU_S`` (an assumption
stated in the plan's output, not a measurement: no GPU throughput record is committed under results/).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from harness.core.config import ConfigError
from harness.sampling.plan import SamplingPlan
from harness.suites.entries import expand
from harness.suites.suite import SuiteSpec, evaluates, run_protocol, select

# Assumed sampling throughput of one data-centre GPU (A100/H100 class, bf16) for a 256 px class-conditional
# model with guidance; used only for the GPU-hour estimate of ``--plan``. Override with --images-per-gpu-s.
ASSUMED_IMAGES_PER_GPU_S = 10.0


@dataclasses.dataclass(frozen=True)
class Resources:
    executor: str = "local"  # local | slurm
    gpus_per_job: int = 1  # processes (GPUs) per sampling task, torchrun-style
    nodes: int = 1  # nodes per sampling task (gpus_per_job is per node)
    time_min: int = 240  # wall-clock limit of one job; a job past it is requeued and resumes
    partition: str | None = None
    array_parallelism: int = 64  # most array tasks running at once
    tasks_per_entry: int = 1  # sampling tasks (array elements) per entry, over contiguous chunk ranges
    images_per_gpu_s: float | None = None
    cpus_per_task: int = 8  # CPU cores per process (data loading, decoding)
    gpus: bool = True  # request GPUs (False for --device cpu: a CPU-only partition)

    def __post_init__(self):
        for name in ("gpus_per_job", "nodes", "time_min", "array_parallelism", "tasks_per_entry"):
            if getattr(self, name) < 1:
                raise ConfigError(f"--{name.replace('_', '-')}: must be >= 1, got {getattr(self, name)}")
        if self.executor not in ("local", "slurm"):
            raise ConfigError(f"--executor: {self.executor!r} is not local or slurm")


@dataclasses.dataclass(frozen=True)
class EntryPlan:
    label: str
    model: str
    num_samples: int
    num_chunks: int
    chunk_ranges: tuple[tuple[int, int], ...]  # one per sampling task
    evaluates: bool


def chunk_ranges(plan: SamplingPlan, tasks: int) -> tuple[tuple[int, int], ...]:
    """Contiguous, near-equal chunk ranges. legacy_rank: cut only at stream starts (a stream's chunks
    continue one RNG, so they stay in one task)."""
    step = plan.steps if plan.legacy else 1
    units = plan.num_chunks // step
    tasks = min(tasks, units)
    bounds = [round(i * units / tasks) * step for i in range(tasks + 1)]
    return tuple((lo, hi) for lo, hi in zip(bounds, bounds[1:]) if hi > lo)


def plan_suite(suite: SuiteSpec, res: Resources, only: tuple[str, ...] = ()) -> list[EntryPlan]:
    entries = []
    for run in select(expand(suite.entries), only):
        if run.task != "sample":
            raise ConfigError(
                f"entry {run.label!r}: task {run.task!r} is not run by the cluster executor "
                f"(only sampling entries; use --only to pick them)"
            )
        protocol = run_protocol(suite, run)
        sp = SamplingPlan(protocol, identity_hash="plan")  # chunk layout does not depend on the hash
        entries.append(
            EntryPlan(
                run.label,
                run.model.name,
                protocol.num_samples,
                sp.num_chunks,
                chunk_ranges(sp, res.tasks_per_entry),
                evaluates(suite, run),
            )
        )
    return entries


def totals(entries: list[EntryPlan], res: Resources) -> dict[str, Any]:
    ips = res.images_per_gpu_s or ASSUMED_IMAGES_PER_GPU_S
    tasks = sum(len(e.chunk_ranges) for e in entries)
    gpus_per_task = res.gpus_per_job * res.nodes
    samples = sum(e.num_samples for e in entries)
    gpu_hours = samples / ips / 3600
    return {
        "entries": len(entries),
        "sampling_tasks": tasks,
        "evaluation_jobs": len(entries),
        "report_jobs": 1,
        "jobs": tasks + len(entries) + 1,
        "gpus_per_task": gpus_per_task,
        "gpus_at_once": min(tasks, res.array_parallelism) * gpus_per_task,
        "samples": samples,
        "images_per_gpu_s": ips,
        "estimate_source": "--images-per-gpu-s"
        if res.images_per_gpu_s
        else "assumption ASSUMED_IMAGES_PER_GPU_S in harness/suites/cluster/plan.py (not a measurement)",
        "sampling_gpu_hours": gpu_hours,
        "wall_hours_if_all_run_at_once": gpu_hours / max(1, min(tasks, res.array_parallelism) * gpus_per_task),
    }


def render(suite: SuiteSpec, entries: list[EntryPlan], res: Resources) -> str:
    t = totals(entries, res)
    lines = [
        f"suite {suite.name}: {t['entries']} entries, executor {res.executor}, {res.nodes} node(s) x "
        f"{res.gpus_per_job} GPU(s) per sampling task, time limit {res.time_min} min per job"
        + (f", partition {res.partition}" if res.partition else ""),
        f"{'label':<20} {'model':<12} {'N':>7} {'chunks':>7} {'tasks':>6} {'GPU-h':>8}  evaluation",
    ]
    for e in entries:
        gh = e.num_samples / t["images_per_gpu_s"] / 3600
        lines.append(
            f"{e.label:<20} {e.model:<12} {e.num_samples:>7} {e.num_chunks:>7} {len(e.chunk_ranges):>6} "
            f"{gh:>8.2f}  {'after its sampling tasks' if e.evaluates else 'none (no metrics/reference)'}"
        )
    lines += [
        f"jobs: {t['jobs']} ({t['sampling_tasks']} sampling tasks, {t['evaluation_jobs']} evaluation, "
        f"{t['report_jobs']} report)",
        f"GPUs: {t['gpus_per_task']} per sampling task, up to {t['gpus_at_once']} at once "
        f"(array parallelism {res.array_parallelism})",
        f"sampling GPU-hours: {t['sampling_gpu_hours']:.1f} for {t['samples']} samples at "
        f"{t['images_per_gpu_s']:g} images/s per GPU ({t['estimate_source']}); evaluation jobs not counted",
        f"wall-clock if every task runs at once: {t['wall_hours_if_all_run_at_once']:.2f} h",
    ]
    return "\n".join(lines)

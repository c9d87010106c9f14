"""What one ``bench`` invocation writes: a ``bench`` run record per model and batch size, ``bench_summary.json``
and ``bench_summary.md`` (table and per-image ratios), from the timings harness.speed.bench measured.

Every record of one invocation shares a ``spec.bench_run_id`` (claims take ratios within one run only) and
names the machine, threads, load average, the kernels chosen on this machine and the commit. A row timed on
upstream's own sampler (harness.speed.upstream) is ``model.implementation == "upstream"`` under the registry
name ``<name>@upstream``, so no claim reads it as the harness's figure.
"""

from __future__ import annotations

import dataclasses
import uuid
from pathlib import Path
from typing import Any

from harness.core.io import write_json_atomic, write_text_atomic
from harness.runs.records import RunRecord, code_info, env_info, model_info, write_record
from harness.runs.records import machine_info as record_machine
from harness.speed.bench import BenchSettings, ModelTimings, markdown_table, ratios


@dataclasses.dataclass
class Measured:
    """One batch size of a sweep: its settings, the registry names timed and their timings, in run order."""

    settings: BenchSettings
    names: list[str]
    results: list[ModelTimings]


def implementation(res: ModelTimings) -> str:
    return "upstream" if "upstream" in res.info else "project"


def summary_row(res: ModelTimings, settings: BenchSettings) -> dict[str, Any]:
    return {
        "model": res.name,
        "implementation": implementation(res),
        "dtype": settings.dtype,
        **res.summary(),
        "applied": res.applied,
    }


def _notes(res: ModelTimings, settings: BenchSettings, summary: dict[str, Any], names: list[str]) -> list[str]:
    notes = [f"interleaved with {', '.join(n for n in names if n != res.name) or 'nothing'} (A B A B per repeat)"]
    if res.built_per_run:
        notes.append("--low-memory: the model was built before each run (untimed) and freed after it")
    if summary["extrapolated"]:
        notes.append(f"extrapolated: {summary['method']}")
    if "upstream" in res.info:
        up = res.info["upstream"]
        notes.append(
            f"upstream's own sampler ({up['function']} from {up['checkout']}, commit {up['commit']}) on the "
            "project model's weights; decode by the project's decoder"
        )
    if settings.random_weights:
        notes.append("random weights (official architecture, seeded init): valid for speed only")
    if not settings.kv_cache and summary["applied"]["kv_cache"] == "n/a":
        notes.append("--no-kv-cache: not supported by this generator (recorded n/a)")
    return notes


def bench_record(
    res: ModelTimings,
    name: str,
    settings: BenchSettings,
    summary: dict[str, Any],
    *,
    spec: dict[str, Any],
    names: list[str],
    machine: dict[str, Any],
    code: dict[str, Any],
    device: Any,
) -> RunRecord:
    """The run record of one model at one batch size; ``spec`` holds what the invocation shares."""
    kernels = {
        k: str(v)
        for k, v in (
            ("linear", summary["applied"].get("linear_kernel")),
            ("attention", summary["applied"].get("attention_kernel")),
        )
        if v not in (None, "n/a")
    }
    return RunRecord(
        kind="bench",
        spec={**spec, "settings": settings.to_dict(), "models_compared": names, "threads": machine["torch_threads"]},
        # registry_name: what --model named (a random-weights generator calls itself "<name>-random");
        # sampling: the parameters of the timed runs (CFG off with --no-cfg), which claims match on;
        # an upstream row is not the registered model's figure: claims must not pick it up by name
        model={
            **model_info(res.info),
            "implementation": summary["implementation"],
            "registry_name": name if summary["implementation"] == "project" else f"{name}@upstream",
            "sampling": res.sampling,
            "weights": "random" if settings.random_weights else "checkpoint",
        },
        code=code,
        env={**env_info(device), **machine},
        speed=summary,
        machine=record_machine(device, kernels),
        timings={"total_median_s": summary["total_s"]["median"]},
        notes=_notes(res, settings, summary, names),
    )


def ratio_lines(pairs: list[dict[str, Any]]) -> list[str]:
    return [
        f"- {p['a']} : {p['b']} ({p['implementations']}, batch {p['batch_size']}, {p['dtype']}) = "
        f"{p['images_per_s_ratio']:.3g}"
        f"{' (extrapolated: ' + ', '.join(p['extrapolated_models']) + ')' if p['extrapolated'] else ''}"
        for p in pairs
    ]


def write_bench_run(
    out: Path,
    sweep: list[Measured],
    *,
    device: Any,
    machine: dict[str, Any],
    skipped: dict[str, str],
    preset: str | None,
    low_memory: bool,
    command: str | None,
) -> str:
    """Every record, ``bench_summary.json`` and ``bench_summary.md`` under ``out``; returns the text to print
    (ratio lines, then the table)."""
    code = code_info()
    spec = {"bench_run_id": uuid.uuid4().hex, "preset": preset, "low_memory": low_memory, "skipped": skipped}
    rows = []
    for m in sweep:
        names = [r.name for r in m.results]
        for name, res in zip(m.names, m.results):
            summary = summary_row(res, m.settings)
            rows.append(summary)
            rec = bench_record(
                res, name, m.settings, summary, spec=spec, names=names, machine=machine, code=code, device=device
            )
            write_record(rec, out, f"bench_{res.name}_b{m.settings.batch_size}_{m.settings.dtype}_record.json")
    table = markdown_table(rows)
    pairs = ratios(rows)
    lines = ratio_lines(pairs)
    write_json_atomic(
        out / "bench_summary.json",
        {
            "machine": machine,
            "code": code,
            "rows": rows,
            "ratios": pairs,
            "skipped": skipped,
            "preset": preset,
            "command": command,
        },
    )
    head = (
        f"# bench: {machine['device_name']}, {machine['torch_threads']} threads, torch {machine['torch']}, "
        f"load average {machine['load_average_start']} -> {machine['load_average_end']}\n\n"
    )
    write_text_atomic(out / "bench_summary.md", head + table + "\n\n" + "\n".join(lines) + "\n")
    return "\n".join([*lines, table])

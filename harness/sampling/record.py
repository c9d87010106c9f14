"""The RunRecord of a finished sampling run (used by the ``sample`` verb and by suites)."""

from __future__ import annotations

import time

from harness.core import config


def sample_record(result, started: float):
    from harness.runs.records import RunRecord, code_info, env_info, kernels_of, machine_info

    r = result.resolved
    g = result.gathered or {}
    return RunRecord(
        kind="sample",
        spec=config.to_dict(r.spec),
        spec_hash=r.spec_hash,
        model={
            **r.model_info,
            "sampling": config.to_dict(r.sampling),
            "quantization": r.quantization,
            **network_calls(r.generator, r.sampling),
        },
        code=code_info(),
        env=env_info(result.device, result.world_size, result.backend),
        machine={
            **machine_info(result.device, kernels_of(r.model_info)),
            "chunks_made_on": [{"cpu_model": cpu, "kernels": k} for cpu, k in _chunk_machines(result)],
        },
        seeds={
            "seed": r.spec.protocol.seed,
            "seed_scheme": r.spec.protocol.seed_scheme,
            "sampling_identity_hash": r.identity_hash,
        },
        samples={
            "n": g.get("num_samples"),
            "npz": g.get("path"),
            "npz_sha256": g.get("sha256"),
            "min_per_class": g.get("min_per_class"),
            "max_per_class": g.get("max_per_class"),
            "balanced": g.get("balanced"),
        },
        speed=speed_record(result),
        timings={"generate_s_rank0": round(result.seconds_generating, 3), "total_s": round(time.time() - started, 3)},
        notes=[
            f"chunks: {result.chunks_total} total, {result.chunks_run} generated and "
            f"{result.chunks_skipped} reused by rank 0 of {result.world_size}",
            *machines_note(result),
        ],
    )


def network_calls(generator, sampling) -> dict:
    """Network calls per image, this code's and the official sampler's (generators that count them)."""
    counts = getattr(generator, "network_call_counts", None)
    return {"network_calls": counts(sampling)} if counts is not None else {}


def _chunk_machines(result) -> list[tuple[str, str]]:
    """(CPU model, kernels) pairs the folder's chunks were made with, from its manifest (resumes included)."""
    conds = ((result.gathered or {}).get("throughput") or {}).get("conditions") or []
    return sorted(
        {
            (str(c["cpu_model"]), ", ".join(f"{k}={v}" for k, v in sorted((c.get("kernels") or {}).items())))
            for c in conds
            if isinstance(c, dict) and c.get("cpu_model")
        }
    )


def machines_note(result) -> list[str]:
    """A note when the folder's chunks were made on more than one CPU model or with other kernels (a run
    resumed elsewhere): their bytes may differ from a run on one machine, since kernels round differently."""
    made = _chunk_machines(result)
    if len(made) < 2:
        return []
    what = "; ".join(f"{cpu} ({kernels or 'kernels not recorded'})" for cpu, kernels in made)
    return [
        f"resumed on another machine: chunks of this folder were made on {what}; the samples may differ "
        "in their bytes from a run on one machine"
    ]


def speed_record(result) -> dict:
    """Throughput under this run's conditions (threads, load, device): a label, not a benchmark figure."""
    t = (result.gathered or {}).get("throughput") or {}
    this_run = result.images_generated / result.seconds_generating if result.seconds_generating > 0 else None
    return {
        "images_per_s": t.get("images_per_s"),
        "images_per_s_this_run_rank0": this_run,
        "images_timed": t.get("images_timed"),
        "chunks_timed": t.get("chunks_timed"),
        "chunks_total": t.get("chunks_total"),
        "conditions": result.conditions,
        "manifest_conditions": t.get("conditions"),
        "label": "throughput per process under this run's conditions (threads, load average, device; "
        "generate() time of every timed chunk in the manifest, also chunks made before a resume); "
        "not a benchmark: see the speed benchmarks for authoritative figures",
    }

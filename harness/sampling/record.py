"""The RunRecord of a finished sampling run (used by the ``sample`` verb and by suites)."""
from __future__ import annotations

import time

from harness import config


def sample_record(result, started: float):
    from harness.records import RunRecord, code_info, env_info

    r = result.resolved
    g = result.gathered or {}
    return RunRecord(
        kind="sample", spec=config.to_dict(r.spec), spec_hash=r.spec_hash,
        model={**r.model_info, "sampling": config.to_dict(r.sampling), "quantization": r.quantization},
        code=code_info(), env=env_info(result.device, result.world_size, result.backend),
        seeds={"seed": r.spec.protocol.seed, "seed_scheme": r.spec.protocol.seed_scheme,
               "sampling_identity_hash": r.identity_hash},
        samples={"n": g.get("num_samples"), "npz": g.get("path"), "npz_sha256": g.get("sha256"),
                 "min_per_class": g.get("min_per_class"), "max_per_class": g.get("max_per_class"),
                 "balanced": g.get("balanced")},
        speed={"images_per_s_rank0": result.images_per_s, "note": "generate() time of rank 0's new chunks (shard writes excluded)"},
        timings={"generate_s_rank0": round(result.seconds_generating, 3), "total_s": round(time.time() - started, 3)},
        notes=[f"chunks: {result.chunks_total} total, {result.chunks_run} generated and "
               f"{result.chunks_skipped} reused by rank 0 of {result.world_size}"],
    )

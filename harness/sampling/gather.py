"""Gather shards into ``samples.npz`` in index order, with count, completeness and balance checks.

Streams: one gather group (a chunk, or the W interleaved chunks of one legacy step) in memory at
a time; the output is written with our deterministic npz writer under a temporary name.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from harness.core.errors import UserError
from harness.core.io import atomic_path, sha256_file
from harness.data.npz import NpzWriter
from harness.sampling import shards
from harness.sampling.plan import SamplingPlan


def label_balance(labels: np.ndarray, num_classes: int) -> dict[str, Any]:
    counts = np.bincount(labels, minlength=num_classes)
    return {
        "min_per_class": int(counts.min()),
        "max_per_class": int(counts.max()),
        "balanced": bool(counts.max() - counts.min() <= (0 if len(labels) % num_classes == 0 else 1)),
    }


def gather(out: Path, plan: SamplingPlan, image_size: int) -> dict[str, Any]:
    """Verify every chunk against the manifest and the plan, write ``samples.npz``; return a summary."""
    out = Path(out)
    manifest = shards.read_manifest(out)
    entries: list[dict[str, Any]] = []
    n_total = plan.num_samples
    labels_out = np.empty(n_total, dtype=np.int64)
    next_index = 0
    with atomic_path(out / shards.SAMPLES) as f, NpzWriter(f) as writer:
        writer.begin_array("arr_0", (n_total, image_size, image_size, 3), np.uint8)
        for group in plan.gather_groups():
            imgs, idxs, labs = [], [], []
            for k in group:
                c = plan.chunk(k)
                entry = shards.verified_entry(out, k, len(c.indices), plan.identity_hash, manifest)
                if entry is None:
                    raise UserError(
                        f"{shards.shard_path(out, k)}: chunk {k} missing, corrupt or from another spec; rerun sample to redo it"
                    )
                data = shards.read_shard(shards.shard_path(out, k))
                if not (np.array_equal(data["indices"], c.indices) and np.array_equal(data["labels"], c.labels)):
                    raise UserError(f"{shards.shard_path(out, k)}: indices/labels differ from the plan")
                if (
                    data["images"].shape != (len(c.indices), image_size, image_size, 3)
                    or data["images"].dtype != np.uint8
                ):
                    raise UserError(
                        f"{shards.shard_path(out, k)}: images {data['images'].dtype} {list(data['images'].shape)}, expected uint8 [{len(c.indices)},{image_size},{image_size},3]"
                    )
                imgs.append(data["images"])
                idxs.append(data["indices"])
                labs.append(data["labels"])
                entries.append(entry)
            idx = np.concatenate(idxs)
            order = np.argsort(idx, kind="stable")
            idx = idx[order]
            expect = np.arange(next_index, next_index + len(idx), dtype=np.int64)
            if not np.array_equal(idx, expect):
                raise UserError(
                    f"{out}: chunks {group} do not cover indices {next_index}..{next_index + len(idx) - 1} exactly once"
                )
            writer.write_rows(np.concatenate(imgs)[order])
            labels_out[idx] = np.concatenate(labs)[order]
            next_index += len(idx)
        if next_index != n_total:
            raise UserError(f"{out}: gathered {next_index} samples, expected {n_total}")
        writer.end_array()
        writer.add("labels", labels_out)
        writer.close()
    balance = label_balance(labels_out, plan.protocol.num_classes)
    if not balance["balanced"]:  # cannot happen with a valid plan; refuse rather than report skewed metrics
        (out / shards.SAMPLES).unlink()
        raise UserError(f"{out}: labels are unbalanced ({balance}); samples.npz removed")
    # keep every verified chunk, also those beyond this plan (a later, larger run reuses them)
    kept = shards.all_verified_entries(out, plan.identity_hash, manifest)
    kept.update({e["chunk"]: e for e in entries})
    shards.write_manifest(out, [kept[k] for k in sorted(kept)])
    path = out / shards.SAMPLES
    return {
        "num_samples": n_total,
        "path": str(path),
        "sha256": sha256_file(path),
        **balance,
        "throughput": throughput(entries),
    }


def throughput(entries: list[dict[str, Any]]) -> dict[str, Any]:
    """Images/s over the timed chunks of a gathered set (timings survive resumes in the manifest)."""
    timed = [e for e in entries if isinstance(e.get("seconds"), (int, float)) and e["seconds"] > 0]
    images = sum(e["count"] for e in timed)
    seconds = sum(e["seconds"] for e in timed)
    conds = [e["conditions"] for e in timed if isinstance(e.get("conditions"), dict)]
    return {
        "images_per_s": images / seconds if seconds > 0 else None,
        "images_timed": images,
        "generate_s": round(seconds, 6),
        "chunks_timed": len(timed),
        "chunks_total": len(entries),
        "conditions": _distinct(conds),
    }


def _distinct(conds: list[dict[str, Any]]) -> list[dict[str, Any]]:
    seen, out = set(), []
    for c in conds:
        key = repr(sorted(c.items()))
        if key not in seen:
            seen.add(key)
            out.append(c)
    return out

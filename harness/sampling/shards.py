"""The on-disk layout of a sampling folder, and its integrity rules.

    OUT/spec.json              run spec, its hash, the sampling identity and its hash
    OUT/shards/chunk_00012.npz images uint8 [n,H,W,3], labels, indices (+ rng_state for legacy_rank)
    OUT/manifest.parts/rank_00001.jsonl   lines appended by each process as its chunks land
    OUT/manifest.jsonl         merged, one line per chunk (rebuilt at gather)
    OUT/samples.npz            ADM format, gathered in index order

Each process appends only to its own manifest part, so concurrent ranks never share a file. A chunk
counts as done when its shard exists and its sha256 and count match a manifest line with the same
identity hash; a shard without a line (killed between rename and append), or a line with wrong types,
is simply redone. Lines also carry the chunk's generate() seconds and the run's conditions (threads,
load), so a resumed run still reports the throughput of the chunks it made. The merged manifest keeps
every verified chunk, also those beyond the current plan. One job per folder (``harness.core.locks``).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from harness.core.errors import InputFileError, UserError
from harness.core.io import atomic_path, sha256_file
from harness.data.npz import npz_bytes_to

SPEC_FILE = "spec.json"
SHARD_DIR = "shards"
PARTS_DIR = "manifest.parts"
MANIFEST = "manifest.jsonl"
SAMPLES = "samples.npz"


def shard_path(out: Path, k: int) -> Path:
    return Path(out) / SHARD_DIR / f"chunk_{k:05d}.npz"


def sha256_bytes(data: bytes | memoryview) -> str:
    return hashlib.sha256(data).hexdigest()


def write_shard(
    out: Path, k: int, images: np.ndarray, labels: np.ndarray, indices: np.ndarray, rng_state: np.ndarray | None = None
) -> tuple[Path, str]:
    """Atomically write chunk ``k``; returns (path, sha256 of the file bytes)."""
    arrays: dict[str, np.ndarray] = {
        "images": images,
        "labels": labels.astype(np.int64),
        "indices": indices.astype(np.int64),
    }
    if rng_state is not None:
        arrays["rng_state"] = rng_state.astype(np.uint8)
    buf = io.BytesIO()
    npz_bytes_to(buf, arrays)
    data = buf.getbuffer()
    path = shard_path(out, k)
    with atomic_path(path) as f:
        f.write(data)
    return path, sha256_bytes(data)


def read_shard(path: Path) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as z:
            return {key: z[key] for key in z.files}
    except Exception as e:  # noqa: BLE001 - any read failure means a bad shard
        raise InputFileError(path, f"unreadable shard ({type(e).__name__}: {e})") from None


# ----------------------------------------------------------------------------------------------
# Manifest
# ----------------------------------------------------------------------------------------------
def manifest_line(
    k: int,
    count: int,
    sha: str,
    identity_hash: str,
    seconds: float | None = None,
    conditions: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One chunk's line; ``seconds`` (generate() time) and ``conditions`` (threads, load) feed the speed record."""
    e: dict[str, Any] = {"chunk": k, "count": count, "sha256": sha, "spec_hash": identity_hash}
    if seconds is not None:
        e["seconds"] = round(float(seconds), 6)
    if conditions:
        e["conditions"] = conditions
    return e


def _valid_entry(e: Any) -> bool:
    """A line is usable only with the right types (``"chunk": "x"`` or ``1e400`` are skipped: that chunk is redone)."""
    if not isinstance(e, dict):
        return False
    ints = all(
        isinstance(e.get(k), int) and not isinstance(e.get(k), bool) and e.get(k) >= 0 for k in ("chunk", "count")
    )
    strs = all(isinstance(e.get(k), str) for k in ("sha256", "spec_hash"))
    sec = e.get("seconds")
    ok_sec = sec is None or (isinstance(sec, (int, float)) and not isinstance(sec, bool) and 0 <= sec < float("inf"))
    return ints and strs and ok_sec


def append_manifest_part(out: Path, rank: int, entry: dict[str, Any]) -> None:
    d = Path(out) / PARTS_DIR
    d.mkdir(parents=True, exist_ok=True)
    with open(d / f"rank_{rank:05d}.jsonl", "a") as f:
        f.write(json.dumps(entry, sort_keys=True) + "\n")
        f.flush()
        os.fsync(f.fileno())


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    entries = []
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return entries  # an unreadable part only means its chunks are redone
    for line in text.splitlines():
        try:
            e = json.loads(line)
        except (json.JSONDecodeError, ValueError, RecursionError):
            continue  # a line cut short by a kill; its chunk is redone
        if _valid_entry(e):
            entries.append(e)
        elif isinstance(e, dict) and "seconds" in e and _valid_entry({**e, "seconds": None}):
            entries.append({k: v for k, v in e.items() if k != "seconds"})  # keep the chunk, drop a bad timing
    return entries


def read_manifest(out: Path) -> dict[int, list[dict[str, Any]]]:
    """chunk -> every manifest entry seen for it (merged file and per-rank parts)."""
    out = Path(out)
    files = [out / MANIFEST] if (out / MANIFEST).is_file() else []
    if (out / PARTS_DIR).is_dir():
        files += sorted((out / PARTS_DIR).glob("rank_*.jsonl"))
    table: dict[int, list[dict[str, Any]]] = {}
    for f in files:
        for e in _read_jsonl(f):
            table.setdefault(int(e["chunk"]), []).append(e)
    return table


def verified_entry(
    out: Path, k: int, expected_count: int, identity_hash: str, manifest: dict[int, list[dict[str, Any]]]
) -> dict[str, Any] | None:
    """The manifest entry that proves chunk ``k`` is on disk intact, or None (then redo it)."""
    path = shard_path(out, k)
    candidates = [e for e in manifest.get(k, []) if e["spec_hash"] == identity_hash and e["count"] == expected_count]
    if not candidates or not path.is_file():
        return None
    sha = sha256_file(path)
    for e in candidates:
        if e["sha256"] == sha:
            return e
    return None


def write_manifest(out: Path, entries: list[dict[str, Any]]) -> None:
    with atomic_path(Path(out) / MANIFEST, "w") as f:
        for e in entries:
            f.write(json.dumps(e, sort_keys=True) + "\n")
    shutil.rmtree(Path(out) / PARTS_DIR, ignore_errors=True)


def all_verified_entries(
    out: Path, identity_hash: str, manifest: dict[int, list[dict[str, Any]]] | None = None
) -> dict[int, dict[str, Any]]:
    """chunk -> its proving entry, for every chunk of this identity on disk intact (also those outside the plan),
    so gathering 100 of 400 samples keeps the other chunks for the next 400 run."""
    manifest = read_manifest(out) if manifest is None else manifest
    kept = {}
    for k, entries in manifest.items():
        counts = {e["count"] for e in entries if e["spec_hash"] == identity_hash}
        for count in counts:
            e = verified_entry(out, k, count, identity_hash, manifest)
            if e is not None:
                kept[k] = e
                break
    return kept


def shard_selection(folder: Path, allow_partial: bool = False) -> tuple[list[Path], dict[str, Any]]:
    """The shards that make up a sampling folder's planned set, checked against spec.json and the manifest.

    Refuses an incomplete folder (a metric of whatever happens to be there is a wrong number);
    ``allow_partial`` evaluates the longest verified prefix of chunks and says so in the returned info.
    """
    from harness.runs.specs import ProtocolSpec
    from harness.sampling.plan import SamplingPlan

    folder = Path(folder)
    if folder.name == SHARD_DIR and not (folder / SPEC_FILE).is_file():
        folder = folder.parent
    spec = read_folder_spec(folder)
    if spec is None:
        if not allow_partial:
            raise UserError(
                f"{folder}: shards without {SPEC_FILE}: completeness cannot be checked; evaluate samples.npz "
                f"or pass --allow-partial"
            )
        from harness.data.npz import shard_paths

        paths = [p for _, p in shard_paths(folder)]
        return paths, {"partial": True, "reason": f"no {SPEC_FILE}", "chunks_used": len(paths)}
    try:
        from harness.core import config

        proto = config.from_dict(ProtocolSpec, spec["spec"]["protocol"])
        identity = spec["sampling_identity_hash"]
    except (KeyError, TypeError, ValueError, AttributeError, UserError) as e:
        raise InputFileError(folder / SPEC_FILE, f"no valid protocol/sampling identity ({e})") from None
    plan = SamplingPlan(proto, identity)
    manifest = read_manifest(folder)
    ok = [
        verified_entry(folder, k, len(plan.chunk(k).indices), identity, manifest) is not None
        for k in range(plan.num_chunks)
    ]
    info = {"planned_samples": plan.num_samples, "planned_chunks": plan.num_chunks, "chunks_verified": sum(ok)}
    if all(ok):
        return [shard_path(folder, k) for k in range(plan.num_chunks)], {**info, "partial": False}
    missing = [k for k, good in enumerate(ok) if not good]
    shown = ", ".join(map(str, missing[:5])) + (" ..." if len(missing) > 5 else "")
    if not allow_partial:
        raise UserError(
            f"{folder}: incomplete: {sum(ok)} of {plan.num_chunks} chunks present and verified (missing or "
            f"corrupt: {shown}) for {plan.num_samples} planned samples; finish it with `alitok-bench sample` "
            f"or pass --allow-partial to evaluate the complete prefix"
        )
    if plan.legacy:
        raise UserError(f"{folder}: incomplete legacy_rank folder: its chunks interleave, so no prefix is a sample set")
    prefix = missing[0]
    if prefix == 0:
        raise UserError(f"{folder}: chunk 0 is missing or corrupt; nothing to evaluate")
    n = sum(len(plan.chunk(k).indices) for k in range(prefix))
    return [shard_path(folder, k) for k in range(prefix)], {
        **info,
        "partial": True,
        "chunks_used": prefix,
        "samples_used": n,
    }


# ----------------------------------------------------------------------------------------------
# Which spec made this folder
# ----------------------------------------------------------------------------------------------
def read_folder_spec(out: Path) -> dict[str, Any] | None:
    p = Path(out) / SPEC_FILE
    if not p.is_file():
        return None
    try:
        return json.loads(p.read_text())
    except json.JSONDecodeError as e:
        raise InputFileError(p, f"not valid JSON ({e.msg}); remove it or use --force") from None


def check_folder(out: Path, identity_hash: str, force: bool) -> str:
    """'new', 'resume' or 'force'. A folder made by another sampling identity is refused without force."""
    out = Path(out)
    old = read_folder_spec(out)
    has_shards = (out / SHARD_DIR).is_dir() and any((out / SHARD_DIR).iterdir())
    if old is None:
        if has_shards and not force:
            raise UserError(f"{out}: holds shards but no {SPEC_FILE}; not made by this tool? use --force to overwrite")
        return "force" if has_shards else "new"
    if old.get("sampling_identity_hash") == identity_hash:
        return "resume"
    if force:
        return "force"
    raise UserError(
        f"{out}: made by a different spec (sampling identity {old.get('sampling_identity_hash')} of model "
        f"{old.get('spec', {}).get('model', {}).get('name')!r}, this run is {identity_hash}); use another --out or --force"
    )


def clear_folder(out: Path) -> None:
    """Remove what an earlier (different) spec left: shards, manifests, samples (only our files)."""
    out = Path(out)
    shutil.rmtree(out / SHARD_DIR, ignore_errors=True)
    shutil.rmtree(out / PARTS_DIR, ignore_errors=True)
    for name in (MANIFEST, SAMPLES, SPEC_FILE):
        (out / name).unlink(missing_ok=True)


def remove_stale_temps(out: Path, lock) -> None:
    """Temps of killed writers; only under the folder lock (another job's in-flight temps look the same)."""
    from harness.core.locks import remove_stale_temps as remove

    remove(lock, Path(out), Path(out) / SHARD_DIR)


def write_folder_spec(out: Path, payload: dict[str, Any]) -> None:
    with atomic_path(Path(out) / SPEC_FILE, "w") as f:
        json.dump(payload, f, indent=1, sort_keys=True)
        f.write("\n")

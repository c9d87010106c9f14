"""The on-disk layout of a sampling folder, and its integrity rules.

    OUT/spec.json              run spec, its hash, the sampling identity and its hash
    OUT/shards/chunk_00012.npz images uint8 [n,H,W,3], labels, indices (+ rng_state for legacy_rank)
    OUT/manifest.parts/rank_00001.jsonl   lines appended by each process as its chunks land
    OUT/manifest.jsonl         merged, one line per chunk (rebuilt at gather)
    OUT/samples.npz            ADM format, gathered in index order

Each process appends only to its own manifest part, so concurrent ranks never share a file. A chunk
counts as done when its shard exists and its sha256 and count match a manifest line with the same
identity hash; a shard without a line (killed between rename and append) is simply redone.
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

from harness.data.npz import atomic_path, npz_bytes_to
from harness.errors import InputFileError, UserError
from harness.records import sha256_file  # noqa: F401  (re-exported)

SPEC_FILE = "spec.json"
SHARD_DIR = "shards"
PARTS_DIR = "manifest.parts"
MANIFEST = "manifest.jsonl"
SAMPLES = "samples.npz"


def shard_path(out: Path, k: int) -> Path:
    return Path(out) / SHARD_DIR / f"chunk_{k:05d}.npz"


def sha256_bytes(data: bytes | memoryview) -> str:
    return hashlib.sha256(data).hexdigest()


def write_shard(out: Path, k: int, images: np.ndarray, labels: np.ndarray, indices: np.ndarray,
                rng_state: np.ndarray | None = None) -> tuple[Path, str]:
    """Atomically write chunk ``k``; returns (path, sha256 of the file bytes)."""
    arrays: dict[str, np.ndarray] = {"images": images, "labels": labels.astype(np.int64),
                                     "indices": indices.astype(np.int64)}
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
def manifest_line(k: int, count: int, sha: str, identity_hash: str) -> dict[str, Any]:
    return {"chunk": k, "count": count, "sha256": sha, "spec_hash": identity_hash}


def append_manifest_part(out: Path, rank: int, entry: dict[str, Any]) -> None:
    d = Path(out) / PARTS_DIR
    d.mkdir(parents=True, exist_ok=True)
    with open(d / f"rank_{rank:05d}.jsonl", "a") as f:
        f.write(json.dumps(entry, sort_keys=True) + "\n")
        f.flush()
        os.fsync(f.fileno())


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    entries = []
    for line in path.read_text().splitlines():
        try:
            e = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line cut short by a kill; its chunk is redone
        if isinstance(e, dict) and {"chunk", "count", "sha256", "spec_hash"} <= e.keys():
            entries.append(e)
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


def verified_entry(out: Path, k: int, expected_count: int, identity_hash: str,
                   manifest: dict[int, list[dict[str, Any]]]) -> dict[str, Any] | None:
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
        f"{old.get('spec', {}).get('model', {}).get('name')!r}, this run is {identity_hash}); use another --out or --force")


def clear_folder(out: Path) -> None:
    """Remove what an earlier (different) spec left: shards, manifests, samples (only our files)."""
    out = Path(out)
    shutil.rmtree(out / SHARD_DIR, ignore_errors=True)
    shutil.rmtree(out / PARTS_DIR, ignore_errors=True)
    for name in (MANIFEST, SAMPLES, SPEC_FILE):
        (out / name).unlink(missing_ok=True)


def remove_stale_temps(out: Path) -> None:
    for d in (Path(out), Path(out) / SHARD_DIR):
        for tmp in d.glob(".*.tmp"):
            tmp.unlink(missing_ok=True)


def write_folder_spec(out: Path, payload: dict[str, Any]) -> None:
    with atomic_path(Path(out) / SPEC_FILE, "w") as f:
        json.dump(payload, f, indent=1, sort_keys=True)
        f.write("\n")

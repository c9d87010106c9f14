"""Streaming Inception features over an npz, a shards folder, an array or an iterator of batches.

Images are read one batch at a time (``harness.data.npz``), validated (uint8 [B,H,W,3], one size for
the whole set), pushed through the extractor and collected per layer. Results are cached as .npy in
the cache folder (outside the repo), keyed by (input sha256, weights sha256, layer), so a reference
set is extracted once. Iterators cannot be hashed before they are consumed and are never cached.
"""
from __future__ import annotations

import dataclasses
import hashlib
import os
from pathlib import Path
from typing import Iterator

import numpy as np

from harness.data import npz as npz_io
from harness.errors import InputFileError
from harness.metrics.weights import cache_dir, sha256_file

CACHE_FORMAT = 1


@dataclasses.dataclass
class FeatureSet:
    """Per-layer float32 features of one image set (``logits`` None when the weights have no real fc)."""

    pool: np.ndarray
    spatial: np.ndarray
    logits: np.ndarray | None
    image_size: tuple[int, int]
    input_sha256: str | None
    from_cache: bool = False

    @property
    def n(self) -> int:
        return int(self.pool.shape[0])


# ----------------------------------------------------------------------------------------------
# Sources
# ----------------------------------------------------------------------------------------------
def _array_sha(images: np.ndarray) -> str:
    h = hashlib.sha256(f"{images.dtype}:{images.shape}".encode())
    h.update(memoryview(np.ascontiguousarray(images)).cast("B"))
    return h.hexdigest()


def describe_source(source, key: str = "arr_0") -> tuple[str | None, str]:
    """``(sha256 or None, description)`` of an image source, without decoding it."""
    if isinstance(source, np.ndarray):
        return _array_sha(source), f"array{list(source.shape)}"
    if isinstance(source, (str, Path)):
        p = Path(source)
        if p.is_dir():
            shards = npz_io.shard_paths(p)
            if not shards:
                raise InputFileError(p, "no chunk_*.npz shards in the folder")
            h = hashlib.sha256()
            for _, sp in shards:
                h.update(sha256_file(sp).encode())
            return h.hexdigest(), f"shards:{p}"
        if not p.is_file():
            raise InputFileError(p, "file not found")
        return hashlib.sha256(f"{sha256_file(p)}:{key}".encode()).hexdigest(), f"npz:{p}[{key}]"
    return None, type(source).__name__


def iter_batches(source, batch_size: int, key: str = "arr_0") -> Iterator[np.ndarray]:
    """uint8 NHWC batches of at most ``batch_size`` from any supported source."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if isinstance(source, np.ndarray):
        npz_io.check_images_array(source, "images")
        for i in range(0, source.shape[0], batch_size):
            yield source[i : i + batch_size]
    elif isinstance(source, (str, Path)):
        p = Path(source)
        if p.is_dir():
            yield from npz_io.iter_shard_batches(p, batch_size)
        else:
            yield from npz_io.iter_npz_batches(p, batch_size, key=key)
    else:
        for batch in source:
            batch = np.asarray(batch)
            for i in range(0, batch.shape[0], batch_size):
                yield batch[i : i + batch_size]


# ----------------------------------------------------------------------------------------------
# Cache
# ----------------------------------------------------------------------------------------------
def _cache_paths(input_sha: str, weights_sha: str, root: Path) -> dict[str, Path]:
    d = root / "features"
    return {layer: d / f"v{CACHE_FORMAT}-{input_sha[:24]}-{weights_sha[:16]}-{layer}.npy"
            for layer in ("pool", "spatial", "logits", "meta")}


def _save_npy_atomic(path: Path, arr: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            np.save(f, arr)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def _load_cached(paths: dict[str, Path], need_logits: bool) -> FeatureSet | None:
    needed = ["pool", "spatial", "meta"] + (["logits"] if need_logits else [])
    if not all(paths[k].is_file() for k in needed):
        return None
    try:
        meta = np.load(paths["meta"])
        arrays = {k: np.load(paths[k]) for k in needed if k != "meta"}
    except (OSError, ValueError):
        return None  # a damaged cache entry is recomputed, never trusted
    n = meta[0]
    if any(a.shape[0] != n or not np.isfinite(a).all() for a in arrays.values()):
        return None
    return FeatureSet(arrays["pool"], arrays["spatial"], arrays.get("logits"), (int(meta[1]), int(meta[2])),
                      None, from_cache=True)


def _store(paths: dict[str, Path], fs: FeatureSet) -> None:
    for layer in ("pool", "spatial") + (("logits",) if fs.logits is not None else ()):
        _save_npy_atomic(paths[layer], getattr(fs, layer))
    _save_npy_atomic(paths["meta"], np.array([fs.n, fs.image_size[0], fs.image_size[1]], np.int64))  # last: complete


def seed_cache(source, weights_sha256: str, fs: FeatureSet, cache: bool | str | Path = True, key: str = "arr_0") -> None:
    """Record ``fs`` as the features of ``source`` (used when a new file holds exactly the images just extracted)."""
    if cache is False:
        return
    input_sha, _ = describe_source(source, key)
    if input_sha is not None:
        _store(_cache_paths(input_sha, weights_sha256, cache_dir() if cache is True else Path(cache)), fs)


# ----------------------------------------------------------------------------------------------
# Extraction
# ----------------------------------------------------------------------------------------------
def extract_features(source, extractor, batch_size: int = 50, key: str = "arr_0",
                     cache: bool | str | Path = True, name: str = "images") -> FeatureSet:
    """Features of every image in ``source`` in order. ``cache``: True (default folder), False, or a folder."""
    input_sha, desc = describe_source(source, key)
    weights_sha = extractor.weights.sha256
    need_logits = extractor.weights.has_logits
    paths = None
    if cache is not False and input_sha is not None:
        root = cache_dir() if cache is True else Path(cache)
        paths = _cache_paths(input_sha, weights_sha, root)
        hit = _load_cached(paths, need_logits)
        if hit is not None:
            hit.input_sha256 = input_sha
            return hit
    collected: dict[str, list[np.ndarray]] = {"pool": [], "spatial": [], "logits": []}
    size = None
    for batch in iter_batches(source, batch_size, key):
        if batch.dtype != np.uint8 or batch.ndim != 4 or batch.shape[-1] != 3:
            raise InputFileError(desc, f"{name} must be uint8 [N,H,W,3], got {batch.dtype} {list(batch.shape)}")
        if size is None:
            size = tuple(batch.shape[1:3])
        elif tuple(batch.shape[1:3]) != size:
            raise InputFileError(desc, f"{name}: image size {batch.shape[1]}x{batch.shape[2]} differs from {size[0]}x{size[1]}")
        out = extractor(batch)
        for layer, arr in out.items():
            collected[layer].append(arr)
    if size is None:
        raise InputFileError(desc, f"{name}: no images")
    fs = FeatureSet(np.concatenate(collected["pool"]), np.concatenate(collected["spatial"]),
                    np.concatenate(collected["logits"]) if collected["logits"] else None, size, input_sha)
    for layer in ("pool", "spatial") + (("logits",) if fs.logits is not None else ()):
        arr = getattr(fs, layer)
        if not np.isfinite(arr).all():
            raise InputFileError(desc, f"{name}: the Inception network produced non-finite {layer} features")
    if paths is not None:
        _store(paths, fs)
    return fs

"""Streaming Inception features over an npz, a sampling folder, an image folder, an array or batches.

Images are read one batch at a time, validated (uint8 [B,H,W,3], one size for the whole set) and
pushed through the extractor. Memory stays bounded at 50k images: the mean and covariance of each
layer are accumulated in float64 as batches arrive (``RunningMoments``), and only the arrays a
metric needs whole are kept (pool3 for precision/recall/KID, logits for IS; the sFID layer never).

Results are cached in the cache folder (outside the repo), keyed by (input sha256, weights sha256).
Every entry carries the sha256 of each of its files, checked on load: a damaged entry is recomputed
and the caller is told. Cache writes happen under the cache lock; a full disk skips the write with
a warning and never the metrics. Iterators cannot be hashed before they are consumed: never cached.
"""

from __future__ import annotations

import dataclasses
import hashlib
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from harness.core.errors import InputFileError
from harness.core.io import atomic_target, read_json, sha256_file, write_json_atomic
from harness.data import npz as npz_io
from harness.data.sources import image_files, iter_image_batches
from harness.metrics.weights import cache_dir

CACHE_FORMAT = 2
FLUSH_ROWS = 2048  # rows buffered before a float64 X^T X update (big matmuls are fast, tiny ones are not)


def warn(message: str) -> None:
    print(f"alitok-bench: warning: {message}", file=sys.stderr)


class RunningMoments:
    """Mean and covariance (``np.cov`` semantics, float64) of rows that arrive in batches.

    Rows are shifted by the first block's mean before the sums, so the final ``S2 - n m m^T`` does not
    cancel catastrophically; tests check equality with ``np.cov`` of the stacked rows."""

    def __init__(self, name: str = "features"):
        self.name, self.n = name, 0
        self._shift = self._s1 = self._s2 = None
        self._buf: list[np.ndarray] = []
        self._buffered = 0

    def update(self, rows: np.ndarray) -> None:
        rows = np.asarray(rows)
        if rows.ndim != 2:
            raise ValueError(f"{self.name}: expected [B, D] rows, got {list(rows.shape)}")
        self._buf.append(rows)
        self._buffered += rows.shape[0]
        if self._buffered >= FLUSH_ROWS:
            self._flush()

    def _flush(self) -> None:
        if not self._buf:
            return
        x = np.concatenate(self._buf).astype(np.float64)
        self._buf, self._buffered = [], 0
        if self._shift is None:
            self._shift = x.mean(axis=0)
            self._s1 = np.zeros_like(self._shift)
            self._s2 = np.zeros((x.shape[1], x.shape[1]))
        x -= self._shift
        self._s1 += x.sum(axis=0)
        self._s2 += x.T @ x
        self.n += x.shape[0]

    def result(self) -> tuple[np.ndarray, np.ndarray]:
        self._flush()
        if self.n < 2:
            from harness.metrics.fid import FIDError

            raise FIDError(f"{self.name}: need at least 2 samples for a covariance, got {self.n}")
        m = self._s1 / self.n
        cov = (self._s2 - self.n * np.outer(m, m)) / (self.n - 1)
        return self._shift + m, (cov + cov.T) / 2


@dataclasses.dataclass
class FeatureSet:
    """One image set's features: float64 statistics of pool3 and the sFID layer, and the arrays kept whole."""

    stats: dict[str, tuple[np.ndarray, np.ndarray]]  # layer -> (mu, sigma), float64
    pool: np.ndarray | None  # float32 [N, 2048] (kept for precision/recall/KID)
    logits: np.ndarray | None  # float32 [N, 1008]; None when the weights have no real fc
    n: int
    image_size: tuple[int, int]
    input_sha256: str | None
    from_cache: bool = False
    spatial: np.ndarray | None = None  # only with keep_spatial=True (tests, debugging)
    labels: np.ndarray | None = None  # from a sampling folder's shards
    selection: dict | None = None  # sampling folder: planned vs used chunks (partial evaluations)
    notes: list[str] = dataclasses.field(default_factory=list)

    def statistics(self, layer: str = "pool") -> tuple[np.ndarray, np.ndarray]:
        return self.stats[layer]


# ----------------------------------------------------------------------------------------------
# Sources
# ----------------------------------------------------------------------------------------------
@dataclasses.dataclass
class _Folder:
    kind: str  # "shards" | "images"
    files: list[Path]
    selection: dict | None = None


def _array_sha(images: np.ndarray) -> str:
    h = hashlib.sha256(f"{images.dtype}:{images.shape}".encode())
    h.update(memoryview(np.ascontiguousarray(images)).cast("B"))
    return h.hexdigest()


def is_sampling_folder(p: Path) -> bool:
    return (p / "shards").is_dir() or (p / "spec.json").is_file() or any(p.glob("chunk_*.npz"))


def _resolve_folder(p: Path, allow_partial: bool) -> _Folder:
    if is_sampling_folder(p):
        from harness.sampling.shards import shard_selection

        files, info = shard_selection(p, allow_partial)
        if not files:
            raise InputFileError(p, "no chunk_*.npz shards in the folder")
        return _Folder("shards", files, info)
    return _Folder("images", image_files(p))


def describe_source(source, key: str = "arr_0", allow_partial: bool = False) -> tuple[str | None, str]:
    """``(sha256 or None, description)`` of an image source, without decoding it."""
    sha, desc, _ = _describe(source, key, allow_partial)
    return sha, desc


def _describe(source, key: str, allow_partial: bool) -> tuple[str | None, str, _Folder | None]:
    if isinstance(source, np.ndarray):
        return _array_sha(source), f"array{list(source.shape)}", None
    if isinstance(source, (str, Path)):
        p = Path(source)
        if p.is_dir():
            folder = _resolve_folder(p, allow_partial)
            h = hashlib.sha256(folder.kind.encode())
            for f in folder.files:  # names too: the order of images is part of the set's identity
                h.update(f"{f.name}:{sha256_file(f)}".encode())
            return h.hexdigest(), f"{folder.kind}:{p}", folder
        if not p.is_file():
            raise InputFileError(p, "file not found")
        return hashlib.sha256(f"{sha256_file(p)}:{key}".encode()).hexdigest(), f"npz:{p}[{key}]", None
    return None, type(source).__name__, None


def _count(source, key: str, folder: _Folder | None) -> int | None:
    if isinstance(source, np.ndarray):
        return int(source.shape[0])
    if folder is not None:
        return (
            folder.selection.get("samples_used", folder.selection.get("planned_samples"))
            if folder.kind == "shards" and folder.selection
            else (len(folder.files) if folder.kind == "images" else None)
        )
    if isinstance(source, (str, Path)):
        return int(npz_io.npz_array_info(source, key)[0][0])
    return None


def iter_batches(
    source, batch_size: int, key: str = "arr_0", allow_partial: bool = False, folder: _Folder | None = None
) -> Iterator[np.ndarray]:
    """uint8 NHWC batches of at most ``batch_size`` from any supported source (``folder``: already resolved)."""
    if folder is None and isinstance(source, (str, Path)) and Path(source).is_dir():
        folder = _resolve_folder(Path(source), allow_partial)
    yield from _iter(source, batch_size, key, folder)


def _iter(source, batch_size: int, key: str, folder: _Folder | None) -> Iterator[np.ndarray]:
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if isinstance(source, np.ndarray):
        npz_io.check_images_array(source, "images")
        for i in range(0, source.shape[0], batch_size):
            yield source[i : i + batch_size]
    elif folder is not None:
        if folder.kind == "shards":
            yield from npz_io.iter_shard_file_batches(folder.files, batch_size)
        else:
            yield from iter_image_batches(folder.files, batch_size)
    elif isinstance(source, (str, Path)):
        yield from npz_io.iter_npz_batches(Path(source), batch_size, key=key)
    else:
        for batch in source:
            batch = np.asarray(batch)
            for i in range(0, batch.shape[0], batch_size):
                yield batch[i : i + batch_size]


def _shard_labels(folder: _Folder) -> np.ndarray | None:
    labels = []
    for f in folder.files:
        n = npz_io.npz_array_info(f, "images")[0][0]
        lab = npz_io.load_labels_npz(f, expected_n=n)
        if lab is None:
            return None
        labels.append(lab)
    return np.concatenate(labels) if labels else None


# ----------------------------------------------------------------------------------------------
# Cache: one index file per entry, written last, holding the sha256 of every member file
# ----------------------------------------------------------------------------------------------
def _cache_root(cache) -> Path:
    return cache_dir() if cache is True else Path(cache)


def _entry_paths(input_sha: str, weights_sha: str, root: Path) -> dict[str, Path]:
    d = root / "features"
    stem = f"v{CACHE_FORMAT}-{input_sha[:24]}-{weights_sha[:16]}"
    return {
        "pool": d / f"{stem}-pool.npy",
        "logits": d / f"{stem}-logits.npy",
        "stats": d / f"{stem}-stats.npz",
        "index": d / f"{stem}-index.json",
    }


def _load_cached(paths: dict[str, Path], need_logits: bool, need_pool: bool) -> tuple[FeatureSet | None, str | None]:
    """``(features, None)`` on a verified hit; ``(None, why)`` for a damaged entry; ``(None, None)`` for a miss."""
    if not paths["index"].is_file():
        return None, None
    try:
        index = read_json(paths["index"])
        files = index["files"]
        needed = ["stats"] + (["pool"] if need_pool else []) + (["logits"] if need_logits else [])
        if any(k not in files for k in needed):
            return None, None  # made for fewer layers: a miss, not damage
        for k in needed:
            if sha256_file(paths[k]) != files[k]:
                return None, f"{paths[k].name} does not match its recorded sha256"
        with np.load(paths["stats"], allow_pickle=False) as z:
            stats = {"pool": (z["mu"], z["sigma"])}
            if "mu_s" in z.files:
                stats["spatial"] = (z["mu_s"], z["sigma_s"])
        arrays = {k: np.load(paths[k], allow_pickle=False) for k in ("pool", "logits") if k in needed}
        n, size = int(index["n"]), tuple(int(v) for v in index["image_size"])
    except (OSError, ValueError, KeyError, TypeError, EOFError, InputFileError) as e:
        return None, f"unreadable ({type(e).__name__})"
    if any(a.shape[0] != n for a in arrays.values()):
        return None, "row counts disagree"
    return FeatureSet(stats, arrays.get("pool"), arrays.get("logits"), n, size, None, from_cache=True), None


def _store(paths: dict[str, Path], fs: FeatureSet) -> str | None:
    """Write a cache entry under the cache lock; returns a warning instead of raising on OSError (disk full)."""
    from harness.core.locks import acquire, remove_stale_temps

    root = paths["index"].parent.parent
    try:
        with acquire(root, wait=True, what="feature cache") as lock:
            remove_stale_temps(lock, paths["index"].parent)
            paths["index"].unlink(missing_ok=True)  # an entry is valid only once its index is back
            files = {}
            (mu, sigma), spatial = fs.stats["pool"], fs.stats.get("spatial")
            arrays = {"mu": mu, "sigma": sigma, **({"mu_s": spatial[0], "sigma_s": spatial[1]} if spatial else {})}
            with atomic_target(paths["stats"], ".npz") as tmp:
                with open(tmp, "wb") as f:
                    npz_io.npz_bytes_to(f, arrays)
            files["stats"] = sha256_file(paths["stats"])
            for layer in ("pool", "logits"):
                arr = getattr(fs, layer)
                if arr is not None:
                    with atomic_target(paths[layer], ".npy") as tmp, open(tmp, "wb") as f:
                        np.save(f, arr)  # a handle: np.save would append ".npy" to a temp name
                    files[layer] = sha256_file(paths[layer])
            write_json_atomic(
                paths["index"], {"format": CACHE_FORMAT, "n": fs.n, "image_size": list(fs.image_size), "files": files}
            )
    except OSError as e:
        from harness.core.errors import one_line

        return f"feature cache not written ({one_line(e)}); metrics are unaffected"
    return None


def seed_cache(
    source, weights_sha256: str, fs: FeatureSet, cache: bool | str | Path = True, key: str = "arr_0"
) -> None:
    """Record ``fs`` as the features of ``source`` (used when a new file holds exactly the images just extracted)."""
    if cache is False or fs.pool is None:
        return
    input_sha, _ = describe_source(source, key)
    if input_sha is not None:
        note = _store(_entry_paths(input_sha, weights_sha256, _cache_root(cache)), fs)
        if note:
            warn(note)


# ----------------------------------------------------------------------------------------------
# Extraction
# ----------------------------------------------------------------------------------------------
def _progress(progress: bool | None) -> bool:
    return sys.stderr.isatty() if progress is None else bool(progress)


def extract_features(
    source,
    extractor,
    batch_size: int = 50,
    key: str = "arr_0",
    cache: bool | str | Path = True,
    name: str = "images",
    *,
    keep_pool: bool = True,
    keep_spatial: bool = False,
    allow_partial: bool = False,
    progress: bool | None = None,
) -> FeatureSet:
    """Features of every image in ``source`` in order.

    ``cache``: True (default folder), False, or a folder. ``progress``: a tqdm bar on stderr (None: only
    when stderr is a terminal). ``allow_partial``: a sampling folder may be incomplete (its verified
    prefix is used and ``selection`` says so); otherwise an incomplete folder is refused.
    """
    input_sha, desc, folder = _describe(source, key, allow_partial)
    weights_sha = extractor.weights.sha256
    need_logits = extractor.weights.has_logits
    notes: list[str] = []
    labels = _shard_labels(folder) if folder is not None and folder.kind == "shards" else None
    selection = folder.selection if folder is not None else None
    paths = None
    if cache is not False and input_sha is not None and not keep_spatial:
        paths = _entry_paths(input_sha, weights_sha, _cache_root(cache))
        hit, damage = _load_cached(paths, need_logits, keep_pool)
        if hit is not None:
            hit.input_sha256, hit.labels, hit.selection = input_sha, labels, selection
            return hit
        if damage:
            notes.append(f"feature cache entry {paths['index'].name[:-11]} was damaged ({damage}): recomputed")
            warn(notes[-1])
    if isinstance(source, (str, Path)) and folder is None:
        npz_io.check_npz_integrity(source)  # a bad CRC fails now, not after hours of extraction
    moments = {"pool": RunningMoments(f"{name} pool3 features"), "spatial": RunningMoments(f"{name} sFID features")}
    kept: dict[str, list[np.ndarray]] = {"pool": [], "logits": [], "spatial": []}
    size = None
    n = 0
    from tqdm import tqdm

    total = _count(source, key, folder)
    filled: dict[str, np.ndarray] = {}
    bar = tqdm(
        total=total,
        desc=f"features {name}",
        unit="img",
        file=sys.stderr,
        disable=not _progress(progress),
        leave=False,
        dynamic_ncols=True,
    )
    try:
        for batch in iter_batches(source, batch_size, key, allow_partial, folder=folder):
            if batch.dtype != np.uint8 or batch.ndim != 4 or batch.shape[-1] != 3:
                raise InputFileError(desc, f"{name} must be uint8 [N,H,W,3], got {batch.dtype} {list(batch.shape)}")
            if size is None:
                size = tuple(batch.shape[1:3])
            elif tuple(batch.shape[1:3]) != size:
                raise InputFileError(
                    desc, f"{name}: image size {batch.shape[1]}x{batch.shape[2]} differs from {size[0]}x{size[1]}"
                )
            out = extractor(batch)
            for layer, arr in out.items():
                if not np.isfinite(arr).all():
                    raise InputFileError(desc, f"{name}: the Inception network produced non-finite {layer} features")
                if layer in moments:
                    moments[layer].update(arr)
                if (layer == "pool" and keep_pool) or layer == "logits" or (layer == "spatial" and keep_spatial):
                    if total is not None:  # rows go straight into one array: no list + concatenate (2x peak)
                        if layer not in filled:
                            filled[layer] = np.empty((total,) + arr.shape[1:], np.float32)
                        if n + arr.shape[0] > total:
                            raise InputFileError(desc, f"{name}: more images than the {total} announced")
                        filled[layer][n : n + arr.shape[0]] = arr
                    else:
                        kept[layer].append(arr)
            n += batch.shape[0]
            bar.update(batch.shape[0])
    finally:
        bar.close()
    if size is None:
        raise InputFileError(desc, f"{name}: no images")
    if labels is not None and labels.shape[0] != n:
        raise InputFileError(desc, f"labels hold {labels.shape[0]} entries for {n} images")
    # an extractor without an sFID layer (DINOv2) streams pool only
    stats = {layer: m.result() for layer, m in moments.items() if layer == "pool" or m.n or m._buf}
    if total is not None and n != total:
        raise InputFileError(desc, f"{name}: {n} images read, {total} announced")
    cat = {k: filled.get(k, np.concatenate(v) if v else None) for k, v in kept.items()}
    fs = FeatureSet(
        stats,
        cat["pool"],
        cat["logits"],
        n,
        size,
        input_sha,
        spatial=cat["spatial"],
        labels=labels,
        selection=selection,
        notes=notes,
    )
    if paths is not None:
        note = _store(paths, fs)
        if note:
            fs.notes.append(note)
            warn(note)
    return fs

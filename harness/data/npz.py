"""ADM-format sample files: ``arr_0`` uint8 [N,H,W,3] (+ ``labels`` int64 [N]) in an uncompressed npz.

Writing: our own zip writer (fixed 1980 timestamps, ZIP_STORED, members written in a fixed order)
so equal arrays give byte-identical files, streamed so a 50k x 256^2 file is never held whole;
always to a temporary name in the target folder, then ``os.replace``.
Reading in batches: ``np.load(mmap_mode=...)`` does not memory-map npz members, so we open the
member as a zip stream, parse its ``.npy`` header with ``numpy.lib.format`` and read one batch of
rows at a time (works for compressed members too); memory is one batch.
"""

from __future__ import annotations

import contextlib
import os
import re
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from harness.core.errors import InputFileError
from harness.core.io import atomic_path

_DATE = (1980, 1, 1, 0, 0, 0)
SHARD_RE = re.compile(r"^chunk_(\d+)\.npz$")


# ----------------------------------------------------------------------------------------------
# Atomic, deterministic writing
# ----------------------------------------------------------------------------------------------
class NpzWriter:
    """Write npz members one after another; ``begin_array`` + ``write_rows`` streams a large array."""

    def __init__(self, f: BinaryIO):
        self._zip = zipfile.ZipFile(f, "w", compression=zipfile.ZIP_STORED, allowZip64=True)
        self._member = None
        self._remaining = 0

    def add(self, key: str, arr: np.ndarray) -> None:
        arr = np.ascontiguousarray(arr)
        self.begin_array(key, arr.shape, arr.dtype)
        self.write_rows(arr)
        self.end_array()

    def begin_array(self, key: str, shape: tuple[int, ...], dtype: Any) -> None:
        if self._member is not None:
            raise RuntimeError("previous array not finished")
        dtype = np.dtype(dtype)
        info = zipfile.ZipInfo(f"{key}.npy", date_time=_DATE)
        info.compress_type = zipfile.ZIP_STORED
        info.external_attr = 0o600 << 16
        self._member = self._zip.open(info, "w", force_zip64=True)
        header = {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False, "shape": tuple(shape)}
        np.lib.format.write_array_header_1_0(self._member, header)
        self._remaining = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        self._dtype = dtype

    def write_rows(self, rows: np.ndarray) -> None:
        rows = np.ascontiguousarray(rows, dtype=self._dtype)
        if rows.nbytes > self._remaining:
            raise ValueError("more data than the declared shape")
        self._member.write(memoryview(rows).cast("B"))
        self._remaining -= rows.nbytes

    def end_array(self) -> None:
        if self._remaining:
            raise ValueError(f"array incomplete: {self._remaining} bytes missing")
        self._member.close()
        self._member = None

    def close(self) -> None:
        self._zip.close()

    def abort(self) -> None:
        """Release handles after a failure (the temp file is discarded by ``atomic_path``)."""
        with contextlib.suppress(Exception):
            if self._member is not None:
                self._member.close()
        with contextlib.suppress(Exception):
            self._zip.close()

    def __enter__(self) -> NpzWriter:
        return self

    def __exit__(self, exc_type, *_):
        if exc_type is not None:
            self.abort()


def npz_bytes_to(f: BinaryIO, arrays: dict[str, np.ndarray]) -> None:
    w = NpzWriter(f)
    for key, arr in arrays.items():
        w.add(key, arr)
    w.close()


def check_images_array(images: Any, where: str | Path) -> np.ndarray:
    if not isinstance(images, np.ndarray):
        raise InputFileError(where, f"images must be a numpy array, got {type(images).__name__}")
    if images.dtype != np.uint8:
        raise InputFileError(where, f"images must be uint8, got {images.dtype}")
    if images.ndim != 4 or images.shape[-1] != 3:
        raise InputFileError(where, f"images must have shape [N,H,W,3], got {list(images.shape)}")
    return images


def save_samples_npz(
    path: str | Path, images: np.ndarray, labels: np.ndarray | None = None, **extra: np.ndarray
) -> Path:
    """Write ``arr_0`` (+ ``labels``, + extra arrays) atomically and deterministically."""
    path = Path(path)
    check_images_array(images, path)
    arrays = {"arr_0": images}
    if labels is not None:
        labels = np.asarray(labels)
        if labels.shape != (images.shape[0],):
            raise InputFileError(path, f"labels must have shape [{images.shape[0]}], got {list(labels.shape)}")
        arrays["labels"] = labels.astype(np.int64)
    arrays.update({k: np.asarray(v) for k, v in extra.items()})
    with atomic_path(path) as f:
        npz_bytes_to(f, arrays)
    return path


def first_per_class(labels: np.ndarray, max_classes: int, per_class: int) -> np.ndarray:
    """Positions of the first ``per_class`` images of each of the first ``max_classes`` classes (sorted
    class ids), in file order: the images a sample grid shows, and the originals a recon run keeps for it."""
    labels = np.asarray(labels)
    classes = sorted(set(labels.tolist()))[:max_classes]
    if not classes:
        return np.zeros(0, np.int64)
    return np.sort(np.concatenate([np.flatnonzero(labels == c)[:per_class] for c in classes])).astype(np.int64)


# ----------------------------------------------------------------------------------------------
# Reading
# ----------------------------------------------------------------------------------------------
def _open_zip(path: Path) -> zipfile.ZipFile:
    if not path.is_file():
        raise InputFileError(path, "file not found")
    try:
        return zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as e:
        raise InputFileError(path, f"not a readable npz file ({e})") from None


def npz_keys(path: str | Path) -> list[str]:
    with _open_zip(Path(path)) as z:
        return [n[:-4] for n in z.namelist() if n.endswith(".npy")]


def _read_header(f: BinaryIO, path: Path, key: str) -> tuple[tuple[int, ...], np.dtype]:
    try:
        version = np.lib.format.read_magic(f)
        reader = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, fortran, dtype = reader(f)
    except ValueError as e:
        raise InputFileError(path, f"member {key!r} is not a valid .npy array ({e})") from None
    if fortran and len(shape) > 1:
        raise InputFileError(path, f"member {key!r} is Fortran-ordered; expected C order")
    return tuple(shape), dtype


def npz_array_info(path: str | Path, key: str = "arr_0") -> tuple[tuple[int, ...], np.dtype]:
    """Shape and dtype of one member, read from its header only."""
    path = Path(path)
    with _open_zip(path) as z:
        if f"{key}.npy" not in z.namelist():
            have = ", ".join(n[:-4] for n in z.namelist()) or "none"
            raise InputFileError(path, f"no array {key!r} in the npz (has: {have})")
        with z.open(f"{key}.npy") as f:
            return _read_header(f, path, key)


def _check_sample_header(path: Path, key: str, shape: tuple[int, ...], dtype: np.dtype) -> None:
    if dtype != np.uint8:
        raise InputFileError(path, f"{key} must be uint8 images, got dtype {dtype}")
    if len(shape) != 4 or shape[-1] != 3:
        raise InputFileError(path, f"{key} must have shape [N,H,W,3], got {list(shape)}")
    if shape[0] == 0:
        raise InputFileError(path, f"{key} holds no images")


def check_samples_header(path: str | Path, key: str = "arr_0") -> tuple[int, ...]:
    """The shape of ``key``, refused (naming the file) unless its header says uint8 [N,H,W,3] with N >= 1."""
    path = Path(path)
    shape, dtype = npz_array_info(path, key)
    _check_sample_header(path, key, shape, dtype)
    return shape


def load_samples_npz(path: str | Path, key: str = "arr_0") -> np.ndarray:
    """The whole ``key`` array, validated as uint8 [N,H,W,3] (one-line error naming the file)."""
    path = Path(path)
    shape, dtype = npz_array_info(path, key)
    _check_sample_header(path, key, shape, dtype)
    try:
        with np.load(path, allow_pickle=False) as data:
            return data[key]
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as e:
        raise InputFileError(path, f"cannot read {key!r} ({_first_line(e)})") from None


def load_labels_npz(path: str | Path, key: str = "labels", expected_n: int | None = None) -> np.ndarray | None:
    """The ``labels`` array (int64 [N]) if present, else None. The header is checked before loading:
    a header claiming 10^12 entries is refused, not allocated."""
    path = Path(path)
    if key not in npz_keys(path):
        return None
    shape, dtype = npz_array_info(path, key)
    if len(shape) != 1 or not np.issubdtype(dtype, np.integer):
        raise InputFileError(path, f"{key} must be an integer array [N], got {dtype} {list(shape)}")
    if expected_n is None and "arr_0" in npz_keys(path):
        expected_n = npz_array_info(path, "arr_0")[0][0]
    if expected_n is not None and shape[0] != expected_n:
        raise InputFileError(path, f"{key} header claims {shape[0]} entries for {expected_n} images")
    try:
        with np.load(path, allow_pickle=False) as data:
            labels = data[key]
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as e:
        raise InputFileError(path, f"cannot read {key!r} ({_first_line(e)})") from None
    return labels.astype(np.int64)


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def check_npz_integrity(path: str | Path, chunk: int = 1 << 24) -> None:
    """Every member's stored bytes against its CRC, before hours of feature extraction rather than after.

    One sequential read of the file (about the cost of hashing it, which the feature cache does anyway)."""
    import zlib

    path = Path(path)
    with _open_zip(path) as z:
        for info in z.infolist():
            try:
                with z.open(info) as f:
                    while f.read(chunk):
                        pass
            except (zipfile.BadZipFile, zlib.error, OSError, EOFError) as e:
                raise InputFileError(path, f"member {info.filename!r} is corrupt ({_first_line(e)})") from None


def iter_npz_batches(
    path: str | Path, batch_size: int, key: str = "arr_0", validate_images: bool = True
) -> Iterator[np.ndarray]:
    """Yield ``key`` in row batches of ``batch_size`` (last may be short), holding one batch at a time.

    The batches are read-only views of the bytes read (copy them to modify)."""
    path = Path(path)
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    shape, dtype = npz_array_info(path, key)
    if validate_images:
        _check_sample_header(path, key, shape, dtype)
    row = int(np.prod(shape[1:], dtype=np.int64)) * dtype.itemsize
    import zlib

    with _open_zip(path) as z, z.open(f"{key}.npy") as f:
        _read_header(f, path, key)
        done = 0
        while done < shape[0]:
            n = min(batch_size, shape[0] - done)
            try:
                buf = f.read(n * row)
            except (zipfile.BadZipFile, zlib.error, OSError, EOFError) as e:  # bad CRC, damaged deflate stream
                raise InputFileError(path, f"{key} unreadable near row {done} ({_first_line(e)})") from None
            if len(buf) != n * row:
                raise InputFileError(path, f"{key} is truncated at row {done + len(buf) // max(row, 1)} of {shape[0]}")
            yield np.frombuffer(buf, dtype=dtype).reshape((n,) + shape[1:])
            done += n


def shard_paths(shard_dir: str | Path) -> list[tuple[int, Path]]:
    """``(chunk index, path)`` of ``chunk_*.npz`` in index order; accepts a run folder or its ``shards/``."""
    d = Path(shard_dir)
    if (d / "shards").is_dir():
        d = d / "shards"
    if not d.is_dir():
        raise InputFileError(d, "shard folder not found")
    found = [(int(m.group(1)), d / name) for name in os.listdir(d) if (m := SHARD_RE.match(name))]
    return sorted(found)


def iter_shard_batches(shard_dir: str | Path, batch_size: int) -> Iterator[np.ndarray]:
    """Re-batch the images of ``shards/chunk_*.npz`` (chunk order) into batches of ``batch_size``.

    Holds one shard plus one batch. Note: for the ``chunk`` seed scheme, chunk order is index order;
    for ``legacy_rank`` shards interleave, so use the gathered ``samples.npz`` when order matters.
    """
    yield from iter_shard_file_batches([p for _, p in shard_paths(shard_dir)], batch_size)


def iter_shard_file_batches(paths: list[Path], batch_size: int) -> Iterator[np.ndarray]:
    """The ``images`` of the given shard files, in that order, re-batched into ``batch_size``."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    pending: list[np.ndarray] = []
    have = 0
    for path in paths:
        imgs = load_samples_npz(path, "images")
        pending.append(imgs)
        have += len(imgs)
        while have >= batch_size:
            cat = np.concatenate(pending) if len(pending) > 1 else pending[0]
            yield cat[:batch_size]
            rest = cat[batch_size:]
            pending, have = ([rest] if len(rest) else []), len(rest)
    if have:
        yield np.concatenate(pending)


# ----------------------------------------------------------------------------------------------
# PNG folder -> npz
# ----------------------------------------------------------------------------------------------
def pack_png_folder(folder: str | Path, out_npz: str | Path) -> int:
    """Stack ``folder/*.png`` (sorted by name) into ``out_npz`` as ``arr_0``; returns the count.

    Every PNG must be readable RGB(A/L converted to RGB) of one size; the first bad file is named.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise InputFileError(folder, "PNG folder not found")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() == ".png" and p.is_file())
    if not files:
        raise InputFileError(folder, "no .png files")
    first = _read_png(files[0])
    with atomic_path(Path(out_npz)) as f, NpzWriter(f) as w:
        w.begin_array("arr_0", (len(files),) + first.shape, np.uint8)
        w.write_rows(first[None])
        for p in files[1:]:
            img = _read_png(p)
            if img.shape != first.shape:
                raise InputFileError(
                    p,
                    f"size {img.shape[1]}x{img.shape[0]} differs from {first.shape[1]}x{first.shape[0]} of {files[0].name}",
                )
            w.write_rows(img[None])
        w.end_array()
        w.close()
    return len(files)


def _read_png(path: Path) -> np.ndarray:
    from harness.data.images import read_rgb

    return read_rgb(path, format="PNG")

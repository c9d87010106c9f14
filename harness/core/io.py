"""The one place for low-level file I/O: atomic writes and content hashes.

Every file the harness writes goes through ``atomic_path`` or ``atomic_target`` (temp name in the target
folder, fsync of the file, ``os.replace``, fsync of the folder), so a kill or a power cut leaves either the
old file or the new one, never half of either, and a finished write survives the crash that follows it.
Bottom floor: imports nothing from the harness but ``errors``.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

_UMASK = os.umask(0o022)
os.umask(_UMASK)
TEMP_SUFFIX = ".tmp"


def _raise_naming(e: BaseException, path: Path) -> None:
    """A write error without a file name (ENOSPC, EIO from write/fsync) gets the target's name."""
    if isinstance(e, OSError) and e.filename is None and e.errno is not None:
        raise OSError(e.errno, e.strerror or os.strerror(e.errno), str(path)) from e


def fsync_dir(folder: str | os.PathLike) -> None:
    """Make a rename in ``folder`` durable; skipped where the platform refuses directory fsync (Windows)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:  # EINVAL/EBADF on file systems and platforms that cannot sync a directory
        pass
    finally:
        os.close(fd)


def _publish(tmp: str | os.PathLike, path: Path) -> None:
    """The common ending: give ``tmp`` the usual permissions, rename it over ``path``, sync the folder."""
    os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600
    os.replace(tmp, path)
    fsync_dir(path.parent)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, mode: str = "wb") -> Iterator[Any]:
    """Open a temp file next to ``path``; rename it over ``path`` only if the block succeeds
    (``atomic_target`` with the file opened: one place syncs, publishes and cleans up)."""
    with atomic_target(path) as tmp, open(tmp, mode) as f:
        yield f


@contextlib.contextmanager
def atomic_target(path: str | os.PathLike, suffix: str = "") -> Iterator[Path]:
    """A temp *path* next to ``path`` for writers that want a filename (np.save, safetensors);
    renamed over ``path`` only if the block succeeds. ``suffix`` keeps extension-sniffing writers happy."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix + TEMP_SUFFIX, dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        with open(tmp_path, "rb") as f:  # fsync needs an fd; the writer closed its own
            os.fsync(f.fileno())
        _publish(tmp_path, path)
    except BaseException as e:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_path)
        _raise_naming(e, path)
        raise


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> None:
    with atomic_path(path, "wb") as f:
        f.write(data)


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    write_bytes_atomic(path, text.encode("utf-8"))


def write_json_atomic(path: str | os.PathLike, obj: Any, *, indent: int | None = 2) -> None:
    write_text_atomic(path, json.dumps(obj, indent=indent, sort_keys=False, default=str) + "\n")


def stale_temps(folder: str | os.PathLike) -> list[Path]:
    """Temp files left in ``folder`` by killed writers (only remove them while holding its lock)."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.name.startswith(".") and p.name.endswith(TEMP_SUFFIX))


@functools.lru_cache(maxsize=64)
def _sha256_cached(path: str, size: int, mtime_ns: int) -> str:  # noqa: V107 (size, mtime: the cache key)
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


def sha256_file(path: str | os.PathLike, *, fresh: bool = False) -> str:
    """sha256 of a file, memoised on (path, size, mtime) so a multi-GB checkpoint is hashed once;
    ``fresh`` re-reads it (a verifier must see damage that kept the size and mtime)."""
    st = os.stat(path)
    hasher = _sha256_cached.__wrapped__ if fresh else _sha256_cached
    return hasher(str(Path(path).resolve()), st.st_size, st.st_mtime_ns)


def cache_root() -> Path:
    """The project's cache folder: ``$ALITOK_BENCH_CACHE``, else ``~/.cache/alitok-bench`` (never inside the
    repository; converted weights, feature caches, kernel choices and fetched files live below it)."""
    return Path(os.environ.get("ALITOK_BENCH_CACHE") or Path("~/.cache/alitok-bench").expanduser())


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def check_output_dir(path: str | os.PathLike, flag: str = "--out") -> Path:
    """Fail before any work when ``path`` cannot become a writable folder (a file, or under a file)."""
    from harness.core.errors import UserError

    path = Path(path)
    for p in [path, *path.parents]:
        if p.exists():
            if not p.is_dir():
                what = "is a file" if p == path else f"is inside {p}, which is a file"
                raise UserError(f"{flag} {path}: {what}; give a folder")
            if not os.access(p, os.W_OK | os.X_OK):
                raise UserError(f"{flag} {path}: {p} is not writable")
            break
    return path


def check_output_file(path: str | os.PathLike, flag: str = "--out") -> Path:
    """Fail before any work when ``path`` cannot become a file (an existing folder, or its parent a file)."""
    from harness.core.errors import UserError

    path = Path(path)
    if path.is_dir():
        raise UserError(f"{flag} {path}: is a folder; give a file name")
    check_output_dir(path.parent, flag)
    return path


MAX_JSON_DEPTH = 64  # records nest about 6 deep; anything far deeper is not ours and breaks recursive readers


def _json_depth(obj: Any) -> int:
    """Nesting depth of lists/dicts, without recursion (a deep document must not crash the check itself)."""
    depth, stack = 0, [(obj, 1)]
    while stack:
        node, d = stack.pop()
        if isinstance(node, (dict, list)):
            depth = max(depth, d)
            stack.extend((v, d + 1) for v in (node.values() if isinstance(node, dict) else node))
    return depth


def parse_json(text: str | bytes, where: str | os.PathLike, *, finite: bool = False) -> Any:
    """The one JSON reader: UTF-8 text only, nesting at most ``MAX_JSON_DEPTH``, and with ``finite``
    no NaN/Infinity (nor 1e999, which Python reads as inf). Any problem is one ``InputFileError`` line."""
    from harness.core.errors import InputFileError

    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as e:
            raise InputFileError(where, f"not UTF-8 text (byte {e.start}: {e.reason})") from None

    def no_constant(name: str) -> Any:
        raise ValueError(f"non-finite number {name}")

    def finite_float(token: str) -> float:
        v = float(token)
        if v in (float("inf"), float("-inf")):
            raise ValueError(f"number {token[:20]} overflows to infinity")
        return v

    kwargs = {"parse_constant": no_constant, "parse_float": finite_float} if finite else {}
    try:
        data = json.loads(text, **kwargs)
    except RecursionError:
        raise InputFileError(where, "not valid JSON (nested deeper than Python can read)") from None
    except ValueError as e:  # JSONDecodeError and the non-finite refusals above
        raise InputFileError(where, f"not valid JSON ({str(e).splitlines()[0]})") from None
    if _json_depth(data) > MAX_JSON_DEPTH:
        raise InputFileError(where, f"JSON nested more than {MAX_JSON_DEPTH} levels deep")
    return data


def read_json(path: str | os.PathLike, *, finite: bool = False) -> Any:
    """``parse_json`` of a file's bytes; a missing or unreadable file is an ``InputFileError`` too."""
    from harness.core.errors import InputFileError

    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise InputFileError(path, f"cannot read ({e.strerror or type(e).__name__})") from None
    return parse_json(data, path, finite=finite)


def sha256_if_file(path: str | os.PathLike | None) -> str | None:
    """``sha256_file`` of ``path`` when it names an existing file, else None (random weights, no checkpoint)."""
    return sha256_file(path) if path and Path(path).is_file() else None

"""The weights root, its digest ledger (trust on first use) and where an official file is found.

Root: ``$ALITOK_BENCH_WEIGHTS``, else ``weights/`` inside the cache folder (``$ALITOK_BENCH_CACHE`` or
``~/.cache/alitok-bench``). Each official file lives there under its official name (``catalog.FILES``).
``ledger.json`` in the root records the sha256 and size of every file the first time it was fetched or
found; a later file with another digest is refused (trust on first use). Writers of one file serialise
on a lock beside it; the ledger has its own lock.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from harness.core import locks
from harness.core.errors import UserError
from harness.core.io import cache_root, parse_json, sha256_file, write_json_atomic

WEIGHTS_ENV = "ALITOK_BENCH_WEIGHTS"
LEDGER = "ledger.json"


class DigestMismatch(UserError):
    """A file's sha256 differs from the pinned one or from the one recorded on first use."""


def weights_root(root: str | os.PathLike | None = None) -> Path:
    if root:
        return Path(root).expanduser()
    env = os.environ.get(WEIGHTS_ENV)
    if env:
        return Path(env).expanduser()
    return cache_root() / "weights"


def path_of(name: str, root: str | os.PathLike | None = None) -> Path:
    """Where the official file (or folder, ``NAME/``) ``name`` lives in the root, present or not."""
    return weights_root(root) / name.rstrip("/")


def read_ledger(root: Path) -> dict[str, dict]:
    path = root / LEDGER
    if not path.is_file():
        return {}
    data = parse_json(path.read_bytes(), path)
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected a mapping of file name -> {{sha256, size}}")
    return data


@contextlib.contextmanager
def file_lock(root: Path, name: str) -> Iterator[None]:
    """One writer per official file, across processes; a second fetch of the same file waits."""
    target = root / name
    lock = locks.acquire(target.parent, wait=True, what=f"fetch of {target.name}", name=f".{target.name}.lock")
    try:
        yield
    finally:
        lock.release()


def record(root: Path, name: str, sha256: str, size: int, source: str) -> None:
    """Add ``name`` to the ledger (first use) under the ledger's own lock."""
    lock = locks.acquire(root, wait=True, what="weights ledger", name=".ledger.lock")
    try:
        ledger = read_ledger(root)
        ledger[name] = {"sha256": sha256, "size": size, "source": source}
        write_json_atomic(root / LEDGER, dict(sorted(ledger.items())))
    finally:
        lock.release()


def check_digest(
    root: Path,
    name: str,
    digest: str,
    *,
    pinned: str | None = None,
    prefix: str | None = None,
    where: str | None = None,
) -> str:
    """Raise DigestMismatch (one line) unless ``digest`` fits the pinned digest, the name's digest prefix
    and the ledger; returns how it was checked ("pinned", "ledger", "new")."""
    where = where or str(root / name)
    if pinned and digest != pinned:
        raise DigestMismatch(f"{where}: sha256 {digest[:16]}... is not the pinned {pinned[:16]}...; refused")
    if prefix and not digest.startswith(prefix):
        raise DigestMismatch(
            f"{where}: sha256 {digest[:16]}... does not start with {prefix}, the digest prefix "
            "in its official name; refused"
        )
    known = read_ledger(root).get(name)
    if known and known.get("sha256") != digest:
        raise DigestMismatch(
            f"{where}: sha256 {digest[:16]}... differs from {str(known.get('sha256'))[:16]}... "
            f"recorded when it was first fetched (trust on first use, {root / LEDGER}); refused. "
            "If upstream replaced the file, delete its entry from the ledger and fetch again"
        )
    return "pinned" if pinned else ("ledger" if known else "new")


def verify_present(
    root: Path, name: str, *, pinned: str | None = None, prefix: str | None = None, source: str = "found in place"
) -> str:
    """A file already in the root: checked (fresh hash) and recorded on first sight. Returns the status."""
    path = root / name
    digest = sha256_file(path, fresh=True)
    how = check_digest(root, name, digest, pinned=pinned, prefix=prefix)
    if how != "ledger":
        record(root, name, digest, path.stat().st_size, source)
    return how

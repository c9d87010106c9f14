"""One writer per output folder: an advisory ``flock`` on ``FOLDER/.alitok-bench.lock``.

A second job that targets a folder in use fails at once with one line ("in use by PID ...") or, with
``wait=True``, blocks until the first is done. The lock file names its holder (PID, host, job id);
the kernel drops the lock when the holder dies, so a killed run never leaves a folder locked.
Stale temporary files are removed only while the lock is held (``remove_stale_temps``).

Under torchrun the whole job holds one lock: rank 0 takes it, the other ranks check, after a
barrier, that the holder is their own job (``JOB_ID``), so ranks never lock each other out.
Bottom floor: imports only ``errors`` and ``io``.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import socket
import time
from pathlib import Path

from harness.core.errors import UserError
from harness.core.io import stale_temps

LOCK_NAME = ".alitok-bench.lock"


class FolderInUse(UserError):
    """Another process (another job) holds the folder's lock."""


def job_id() -> str:
    """Same string on every rank of one torchrun job, different for two jobs (and two plain processes)."""
    run = os.environ.get("TORCHELASTIC_RUN_ID")
    if run and run != "none":
        return f"torchrun:{run}:{os.environ.get('MASTER_ADDR', '')}:{os.environ.get('MASTER_PORT', '')}"
    if "MASTER_PORT" in os.environ and "RANK" in os.environ:
        return f"dist:{os.environ.get('MASTER_ADDR', '')}:{os.environ['MASTER_PORT']}"
    return f"pid:{socket.gethostname()}:{os.getpid()}"


def holder(folder: str | os.PathLike, name: str = LOCK_NAME) -> dict:
    """What the lock file says about its holder ({} when none or unreadable)."""
    try:
        data = json.loads((Path(folder) / name).read_text() or "{}")
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _describe(info: dict) -> str:
    if not info:
        return "another process"
    return f"PID {info.get('pid')} on {info.get('host')} (since {info.get('since')})"


class FolderLock:
    """A held lock; ``release()`` (or leaving the ``with`` block) frees it."""

    def __init__(self, folder: Path, fd: int):
        self.folder, self._fd = folder, fd

    def release(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> FolderLock:
        return self

    def __exit__(self, *_):
        self.release()


def acquire(
    folder: str | os.PathLike,
    *,
    wait: bool = False,
    what: str = "output folder",
    poll_s: float = 0.2,
    name: str = LOCK_NAME,
) -> FolderLock:
    """Lock ``folder`` (created if needed) for this process; raise FolderInUse or wait.

    ``name``: the lock file; one folder may hold several independently locked outputs (references)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder / name, os.O_RDWR | os.O_CREAT, 0o644)
    announced = False
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except OSError as e:
            if e.errno not in (errno.EAGAIN, errno.EACCES):
                os.close(fd)
                raise
            if not wait:
                os.close(fd)
                raise FolderInUse(
                    f"{folder}: {what} in use by {_describe(holder(folder, name))}; wait for it to finish, "
                    f"use another folder, or pass --wait"
                ) from None
            if not announced:
                import sys

                print(f"waiting for {folder} ({what} in use by {_describe(holder(folder, name))})", file=sys.stderr)
                announced = True
            time.sleep(poll_s)
    info = {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "job": job_id(),
        "since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    os.ftruncate(fd, 0)
    os.pwrite(fd, (json.dumps(info) + "\n").encode(), 0)
    return FolderLock(folder, fd)


_PROCESS_HELD: dict[str, FolderLock] = {}


def hold_for_process(folder: str | os.PathLike, *, what: str = "output folder") -> FolderLock:
    """Lock ``folder`` until this process exits (the kernel drops it then). Re-entrant within the process:
    a trainer that builds several loops on one folder (resume, export) holds one lock, while a second
    process gets ``FolderInUse`` at once."""
    key = str(Path(folder).resolve())
    held = _PROCESS_HELD.get(key)
    if held is None or held._fd is None:
        held = _PROCESS_HELD[key] = acquire(folder, what=what)
    return held


def check_same_job(folder: str | os.PathLike, what: str = "output folder") -> None:
    """Non-zero torchrun ranks: the folder's lock must be held by this job's rank 0."""
    info = holder(folder)
    if info.get("job") != job_id():
        raise FolderInUse(f"{folder}: {what} in use by {_describe(info)} (another job)")


def remove_stale_temps(lock: FolderLock, *folders: str | os.PathLike, prefixes: tuple[str, ...] = ()) -> list[Path]:
    """Delete temp files left by killed writers in ``folders`` (only names starting with one of ``prefixes``,
    when given); needs the lock (proof that no one else is writing them)."""
    if lock is None or lock._fd is None:
        raise RuntimeError("remove_stale_temps needs a held FolderLock")
    removed = []
    for d in folders or (lock.folder,):
        for tmp in stale_temps(d):
            if prefixes and not tmp.name.startswith(prefixes):
                continue
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
                removed.append(tmp)
    return removed

"""Plain HTTPS download with resume: bytes go to ``.NAME.partial`` beside the target, never to NAME.

An interrupted transfer keeps the partial file and the validator (ETag / Last-Modified) it came with,
and the next attempt asks for the rest (``Range: bytes=N-`` with ``If-Range``); a server that answers
200 instead sends the whole file again. A local write error (full disk, file size limit) deletes the
partial file: nothing half-written stays. The caller checks the digest and renames (``files.py``).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import sys
import urllib.error
import urllib.request
from pathlib import Path

from harness.core.errors import UserError

CHUNK = 1 << 20
USER_AGENT = "alitok-bench-fetch"


class DownloadError(UserError):
    """The transfer failed (network, HTTP status, short body) after its retries."""


def partial_path(dest: Path) -> Path:
    return dest.with_name(f".{dest.name}.partial")


def _meta_path(dest: Path) -> Path:
    return dest.with_name(f".{dest.name}.partial.json")


def discard_partial(dest: Path) -> None:
    for p in (partial_path(dest), _meta_path(dest)):
        with contextlib.suppress(FileNotFoundError):
            p.unlink()


def _validator(dest: Path, url: str) -> str | None:
    """The ETag / Last-Modified the partial file was started under (None: no usable partial)."""
    try:
        meta = json.loads(_meta_path(dest).read_text())
    except (OSError, ValueError):
        meta = {}
    if meta.get("url") != url:
        discard_partial(dest)  # a partial from another URL (or without its record) cannot be resumed
        return None
    return meta.get("validator")


def _total(resp, offset: int) -> int | None:
    m = re.match(r"bytes (\d+)-\d+/(\d+)", resp.headers.get("Content-Range", ""))
    if m:
        return int(m.group(2))
    length = resp.headers.get("Content-Length")
    return offset + int(length) if length is not None else None


def _attempt(url: str, dest: Path, timeout: float) -> None:
    """One request; raises OSError subclasses from the network, ``_LocalWriteError`` from the disk."""
    partial = partial_path(dest)
    validator = _validator(dest, url)
    offset = partial.stat().st_size if partial.exists() else 0
    headers = {"User-Agent": USER_AGENT}
    if offset:
        headers["Range"] = f"bytes={offset}-"
        if validator:
            headers["If-Range"] = validator
    try:
        resp = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)
    except urllib.error.HTTPError as e:
        if e.code == 416 and offset:  # the partial is no prefix of the file any more: start again
            discard_partial(dest)
            raise ConnectionError("range not satisfiable; starting again") from None
        raise DownloadError(f"{url}: HTTP {e.code} {e.reason}") from None
    with resp:
        start = 0
        if resp.status == 206:
            m = re.match(r"bytes (\d+)-", resp.headers.get("Content-Range", ""))
            start = int(m.group(1)) if m else -1
            if start != offset:
                discard_partial(dest)
                raise ConnectionError(f"server resumed at byte {start}, not {offset}; starting again")
        total = _total(resp, start)
        new_validator = resp.headers.get("ETag") or resp.headers.get("Last-Modified")
        try:
            _meta_path(dest).write_text(json.dumps({"url": url, "validator": new_validator}))
            f = open(partial, "ab" if start else "wb")
        except OSError as e:
            raise _LocalWriteError(e) from None
        with f:
            done = start
            while True:
                block = resp.read(CHUNK)  # network errors propagate as OSError / IncompleteRead
                if not block:
                    break
                try:
                    f.write(block)
                except OSError as e:
                    raise _LocalWriteError(e) from None
                done += len(block)
            try:
                f.flush()
                os.fsync(f.fileno())
            except OSError as e:
                raise _LocalWriteError(e) from None
    if total is not None and done != total:
        raise ConnectionError(f"connection closed after {done} of {total} bytes")


class _LocalWriteError(Exception):
    def __init__(self, err: OSError):
        super().__init__(str(err))
        self.err = err


def http_download(url: str, dest: Path, *, retries: int = 3, timeout: float = 60.0) -> Path:
    """Fetch ``url`` into ``partial_path(dest)`` (resuming one left by an interrupted run); returns it complete."""
    import http.client

    dest.parent.mkdir(parents=True, exist_ok=True)
    for attempt in range(retries + 1):
        try:
            _attempt(url, dest, timeout)
            return partial_path(dest)
        except _LocalWriteError as e:
            discard_partial(dest)
            err = e.err
            raise OSError(err.errno, err.strerror or str(err), str(dest)) from None
        except (OSError, http.client.HTTPException) as e:  # URLError, ConnectionError, IncompleteRead, timeout
            have = partial_path(dest).stat().st_size if partial_path(dest).exists() else 0
            if attempt == retries:
                if not have:
                    discard_partial(dest)
                    raise DownloadError(f"{url}: download failed ({type(e).__name__}: {e})") from None
                raise DownloadError(
                    f"{url}: transfer interrupted ({type(e).__name__}: {e}); {have} bytes kept in "
                    f"{partial_path(dest)}: run fetch again to resume"
                ) from None
            print(f"fetch: {dest.name}: {type(e).__name__}: {e}; resuming at byte {have}", file=sys.stderr)
    raise AssertionError("unreachable")

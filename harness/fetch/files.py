"""Fetch one catalog file into the weights root, verified, or say why it is not there.

Order of events for a file not yet present: lock the file, download to a temp name beside it (HTTPS
with resume, or the Hub), hash it, check the digest (pinned, name prefix, ledger), record it in the
ledger, rename it into place. Anything failing before the rename leaves no file under the official name.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from pathlib import Path

from harness.core.io import sha256_file
from harness.fetch import download, hub, store
from harness.fetch.catalog import CatalogFile


@dataclasses.dataclass(frozen=True)
class Outcome:
    name: str
    status: str  # fetched | present | manual
    path: Path
    detail: str = ""


def manual_instruction(entry: CatalogFile, root: Path) -> str:
    dest = root / entry.name
    return (
        f"{entry.name}: Google Drive cannot be fetched reliably by a program; download it by hand:\n"
        f"  open https://drive.google.com/file/d/{entry.gdrive_id}/view and save the file as {dest}\n"
        f"  (or, with gdown installed: gdown {entry.gdrive_id} -O {dest})\n"
        f"  then run `alitok-bench fetch {entry.name}` again to verify it (trust on first use)"
    )


def fetch_file(entry: CatalogFile, root: Path, *, retries: int = 3, offline: bool | None = None) -> Outcome:
    """Make ``root/entry.name`` present and verified; raises DigestMismatch / DownloadError / OSError."""
    dest = root / entry.name
    dest.parent.mkdir(parents=True, exist_ok=True)
    with store.file_lock(root, entry.name):
        if dest.is_file():  # found in place (or fetched meanwhile by a concurrent fetch): verify it
            how = store.verify_present(root, entry.name, pinned=entry.sha256, prefix=entry.sha256_prefix)
            return Outcome(entry.name, "present", dest, _how(how))
        if entry.kind == "gdrive":
            return Outcome(entry.name, "manual", dest, manual_instruction(entry, root))
        source = entry.source()
        if entry.kind == "url":
            tmp = download.http_download(entry.resolved_url(), dest, retries=retries)
        else:
            tmp, commit = hub.hub_download(entry.repo_id, entry.filename, entry.revision, dest, offline=offline)
            source = f"hf://{entry.repo_id}/{entry.filename}@{commit}"
        try:
            digest = sha256_file(tmp, fresh=True)
            how = store.check_digest(
                root,
                entry.name,
                digest,
                pinned=entry.sha256,
                prefix=entry.sha256_prefix,
                where=f"{entry.name} from {source}",
            )
            if how != "ledger":
                store.record(root, entry.name, digest, tmp.stat().st_size, source)
            os.replace(tmp, dest)
            _fsync_dir(dest.parent)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
            if entry.kind == "url":
                download.discard_partial(dest)
            raise
        download.discard_partial(dest)
        return Outcome(entry.name, "fetched", dest, _how(how))


def _how(how: str) -> str:
    return {
        "pinned": "sha256 pinned",
        "ledger": "sha256 as recorded on first use",
        "new": "sha256 recorded now (trust on first use)",
    }[how]


def _fsync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

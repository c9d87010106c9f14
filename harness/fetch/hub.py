"""Files on the Hugging Face Hub, through ``huggingface_hub.hf_hub_download`` (its cache, resume and
revisions), then placed in the weights root under their official names (hard link when the cache is
on the same file system, else a copy), through a temp file beside the target.

The harness sets ``HF_HUB_OFFLINE=1`` for every other verb; ``fetch`` goes online unless the user set
``HF_HUB_OFFLINE`` themselves (then only the Hub cache is used, e.g. on a machine without a network).
"""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path

from harness.core.errors import UserError


def user_wants_offline() -> bool:
    import harness

    if not getattr(harness, "HF_HUB_OFFLINE_BY_USER", False):
        return False
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


@contextlib.contextmanager
def _offline_mode(offline: bool):
    from huggingface_hub import constants

    before = constants.HF_HUB_OFFLINE
    constants.HF_HUB_OFFLINE = offline
    try:
        yield
    finally:
        constants.HF_HUB_OFFLINE = before


def hub_download(
    repo_id: str, filename: str, revision: str, dest: Path, *, offline: bool | None = None
) -> tuple[Path, str]:
    """The Hub file as a temp file beside ``dest`` (not yet renamed) and the commit it came from."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    offline = user_wants_offline() if offline is None else offline
    try:
        with _offline_mode(offline):
            cached = Path(hf_hub_download(repo_id, filename, revision=revision))
    except LocalEntryNotFoundError:
        raise UserError(f"hf://{repo_id}/{filename}: not in the Hugging Face cache and HF_HUB_OFFLINE is set") from None
    except (HfHubHTTPError, OSError, ValueError) as e:
        raise UserError(f"hf://{repo_id}/{filename}@{revision}: {type(e).__name__}: {str(e).splitlines()[0]}") from None
    commit = cached.parent.name if cached.parent.parent.name == "snapshots" else revision
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.hub.tmp")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    try:
        try:
            os.link(cached.resolve(), tmp)
        except OSError:
            with open(cached, "rb") as src, open(tmp, "wb") as out:
                shutil.copyfileobj(src, out, 1 << 22)
                out.flush()
                os.fsync(out.fileno())
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
    return tmp, commit

"""Run records: one JSON per run (what ran, on what, with which code, and what came out).

``load_records(folder)`` turns every ``*record*.json`` below a folder into one pandas row each
(nested fields flattened with dots: ``metrics.fid``, ``speed.images_per_s`` ...).
"""
from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import platform
import subprocess
import uuid
from pathlib import Path
from typing import Any

from harness.data.npz import atomic_path
from harness.nn.checkpoint import sha256_file  # noqa: F401  (re-exported: records name files by sha256)

KINDS = ("sample", "eval", "run", "train", "bench", "recon")
STATUSES = ("ok", "failed", "partial", "skipped")
REPO_ROOT = Path(__file__).resolve().parent.parent


@dataclasses.dataclass
class RunRecord:
    kind: str
    spec: dict[str, Any] = dataclasses.field(default_factory=dict)
    spec_hash: str | None = None
    model: dict[str, Any] = dataclasses.field(default_factory=dict)      # name, checkpoint, sha256, params, quantization
    code: dict[str, Any] = dataclasses.field(default_factory=dict)       # git sha, dirty, harness version
    env: dict[str, Any] = dataclasses.field(default_factory=dict)        # python, torch, numpy, device, world size
    seeds: dict[str, Any] = dataclasses.field(default_factory=dict)      # base seed, scheme, identity hash
    samples: dict[str, Any] = dataclasses.field(default_factory=dict)    # n, npz path + sha256, label balance
    metrics: dict[str, float | None] = dataclasses.field(default_factory=dict)
    metric_provenance: dict[str, Any] = dataclasses.field(default_factory=dict)
    paper_comparable: bool = False
    speed: dict[str, Any] = dataclasses.field(default_factory=dict)
    timings: dict[str, float] = dataclasses.field(default_factory=dict)
    status: str = "ok"
    notes: list[str] = dataclasses.field(default_factory=list)
    run_id: str = ""
    created_at: str = ""

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"record kind {self.kind!r} not one of {KINDS}")
        if self.status not in STATUSES:
            raise ValueError(f"record status {self.status!r} not one of {STATUSES}")
        now = _dt.datetime.now(_dt.timezone.utc)
        self.created_at = self.created_at or now.isoformat(timespec="seconds")
        if not self.run_id:
            name = str(self.model.get("name", "none")).replace("/", "_")
            self.run_id = f"{now:%Y%m%d-%H%M%S}-{self.kind}-{name}-{(self.spec_hash or uuid.uuid4().hex)[:8]}"

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def git_info(root: str | Path = REPO_ROOT) -> dict[str, Any]:
    """``{"git_sha", "dirty"}`` of the checkout holding the code (None when not a git checkout)."""
    def git(*args: str) -> str | None:
        try:
            r = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, timeout=20)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return r.stdout if r.returncode == 0 else None

    sha = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no")
    return {"git_sha": sha.strip() if sha else None, "dirty": bool(status.strip()) if status is not None else None}


def code_info() -> dict[str, Any]:
    import harness

    return {**git_info(), "harness_version": harness.__version__}


def env_info(device: Any = None, world_size: int = 1, backend: str | None = None) -> dict[str, Any]:
    import numpy
    import torch

    from harness.devices import device_name

    dev = torch.device(device) if device is not None else torch.device("cpu")
    return {"python": platform.python_version(), "torch": torch.__version__, "numpy": numpy.__version__,
            "platform": platform.platform(), "device": str(dev), "device_name": device_name(dev),
            "cuda": torch.version.cuda, "world_size": world_size, "backend": backend}


def model_info(info: dict[str, Any]) -> dict[str, Any]:
    """Normalise ``generator.info()``; adds ``checkpoint_sha256`` when a checkpoint file is named."""
    out = dict(info)
    for key in ("checkpoint", "tokenizer_checkpoint"):
        path = out.get(key)
        if path and Path(path).is_file() and not out.get(f"{key}_sha256"):
            out[f"{key}_sha256"] = sha256_file(path)
    return out


def write_record(record: RunRecord, folder: str | Path, filename: str | None = None) -> Path:
    """Write ``folder/<kind>_record.json`` (or ``filename``) atomically; returns its path."""
    path = Path(folder) / (filename or f"{record.kind}_record.json")
    with atomic_path(path, "w") as f:
        json.dump(record.to_dict(), f, indent=1, sort_keys=False, allow_nan=False, default=str)
        f.write("\n")
    return path


def read_record(path: str | Path) -> dict[str, Any]:
    from harness.errors import InputFileError

    try:
        data = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise InputFileError(path, f"not a readable record ({e})") from None
    if not isinstance(data, dict) or "kind" not in data or "run_id" not in data:
        raise InputFileError(path, "not a run record (no kind/run_id)")
    return data


def load_records(folder: str | Path):
    """One row per ``*record*.json`` below ``folder`` (json_normalize; column ``record_path`` added)."""
    import pandas as pd

    rows = []
    for p in sorted(Path(folder).rglob("*record*.json")):
        d = read_record(p)
        d["record_path"] = str(p)
        rows.append(d)
    if not rows:
        return pd.DataFrame()
    return pd.json_normalize(rows)

"""Run records: one JSON per run (what ran, on what, with which code, and what came out).

Every verb (sample, eval, recon, train, run, bench) writes a ``RunRecord`` through ``write_record``;
``load_records(folder)`` turns every ``*record*.json`` below a folder into one pandas row each
(nested fields flattened with dots: ``metrics.fid``, ``speed.images_per_s`` ...).

File names: ``<kind>_record.json`` for the one record of a run folder; records that several runs
write into one folder (eval of the same samples against another reference or with other weights)
are named ``<kind>_record-<model>-<hash>.json`` by ``record_name`` so a second one is added, not
written over the first.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import hashlib
import json
import platform
import re
import subprocess
import uuid
from pathlib import Path
from typing import Any

from harness.core.io import atomic_path, sha256_file

KINDS = ("sample", "eval", "run", "train", "bench", "recon")
STATUSES = ("ok", "failed", "partial", "skipped")
REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclasses.dataclass
class RunRecord:
    kind: str
    spec: dict[str, Any] = dataclasses.field(default_factory=dict)
    spec_hash: str | None = None
    model: dict[str, Any] = dataclasses.field(default_factory=dict)  # name, checkpoint, sha256, params, quantization
    code: dict[str, Any] = dataclasses.field(default_factory=dict)  # git sha, dirty, harness version
    env: dict[str, Any] = dataclasses.field(default_factory=dict)  # python, torch, numpy, device, world size
    machine: dict[str, Any] = dataclasses.field(default_factory=dict)  # cpu_model, gpu_name, kernels (machine_info)
    seeds: dict[str, Any] = dataclasses.field(default_factory=dict)  # base seed, scheme, identity hash
    samples: dict[str, Any] = dataclasses.field(default_factory=dict)  # n, npz path + sha256, label balance
    metrics: dict[str, float | None] = dataclasses.field(default_factory=dict)
    metric_provenance: dict[str, Any] = dataclasses.field(default_factory=dict)
    paper_comparable: bool = False
    protocol_findings: list[dict[str, Any]] = dataclasses.field(default_factory=list)  # guards.Finding dicts
    uncertainty: dict[str, Any] = dataclasses.field(default_factory=dict)  # metric -> {std, method, ...}
    speed: dict[str, Any] = dataclasses.field(default_factory=dict)  # noqa: V107 (read from the JSON)
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
        # every record names the machine that made it (a record read back keeps the machine it names)
        self.machine = {**machine_info(), **(self.machine or {})}
        now = _dt.datetime.now(_dt.timezone.utc)
        self.created_at = self.created_at or now.isoformat(timespec="seconds")
        if not self.run_id:
            name = str(self.model.get("name", "none")).replace("/", "_")
            self.run_id = f"{now:%Y%m%d-%H%M%S}-{self.kind}-{name}-{(self.spec_hash or uuid.uuid4().hex)[:8]}"

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def git_info(root: str | Path = REPO_ROOT) -> dict[str, Any]:
    """``{"git_sha", "dirty"}`` of the checkout holding the code (None when not a git checkout). ``dirty``: a
    tracked file outside ``results/`` differs from the commit; results are left out, since regenerating a
    committed result in place rewrites its folder before its record is written."""

    def git(*args: str) -> str | None:
        try:
            r = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, timeout=20)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return r.stdout if r.returncode == 0 else None

    sha = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no", "--", ".", ":(exclude)results")
    return {"git_sha": sha.strip() if sha else None, "dirty": bool(status.strip()) if status is not None else None}


def code_info() -> dict[str, Any]:
    import harness

    return {**git_info(), "harness_version": harness.__version__}


def env_info(device: Any = None, world_size: int = 1, backend: str | None = None) -> dict[str, Any]:
    import numpy
    import torch

    from harness.core.devices import device_name

    dev = torch.device(device) if device is not None else torch.device("cpu")
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "platform": platform.platform(),
        "device": str(dev),
        "device_name": device_name(dev),
        "cuda": torch.version.cuda,
        "world_size": world_size,
        "backend": backend,
    }


def kernels_of(info: dict[str, Any] | None) -> dict[str, str]:
    """The kernels a generator ran, from its ``info()``: ``linear`` (onednn-packed | aten ...) and ``attention``
    (c-decode | sdpa), see harness/nn/kernels/packed_linear.py and harness/nn/kernels/decode_attention.py. Kernels round
    differently (summation order), so they are part of what a sample's bytes depend on besides the code."""
    info = info or {}
    out = {"linear": info.get("linear_kernel"), "attention": info.get("attention_kernel")}
    return {k: str(v) for k, v in out.items() if v is not None}


def machine_info(device: Any = None, kernels: dict[str, str] | None = None) -> dict[str, Any]:
    """``{"cpu_model", "gpu_name", "kernels"}``: the machine a result came from, at the model-name level (two
    x86-64 CPUs can round the same code differently; the architecture alone does not tell them apart)."""
    from harness.core.devices import cpu_model, gpu_name

    return {"cpu_model": cpu_model(), "gpu_name": gpu_name(device), "kernels": dict(kernels or {})}


def model_info(info: dict[str, Any]) -> dict[str, Any]:
    """Normalise ``generator.info()``; adds ``checkpoint_sha256`` when a checkpoint file is named."""
    out = dict(info)
    for key in ("checkpoint", "tokenizer_checkpoint"):
        path = out.get(key)
        if path and Path(path).is_file() and not out.get(f"{key}_sha256"):
            out[f"{key}_sha256"] = sha256_file(path)
    return out


def short_hash(obj: Any, length: int = 8) -> str:
    """First ``length`` hex digits of the sha256 of ``obj`` as canonical JSON."""
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:length]


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_") or "none"


def record_name(kind: str, model: str | None = None, identity: Any = None) -> str:
    """``<kind>_record.json``; with ``identity`` ``<kind>_record-<model>-<short hash of identity>.json``."""
    if kind not in KINDS:
        raise ValueError(f"record kind {kind!r} not one of {KINDS}")
    if identity is None:
        return f"{kind}_record.json"
    return f"{kind}_record-{_slug(str(model or 'none'))}-{short_hash(identity)}.json"


def eval_record_name(model: str | None, reference_sha256: str | None, weights_sha256: str | None, metrics: Any) -> str:
    """Name of an eval record: the same samples against another reference, with other feature
    weights or other metrics get another file."""
    return record_name(
        "eval", model, {"reference": reference_sha256, "weights": weights_sha256, "metrics": sorted(metrics)}
    )


def sample_model_name(samples: str | Path) -> str | None:
    """Name of the model that made ``samples`` (an npz or a shards folder), read from the
    ``sample_record.json`` the ``sample`` verb wrote beside it; None when there is none."""
    p = Path(samples)
    folders = [p.parent] if p.is_file() or p.suffix == ".npz" else [p, p.parent]
    for folder in folders:
        path = folder / record_name("sample")
        if path.is_file():
            name = read_record(path).get("model", {}).get("name")
            return str(name) if name else None
    return None


def write_record(record: RunRecord, folder: str | Path, filename: str | None = None) -> Path:
    """Write ``folder/<kind>_record.json`` (or ``filename``, see ``record_name``) atomically; returns its path.

    The one writer of records: every verb calls it."""
    name = filename or record_name(record.kind)
    if not name.endswith(".json") or "record" not in name:
        raise ValueError(f"record file name {name!r} must contain 'record' and end in .json (load_records finds those)")
    path = Path(folder) / name
    with atomic_path(path, "w") as f:
        json.dump(record.to_dict(), f, indent=1, sort_keys=False, allow_nan=False, default=str)
        f.write("\n")
    return path


def write_result_json(data: dict[str, Any], path: str | Path, command: str | None) -> Path:
    """Write a committed result that is not a run record (a summary of records, a report) atomically,
    with the provenance every record carries: ``provenance.code`` (commit, dirty flag), the machine
    and the ``command`` that regenerates it. ``data`` must not hold a ``provenance`` key of its own."""
    if "provenance" in data:
        raise ValueError("write_result_json: data already holds a 'provenance' key")
    import platform

    from harness.core.devices import cpu_model

    out = {
        **data,
        "provenance": {
            "code": code_info(),
            "command": command,
            "machine": {"cpu_model": cpu_model(), "arch": platform.machine()},
            "created_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        },
    }
    path = Path(path)
    with atomic_path(path, "w") as f:
        json.dump(out, f, indent=2, sort_keys=False, allow_nan=False, default=str)
        f.write("\n")
    return path


def read_record(path: str | Path) -> dict[str, Any]:
    from harness.core.errors import InputFileError
    from harness.core.io import read_json

    # the one JSON reader: UTF-8 only, depth-limited, one line naming the file; non-finite values are
    # read (a gate must see them and fail) rather than refused
    data = read_json(path)
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

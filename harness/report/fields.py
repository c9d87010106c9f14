"""Where each reported quantity lives in a run record: the one place to edit when a field moves.

Every table, plot, claim and regression gate reads records through these accessors (never through
raw keys), so a renamed RunRecord field is a one-line fix here. Each accessor lists the places a
value may sit, newest layout first, and returns None when it sits nowhere: absence is tolerated.
Records are the nested dicts of ``harness.records.read_record``.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

# The metrics a report knows, and which way is better (regression gates and Pareto fronts need it).
HIGHER_IS_BETTER: dict[str, bool] = {
    "fid": False, "sfid": False, "kid": False, "rfid": False, "is": True, "prec": True, "recall": True,
    "psnr": True, "ssim": True, "codebook_usage": True, "images_per_s": True, "ar_acc": True,
}
METRIC_TITLES: dict[str, str] = {
    "fid": "FID", "sfid": "sFID", "kid": "KID", "rfid": "rFID", "is": "IS", "prec": "Precision", "recall": "Recall",
    "psnr": "PSNR (dB)", "ssim": "SSIM", "codebook_usage": "codebook usage", "images_per_s": "images/s",
    "ar_acc": "AR accuracy",
}


def dig(record: dict[str, Any], dotted: str) -> Any:
    """``record["a"]["b"]`` for ``"a.b"``; None where any step is missing."""
    cur: Any = record
    for part in dotted.split("."):
        if not isinstance(cur, dict) or part not in cur:
            return None
        cur = cur[part]
    return cur


def _first(record: dict[str, Any], *paths: str) -> Any:
    for p in paths:
        v = dig(record, p)
        if v is not None:
            return v
    return None


def _number(v: Any) -> float | None:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    try:
        v = float(v)
    except OverflowError:  # a JSON integer of hundreds of digits
        v = math.copysign(math.inf, v)
    return None if math.isnan(v) else v


def _count(record: dict[str, Any], *paths: str, minimum: float = 0) -> int | None:
    """A whole number >= ``minimum`` (N, batch size, seed) or None when absent; 1e999 or 2.5 is a
    damaged record, refused naming its file, not a number to print or compare."""
    from harness.errors import InputFileError

    for p in paths:
        raw = dig(record, p)
        v = _number(raw)
        if v is None:
            continue
        if not math.isfinite(v) or v != int(v) or v < minimum:
            at_least = "" if minimum == -math.inf else f" >= {minimum:g}"
            raise InputFileError(record.get("record_path") or "record", f"{p} is {raw!r}, not a whole number{at_least}")
        return int(v)
    return None


# ---- identity -------------------------------------------------------------------------------
def kind(record) -> str | None:
    return record.get("kind")


def status(record) -> str | None:
    return record.get("status")


def model_name(record) -> str | None:
    return _first(record, "model.name")


def registry_name(record) -> str | None:
    """The registry name a record's generator was made from, where it differs from the model name."""
    return _first(record, "model.registry_name")


def label(record) -> str:
    """The row name: a suite entry's label, else the model name, else the run id."""
    return str(_first(record, "label", "spec.label", "model.label") or model_name(record)
               or record.get("run_id") or "?")


def variant(record) -> str | None:
    """Ablation group a record belongs to (several seeds of one variant share it)."""
    return _first(record, "variant", "spec.variant", "model.variant")


def record_path(record) -> str | None:
    return record.get("record_path")


# ---- numbers ----------------------------------------------------------------------------------
def metric(record, name: str) -> float | None:
    if name == "images_per_s":
        return images_per_s(record)
    return _number(_first(record, f"metrics.{name}"))


def uncertainty(record, name: str) -> float | None:
    """One standard deviation of ``name`` where the record measured one (seeds, splits, repeats)."""
    if name == "images_per_s":
        return _number(_first(record, "uncertainty.images_per_s", "speed.images_per_s_std"))
    return _number(_first(record, f"uncertainty.{name}.std", f"uncertainty.{name}", f"metrics.{name}_std",
                          f"metric_provenance.{name}_std"))


def images_per_s(record) -> float | None:
    return _number(_first(record, "speed.images_per_s", "speed.images_per_s_rank0", "metrics.images_per_s"))


def batch_size(record) -> int | None:
    return _count(record, "speed.batch_size", "spec.batch_size")


def dtype(record) -> str | None:
    return _first(record, "speed.dtype", "spec.dtype")


def checkpoint(record) -> str | None:
    return _first(record, "model.checkpoint", "spec.model.checkpoint", "spec.checkpoint")


def num_samples(record) -> int | None:
    return _count(record, "samples.n", "spec.protocol.num_samples")


def sampling(record) -> dict[str, Any]:
    s = _first(record, "sampling", "model.sampling", "spec.model.sampling")
    return dict(s) if isinstance(s, dict) else {}


def guidance_scale(record) -> float | None:
    s = sampling(record)
    return _number(s.get("cfg_scale", s.get("guidance_scale")))


def seed(record) -> int | None:
    return _count(record, "seeds.seed", "spec.protocol.seed", minimum=-math.inf)


# ---- context ------------------------------------------------------------------------------------
def protocol(record) -> str | None:
    return _first(record, "spec.protocol.name", "protocol")


def hardware(record) -> str | None:
    """Device name (e.g. 'NVIDIA H100 80GB', 'cpu'), with dtype when the speed block says."""
    dev = _first(record, "env.device_name", "speed.device_name", "env.device", "speed.device")
    dtype = _first(record, "speed.dtype")
    if dev is None:
        return None
    return f"{dev} {dtype}" if dtype else str(dev)


def paper_comparable(record) -> bool:
    return bool(record.get("paper_comparable", False))


def protocol_findings(record) -> list[str]:
    """Why a number differs from the paper's protocol (explicit findings, then the evaluator's reasons)."""
    out = [_finding_text(x) for x in (record.get("protocol_findings") or [])]
    out += [str(x) for x in (dig(record, "metric_provenance.not_comparable_because") or [])]
    return out


def _finding_text(x: Any) -> str:
    """A guard finding ({code, severity, message}) as one line; older records hold plain strings."""
    if isinstance(x, dict) and "code" in x:
        return f"{'FATAL' if x.get('severity') == 'fatal' else 'warn'} {x['code']}: {x.get('message', '')}"
    return str(x)


def samples_npz(record) -> Path | None:
    p = _first(record, "samples.npz", "samples.path")
    return Path(p) if p else None

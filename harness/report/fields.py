"""Where each reported quantity lives in a run record: the one place to edit when a field moves.

Every table, plot, claim and regression gate reads records through these accessors (never through
raw keys), so a renamed RunRecord field is a one-line fix here. Each accessor lists the places a
value may sit, newest layout first, and returns None when it sits nowhere: absence is tolerated.
Records are the nested dicts of ``harness.runs.records.read_record``.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

# The metrics a report knows, and which way is better (regression gates and Pareto fronts need it).
HIGHER_IS_BETTER: dict[str, bool] = {
    "fid": False,
    "sfid": False,
    "kid": False,
    "rfid": False,
    "is": True,
    "prec": True,
    "recall": True,
    "psnr": True,
    "ssim": True,
    "codebook_usage": True,
    "images_per_s": True,
    "ar_acc": True,
}
METRIC_TITLES: dict[str, str] = {
    "fid": "FID",
    "sfid": "sFID",
    "kid": "KID",
    "rfid": "rFID",
    "is": "IS",
    "prec": "Precision",
    "recall": "Recall",
    "psnr": "PSNR (dB)",
    "ssim": "SSIM",
    "codebook_usage": "codebook usage",
    "images_per_s": "images/s",
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
    from harness.core.errors import InputFileError

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


def implementation(record) -> str | None:
    """Whose code made a bench record: "project" or "upstream" (an official checkout's sampler timed
    beside the project's, harness.speed.upstream); None in records from before the field existed."""
    return _first(record, "model.implementation", "speed.implementation")


def label(record) -> str:
    """The row name: a suite entry's label, else the model name, else the run id."""
    return str(
        _first(record, "label", "spec.label", "model.label") or model_name(record) or record.get("run_id") or "?"
    )


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


def metric_raw(record, name: str) -> float | None:
    """The recorded number as it is, NaN and infinities included (gates must see them to fail on them);
    None where the record holds no number."""
    paths = (
        ("speed.images_per_s", "speed.images_per_s_rank0", "metrics.images_per_s")
        if name == "images_per_s"
        else (f"metrics.{name}",)
    )
    v = _first(record, *paths)
    return None if isinstance(v, bool) or not isinstance(v, (int, float)) else float(v)


def uncertainty(record, name: str) -> float | None:
    """One standard deviation of ``name`` where the record measured one (seeds, splits, repeats)."""
    if name == "images_per_s":
        return _number(_first(record, "uncertainty.images_per_s", "speed.images_per_s_std"))
    return _number(
        _first(
            record,
            f"uncertainty.{name}.std",
            f"uncertainty.{name}",
            f"metrics.{name}_std",
            f"metric_provenance.{name}_std",
        )
    )


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
    """Only a JSON ``true`` counts: the string "false" (or 1, or "yes") is not a comparability claim."""
    return record.get("paper_comparable") is True


# ---- what decides a number (compare and claims match records on these) ----------------------------
def evaluated_n(record) -> list[int]:
    """Every sample count the record states (evaluated, sampled, asked for); they agree in a sound record."""
    vals = [
        _number(dig(record, p))
        for p in (
            "metric_provenance.samples.n",
            "samples.n",
            "metric_provenance.n_samples",
            "spec.protocol.num_samples",
        )
    ]
    return sorted({int(v) for v in vals if v is not None})


# what decides a reference the harness built itself (``ref-stats build``, suites' embedded references)
_BUILT_REFERENCE_KEYS = ("kind", "source", "n_stats", "n_images_arr0", "image_size", "resize")


def reference_digest(record) -> Any:
    """The reference a distribution metric was measured against. A fixed file (ADM's batch) by its
    sha256; a reference the harness built by what decides its statistics (source, N, image size,
    resize; the feature weights are compared on their own), since its file also holds the build
    time and commit and so changes digest on every rebuild. Records without a reference file name
    their held-out source (reconstruction and ablation records measure against their own images)."""
    ref = dig(record, "metric_provenance.reference")
    if isinstance(ref, dict) and ref.get("kind") == "alitok-bench" and ref.get("source"):
        return {k: ref.get(k) for k in _BUILT_REFERENCE_KEYS}
    return _first(
        record, "metric_provenance.reference.sha256", "spec.source_description", "metric_provenance.gfid_reference"
    )


def reference_kind(record) -> str | None:
    return _first(record, "metric_provenance.reference.kind")


def extractor_weights(record) -> dict[str, Any]:
    w = dig(record, "metric_provenance.weights")
    return w if isinstance(w, dict) else {}


def extractor_weights_digest(record) -> str | None:
    """Digest of the feature extractor's weights (a digest of the tensors where the record has one)."""
    w = extractor_weights(record)
    return w.get("tensor_sha256") or w.get("tensors_sha256") or w.get("sha256")


# metric -> the evaluator settings that move it (harness/metrics/evaluate.py provenance keys)
_SETTINGS_COMMON = ("extractor", "resize", "protocol_facts.feature_numerics")
_SETTINGS = {
    "fid": ("fid_method",),
    "sfid": ("fid_method", "sfid_layer"),
    "is": ("is_mode",),
    "kid": ("kid_subset_size",),
    "prec": ("pr_k",),
    "recall": ("pr_k",),
}


def metric_settings(record, name: str) -> dict[str, Any]:
    """The evaluator settings that decide ``name`` (absent ones left out)."""
    out = {}
    for key in _SETTINGS_COMMON + _SETTINGS.get(name, ()):
        v = dig(record, f"metric_provenance.{key}")
        if v is not None:
            out[key] = v
    feature = dig(record, f"metric_provenance.metric_features.{name}")
    if feature is not None:
        out["features"] = feature
    return out


def sampling_identity(record) -> dict[str, Any]:
    """What decides the samples: the sampling identity hash, the sampling parameters and the seed."""
    out = {
        "identity_hash": _first(record, "seeds.sampling_identity_hash"),
        "params": sampling(record) or None,
        "seed": seed(record),
    }
    return {k: v for k, v in out.items() if v is not None}


_BARE_ARCH = {"x86_64", "amd64", "aarch64", "arm64", "i386", "i686", "cpu", "cuda", "mps", ""}


def machine(record) -> dict[str, Any] | None:
    """The machine that measured the record: ``machine.cpu_model`` and ``machine.gpu_name``; None where
    the record does not name them. A bench record without that block still names its device model in
    ``env.device_name`` (the bench verb reads it from /proc/cpuinfo or CUDA); a bare architecture
    ("x86_64", what other verbs record there) names no machine."""
    m = record.get("machine")
    if isinstance(m, dict) and m.get("cpu_model"):
        return {"cpu_model": m.get("cpu_model"), "gpu_name": m.get("gpu_name")}
    name = dig(record, "env.device_name")
    if kind(record) == "bench" and isinstance(name, str) and name.strip().lower() not in _BARE_ARCH:
        return {"device_name": name}
    return None


def bench_run_id(record) -> str | None:
    """One id shared by every record of one ``bench`` invocation (models interleaved in one run)."""
    return _first(record, "spec.bench_run_id")


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


def originals_npz(record) -> Path | None:
    """A recon record's kept originals (``harness.metrics.recon_run``): the grid shows them beside the
    reconstructions; ``index`` in that file gives each one's position in the reconstructions file."""
    p = _first(record, "samples.originals_npz")
    return Path(p) if p else None


# Generators whose rows are references (real images), not systems: a floor line, never a competitor.
REFERENCE_MODELS = frozenset({"real-data"})


def is_reference(record) -> bool:
    """A reference row (real images scored against real images): ``model.reference`` in newer records,
    the generator's name in older ones."""
    flag = _first(record, "model.reference")
    return bool(flag) if flag is not None else model_name(record) in REFERENCE_MODELS


def speed_basis(record) -> str | None:
    """How a record's images/s was measured, where it is not a repeated benchmark: "single pass, load 9.3
    on 2 cores". None where there is no speed, or it has a spread (bench records, repeats)."""
    if images_per_s(record) is None or kind(record) == "bench" or uncertainty(record, "images_per_s") is not None:
        return None
    if _first(record, "speed.images_per_s_range") is not None:
        return None
    load = _number(_first(record, "speed.loadavg_1m", "speed.conditions.loadavg_1m_at_start"))
    cores = _number(_first(record, "speed.cpu_count", "speed.conditions.cpu_count"))
    if load is None:
        return "single pass, load not recorded"
    return f"single pass, load {load:.1f}" + (f" on {cores:.0f} cores" if cores else "")


def loaded(record) -> bool:
    """True where the 1-minute load average exceeded the cores while the speed was measured."""
    warn = _first(record, "speed.load_warning")
    if warn is not None:
        return bool(warn)
    load = _number(_first(record, "speed.loadavg_1m", "speed.conditions.loadavg_1m_at_start"))
    cores = _number(_first(record, "speed.cpu_count", "speed.conditions.cpu_count"))
    return load is not None and cores is not None and load > cores

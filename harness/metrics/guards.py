"""The known-mistake guard: checks of what a record/spec/reference says against the field's usual errors.

Each check is a pure function of plain values (what the record, the spec or the reference's metadata
says) and returns findings ``(code, severity, message)``; ``fatal`` means the number is not
comparable with a paper (``paper_comparable`` stays false), ``warn`` names something a reader must
know. Every case produced a wrong number in a public issue thread (repository and issue number below):
- rFID against the gFID reference (ADM VIRTUAL = train statistics) or against uncropped val images
  (LlamaGen #34/#48, 1d-tokenizer #46/#49, D-AR #3, RAE #11); gFID against a val npz (LlamaGen #53);
- fewer than 50,000 samples (1d-tokenizer #65); unbalanced or randomly drawn labels;
- seeds laid out per GPU, so the samples depend on the GPU count (Diffusion-wo-CFG #2);
- a sampling preset other than the published one (DiT #8 cfg 4.0 vs 1.5, 1d-tokenizer #11);
- resizes: LlamaGen ``_384`` models are scored after a 384->256 resize; any resize changes FID;
- the uint8 rule (truncation biases pixels by -0.5 level) and the numerics (bf16, TF32);
- features that depend on the batch size (RAE #44: rFID 1.88 / 2.12 / 3.96 at batch 512 / 256 / 128).
``render_protocol_block`` prints the short block under a table.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np

FATAL, WARN = "fatal", "warn"
PAPER_N = 50_000
ADM_VIRTUAL_KIND = "adm-virtual-imagenet256"
ADM_CENTER_CROP = "adm-center-crop-256"
LEGACY_SEED_SCHEMES = ("legacy_rank",)


@dataclasses.dataclass(frozen=True)
class Finding:
    code: str
    severity: str  # fatal | warn
    message: str

    def __post_init__(self) -> None:
        if self.severity not in (FATAL, WARN):
            raise ValueError(f"severity must be {FATAL!r} or {WARN!r}, got {self.severity!r}")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def paper_comparable(findings: Iterable[Finding]) -> bool:
    return not any(f.severity == FATAL for f in findings)


# ----------------------------------------------------------------------------------------------
# Reference
# ----------------------------------------------------------------------------------------------
def check_reference(metric: str, reference: Mapping[str, Any]) -> list[Finding]:
    """``metric``: "gfid" or "rfid". ``reference``: kind (refstats.Reference.kind), split (train|val|None),
    preprocessing (e.g. "adm-center-crop-256"), path."""
    if metric not in ("gfid", "rfid"):
        raise ValueError(f"metric must be 'gfid' or 'rfid', got {metric!r}")
    kind, split = reference.get("kind"), reference.get("split")
    prep, where = reference.get("preprocessing"), reference.get("path", "the reference")
    out = []
    if metric == "rfid":
        if kind == ADM_VIRTUAL_KIND or split == "train":
            out.append(
                Finding(
                    "rfid-vs-gfid-reference",
                    FATAL,
                    f"rFID against {where} ({kind or split}: training-set gFID statistics); rFID is measured "
                    "against ImageNet val statistics (LlamaGen VQ-16: 4.28 this way, 2.19 against val)",
                )
            )
        elif prep != ADM_CENTER_CROP:
            out.append(
                Finding(
                    "rfid-reference-not-center-crop",
                    FATAL if prep else WARN,
                    f"rFID reference {where} preprocessing is {prep or 'not recorded'}; it must be ADM's "
                    f"centre crop at 256 ({ADM_CENTER_CROP}), uncropped val images give other numbers",
                )
            )
    elif kind != ADM_VIRTUAL_KIND:
        out.append(
            Finding(
                "gfid-reference-not-virtual",
                FATAL,
                f"gFID against {where} ({kind}, split {split or 'unknown'}); papers use ADM's "
                "VIRTUAL_imagenet256_labeled.npz statistics",
            )
        )
    return out


# ----------------------------------------------------------------------------------------------
# Samples and labels
# ----------------------------------------------------------------------------------------------
def check_sample_count(n: int, required: int = PAPER_N) -> list[Finding]:
    if n < required:
        return [
            Finding(
                "fewer-than-50k",
                FATAL,
                f"{n:,} samples, papers use {required:,}; FID at small N is biased upward (see fid_inf)",
            )
        ]
    if n > required:
        return [Finding("more-than-50k", WARN, f"{n:,} samples, papers use exactly {required:,}")]
    return []


def check_labels(
    labels: Sequence[int] | np.ndarray | None,
    num_classes: int,
    label_rule: str | None = None,
    protocol_rule: str = "balanced",
) -> list[Finding]:
    """``label_rule``: how the sampler drew labels ("balanced" i % C, "random", ...); ``protocol_rule``: the paper's."""
    from harness.metrics.provenance import is_class_sorted

    out = []
    if label_rule == "random" and protocol_rule == "balanced":
        out.append(
            Finding(
                "labels-random", FATAL, "labels were drawn at random; the paper's protocol balances them (50 per class)"
            )
        )
    if labels is None:
        out.append(Finding("labels-unknown", WARN, "no labels recorded: class balance cannot be checked"))
        return out
    labels = np.asarray(labels)
    counts = np.bincount(labels.astype(np.int64), minlength=num_classes) if labels.size else np.zeros(num_classes, int)
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        out.append(Finding("labels-out-of-range", FATAL, f"labels outside [0, {num_classes})"))
    elif counts.min() != counts.max():
        out.append(
            Finding(
                "labels-unbalanced",
                FATAL,
                f"labels not balanced over {num_classes} classes: {int(counts.min())}-{int(counts.max())} "
                f"per class, {int((counts == 0).sum())} classes missing",
            )
        )
    if is_class_sorted(labels):
        out.append(
            Finding(
                "labels-class-sorted",
                WARN,
                "samples are in long class runs: ADM's in-order IS chunks "
                "collapse (interleave classes, i % num_classes)",
            )
        )
    return out


def check_seed_layout(seed_scheme: str, world_size: int | None = None, batch_size: int | None = None) -> list[Finding]:
    if seed_scheme in LEGACY_SEED_SCHEMES:
        return [
            Finding(
                "seed-layout-gpu-count",
                WARN,
                f"legacy seed layout {seed_scheme} (world size {world_size}, batch {batch_size}): the samples "
                "depend on the number of GPUs and the batch size; reruns match only with the same layout",
            )
        ]
    if seed_scheme != "chunk":
        return [
            Finding("seed-layout-unknown", WARN, f"seed layout {seed_scheme!r} not recorded as GPU-count independent")
        ]
    return []


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
        return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-12)
    return a == b


def check_sampling_preset(
    used: Mapping[str, Any], published: Mapping[str, Any] | None, model: str = "the model"
) -> list[Finding]:
    """Every key of the published preset (cfg scale, schedule, temperature, steps, ...) must match."""
    if published is None:
        return [Finding("preset-unknown", WARN, f"no published sampling preset recorded for {model}")]
    diffs = [
        f"{k} {used.get(k, 'unset')!r} (published {v!r})"
        for k, v in published.items()
        if k not in used or not _same(used[k], v)
    ]
    if diffs:
        return [
            Finding("preset-differs", FATAL, f"sampling differs from {model}'s published preset: " + "; ".join(diffs))
        ]
    return []


def check_sampling_overrides(overrides: Mapping[str, Any], model: str = "the model") -> list[Finding]:
    """When the run recorded which sampling keys the user set but not the plugin's preset: name them."""
    if not overrides:
        return []
    keys = "; ".join(f"{k}={v!r}" for k, v in sorted(overrides.items()))
    return [
        Finding(
            "preset-overridden",
            WARN,
            f"sampling of {model} overrides its plugin's preset: {keys} "
            "(compare with the published preset before quoting a paper)",
        )
    ]


# ----------------------------------------------------------------------------------------------
# Pixels and numerics
# ----------------------------------------------------------------------------------------------
def _size(s: Any) -> str:
    return "x".join(str(int(v)) for v in s) if isinstance(s, (list, tuple)) else f"{int(s)}x{int(s)}"


def check_resize(
    model: str, resizes: Sequence[Mapping[str, Any]] = (), sample_size: int | None = None, eval_size: int | None = None
) -> list[Finding]:
    """``resizes``: what the samples went through, each ``{"from", "to", "method"}``; LlamaGen ``_384`` models
    are scored after a 384->256 resize (their protocol), which is named, and missing it is fatal."""
    out = []
    is_384 = model.endswith("_384")
    for r in resizes:
        text = f"{_size(r['from'])} -> {_size(r['to'])} ({r.get('method', 'method not recorded')})"
        if is_384 and _size(r["from"]) == "384x384" and _size(r["to"]) == "256x256":
            out.append(
                Finding(
                    "llamagen-384-resize",
                    WARN,
                    f"{model}: samples resized {text} before evaluation, "
                    "as LlamaGen's protocol does; the number depends on that filter",
                )
            )
        else:
            out.append(Finding("resized", WARN, f"samples resized {text} before evaluation"))
    if is_384 and sample_size == 384 and eval_size not in (None, 256) and not resizes:
        out.append(
            Finding(
                "llamagen-384-not-resized",
                FATAL,
                f"{model}: scored at {eval_size} px; LlamaGen's numbers "
                "for _384 models are after a 384->256 resize against the 256 reference",
            )
        )
    return out


def check_uint8(rule: str | None, dtype: str = "uint8") -> list[Finding]:
    if dtype != "uint8":
        return [Finding("samples-not-uint8", FATAL, f"samples are {dtype}; evaluate quantised uint8 images")]
    if rule is None:
        return [Finding("uint8-rule-unknown", WARN, "float-to-uint8 rule not recorded")]
    if rule == "truncate":
        return [
            Finding(
                "uint8-truncate",
                WARN,
                "float-to-uint8 by truncation (pixels -0.5 level on average); matches "
                "the official AliTok/TiTok code, differs from round-to-nearest",
            )
        ]
    return []


def check_numerics(sampling: Mapping[str, Any] | None, extraction: Mapping[str, Any] | None) -> list[Finding]:
    """``sampling``: specs.numerics() of the sampler; ``extraction``: {"dtype", "tf32"} of the feature network."""
    out = []
    if sampling is None:
        out.append(Finding("sampling-numerics-unknown", WARN, "sampling dtype/TF32 not recorded"))
    if extraction is not None and (extraction.get("tf32") or extraction.get("dtype", "fp32") not in ("fp32", "fp64")):
        out.append(
            Finding(
                "features-not-fp32",
                FATAL,
                f"features extracted in {extraction.get('dtype')} with TF32 "
                f"{'on' if extraction.get('tf32') else 'off'}; reference statistics are fp32 without TF32",
            )
        )
    return out


def batch_size_check(
    extract: Callable[[np.ndarray], Mapping[str, np.ndarray] | np.ndarray],
    images: np.ndarray,
    batch_sizes: tuple[int, int] = (1, 16),
    rtol: float = 1e-4,
) -> tuple[list[Finding], dict]:
    """Extract ``images`` (a small slice) at two batch sizes; features must agree to ``rtol`` (relative to their scale)."""

    def run(bs: int) -> dict[str, np.ndarray]:
        parts: dict[str, list[np.ndarray]] = {}
        for i in range(0, len(images), bs):
            out = extract(images[i : i + bs])
            out = out if isinstance(out, Mapping) else {"features": out}
            for k, v in out.items():
                parts.setdefault(k, []).append(np.asarray(v, np.float64))
        return {k: np.concatenate(v) for k, v in parts.items()}

    a, b = run(batch_sizes[0]), run(batch_sizes[1])
    rel = {k: float(np.max(np.abs(a[k] - b[k])) / max(float(np.max(np.abs(a[k]))), 1e-30)) for k in a}
    details = {"batch_sizes": list(batch_sizes), "n_images": int(len(images)), "max_rel_diff": rel, "rtol": rtol}
    bad = {k: v for k, v in rel.items() if not v <= rtol}
    if bad:
        worst = max(bad, key=bad.get)
        return [
            Finding(
                "features-depend-on-batch-size",
                FATAL,
                f"features change with the batch size ({batch_sizes[0]} vs {batch_sizes[1]}): {worst} differs by "
                f"{bad[worst]:.2g} relative (allowed {rtol:g})",
            )
        ], details
    return [], details


# ----------------------------------------------------------------------------------------------
# The block under a table
# ----------------------------------------------------------------------------------------------
def render_protocol_block(findings: Sequence[Finding], facts: Mapping[str, Any] | None = None) -> str:
    """A few lines: the protocol facts on one line, one line per finding (fatal first), the verdict."""
    facts = facts or {}
    labels = {
        "n": "N",
        "labels": "labels",
        "seed_scheme": "seeds",
        "uint8": "uint8",
        "sampling_numerics": "sampling",
        "feature_numerics": "features",
        "reference": "ref",
        "resize": "resize",
    }
    parts = []
    for key, name in labels.items():
        if key in facts and facts[key] is not None:
            v = facts[key]
            if isinstance(v, Mapping):
                v = " ".join(f"{k}={'on' if x is True else 'off' if x is False else x}" for k, x in v.items())
            elif isinstance(v, int) and not isinstance(v, bool):
                v = f"{v:,}"
            parts.append(f"{name}={v}")
    lines = ["protocol: " + (", ".join(parts) if parts else "(no facts recorded)")]
    ordered = sorted(findings, key=lambda f: f.severity != FATAL)
    lines += [f"  {'FATAL' if f.severity == FATAL else 'warn '} {f.code}: {f.message}" for f in ordered]
    n_fatal = sum(f.severity == FATAL for f in findings)
    lines.append("paper_comparable: " + ("yes" if n_fatal == 0 else f"NO ({n_fatal} fatal)"))
    return "\n".join(lines)


def run_guards(facts: Mapping[str, Any]) -> list[Finding]:
    """Every check whose inputs ``facts`` holds (keys as in the record; absent keys skip their check).

    Keys: metric ("gfid"|"rfid") + reference {kind, split, preprocessing, path}; n; labels (array) +
    num_classes [+ label_rule, protocol_label_rule]; seed_scheme [+ legacy_world_size, legacy_batch_size];
    sampling + published_sampling [+ model] (or sampling_overrides when the preset is unrecorded);
    model + resizes [+ sample_size, eval_size]; uint8 [+ dtype];
    sampling_numerics / feature_numerics.
    """
    out: list[Finding] = []
    if "metric" in facts and "reference" in facts:
        out += check_reference(facts["metric"], facts["reference"])
    if "n" in facts:
        out += check_sample_count(int(facts["n"]))
    if "num_classes" in facts:
        out += check_labels(
            facts.get("labels"),
            int(facts["num_classes"]),
            facts.get("label_rule"),
            facts.get("protocol_label_rule", "balanced"),
        )
    if "seed_scheme" in facts:
        out += check_seed_layout(facts["seed_scheme"], facts.get("legacy_world_size"), facts.get("legacy_batch_size"))
    if "sampling" in facts and "published_sampling" in facts:
        out += check_sampling_preset(facts["sampling"], facts["published_sampling"], facts.get("model", "the model"))
    elif "sampling_overrides" in facts:
        out += check_sampling_overrides(facts["sampling_overrides"], facts.get("model", "the model"))
    if "model" in facts and ("resizes" in facts or "sample_size" in facts):
        out += check_resize(facts["model"], facts.get("resizes", ()), facts.get("sample_size"), facts.get("eval_size"))
    if "uint8" in facts or "dtype" in facts:
        out += check_uint8(facts.get("uint8"), facts.get("dtype", "uint8"))
    if "sampling_numerics" in facts or "feature_numerics" in facts:
        out += check_numerics(facts.get("sampling_numerics"), facts.get("feature_numerics"))
    return out

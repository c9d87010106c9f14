"""Evaluate a samples file against a reference: the ADM evaluator's numbers, with provenance.

``evaluate_samples`` streams the samples through the Inception extractor once (cached), compares
with the reference's stored statistics (FID: mu/sigma, sFID: mu_s/sigma_s), and with the
reference's own images (``arr_0``) for precision/recall and KID. IS is reported in ADM mode and
only when the weights have a real classifier; otherwise it is None ("unavailable").
"""
from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from harness.data import npz as npz_io
from harness.errors import InputFileError, UserError
from harness.metrics import provenance as prov
from harness.metrics.features import extract_features
from harness.metrics.fid import frechet_distance
from harness.metrics.inception import InceptionExtractor, describe_pipeline
from harness.metrics.isc import inception_score
from harness.metrics.kid import kernel_inception_distance
from harness.metrics.prc import precision_recall
from harness.metrics.refstats import Reference, check_compatible, load_reference
from harness.metrics.weights import resolve_weights

ALL_METRICS = ("fid", "is", "sfid", "prec", "recall", "kid")
DEFAULT_METRICS = ("fid", "is", "sfid", "prec", "recall")


@dataclasses.dataclass
class EvalResult:
    metrics: dict[str, float | None]
    provenance: dict[str, Any]
    paper_comparable: bool
    warnings: list[str] = dataclasses.field(default_factory=list)
    timings: dict[str, float] = dataclasses.field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def parse_metrics(metrics: str | Sequence[str]) -> tuple[str, ...]:
    names = [m.strip() for m in (metrics.split(",") if isinstance(metrics, str) else metrics) if m.strip()]
    unknown = [m for m in names if m not in ALL_METRICS]
    if unknown:
        raise ValueError(f"unknown metric(s) {', '.join(unknown)} (known: {', '.join(ALL_METRICS)})")
    if not names:
        raise ValueError("no metrics requested")
    return tuple(dict.fromkeys(names))


def _read_labels(samples) -> np.ndarray | None:
    p = Path(samples)
    if p.is_file():
        return npz_io.load_labels_npz(p)
    return None


def evaluate_samples(samples, reference, metrics: Sequence[str] | str = DEFAULT_METRICS,
                     inception: str | InceptionExtractor = "fid-helper", batch_size: int = 50, device: str = "auto",
                     fid_method: str = "eig", is_mode: str = "adm", cache: bool | str | Path = True,
                     allow_partial: bool = False, progress: bool | None = None) -> EvalResult:
    """Metrics of ``samples`` (ADM npz, sampling folder or image folder) against ``reference`` (ADM-format
    npz, or a ``Reference``). ``allow_partial``: evaluate the verified prefix of an incomplete sampling folder."""
    wanted = parse_metrics(metrics)
    t0 = time.perf_counter()
    # Cheap checks first (headers, reference keys, pipeline match), so bad input fails in a second.
    size = None
    if Path(samples).is_file():
        shape, dtype = npz_io.npz_array_info(samples, "arr_0")
        if dtype != np.uint8 or len(shape) != 4 or shape[-1] != 3:
            raise InputFileError(samples, f"arr_0 must be uint8 [N,H,W,3] images, got {dtype} {list(shape)}")
        if shape[0] < 2:
            raise InputFileError(samples, f"need at least 2 samples for a covariance, got {shape[0]}")
        size = (int(shape[1]), int(shape[2]))
    elif not Path(samples).is_dir():
        raise InputFileError(samples, "samples file or shards folder not found")
    ref = reference if isinstance(reference, Reference) else load_reference(reference)
    if "sfid" in wanted and ref.mu_s is None:
        raise InputFileError(ref.path, "reference has no mu_s/sigma_s: sFID unavailable (drop sfid from --metrics)")
    needs_ref_images = any(m in wanted for m in ("prec", "recall", "kid"))
    if needs_ref_images and ref.n_images < 4:
        raise InputFileError(ref.path, f"reference arr_0 holds {ref.n_images} images; precision/recall/KID need its images")
    weights = inception.weights if isinstance(inception, InceptionExtractor) else resolve_weights(inception)
    info = describe_pipeline(weights)
    warnings = check_compatible(ref, info, size)
    extractor = inception if isinstance(inception, InceptionExtractor) else InceptionExtractor(weights, device)

    feats = extract_features(samples, extractor, batch_size, cache=cache, name="samples", keep_pool=needs_ref_images,
                             allow_partial=allow_partial, progress=progress)
    warnings.extend(feats.notes)
    if (feats.selection or {}).get("partial"):
        warnings.append(f"PARTIAL: {feats.n} samples of an incomplete folder evaluated (--allow-partial): "
                        f"{feats.selection}")
    check_compatible(ref, info, feats.image_size)  # shards: size known only now
    t_feat = time.perf_counter()
    if feats.n < 2:
        raise UserError(f"{samples}: need at least 2 samples for a covariance, got {feats.n}")

    labels = feats.labels if feats.labels is not None else _read_labels(samples)
    if labels is not None and labels.shape[0] != feats.n:
        raise InputFileError(samples, f"labels has {labels.shape[0]} entries for {feats.n} images")
    label_info = prov.label_summary(labels)
    if label_info.get("class_sorted"):
        warnings.append("samples look class-sorted: ADM-mode IS will collapse (interleave classes, i % num_classes)")

    out: dict[str, float | None] = {}
    extra: dict[str, Any] = {}
    if "fid" in wanted:
        mu, sigma = feats.statistics("pool")
        out["fid"] = frechet_distance(mu, sigma, ref.mu, ref.sigma, method=fid_method)
    if "sfid" in wanted:
        mu_s, sigma_s = feats.statistics("spatial")
        out["sfid"] = frechet_distance(mu_s, sigma_s, ref.mu_s, ref.sigma_s, method=fid_method)
    if "is" in wanted:
        if feats.logits is None:
            out["is"] = None
            warnings.append(f"IS unavailable: {info['weights']['kind']} weights have no real 1008-way classifier")
        else:
            r = inception_score(feats.logits, mode=is_mode)
            out["is"] = r["is"]
            extra.update(is_mode=r["is_mode"], is_splits=r["is_splits"], is_std=r["is_std"])
    if needs_ref_images:
        ref_feats = extract_features(ref.path, extractor, batch_size, cache=cache, name="reference arr_0",
                                     progress=progress)
        warnings.extend(ref_feats.notes)
        if "prec" in wanted or "recall" in wanted:
            pr = precision_recall(feats.pool, ref_feats.pool, k=3, device=extractor.device,
                                  which=tuple(key for m, key in (("prec", "precision"), ("recall", "recall")) if m in wanted))
            for m, key in (("prec", "precision"), ("recall", "recall")):
                if m in wanted:
                    out[m] = pr[key]
        if "kid" in wanted:
            k = kernel_inception_distance(feats.pool, ref_feats.pool)
            out["kid"] = k["kid"]
            extra.update(kid_std=k["kid_std"], kid_subset_size=k["kid_subset_size"])
    t_end = time.perf_counter()

    comparable, reasons = prov.paper_comparable(info["weights"], feats.n, "uint8", label_info, ref.kind)
    sample_sha, sample_desc = (feats.input_sha256, str(samples)) if Path(samples).is_dir() else _describe(samples)
    provenance = {
        "weights": info["weights"], "extractor": info["extractor"], "resize": info["resize"],
        "sfid_layer": info["sfid_layer"], "fid_method": fid_method, "is_mode": is_mode if "is" in wanted else None,
        "samples": {"path": str(samples), "sha256": sample_sha, "n": feats.n, "image_size": list(feats.image_size),
                    "dtype": "uint8", **label_info, "selection": feats.selection},
        "reference": {**ref.describe(), "metadata": ref.metadata},
        "pr_k": 3 if ("prec" in wanted or "recall" in wanted) else None,
        "not_comparable_because": reasons, **extra,
    }
    timings = {"features_s": round(t_feat - t0, 3), "metrics_s": round(t_end - t_feat, 3)}
    return EvalResult({m: out.get(m) for m in wanted}, provenance, comparable, warnings, timings)


def _describe(samples) -> tuple[str | None, str]:
    from harness.metrics.features import describe_source
    from harness.metrics.weights import sha256_file

    if Path(samples).is_file():
        return sha256_file(samples), f"npz:{samples}"
    return describe_source(samples)

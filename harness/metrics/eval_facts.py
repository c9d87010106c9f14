"""The protocol facts an evaluation knows, gathered for the known-mistake guard (``guards.run_guards``).

From the evaluation itself: N, the labels, the reference's kind and preprocessing, the image size and
the feature numerics. From the sampling run beside the samples, where there is one (``sample_record.json``
next to the npz or in the sampling folder, and the folder's ``spec.json``): the sampling parameters and
which of them the user overrode, the seed scheme, the uint8 rule and the sampling numerics. A fact
nobody recorded is left out, so its check is skipped (or, for the uint8 rule, named as unknown).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from harness.metrics.provenance import PAPER_CLASSES

# Features are extracted in fp32 with TF32 forced off (inception.py / dinov2.py: devices.tf32(False)).
FEATURE_NUMERICS = {"dtype": "fp32", "tf32": False}


def _read_json(path: Path) -> dict | None:
    from harness.core.errors import UserError
    from harness.core.io import read_json

    try:
        data = read_json(path)
    except (OSError, UserError):
        return None
    return data if isinstance(data, dict) else None


def sampling_run_files(samples) -> tuple[dict | None, dict | None]:
    """``(sample_record, folder spec.json payload)`` of the run that made ``samples`` (a path); Nones when absent."""
    if not isinstance(samples, (str, Path)):
        return None, None
    p = Path(samples)
    folders = [p] if p.is_dir() else [p.parent]
    record = spec = None
    for folder in folders:
        record = record or _read_json(folder / "sample_record.json")
        spec = spec or _read_json(folder / "spec.json")
    return record, spec


def _get(d: Any, *path: str) -> Any:
    for k in path:
        if not isinstance(d, dict) or k not in d:
            return None
        d = d[k]
    return d


def build_facts(
    *,
    n: int,
    labels: np.ndarray | None,
    reference: dict,
    image_size,
    record: dict | None = None,
    folder_spec: dict | None = None,
    metric: str = "gfid",
) -> dict[str, Any]:
    """Keys as ``guards.run_guards`` reads them. ``reference``: {kind, split, preprocessing, path}."""
    facts: dict[str, Any] = {
        "metric": metric,
        "reference": reference,
        "n": int(n),
        "dtype": "uint8",
        "feature_numerics": dict(FEATURE_NUMERICS),
    }
    protocol = _get(record, "spec", "protocol") or _get(folder_spec, "spec", "protocol") or {}
    facts["num_classes"] = int(protocol.get("num_classes") or PAPER_CLASSES)
    facts["labels"] = None if labels is None else np.asarray(labels)
    if record is None and folder_spec is None:
        facts["uint8"] = None  # an npz from elsewhere: the float-to-uint8 rule is unknown
        return facts
    model = _get(record, "model", "name") or _get(folder_spec, "spec", "model", "name")
    if model:
        facts["model"] = str(model)
    scheme = _get(record, "seeds", "seed_scheme") or protocol.get("seed_scheme")
    if scheme:
        facts["seed_scheme"] = scheme
        facts["legacy_world_size"] = protocol.get("legacy_world_size")
        facts["legacy_batch_size"] = protocol.get("legacy_batch_size")
    facts["uint8"] = _get(record, "model", "quantization") or _get(folder_spec, "quantization")
    sampling = _get(record, "model", "sampling") or _get(folder_spec, "sampling")
    if isinstance(sampling, dict):
        facts["sampling"] = sampling
        published = _get(record, "model", "published_sampling")
        if isinstance(published, dict):  # a sampler that records its plugin's preset
            facts["published_sampling"] = published
        overrides = _get(record, "spec", "model", "sampling") or _get(folder_spec, "spec", "model", "sampling")
        facts["sampling_overrides"] = dict(overrides or {})
    numerics = _get(folder_spec, "sampling_identity", "numerics")
    if isinstance(numerics, dict):
        facts["sampling_numerics"] = numerics
    else:
        facts["sampling_numerics"] = None  # the run did not say: named as unknown
    if protocol.get("image_size") and model:
        facts["sample_size"] = int(protocol["image_size"])
        facts["eval_size"] = int(image_size[0]) if image_size else None
    resizes = _get(record, "samples", "resizes")
    if resizes and model:
        facts["resizes"] = list(resizes)
    return facts


def printable(facts: dict[str, Any]) -> dict[str, Any]:
    """The facts as the record stores them and the protocol block prints them (labels summarised)."""
    out = {k: v for k, v in facts.items() if k not in ("labels", "legacy_world_size", "legacy_batch_size")}
    labels = facts.get("labels")
    if labels is not None:
        counts = np.bincount(np.asarray(labels, np.int64).clip(0), minlength=facts.get("num_classes", 0))
        out["labels"] = f"{int(counts.min())}-{int(counts.max())}/class over {len(counts)}"
    elif "num_classes" in facts:
        out["labels"] = "none"
    ref = facts.get("reference") or {}
    out["reference"] = ref.get("kind")
    return out

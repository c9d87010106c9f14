"""When is a number comparable with a paper? Label balance, class order and the paper_comparable rule.

paper_comparable is true only when all of these hold (the ADM evaluator's protocol,
openai/guided-diffusion ``evaluations/README.md``; docs/DESIGN.md, Metrics):
official Inception weights (sha256 6726825d...), exactly 50,000 uint8 samples, balanced labels
(50 per class, 1000 classes), and the ADM ``VIRTUAL_imagenet256_labeled`` reference batch.
"""

from __future__ import annotations

import numpy as np

PAPER_N = 50_000
PAPER_CLASSES = 1000
SORTED_RUN_SHARE = 0.5  # more than half of neighbouring labels equal = long class runs


def label_summary(labels: np.ndarray | None) -> dict:
    if labels is None:
        return {
            "labels": False,
            "balanced": None,
            "num_classes": None,
            "per_class_min": None,
            "per_class_max": None,
            "class_sorted": None,
        }
    labels = np.asarray(labels)
    _, counts = np.unique(labels, return_counts=True)
    return {
        "labels": True,
        "balanced": bool(counts.min() == counts.max()),
        "num_classes": int(len(counts)),
        "per_class_min": int(counts.min()),
        "per_class_max": int(counts.max()),
        "class_sorted": is_class_sorted(labels),
    }


def is_class_sorted(labels: np.ndarray) -> bool:
    """True when labels come in long runs (sorted or grouped), which collapses ADM's in-order IS chunks."""
    labels = np.asarray(labels)
    if labels.size < 3 or np.unique(labels).size < 2:
        return False
    same = float(np.mean(labels[1:] == labels[:-1]))
    # sorted with repeats (runs of one class), or mostly runs; a sorted file of distinct labels is harmless
    return bool(same > SORTED_RUN_SHARE or (same > 0 and np.all(np.diff(labels) >= 0)))


def paper_comparable(
    weights: dict, n: int, image_dtype: str, labels: dict, reference_kind: str
) -> tuple[bool, list[str]]:
    """``(flag, reasons it is not)``."""
    reasons = []
    if not weights.get("official"):
        reasons.append(
            f"Inception weights are {weights.get('kind')} (sha256 {str(weights.get('sha256'))[:8]}...), "
            "not the official 6726825d file"
        )
    if n != PAPER_N:
        reasons.append(f"{n} samples, not {PAPER_N}")
    if image_dtype != "uint8":
        reasons.append(f"samples are {image_dtype}, not uint8")
    if not labels.get("labels"):
        reasons.append("no labels in the samples file: class balance unknown")
    elif not (labels["balanced"] and labels["num_classes"] == PAPER_CLASSES):
        reasons.append(
            f"labels not balanced over {PAPER_CLASSES} classes ({labels['num_classes']} classes, "
            f"{labels['per_class_min']}-{labels['per_class_max']} per class)"
        )
    if reference_kind != "adm-virtual-imagenet256":
        reasons.append(f"reference is {reference_kind}, not ADM VIRTUAL_imagenet256_labeled.npz")
    return not reasons, reasons

"""Inception Score from unbiased logits (``pool3 @ W``, 1008 classes), in two named conventions.

Own code here only for what the ADM evaluator does and torch-fidelity does not: in-order chunks.
- "adm" (the papers' number): consecutive chunks of ``split_size`` (5000) in file order, unshuffled,
  last chunk possibly partial; reports the mean only. Class-sorted files collapse it (62 vs 298).
  Each chunk's score is torch-fidelity's ``isc_features_to_metric(chunk, splits=1, shuffle=False)``.
- "torch-fidelity": exactly ``isc_features_to_metric(logits, splits, shuffle=True, rng_seed)``:
  ``splits`` (10) equal splits after a ``RandomState(2020)`` permutation; mean and std (ddof 0).
"""

from __future__ import annotations

import numpy as np

from harness.core.errors import UserError

MODES = ("adm", "torch-fidelity")


class ISError(UserError, ValueError):
    """Logits or IS options that cannot give a score."""


def _check_logits(logits):
    import torch

    x = torch.as_tensor(np.asarray(logits))
    if x.ndim != 2:
        raise ISError(f"logits: expected [N, C], got shape {list(x.shape)}")
    if x.shape[0] < 1 or x.shape[1] < 2:
        raise ISError(f"logits: need N >= 1 samples and C >= 2 classes, got {list(x.shape)}")
    if not torch.isfinite(x).all():
        raise ISError("logits contain NaN or inf")
    return x.double()


def inception_score(logits, mode: str = "adm", split_size: int = 5000, splits: int = 10, seed: int = 2020) -> dict:
    """``{"is": mean, "is_std": std or None, "is_mode": mode, "is_splits": n}``."""
    from torch_fidelity.metric_isc import KEY_METRIC_ISC_MEAN, KEY_METRIC_ISC_STD, isc_features_to_metric

    if mode not in MODES:
        raise ISError(f"unknown IS mode {mode!r} (known: {', '.join(MODES)})")
    x = _check_logits(logits)
    n = x.shape[0]
    if mode == "adm":
        if split_size < 1:
            raise ISError(f"IS split_size must be >= 1, got {split_size}")
        scores = [
            isc_features_to_metric(x[i : i + split_size], splits=1, shuffle=False)[KEY_METRIC_ISC_MEAN]
            for i in range(0, n, split_size)
        ]
        return {"is": float(np.mean(scores)), "is_std": None, "is_mode": "adm", "is_splits": len(scores)}
    if not 1 <= splits <= n:
        raise ISError(f"IS splits must be in [1, N={n}], got {splits}")
    r = isc_features_to_metric(x, splits=splits, shuffle=True, rng_seed=seed)
    return {
        "is": r[KEY_METRIC_ISC_MEAN],
        "is_std": r[KEY_METRIC_ISC_STD],
        "is_mode": "torch-fidelity",
        "is_splits": splits,
    }

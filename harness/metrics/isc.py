"""Inception Score from unbiased logits (``pool3 @ W``, 1008 classes), in two named conventions.

- "adm" (the papers' number): consecutive chunks of ``split_size`` (5000) in file order, unshuffled,
  last chunk possibly partial; reports the mean only. Class-sorted files collapse it (62 vs 298).
- "torch-fidelity": ``splits`` (10) equal splits after a ``RandomState(seed=2020)`` permutation;
  mean and std (ddof 0), identical to ``torch_fidelity.metric_isc.isc_features_to_metric``.
Per chunk: ``exp(mean_i KL(p_i || mean p))`` in float64 with log-softmax for log p.
"""
from __future__ import annotations

import numpy as np
import torch

MODES = ("adm", "torch-fidelity")


def _check_logits(logits) -> torch.Tensor:
    x = torch.as_tensor(np.asarray(logits))
    if x.ndim != 2:
        raise ValueError(f"logits: expected [N, C], got shape {list(x.shape)}")
    if x.shape[0] < 1 or x.shape[1] < 2:
        raise ValueError(f"logits: need N >= 1 samples and C >= 2 classes, got {list(x.shape)}")
    if not torch.isfinite(x).all():
        raise ValueError("logits contain NaN or inf")
    return x.double()


def _chunk_score(logits: torch.Tensor) -> float:
    log_p = logits.log_softmax(dim=1)
    p = log_p.exp()
    log_q = p.mean(dim=0, keepdim=True).log()
    return float((p * (log_p - log_q)).sum(dim=1).mean().exp())


def inception_score(logits, mode: str = "adm", split_size: int = 5000, splits: int = 10, seed: int = 2020) -> dict:
    """``{"is": mean, "is_std": std or None, "is_mode": mode, "is_splits": n}``."""
    x = _check_logits(logits)
    n = x.shape[0]
    if mode == "adm":
        if split_size < 1:
            raise ValueError(f"split_size must be >= 1, got {split_size}")
        scores = [_chunk_score(x[i : i + split_size]) for i in range(0, n, split_size)]
        return {"is": float(np.mean(scores)), "is_std": None, "is_mode": "adm", "is_splits": len(scores)}
    if mode == "torch-fidelity":
        if not 1 <= splits <= n:
            raise ValueError(f"splits must be in [1, N={n}], got {splits}")
        x = x[torch.as_tensor(np.random.RandomState(seed).permutation(n))]
        scores = [_chunk_score(x[i * n // splits : (i + 1) * n // splits]) for i in range(splits)]
        return {"is": float(np.mean(scores)), "is_std": float(np.std(scores)), "is_mode": "torch-fidelity",
                "is_splits": splits}
    raise ValueError(f"unknown IS mode {mode!r} (known: {', '.join(MODES)})")

"""Kernel Inception Distance: unbiased MMD² with the cubic polynomial kernel ``(x·y/d + 1)^3``.

Averaged over ``subsets`` random subsets of ``subset_size`` drawn without replacement by
``np.random.RandomState(seed)`` (first from the samples, then from the reference, as torch-fidelity
does, so equal seeds give equal numbers). ``subset_size`` is capped at the smaller set size.
"""
from __future__ import annotations

import numpy as np

from harness.metrics.fid import check_features


def _poly(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a @ b.T / a.shape[1] + 1.0) ** 3


def _mmd2_unbiased(x: np.ndarray, y: np.ndarray) -> float:
    m = x.shape[0]
    kxx, kyy, kxy = _poly(x, x), _poly(y, y), _poly(x, y)
    within = (kxx.sum() - np.trace(kxx) + kyy.sum() - np.trace(kyy)) / (m * (m - 1))
    return float(within - 2.0 * kxy.sum() / (m * m))


def kernel_inception_distance(sample_features, ref_features, subsets: int = 100, subset_size: int = 1000,
                              seed: int = 2020) -> dict:
    """``{"kid": mean, "kid_std": std (ddof 0), "kid_subset_size": m}``."""
    fs = check_features(sample_features, "sample features").astype(np.float64)
    fr = check_features(ref_features, "reference features").astype(np.float64)
    if fs.shape[1] != fr.shape[1]:
        raise ValueError(f"feature dimensions differ: samples {fs.shape[1]}, reference {fr.shape[1]}")
    m = min(subset_size, fs.shape[0], fr.shape[0])
    rng = np.random.RandomState(seed)
    mmds = np.empty(subsets)
    for i in range(subsets):
        x = fs[rng.choice(fs.shape[0], m, replace=False)]
        y = fr[rng.choice(fr.shape[0], m, replace=False)]
        mmds[i] = _mmd2_unbiased(x, y)
    return {"kid": float(mmds.mean()), "kid_std": float(mmds.std()), "kid_subset_size": int(m)}

"""FID-infinity (Chong and Forsyth 2020, "Effectively Unbiased FID and Inception Score and where to find them").

FID computed from N samples is biased upward by roughly c/N. Compute FID_N on random subsets of
``num_points`` sizes, fit ``FID_N = fid_inf + slope / N`` by least squares, and report the intercept
(1/N -> 0). The reference side stays fixed (its stored mu/sigma, as in the ADM evaluator). The fit's
points, the seed and the sizes go into the result so a record shows how the number was made.
Sizes follow dgm-eval: ``linspace(min(5000, max(n // 10, 2)), n, 15)``; subsets are drawn without
replacement from a seeded generator (Chong and Forsyth also use 15 points, 5k..50k).
"""

from __future__ import annotations

import numpy as np

from harness.metrics.fid import check_features, feature_statistics, frechet_distance

DEFAULT_POINTS = 15


def default_sizes(n: int, num_points: int = DEFAULT_POINTS, min_size: int | None = None) -> np.ndarray:
    lo = min(5000, max(n // 10, 2)) if min_size is None else int(min_size)
    if lo < 2 or lo > n:
        raise ValueError(f"smallest subset size {lo} must lie in [2, {n}]")
    return np.unique(np.linspace(lo, n, num_points).astype(np.int64))


def extrapolate(sizes, values) -> dict:
    """Least-squares line ``value = intercept + slope / N``; ``intercept`` is the value at 1/N = 0."""
    x = 1.0 / np.asarray(sizes, np.float64)
    y = np.asarray(values, np.float64)
    if x.shape != y.shape or x.size < 2 or np.unique(x).size < 2:
        raise ValueError("need at least two distinct subset sizes to fit a line in 1/N")
    a = np.stack([np.ones_like(x), x], axis=1)
    (intercept, slope), *_ = np.linalg.lstsq(a, y, rcond=None)
    resid = y - (intercept + slope * x)
    ss_tot = float(np.sum((y - y.mean()) ** 2))
    r2 = 1.0 - float(np.sum(resid**2)) / ss_tot if ss_tot > 0 else 1.0
    return {"intercept": float(intercept), "slope": float(slope), "r2": r2}


def fid_infinity(
    sample_features, ref_mu, ref_sigma, sizes=None, num_points: int = DEFAULT_POINTS, seed: int = 0, method: str = "eig"
) -> dict:
    """``{"fid_inf", "fid_n" (all samples), "fid_inf_fit": {...points...}}`` against fixed reference statistics."""
    f = check_features(sample_features, "sample features")
    n = f.shape[0]
    sizes = default_sizes(n, num_points) if sizes is None else np.asarray(sizes, np.int64)
    if sizes.min() < 2 or sizes.max() > n:
        raise ValueError(f"subset sizes must lie in [2, {n}], got {sizes.min()}..{sizes.max()}")
    rng = np.random.default_rng(seed)
    values = []
    for m in sizes:
        idx = rng.choice(n, size=int(m), replace=False)
        mu, sigma = feature_statistics(f[idx], f"subset of {m}")
        values.append(frechet_distance(mu, sigma, ref_mu, ref_sigma, method=method))
    fit = extrapolate(sizes, values)
    mu, sigma = feature_statistics(f, "sample features")
    return {
        "fid_inf": fit["intercept"],
        "fid_n": frechet_distance(mu, sigma, ref_mu, ref_sigma, method=method),
        "fid_inf_fit": {
            "method": "chong-forsyth-linear-1/N",
            "seed": seed,
            "sizes": [int(s) for s in sizes],
            "fids": [float(v) for v in values],
            **fit,
        },
    }

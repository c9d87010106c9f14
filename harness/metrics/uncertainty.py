"""Uncertainty of a headline number: the spread over disjoint subsets or over seeds, with the method named.

- ``subset_spread``: split the samples into k disjoint subsets (seeded permutation; the order of a
  class-interleaved file is kept inside each subset), compute the metric on each. Each value is a
  metric at N/k samples, so the between-subset std describes size N/k; ``std_full_n`` scales it by
  1/sqrt(k), which assumes the variance falls as 1/N (true for means, approximately for FID). FID
  at N/k is also biased upward: the subset values are for the spread, never for the headline.
- ``seed_spread``: values of the same metric from runs with different sampling seeds (EDM2 style).
Both return ``{"method", "values", "mean", "std", ...}`` with ``std`` = sample std (ddof=1).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping

import numpy as np

from harness.core.stats import mean_sd


def _summary(values: list[float]) -> dict:
    v = [float(x) for x in values]
    s = mean_sd(v)
    return {"values": v, "mean": s.mean, "std": s.sd, "min": min(v), "max": max(v)}


def subset_indices(n: int, k: int, seed: int | None = 0) -> list[np.ndarray]:
    """k disjoint, near-equal index sets covering [0, n); seed None keeps consecutive blocks."""
    if k < 2 or n < 2 * k:
        raise ValueError(f"need k >= 2 subsets of at least 2 samples each (n={n}, k={k})")
    order = np.arange(n) if seed is None else np.random.default_rng(seed).permutation(n)
    return [np.sort(part) for part in np.array_split(order, k)]


def subset_spread(
    metric: Callable[[np.ndarray], float], features: np.ndarray, k: int = 10, seed: int | None = 0
) -> dict:
    """Spread of ``metric(features[subset])`` over k disjoint subsets."""
    parts = subset_indices(len(features), k, seed)
    values = [float(metric(features[idx])) for idx in parts]
    out = _summary(values)
    out.update(
        method=f"disjoint-subsets(k={k},seed={seed})",
        k=k,
        subset_size=int(min(len(p) for p in parts)),
        std_full_n=out["std"] / math.sqrt(k),
    )
    return out


def seed_spread(values_by_seed: Mapping[int, float]) -> dict:
    """Spread of one metric over sampling seeds (``{seed: value}``, at least two)."""
    if len(values_by_seed) < 2:
        raise ValueError("need values from at least two seeds")
    seeds = sorted(values_by_seed)
    out = _summary([values_by_seed[s] for s in seeds])
    out.update(method=f"seeds(n={len(seeds)})", seeds=list(seeds), std_full_n=out["std"])
    return out


def format_pm(value: float, spread: dict | None, digits: int = 2) -> str:
    """``"2.31 ± 0.04"`` (the full-N std) or the bare value when no spread was measured."""
    if spread is None:
        return f"{value:.{digits}f}"
    return f"{value:.{digits}f} ± {spread['std_full_n']:.{digits}f}"


def differs(a: float, spread_a: dict | None, b: float, spread_b: dict | None, z: float = 2.0) -> bool | None:
    """True when |a - b| exceeds z combined standard deviations; None when either spread is missing."""
    if spread_a is None or spread_b is None:
        return None
    return abs(a - b) > z * math.hypot(spread_a["std_full_n"], spread_b["std_full_n"])


def fid_subset_spread(
    pool: np.ndarray, mu_ref: np.ndarray, sigma_ref: np.ndarray, k: int = 10, seed: int | None = 0, method: str = "eig"
) -> dict:
    """FID's spread over k disjoint subsets of the sample features (the reference's statistics fixed).

    ``std`` is the full-N estimate (``std_full_n``: subset std / sqrt(k)), the number the ± and the sigma
    gates use; ``subset_std`` is the measured spread of FID at N/k samples."""
    from harness.metrics.fid import feature_statistics, frechet_distance

    def fid(rows: np.ndarray) -> float:
        mu, sigma = feature_statistics(rows, "subset pool3 features")
        return frechet_distance(mu, sigma, mu_ref, sigma_ref, method=method)

    out = subset_spread(fid, pool, k=k, seed=seed)
    return as_record(out)


def as_record(spread: dict) -> dict:
    """A spread as the record's ``uncertainty.<metric>`` stores it: ``std`` = the full-N standard deviation."""
    return {
        "std": spread["std_full_n"],
        "method": spread["method"],
        "subset_std": spread["std"],
        **{k: spread[k] for k in ("values", "mean", "k", "subset_size") if k in spread},
        "scaling": "std over subsets / sqrt(k): assumes variance falling as 1/N",
    }

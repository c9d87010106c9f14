"""Density and coverage (Naeem et al. 2020, "Reliable Fidelity and Diversity Metrics"), k = 5.

Both use only the *real* (reference) manifold: the ball around each real point whose radius is the
distance to its k-th nearest other real point.
- density  = (1 / kM) * sum over the M fakes of the number of real balls containing it
  (expected value 1 when fakes and reals come from the same distribution; not capped at 1);
- coverage = share of real points whose ball contains at least one fake
  (expected 1 - prod_{i<k} (N-1-i)/(M+N-1-i) for identical distributions, about 1 - 2^-k at M = N).
Comparisons are strict (``d < r``) as in clovaai/generative-evaluation-prdc. Distances are float64
and computed block by block so 50k x 10k never materialises.
"""

from __future__ import annotations

import numpy as np
import torch

from harness.metrics.fid import check_features

DEFAULT_K = 5


def _sqdist(a: torch.Tensor, b: torch.Tensor, b_sq: torch.Tensor) -> torch.Tensor:
    return ((a * a).sum(1, keepdim=True) - 2.0 * (a @ b.T) + b_sq[None, :]).clamp_min_(0.0)


def _row_blocks(n_rows: int, n_cols: int, block_elems: int):
    step = max(1, block_elems // max(n_cols, 1))
    for s in range(0, n_rows, step):
        yield s, min(n_rows, s + step)


def knn_radii_sq(x: torch.Tensor, k: int, block_elems: int = 1 << 25) -> torch.Tensor:
    """Squared distance from each row of ``x`` to its k-th nearest other row."""
    n = x.shape[0]
    if n <= k:
        raise ValueError(f"need more than k={k} reference points, got {n}")
    x_sq = (x * x).sum(1)
    out = torch.empty(n, dtype=x.dtype, device=x.device)
    for s, e in _row_blocks(n, n, block_elems):
        d = _sqdist(x[s:e], x, x_sq)
        d[torch.arange(e - s, device=x.device), torch.arange(s, e, device=x.device)] = 0.0  # exact self distance
        out[s:e] = d.kthvalue(k + 1, dim=1).values  # index 0 is the point itself
    return out


def density_coverage(
    sample_features, ref_features, k: int = DEFAULT_K, device: str | torch.device = "cpu", block_elems: int = 1 << 25
) -> dict:
    """``{"density", "coverage", "dc_k"}`` of samples (fakes) against reference features (reals)."""
    fake = check_features(sample_features, "sample features")
    real = check_features(ref_features, "reference features")
    if fake.shape[1] != real.shape[1]:
        raise ValueError(f"feature dimensions differ: samples {fake.shape[1]}, reference {real.shape[1]}")
    f = torch.as_tensor(np.asarray(fake, np.float64), device=device)
    r = torch.as_tensor(np.asarray(real, np.float64), device=device)
    radii = knn_radii_sq(r, k, block_elems)
    r_sq = (r * r).sum(1)
    inside_count = 0  # sum over fakes of the number of real balls containing them
    nearest_fake = torch.full((r.shape[0],), float("inf"), dtype=r.dtype, device=r.device)
    for s, e in _row_blocks(f.shape[0], r.shape[0], block_elems):
        d = _sqdist(f[s:e], r, r_sq)  # [fakes, reals]
        inside_count += int((d < radii[None, :]).sum())
        nearest_fake = torch.minimum(nearest_fake, d.min(dim=0).values)
    density = inside_count / (k * f.shape[0])
    coverage = float((nearest_fake < radii).double().mean())
    return {"density": float(density), "coverage": coverage, "dc_k": k}


def expected_coverage_same_distribution(n_real: int, n_fake: int, k: int = DEFAULT_K) -> float:
    """Naeem et al. closed form: E[coverage] when fakes and reals are i.i.d. from one distribution."""
    p_uncovered = 1.0
    for i in range(k):
        p_uncovered *= (n_real - 1 - i) / (n_fake + n_real - 1 - i)
    return 1.0 - p_uncovered

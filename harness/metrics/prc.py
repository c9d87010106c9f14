"""Improved precision and recall (Kynkäänniemi et al. 2019), k = 3, on pool3 features.

Own code, not torch-fidelity's ``prc_features_to_metric``: the ADM evaluator computes in float64 against
the reference batch, while the library works in float32 (tests check both agree on the counts).

Each set's manifold is the union of balls around its points, radius = distance to the k-th nearest
neighbour other than itself. precision = share of samples inside the reference manifold; recall =
share of reference images (ADM: the reference batch's 10k ``arr_0``) inside the sample manifold.
Euclidean distances in float64, computed block by block (``‖u‖² - 2uv + ‖v‖²``, clipped at 0) so
50k x 10k never materialises: at most ``block_elems`` distances live at once.
"""
from __future__ import annotations

import numpy as np
import torch

from harness.metrics.fid import check_features


def _blocks(n_rows: int, n_cols: int, block_elems: int):
    rows = max(1, block_elems // max(n_cols, 1))
    for start in range(0, n_rows, rows):
        yield start, min(n_rows, start + rows)


def _sqdist(a: torch.Tensor, b: torch.Tensor, b_sq: torch.Tensor) -> torch.Tensor:
    d = (a * a).sum(1, keepdim=True) - 2.0 * (a @ b.T) + b_sq[None, :]
    return d.clamp_min_(0.0)


def manifold_radii(x: torch.Tensor, k: int = 3, block_elems: int = 1 << 25) -> torch.Tensor:
    """Squared distance of each point to its k-th nearest other point (the point itself is index 0)."""
    n = x.shape[0]
    if n <= k:
        raise ValueError(f"need more than k={k} points to build a manifold, got {n}")
    x_sq = (x * x).sum(1)
    out = torch.empty(n, dtype=x.dtype, device=x.device)
    for s, e in _blocks(n, n, block_elems):
        d = _sqdist(x[s:e], x, x_sq)
        d[torch.arange(e - s, device=x.device), torch.arange(s, e, device=x.device)] = 0.0  # exact self distance
        out[s:e] = d.kthvalue(k + 1, dim=1).values
    return out


def coverage_of(points: torch.Tensor, centers: torch.Tensor, radii: torch.Tensor, block_elems: int = 1 << 25) -> float:
    """Share of ``points`` within ``radii`` of at least one of ``centers``."""
    c_sq = (centers * centers).sum(1)
    inside = 0
    for s, e in _blocks(points.shape[0], centers.shape[0], block_elems):
        d = _sqdist(points[s:e], centers, c_sq)
        inside += int((d <= radii[None, :]).any(dim=1).sum())
    return inside / points.shape[0]


def precision_recall(sample_features, ref_features, k: int = 3, device: str | torch.device = "cpu",
                     block_elems: int = 1 << 25) -> dict:
    """``{"precision", "recall"}`` of samples against reference images (both [N, D] features)."""
    fs = check_features(sample_features, "sample features")
    fr = check_features(ref_features, "reference features")
    if fs.shape[1] != fr.shape[1]:
        raise ValueError(f"feature dimensions differ: samples {fs.shape[1]}, reference {fr.shape[1]}")
    s = torch.as_tensor(np.asarray(fs, np.float64), device=device)
    r = torch.as_tensor(np.asarray(fr, np.float64), device=device)
    r_radii = manifold_radii(r, k, block_elems)
    s_radii = manifold_radii(s, k, block_elems)
    return {"precision": coverage_of(s, r, r_radii, block_elems), "recall": coverage_of(r, s, s_radii, block_elems)}

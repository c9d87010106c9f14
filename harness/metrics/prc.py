"""Improved precision and recall (Kynkäänniemi et al. 2019), k = 3, on pool3 features.

Own code, not torch-fidelity's ``prc_features_to_metric``: the ADM evaluator computes in float64 against
the reference batch, while the library works in float32 (tests check both agree on the counts).

Each set's manifold is the union of balls around its points, radius = distance to the k-th nearest
neighbour other than itself. precision = share of samples inside the reference manifold; recall =
share of reference images (ADM: the reference batch's 10k ``arr_0``) inside the sample manifold.
Euclidean distances in float64, computed tile by tile (``‖u‖² - 2uv + ‖v‖²``, clipped at 0) so
50k x 50k never materialises: at most ``block_elems`` distances live at once, and features are
widened to float64 one tile at a time (the k+1 smallest per column tile are merged per row).
"""

from __future__ import annotations

import numpy as np
import torch

from harness.metrics.fid import check_features


def _tiles(n_rows: int, n_cols: int, dim: int, block_elems: int):
    """Row and column ranges of tiles of at most ~``block_elems`` distances, whose float64 row and
    column blocks (rows x dim, cols x dim) also stay within ``block_elems`` elements."""
    side = max(1, int(block_elems**0.5))
    cols = max(1, min(n_cols, max(side, block_elems // max(n_rows, 1)), block_elems // max(dim, 1)))
    rows = max(1, min(block_elems // cols, block_elems // max(dim, 1)))
    for r0 in range(0, n_rows, rows):
        yield (r0, min(n_rows, r0 + rows)), [(c0, min(n_cols, c0 + cols)) for c0 in range(0, n_cols, cols)]


def _f64(x, s: int, e: int, device) -> torch.Tensor:
    """Rows s:e of a float32/float64 numpy array as a float64 tensor (only a block is ever widened)."""
    return torch.as_tensor(np.asarray(x[s:e], np.float64), device=device)


def _sqdist(a: torch.Tensor, b: torch.Tensor, b_sq: torch.Tensor) -> torch.Tensor:
    """``‖a‖² - 2ab + ‖b‖²`` clipped at 0, in place (one tile-sized buffer, same rounding as written out)."""
    d = a @ b.T
    return d.mul_(-2.0).add_((a * a).sum(1, keepdim=True)).add_(b_sq[None, :]).clamp_min_(0.0)


def _sq_norms(x, device, block_elems: int) -> torch.Tensor:
    out = []
    rows = max(1, block_elems // max(x.shape[1], 1))
    for s in range(0, x.shape[0], rows):
        b = _f64(x, s, s + rows, device)
        out.append((b * b).sum(1))
    return torch.cat(out)


def manifold_radii(x, k: int = 3, block_elems: int = 1 << 24, device: str | torch.device = "cpu") -> torch.Tensor:
    """Squared distance of each point to its k-th nearest other point (the point itself is index 0).

    ``x``: [N, D] array (float32 is widened to float64 one tile at a time)."""
    x = x if isinstance(x, np.ndarray) else x.cpu().numpy()
    n = x.shape[0]
    if n <= k:
        raise ValueError(f"need more than k={k} points to build a manifold, got {n}")
    x_sq = _sq_norms(x, device, block_elems)
    out = torch.empty(n, dtype=torch.float64, device=device)
    for (s, e), col_ranges in _tiles(n, n, x.shape[1], block_elems):
        a = _f64(x, s, e, device)
        best = []
        for c0, c1 in col_ranges:
            d = _sqdist(a, _f64(x, c0, c1, device), x_sq[c0:c1])
            lo, hi = max(s, c0), min(e, c1)
            if lo < hi:  # exact self distance
                idx = torch.arange(lo, hi, device=device)
                d[idx - s, idx - c0] = 0.0
            best.append(d.topk(min(k + 1, c1 - c0), dim=1, largest=False).values)
            del d  # before the next tile is allocated: one tile alive at a time
        out[s:e] = torch.cat(best, dim=1).kthvalue(k + 1, dim=1).values
    return out


def coverage_of(
    points, centers, radii: torch.Tensor, block_elems: int = 1 << 24, device: str | torch.device = "cpu"
) -> float:
    """Share of ``points`` within ``radii`` of at least one of ``centers``."""
    c_sq = _sq_norms(centers, device, block_elems)
    inside = 0
    for (s, e), col_ranges in _tiles(points.shape[0], centers.shape[0], points.shape[1], block_elems):
        a = _f64(points, s, e, device)
        hit = torch.zeros(e - s, dtype=torch.bool, device=device)
        for c0, c1 in col_ranges:
            d = _sqdist(a, _f64(centers, c0, c1, device), c_sq[c0:c1])
            hit |= (d <= radii[None, c0:c1]).any(dim=1)
            del d
        inside += int(hit.sum())
    return inside / points.shape[0]


def precision_recall(
    sample_features,
    ref_features,
    k: int = 3,
    device: str | torch.device = "cpu",
    block_elems: int = 1 << 24,
    which: tuple[str, ...] = ("precision", "recall"),
) -> dict:
    """``{"precision", "recall"}`` of samples against reference images (both [N, D] features).

    ``which``: compute only these (precision alone skips the samples' N x N neighbour search).
    Memory: the features as given plus tiles of ``block_elems`` float64 distances; no float64 copy
    of a whole feature set is made (50k x 2048 would be 800 MB)."""
    fs = check_features(sample_features, "sample features")
    fr = check_features(ref_features, "reference features")
    if fs.shape[1] != fr.shape[1]:
        raise ValueError(f"feature dimensions differ: samples {fs.shape[1]}, reference {fr.shape[1]}")
    out = {}
    if "precision" in which:  # needs only the reference's radii (10k x 10k)
        out["precision"] = coverage_of(fs, fr, manifold_radii(fr, k, block_elems, device), block_elems, device)
    if "recall" in which:  # needs the samples' radii: the N x N neighbour search
        out["recall"] = coverage_of(fr, fs, manifold_radii(fs, k, block_elems, device), block_elems, device)
    return out

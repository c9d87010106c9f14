"""Kernel Inception Distance: torch-fidelity's own ``kid_features_to_metric`` (unbiased MMD², cubic
polynomial kernel ``(x·y/d + 1)^3``, ``subsets`` random subsets drawn by ``RandomState(seed)``).

As in torch-fidelity, a subset size larger than either set is refused rather than capped: a capped
subset makes every subset the whole set, so the std says nothing. Pick ``subset_size`` explicitly for
small sets; it is returned (and recorded) with the number.
"""

from __future__ import annotations

import numpy as np

from harness.core.errors import UserError
from harness.metrics.fid import check_features

SUBSETS = 100  # torch-fidelity defaults (torch_fidelity.defaults)
SUBSET_SIZE = 1000
SEED = 2020


class KIDSubsetError(UserError, ValueError):
    """More images per KID subset than one of the two sets holds."""


def kernel_inception_distance(
    sample_features, ref_features, subsets: int = SUBSETS, subset_size: int = SUBSET_SIZE, seed: int = SEED
) -> dict:
    """``{"kid": mean, "kid_std": std (ddof 0), "kid_subset_size": m, "kid_subsets": s}``."""
    import torch
    from torch_fidelity.metric_kid import KEY_METRIC_KID_MEAN, KEY_METRIC_KID_STD, kid_features_to_metric

    fs = check_features(sample_features, "sample features").astype(np.float64)
    fr = check_features(ref_features, "reference features").astype(np.float64)
    if fs.shape[1] != fr.shape[1]:
        raise KIDSubsetError(f"KID: feature dimensions differ: samples {fs.shape[1]}, reference {fr.shape[1]}")
    if subsets < 1 or subset_size < 2:
        raise KIDSubsetError(f"KID: need subsets >= 1 and subset size >= 2, got {subsets} and {subset_size}")
    if subset_size > min(len(fs), len(fr)):
        raise KIDSubsetError(
            f"KID subset size {subset_size} is larger than the sets (samples {len(fs)}, reference {len(fr)}): "
            f"set a smaller one explicitly (--kid-subset-size, suite key kid_subset_size)"
        )
    r = kid_features_to_metric(
        torch.from_numpy(fs),
        torch.from_numpy(fr),
        kid_subsets=subsets,
        kid_subset_size=subset_size,
        kid_kernel="poly",
        kid_kernel_poly_degree=3,
        kid_kernel_poly_gamma=None,
        kid_kernel_poly_coef0=1,
        rng_seed=seed,
        verbose=False,
    )
    return {
        "kid": r[KEY_METRIC_KID_MEAN],
        "kid_std": r[KEY_METRIC_KID_STD],
        "kid_subset_size": int(subset_size),
        "kid_subsets": int(subsets),
    }

"""FID math speed: the Fréchet distance of two 2048-d Gaussians (eigenvalue route, float64).
Correctness outside the timed call against the closed form for equal covariances, where the
distance is |mu1 - mu2|^2. Run with `make bench`."""

import numpy as np
import pytest

from harness.metrics.fid import frechet_distance

pytestmark = pytest.mark.bench

DIM = 2048


def _cov(rng):
    a = rng.standard_normal((DIM, DIM)) * 0.05
    return a @ a.T / DIM + 0.01 * np.eye(DIM)


def test_bench_frechet_distance_2048(benchmark):
    rng = np.random.default_rng(0)
    mu1, mu2, s1, s2 = rng.standard_normal(DIM), rng.standard_normal(DIM), _cov(rng), _cov(rng)
    fid = benchmark.pedantic(lambda: frechet_distance(mu1, s1, mu2, s2), rounds=5, warmup_rounds=1)
    benchmark.extra_info.update({"dim": DIM, "dtype": "float64"})
    assert np.isfinite(fid) and fid > float((mu1 - mu2) @ (mu1 - mu2))  # different covariances add a positive term
    assert frechet_distance(mu1, s1, mu2, s1) == pytest.approx(float((mu1 - mu2) @ (mu1 - mu2)), rel=1e-6)

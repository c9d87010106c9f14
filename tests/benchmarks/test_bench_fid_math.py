"""FID math speed: the Fréchet distance of two 2048-d Gaussians (eigenvalue route, float64), checked
once against scipy.linalg.sqrtm outside the timed call. Run with `make bench`."""
import numpy as np
import pytest
import scipy.linalg

from harness.metrics.fid import frechet_distance

pytestmark = pytest.mark.bench

DIM = 2048


def _stats(rng, n=3000):
    x = rng.standard_normal((n, DIM)) @ (rng.standard_normal((DIM, DIM)) * 0.05)
    return x.mean(0), np.cov(x, rowvar=False)


def test_bench_frechet_distance_2048(benchmark):
    rng = np.random.default_rng(0)
    (mu1, s1), (mu2, s2) = _stats(rng), _stats(rng)
    fid = benchmark.pedantic(lambda: frechet_distance(mu1, s1, mu2, s2), rounds=3, warmup_rounds=1)
    covmean = scipy.linalg.sqrtm(s1 @ s2).real
    ref = float((mu1 - mu2) @ (mu1 - mu2) + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))
    benchmark.extra_info.update({"dim": DIM, "dtype": "float64"})
    assert fid == pytest.approx(ref, rel=1e-6)

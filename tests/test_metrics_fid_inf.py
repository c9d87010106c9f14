"""FID-infinity: the fit is exact on exact lines, and it recovers a known Fréchet distance on Gaussians."""

import numpy as np
import pytest

from harness.metrics.fid import fid_from_features
from harness.metrics.fid_infinity import default_sizes, extrapolate, fid_infinity


def test_extrapolate_recovers_an_exact_line():
    sizes = np.array([100, 200, 400, 1000])
    fit = extrapolate(sizes, 3.5 + 250.0 / sizes)
    assert fit["intercept"] == pytest.approx(3.5, abs=1e-10)
    assert fit["slope"] == pytest.approx(250.0, rel=1e-10)
    assert fit["r2"] == pytest.approx(1.0)


def test_default_sizes_follow_dgm_eval():
    assert default_sizes(50_000).tolist() == np.linspace(5000, 50_000, 15).astype(int).tolist()
    assert default_sizes(220)[0] == 22 and default_sizes(220)[-1] == 220


def test_recovers_the_true_frechet_distance_of_gaussians():
    """Reference = exact N(0, I); samples ~ N(m, diag(s^2)). True FD = |m|^2 + sum (1 + s^2 - 2 s)."""
    rng = np.random.default_rng(0)
    d, n = 32, 8000
    m = np.full(d, 0.1)
    s = np.linspace(0.8, 1.3, d)
    true_fd = float(m @ m + np.sum(1 + s**2 - 2 * s))
    feats = (m + s * rng.normal(size=(n, d))).astype(np.float64)
    r = fid_infinity(feats, np.zeros(d), np.eye(d), sizes=np.linspace(500, n, 12).astype(int), seed=1)
    fit = r["fid_inf_fit"]
    raw_small_error = abs(fit["fids"][0] - true_fd)  # FID at N=500: the bias the fit removes
    assert raw_small_error > 0.05  # the bias is real at this size ...
    assert abs(r["fid_inf"] - true_fd) < 0.25 * raw_small_error  # ... and the extrapolation removes most of it
    assert abs(r["fid_inf"] - true_fd) < abs(r["fid_n"] - true_fd) + 0.01
    assert len(fit["sizes"]) == len(fit["fids"]) == 12 and fit["seed"] == 1
    assert fit["slope"] > 0


def test_full_size_point_is_plain_fid():
    rng = np.random.default_rng(3)
    a, b = rng.normal(size=(300, 8)), rng.normal(0.2, 1.0, size=(400, 8))
    mu, sigma = b.mean(0), np.cov(b, rowvar=False)
    r = fid_infinity(a, mu, sigma, sizes=[100, 300])
    assert r["fid_inf_fit"]["fids"][-1] == pytest.approx(fid_from_features(a, b), rel=1e-9)
    assert r["fid_n"] == pytest.approx(fid_from_features(a, b), rel=1e-9)
    with pytest.raises(ValueError):
        fid_infinity(a, mu, sigma, sizes=[100, 301])

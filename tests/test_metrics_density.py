"""Density/coverage against closed forms and the reference implementation's formula (clovaai prdc.py)."""
import numpy as np
import pytest
from scipy.spatial.distance import cdist

from harness.metrics.density_coverage import density_coverage, expected_coverage_same_distribution


def prdc_reference(real, fake, k):
    """generative-evaluation-prdc's formulas, written out with scipy distances."""
    d_rr = cdist(real, real)
    radii = np.sort(d_rr, axis=1)[:, k]  # k-th neighbour, self (0) at column 0
    d_rf = cdist(real, fake)
    density = (1.0 / k) * (d_rf < radii[:, None]).sum(axis=0).mean()
    coverage = (d_rf.min(axis=1) < radii).mean()
    return density, coverage


@pytest.mark.parametrize("seed,n_real,n_fake,dim", [(0, 200, 150, 16), (1, 120, 300, 64), (2, 60, 60, 3)])
def test_matches_reference_formula_on_random_features(seed, n_real, n_fake, dim):
    rng = np.random.default_rng(seed)
    real = rng.normal(size=(n_real, dim))
    fake = rng.normal(0.3, 1.2, size=(n_fake, dim))
    ours = density_coverage(fake, real, k=5, block_elems=1000)  # small blocks exercise the blocking
    ref_density, ref_coverage = prdc_reference(real, fake, 5)
    assert ours["density"] == pytest.approx(ref_density, abs=1e-12)
    assert ours["coverage"] == pytest.approx(ref_coverage, abs=1e-12)
    assert ours["dc_k"] == 5


def _clusters(n_clusters, rho=1.0, spacing=100.0):
    """Clusters of k+1 = 6 reals at +-rho*e1..e3 around far-apart centres: each real's 5-NN radius is 2*rho."""
    offsets = rho * np.concatenate([np.eye(3), -np.eye(3)])
    centres = spacing * np.arange(n_clusters)[:, None] * np.array([[1.0, 0.0, 0.0]])
    reals = (centres[:, None, :] + offsets[None]).reshape(-1, 3)
    return centres, reals


def test_closed_form_on_toy_clusters():
    centres, reals = _clusters(10)
    # a fake at a centre lies inside all 6 balls of its cluster: density (k+1)/k, and it covers its cluster
    r = density_coverage(centres, reals, k=5)
    assert r["density"] == pytest.approx(6 / 5)
    assert r["coverage"] == pytest.approx(1.0)
    # fakes at 4 of 10 centres plus 4 far outliers: density = 6/5 * 4/8, coverage = 4/10
    fakes = np.concatenate([centres[:4], np.full((4, 3), 1e4)])
    r = density_coverage(fakes, reals, k=5)
    assert r["density"] == pytest.approx(6 / 5 * 4 / 8)
    assert r["coverage"] == pytest.approx(4 / 10)
    # all fakes far away: both zero
    r = density_coverage(np.full((5, 3), -1e4), reals, k=5)
    assert r["density"] == 0.0 and r["coverage"] == 0.0


def test_identical_distributions_match_the_papers_expectations():
    """E[density] = 1 and E[coverage] = 1 - prod (N-1-i)/(M+N-1-i) when fakes and reals are i.i.d."""
    rng = np.random.default_rng(5)
    dens, cov = [], []
    for _ in range(4):
        real, fake = rng.normal(size=(1000, 4)), rng.normal(size=(1000, 4))
        r = density_coverage(fake, real, k=5)
        dens.append(r["density"])
        cov.append(r["coverage"])
    assert np.mean(dens) == pytest.approx(1.0, abs=0.05)
    assert np.mean(cov) == pytest.approx(expected_coverage_same_distribution(1000, 1000, 5), abs=0.01)


def test_rejects_bad_input():
    with pytest.raises(ValueError, match="dimensions differ"):
        density_coverage(np.zeros((10, 3)), np.ones((10, 4)))
    with pytest.raises(ValueError, match="more than k"):
        density_coverage(np.random.rand(10, 3), np.random.rand(5, 3))

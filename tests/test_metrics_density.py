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


@pytest.mark.slow  # ~20 s: Inception on 24 images plus 15 FIDs in 2048-d
def test_evaluate_reports_density_coverage_and_fid_inf(tmp_path):
    """evaluate_samples' new metric names equal the pure functions on the same cached pool3 features."""
    from harness.data.npz import save_samples_npz
    from harness.metrics.evaluate import EvalOptions, evaluate_samples
    from harness.metrics.features import extract_features
    from harness.metrics.fid_infinity import fid_infinity
    from harness.metrics.inception import InceptionExtractor
    from harness.metrics.refstats import build_reference_from_images, load_reference
    from harness.metrics.weights import resolve_weights

    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (12, 32, 32, 3), dtype=np.uint8)
    b = np.clip(rng.integers(0, 256, (12, 32, 32, 3)) + 30, 0, 255).astype(np.uint8)
    a_path = save_samples_npz(tmp_path / "a.npz", a)
    ex = InceptionExtractor(resolve_weights("random:0"), "cpu")
    ref = build_reference_from_images(b, tmp_path / "ref.npz", inception=ex, batch_size=12, cache=tmp_path / "c")
    res = evaluate_samples(
        a_path, ref, EvalOptions(metrics="density,coverage,fid_inf", inception=ex, batch_size=12, cache=tmp_path / "c")
    )
    fa = extract_features(a_path, ex, 12, cache=tmp_path / "c").pool
    fb = extract_features(ref, ex, 12, cache=tmp_path / "c").pool
    direct = density_coverage(fa, fb, k=5)
    assert res.metrics["density"] == direct["density"] and res.metrics["coverage"] == direct["coverage"]
    r = load_reference(ref)
    assert res.metrics["fid_inf"] == pytest.approx(fid_infinity(fa, r.mu, r.sigma)["fid_inf"], rel=1e-12)
    assert res.provenance["dc_k"] == 5 and len(res.provenance["fid_inf_fit"]["sizes"]) >= 2

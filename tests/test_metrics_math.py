"""Metric math against independent references: torch-fidelity's and clean-fid's own functions, and closed forms
written from the definitions."""

import numpy as np
import pytest
import torch
from cleanfid import fid as cleanfid_fid
from torch_fidelity.metric_fid import fid_features_to_statistics, fid_statistics_to_metric
from torch_fidelity.metric_isc import isc_features_to_metric
from torch_fidelity.metric_kid import kid_features_to_metric
from torch_fidelity.metric_prc import prc_features_to_metric

from harness.metrics.fid import feature_statistics, fid_from_features, frechet_distance
from harness.metrics.isc import inception_score
from harness.metrics.kid import kernel_inception_distance
from harness.metrics.prc import precision_recall


def _feats(n, d, seed, shift=0.0, scale=1.0):
    rng = np.random.default_rng(seed)
    mix = rng.standard_normal((d, d)) / np.sqrt(d)
    return ((rng.standard_normal((n, d)) @ mix) * scale + shift).astype(np.float32)


def _tf_fid(f1, f2):
    s1 = fid_features_to_statistics(torch.from_numpy(f1))
    s2 = fid_features_to_statistics(torch.from_numpy(f2))
    return fid_statistics_to_metric(s1, s2, verbose=False)["frechet_inception_distance"]


@pytest.mark.parametrize("n,d", [(500, 64), (40, 64), (20, 256), (200, 256), (150, 384)])  # includes N < dimension
def test_fid_matches_torch_fidelity_and_cleanfid(n, d):
    f1, f2 = _feats(n, d, 1), _feats(n + 7, d, 2, shift=0.3, scale=1.2)
    mu1, s1 = feature_statistics(f1)
    mu2, s2 = feature_statistics(f2)
    ours_eig = frechet_distance(mu1, s1, mu2, s2, method="eig")
    ours_sqrtm = frechet_distance(mu1, s1, mu2, s2, method="sqrtm")
    ref_tf = _tf_fid(f1, f2)
    ref_cf = cleanfid_fid.frechet_distance(mu1, s1, mu2, s2)
    assert ref_tf > 1.0
    assert ours_eig == pytest.approx(ref_tf, rel=1e-6)
    assert ours_eig == pytest.approx(ref_cf, rel=1e-6)
    assert ours_sqrtm == pytest.approx(ref_cf, rel=1e-9)
    assert ours_eig == pytest.approx(ours_sqrtm, rel=1e-6)


@pytest.mark.slow  # ~35 s: clean-fid's scipy sqrtm on 2048-d
def test_fid_2048d_eig_equals_sqrtm_and_cleanfid():
    # one full-size case, N < D (singular covariances), the hard case for the fast path
    f1, f2 = _feats(600, 2048, 3), _feats(600, 2048, 4, shift=0.05)
    mu1, s1 = feature_statistics(f1)
    mu2, s2 = feature_statistics(f2)
    eig = frechet_distance(mu1, s1, mu2, s2, method="eig")
    assert eig == pytest.approx(cleanfid_fid.frechet_distance(mu1, s1, mu2, s2), rel=1e-6)
    assert eig == pytest.approx(_tf_fid(f1, f2), rel=1e-6)


def test_fid_closed_form_and_identity():
    # diagonal Gaussians: FID = |dmu|^2 + sum (sqrt(a) - sqrt(b))^2
    a, b = np.array([1.0, 4.0, 9.0]), np.array([4.0, 1.0, 9.0])
    mu1, mu2 = np.zeros(3), np.array([1.0, 2.0, 0.0])
    expected = 5.0 + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2)
    for m in ("eig", "sqrtm"):
        assert frechet_distance(mu1, np.diag(a), mu2, np.diag(b), method=m) == pytest.approx(expected, rel=1e-12)
    f = _feats(300, 16, 5)
    assert abs(fid_from_features(f, f)) < 1e-9


def test_statistics_are_float64_numpy_semantics():
    f = _feats(100, 8, 6)
    mu, sigma = feature_statistics(f)
    assert mu.dtype == np.float64 and sigma.dtype == np.float64
    np.testing.assert_allclose(sigma, np.cov(f.astype(np.float64), rowvar=False), rtol=1e-12)
    np.testing.assert_allclose(mu, f.astype(np.float64).mean(0), rtol=1e-12)


def _logits(n, c, seed, sharp=4.0):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((n, c)) * sharp).astype(np.float32)


def test_is_torch_fidelity_mode_equals_isc_features_to_metric():
    x = _logits(1000, 100, 7)
    ours = inception_score(x, mode="torch-fidelity")
    ref = isc_features_to_metric(torch.from_numpy(x), splits=10, shuffle=True, rng_seed=2020)
    assert ours["is"] == pytest.approx(ref["inception_score_mean"], rel=1e-10)
    assert ours["is_std"] == pytest.approx(ref["inception_score_std"], rel=1e-8)
    assert ours["is_mode"] == "torch-fidelity"


def test_is_adm_mode_equals_unshuffled_splits():
    x = _logits(1000, 100, 8)
    ours = inception_score(x, mode="adm", split_size=100)  # N/10, in order
    ref = isc_features_to_metric(torch.from_numpy(x), splits=10, shuffle=False)
    assert ours["is"] == pytest.approx(ref["inception_score_mean"], rel=1e-10)
    assert ours["is_std"] is None and ours["is_splits"] == 10
    # partial last chunk: 1050 samples -> chunks 5x200 + 50
    y = _logits(1050, 30, 9)
    parts = [
        isc_features_to_metric(torch.from_numpy(y[i : i + 200]), splits=1, shuffle=False)["inception_score_mean"]
        for i in range(0, 1050, 200)
    ]
    assert inception_score(y, mode="adm", split_size=200)["is"] == pytest.approx(np.mean(parts), rel=1e-10)


def test_is_adm_collapses_when_class_sorted():
    # confident classifier: 50 classes, 40 samples each; interleaved vs sorted order, same multiset
    c, per = 50, 40
    labels = np.tile(np.arange(c), per)
    x = np.full((c * per, c), -10.0, np.float32)
    x[np.arange(c * per), labels] = 10.0
    interleaved = inception_score(x, mode="adm", split_size=200)["is"]
    sorted_ = inception_score(x[np.argsort(labels, kind="stable")], mode="adm", split_size=200)["is"]
    assert interleaved > 45.0  # ~ number of classes
    assert sorted_ < 6.0  # each chunk sees only 5 classes
    # torch-fidelity mode shuffles, so order does not matter there
    a = inception_score(x, mode="torch-fidelity")["is"]
    b = inception_score(x[np.argsort(labels, kind="stable")], mode="torch-fidelity")["is"]
    assert a == pytest.approx(b, rel=0.1)


@pytest.mark.parametrize("block", [1 << 25, 1000])  # one block, and many small blocks
def test_precision_recall_equals_torch_fidelity(block):
    gen, real = _feats(300, 32, 10, shift=0.4), _feats(250, 32, 11)
    ours = precision_recall(gen, real, k=3, block_elems=block)
    ref = prc_features_to_metric(
        torch.from_numpy(gen),
        torch.from_numpy(real),
        prc_neighborhood=3,
        prc_batch_size=10000,
        save_cpu_ram=False,
        verbose=False,
    )
    assert 0.0 < ref["precision"] < 1.0 and 0.0 < ref["recall"] < 1.0
    # torch-fidelity returns float32 shares; one point is 1/300, so 1e-6 still demands identical counts
    assert ours["precision"] == pytest.approx(ref["precision"], abs=1e-6)
    assert ours["recall"] == pytest.approx(ref["recall"], abs=1e-6)


def test_precision_recall_directions():
    # samples collapsed on a small part of the reference: high precision, low recall
    real = _feats(400, 8, 12)
    gen = np.repeat(real[:5], 12, axis=0) + 1e-4 * _feats(60, 8, 15)
    r = precision_recall(gen, real)
    assert r["precision"] > 0.95 and r["recall"] < 0.4


def test_kid_equals_torch_fidelity_and_cleanfid_semantics():
    f1, f2 = _feats(120, 16, 13, shift=0.2), _feats(110, 16, 14)
    ours = kernel_inception_distance(f1, f2, subsets=20, subset_size=50, seed=2020)
    ref = kid_features_to_metric(
        torch.from_numpy(f1.astype(np.float64)),
        torch.from_numpy(f2.astype(np.float64)),
        kid_subsets=20,
        kid_subset_size=50,
        kid_kernel="poly",
        kid_kernel_poly_degree=3,
        kid_kernel_poly_gamma=None,
        kid_kernel_poly_coef0=1,
        rng_seed=2020,
        verbose=False,
    )
    assert ours["kid"] == pytest.approx(ref["kernel_inception_distance_mean"], rel=1e-10)
    assert ours["kid_std"] == pytest.approx(ref["kernel_inception_distance_std"], rel=1e-8)
    # clean-fid draws its subsets from the global RNG: with one full-size subset the draw is irrelevant
    np.random.seed(0)
    cf = cleanfid_fid.kernel_distance(
        f1[:100].astype(np.float64), f2[:100].astype(np.float64), num_subsets=1, max_subset_size=100
    )
    assert kernel_inception_distance(f1[:100], f2[:100], subsets=1, subset_size=100)["kid"] == pytest.approx(
        cf, rel=1e-9
    )


def test_kid_refuses_subsets_larger_than_the_sets():
    """torch-fidelity refuses (N < subset size); we used to cap silently, making the std meaningless."""
    from harness.core.errors import UserError

    f1, f2 = _feats(60, 8, 21), _feats(80, 8, 22)
    with pytest.raises(UserError, match="subset size 1000 is larger than the sets"):
        kernel_inception_distance(f1, f2)
    with pytest.raises(ValueError, match="cannot be smaller"):  # the library's own rule, for comparison
        kid_features_to_metric(
            torch.from_numpy(f1),
            torch.from_numpy(f2),
            kid_subsets=5,
            kid_subset_size=1000,
            kid_kernel="poly",
            kid_kernel_poly_degree=3,
            kid_kernel_poly_gamma=None,
            kid_kernel_poly_coef0=1,
            rng_seed=2020,
            verbose=False,
        )
    r = kernel_inception_distance(f1, f2, subsets=7, subset_size=60)
    assert r["kid_subset_size"] == 60 and r["kid_subsets"] == 7


def test_is_and_kid_call_torch_fidelity(monkeypatch):
    """The library does the math: replacing its functions changes our numbers."""
    import torch_fidelity.metric_isc as tf_isc
    import torch_fidelity.metric_kid as tf_kid

    monkeypatch.setattr(
        tf_isc, "isc_features_to_metric", lambda *a, **k: {"inception_score_mean": 123.0, "inception_score_std": 0.5}
    )
    monkeypatch.setattr(
        tf_kid,
        "kid_features_to_metric",
        lambda *a, **k: {"kernel_inception_distance_mean": 7.0, "kernel_inception_distance_std": 0.25},
    )
    assert inception_score(_logits(50, 10, 1), mode="torch-fidelity")["is"] == 123.0
    assert inception_score(_logits(50, 10, 1), mode="adm")["is"] == 123.0
    assert kernel_inception_distance(_feats(30, 4, 1), _feats(30, 4, 2), subset_size=10)["kid"] == 7.0


# -- closed forms, written from the definitions (no library code shared with harness/metrics) ----------
def _is_from_definition(logits, split_size):
    """IS of the ADM evaluator: exp(E_x KL(p(y|x) || p(y))) per consecutive chunk, then the mean of chunks.
    Loops over samples in float64 so nothing is shared with torch-fidelity's vectorised code."""
    scores = []
    for start in range(0, len(logits), split_size):
        chunk = logits[start : start + split_size].astype(np.float64)
        probs = []
        for row in chunk:
            e = np.exp(row - row.max())
            probs.append(e / e.sum())
        marginal = np.mean(probs, axis=0)
        kls = [sum(p_k * (np.log(p_k) - np.log(q_k)) for p_k, q_k in zip(p, marginal)) for p in probs]
        scores.append(np.exp(np.mean(kls)))
    return float(np.mean(scores))


@pytest.mark.parametrize("n,split", [(60, 60), (70, 20)])  # one chunk; several with a partial last one
def test_is_adm_equals_the_definition(n, split):
    x = _logits(n, 12, 31, sharp=2.0)
    # float64 throughout on both sides: agreement to ~1e-12 is the rounding of a few hundred sums
    assert inception_score(x, mode="adm", split_size=split)["is"] == pytest.approx(
        _is_from_definition(x, split), rel=1e-10
    )


def _unbiased_mmd2_from_definition(x, y):
    """MMD^2_u with k(a, b) = (a.b / d + 1)^3 (the KID paper's estimator: x-x and y-y pairs i != j, all x-y pairs)."""
    m, d = len(x), x.shape[1]
    k = lambda a, b: (float(np.dot(a, b)) / d + 1.0) ** 3  # noqa: E731
    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(m)) / (m * m)
    return xx + yy - 2 * xy


def test_kid_equals_the_unbiased_mmd_definition_on_the_same_subsets():
    f1, f2 = _feats(40, 6, 41, shift=0.3), _feats(35, 6, 42)
    subsets, size, seed = 4, 12, 7
    # the subsets as the KID convention draws them: one RandomState, samples then reference, per subset
    rng = np.random.RandomState(seed)
    mmds = []
    for _ in range(subsets):
        a = f1[rng.choice(len(f1), size, replace=False)].astype(np.float64)
        b = f2[rng.choice(len(f2), size, replace=False)].astype(np.float64)
        mmds.append(_unbiased_mmd2_from_definition(a, b))
    ours = kernel_inception_distance(f1, f2, subsets=subsets, subset_size=size, seed=seed)
    # float64 sums of ~10^2 kernel values of order 1: 1e-10 relative is far above their rounding
    assert ours["kid"] == pytest.approx(np.mean(mmds), rel=1e-10, abs=1e-14)
    assert ours["kid_std"] == pytest.approx(np.std(mmds), rel=1e-8, abs=1e-14)

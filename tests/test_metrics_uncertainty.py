"""Uncertainty: disjoint subsets really are disjoint and complete; spreads equal numpy's; the method is named."""

import math

import numpy as np
import pytest

from harness.metrics.uncertainty import differs, format_pm, seed_spread, subset_indices, subset_spread


def test_subsets_partition_the_samples():
    parts = subset_indices(103, 10, seed=4)
    joined = np.concatenate(parts)
    assert sorted(joined.tolist()) == list(range(103))
    assert {len(p) for p in parts} == {10, 11}
    assert [p.tolist() for p in subset_indices(20, 2, seed=None)] == [list(range(10)), list(range(10, 20))]


def test_subset_spread_of_the_mean_matches_numpy():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(1000, 3))
    r = subset_spread(lambda f: float(f[:, 0].mean()), x, k=10, seed=1)
    means = [x[idx, 0].mean() for idx in subset_indices(1000, 10, seed=1)]
    assert r["values"] == pytest.approx(means)
    assert r["std"] == pytest.approx(np.std(means, ddof=1))
    assert r["std_full_n"] == pytest.approx(np.std(means, ddof=1) / math.sqrt(10))
    assert r["method"] == "disjoint-subsets(k=10,seed=1)" and r["subset_size"] == 100
    # the scaled spread estimates the std error of the full mean (1/sqrt(1000) for unit variance)
    assert 0.4 / math.sqrt(1000) < r["std_full_n"] < 2.0 / math.sqrt(1000)


def test_seed_spread_and_formatting():
    r = seed_spread({2: 2.5, 0: 2.3, 1: 2.4})
    assert r["method"] == "seeds(n=3)" and r["seeds"] == [0, 1, 2]
    assert r["mean"] == pytest.approx(2.4) and r["std"] == pytest.approx(0.1)
    assert format_pm(2.4, r) == "2.40 ± 0.10"
    assert format_pm(2.4, None) == "2.40"
    assert differs(2.4, r, 2.5, r) is False
    assert differs(2.4, r, 3.0, r) is True
    assert differs(2.4, None, 3.0, r) is None
    with pytest.raises(ValueError):
        seed_spread({0: 1.0})

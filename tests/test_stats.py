"""harness.core.stats.mean_sd, the one mean / sample-sd helper, against the standard library's and numpy's."""

import math
import statistics

import numpy as np
import pytest

from harness.core.stats import mean_sd


def test_mean_sd_matches_statistics_and_numpy():
    xs = list(np.random.default_rng(0).normal(3.0, 2.0, size=7))
    s = mean_sd(xs)
    # statistics uses exact fractions; numpy's pairwise sums agree to a few ulps of these magnitudes
    assert s.mean == pytest.approx(statistics.fmean(xs), rel=1e-15)
    assert s.sd == pytest.approx(statistics.stdev(xs), rel=1e-14)
    assert s.sd == pytest.approx(np.std(xs, ddof=1), rel=1e-14)
    assert s.se == pytest.approx(statistics.stdev(xs) / math.sqrt(7), rel=1e-14) and s.n == 7


def test_fewer_than_two_values_have_no_spread():
    assert mean_sd([]).to_dict() == {"mean": None, "sd": None, "n": 0}
    one = mean_sd([2.5])
    assert (one.mean, one.sd, one.se, one.n) == (2.5, None, None, 1)
    assert mean_sd([1.0, 3.0]).sd == pytest.approx(math.sqrt(2))


def test_order_does_not_change_the_result():
    xs = [1e16, 1.0, -1e16, 3.0]  # naive left-to-right sums lose the small terms in one order, not another
    assert mean_sd(xs).mean == mean_sd(xs[::-1]).mean == 1.0

"""The power of the paired statistic (harness.report.power) against statsmodels' TTestPower (one-sample
t-test on the per-seed differences, noncentral t) and scipy's t interval, and the large-n normal limit."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from harness.report import power

statsmodels_power = pytest.importorskip("statsmodels.stats.power")


@pytest.mark.parametrize("n", [3, 4, 5, 8, 20])  # n = 2: statsmodels (and scipy's lower nct tail) return NaN
@pytest.mark.parametrize("sd", [0.01, 1.0, 37.5])
def test_minimum_detectable_effect_matches_statsmodels(n, sd):
    mde = power.minimum_detectable_effect(sd, n)
    # statsmodels' power of a one-sample t-test on the differences, at the standardised effect mde / sd
    assert statsmodels_power.TTestPower().power(mde / sd, n, 0.05, alternative="two-sided") == pytest.approx(
        0.8, abs=1e-8
    )
    d = statsmodels_power.TTestPower().solve_power(nobs=n, alpha=0.05, power=0.8, alternative="two-sided")
    # solve_power's root finder stops near 1e-8 relative; brentq here at 1e-10 sd
    assert mde == pytest.approx(d * sd, rel=1e-6)


@pytest.mark.parametrize("effect, sd, n", [(0.5, 1.0, 3), (3.0, 1.0, 3), (0.053, 0.12, 10), (-2.0, 1.5, 4)])
def test_power_matches_statsmodels(effect, sd, n):
    ref = statsmodels_power.TTestPower().power(abs(effect) / sd, n, 0.05, alternative="two-sided")
    assert power.paired_power(effect, sd, n) == pytest.approx(ref, rel=1e-9)


@pytest.mark.parametrize("effect, sd", [(1.0, 1.0), (0.053, 0.122), (0.3, 0.1), (5.0, 40.0)])
def test_seeds_needed_is_the_first_n_that_reaches_the_power(effect, sd):
    n_float = statsmodels_power.TTestPower().solve_power(
        effect_size=effect / sd, alpha=0.05, power=0.8, alternative="two-sided"
    )
    assert power.seeds_needed(effect, sd) == max(2, math.ceil(n_float))


def test_large_n_tends_to_the_normal_formula():
    # n -> inf: MDE -> (z_{0.975} + z_{0.8}) * sd / sqrt(n), the closed form without the t correction
    n, sd = 4000, 2.0
    z = stats.norm.ppf(0.975) + stats.norm.ppf(0.8)
    # the t quantiles at 3999 df exceed the normal ones by ~(z^3 + z) / (4 df) ~ 2.5e-4 relative
    assert power.minimum_detectable_effect(sd, n) == pytest.approx(z * sd / math.sqrt(n), rel=1e-3)


def test_three_seeds_need_more_than_the_textbook_shortcut():
    # the shortcut (t_{.975,2} + t_{.8,2}) / sqrt(3) has power below 0.8 at n = 3: the exact MDE is larger
    shortcut = (stats.t.ppf(0.975, 2) + stats.t.ppf(0.8, 2)) / math.sqrt(3)
    assert statsmodels_power.TTestPower().power(shortcut, 3, 0.05) < 0.78
    assert power.minimum_detectable_effect(1.0, 3) > shortcut * 1.04


def test_degenerate_inputs():
    assert power.minimum_detectable_effect(None, 3) is None and power.minimum_detectable_effect(1.0, 1) is None
    assert power.minimum_detectable_effect(0.0, 3) == 0.0
    assert power.seeds_needed(None, 1.0) is None and power.seeds_needed(0.0, 1.0) is None
    assert power.seeds_needed(1e-6, 1.0) is None  # beyond MAX_SEEDS
    with pytest.raises(ValueError, match="at least 2 seeds"):
        power.paired_power(1.0, 1.0, 1)


def test_t_interval_matches_scipy():
    d = np.array([-0.07, -0.05, -0.10])
    se = d.std(ddof=1) / math.sqrt(3)
    ci = stats.ttest_1samp(d, 0.0).confidence_interval(0.95)
    lo, hi = power.t_interval(float(d.mean()), float(se), 3)
    assert (lo, hi) == pytest.approx((ci.low, ci.high), rel=1e-12)
    assert power.t_interval(1.0, None, 3) is None

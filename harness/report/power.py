"""How large a paired difference the seeds can detect: the power of the paired t-test.

The project's paired statistic (``harness.report.paired``) is the mean of n per-seed differences
with its standard error sd / sqrt(n). Read as a two-sided paired t-test at level ``alpha``, the
test statistic has a noncentral t distribution with n - 1 degrees of freedom and noncentrality
effect / (sd / sqrt(n)), so its power is exact:

    power = P(T > t_{1-alpha/2}) + P(T < -t_{1-alpha/2}),   T ~ nct(n - 1, effect * sqrt(n) / sd)

- ``minimum_detectable_effect``: the effect whose power is ``power`` (default 0.8) at n seeds.
  The textbook shortcut (t_{1-alpha/2,n-1} + t_{power,n-1}) * sd / sqrt(n) understates it at few
  seeds (at n = 3, 3.10 sd / sqrt(3) would have power 0.77, not 0.8), so it is solved exactly.
- ``seeds_needed``: the fewest seeds whose power at ``effect`` reaches ``power``, with the sd held
  at the measured one.

The sd is the measured sample sd of the per-seed differences: with 3 seeds it is itself uncertain
(its 95 % interval spans 0.52-6.3 times the estimate), so an MDE from 3 seeds is a rough scale.
"""

from __future__ import annotations

import math

ALPHA = 0.05
POWER = 0.8
MAX_SEEDS = 10_000


def paired_power(effect: float, sd: float, n: int, alpha: float = ALPHA) -> float:
    """Power of the two-sided paired t-test at level ``alpha`` for a true mean difference ``effect``."""
    from scipy import stats

    if n < 2:
        raise ValueError(f"a paired t-test needs at least 2 seeds, got {n}")
    if sd <= 0:
        raise ValueError(f"sd must be > 0, got {sd}")
    df = n - 1
    crit = stats.t.ppf(1 - alpha / 2, df)
    nc = abs(effect) * math.sqrt(n) / sd
    # the wrong-side tail is below alpha / 2 and falls with nc; scipy returns NaN for it where it underflows
    wrong_side = float(stats.nct.cdf(-crit, df, nc))
    return float(stats.nct.sf(crit, df, nc)) + (wrong_side if math.isfinite(wrong_side) else 0.0)


def minimum_detectable_effect(sd: float | None, n: int, alpha: float = ALPHA, power: float = POWER) -> float | None:
    """The smallest |mean difference| detected with probability ``power``; None below 2 seeds or
    without an sd, 0.0 when the differences do not vary."""
    from scipy import optimize

    if sd is None or n < 2:
        return None
    if sd == 0:
        return 0.0
    if paired_power(0.0, sd, n, alpha) >= power:
        return 0.0
    hi = sd
    while paired_power(hi, sd, n, alpha) < power:
        hi *= 2.0
    return float(optimize.brentq(lambda e: paired_power(e, sd, n, alpha) - power, 0.0, hi, xtol=sd * 1e-10))


def seeds_needed(
    effect: float | None, sd: float | None, alpha: float = ALPHA, power: float = POWER, max_seeds: int = MAX_SEEDS
) -> int | None:
    """The fewest seeds (>= 2) whose paired test detects ``effect`` with probability ``power``;
    None when it cannot be computed (no sd, no effect) or needs more than ``max_seeds``."""
    if effect is None or sd is None or effect == 0:
        return None
    if sd == 0:
        return 2
    lo, hi = 2, 2
    while paired_power(effect, sd, hi, alpha) < power:
        if hi >= max_seeds:
            return None
        lo, hi = hi, min(2 * hi, max_seeds)
    while lo < hi:  # power rises with n: the first n that reaches it
        mid = (lo + hi) // 2
        if paired_power(effect, sd, mid, alpha) >= power:
            hi = mid
        else:
            lo = mid + 1
    return hi


def t_interval(mean: float | None, se: float | None, n: int, level: float = 0.95) -> tuple[float, float] | None:
    """The two-sided t interval of the paired mean difference (mean ± t_{(1+level)/2, n-1} * se)."""
    from scipy import stats

    if mean is None or se is None or n < 2:
        return None
    half = float(stats.t.ppf((1 + level) / 2, n - 1)) * se
    return (mean - half, mean + half)

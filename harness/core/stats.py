"""Mean and sample standard deviation: the one definition every summary of repeated values uses.

``sd`` is the sample standard deviation (n - 1 in the denominator); with fewer than two values there is
no measured spread and it is None, never 0. ``se`` = sd / sqrt(n) is the standard error of the mean.
Sums are exactly rounded (``math.fsum``), so the result does not depend on the order of the values.
Used by the ablation summary, the paired statistic (``harness.report.paired``), the claims' estimates,
the plots' error bars and the metrics' subset and seed spreads (``harness.metrics.uncertainty``).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable


@dataclasses.dataclass(frozen=True)
class MeanSd:
    mean: float | None  # None for no values
    sd: float | None  # None below two values
    n: int

    @property
    def se(self) -> float | None:
        """Standard error of the mean, sd / sqrt(n)."""
        return None if self.sd is None else self.sd / math.sqrt(self.n)

    def to_dict(self) -> dict:
        return {"mean": self.mean, "sd": self.sd, "n": self.n}


def mean_sd(values: Iterable[float]) -> MeanSd:
    xs = [float(v) for v in values]
    n = len(xs)
    if n == 0:
        return MeanSd(None, None, 0)
    mean = math.fsum(xs) / n
    if n == 1:
        return MeanSd(mean, None, 1)
    return MeanSd(mean, math.sqrt(math.fsum((x - mean) ** 2 for x in xs) / (n - 1)), n)

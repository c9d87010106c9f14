"""The one paired statistic of the project: how two variants measured on the same seeds differ.

Seed s of variant B is paired with seed s of variant A (same initialisation, data order and sampling
seed), so the seed-to-seed variation the two share cancels in the per-seed differences d_s = B_s - A_s.
Reported everywhere (the ``claims`` table, the ablation summary, its table and plot) as

    mean paired difference ± paired standard error = mean(d) ± sd(d) / sqrt(n)

with sd the sample standard deviation (n - 1) of the n per-seed differences. A standard error that
ignores the pairing (sqrt(se_A^2 + se_B^2)) or the sd of the differences without the sqrt(n) would
describe another quantity; neither is used.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

from harness.core.stats import mean_sd

NAME = "paired SE"
DESCRIPTION = "mean paired difference ± paired standard error (sd of the per-seed differences / sqrt(n seeds))"


@dataclasses.dataclass(frozen=True)
class PairedDifference:
    mean: float | None
    se: float | None  # sd / sqrt(n); None below two pairs (no spread measured)
    sd: float | None
    n: int

    def to_dict(self) -> dict:
        return {"mean": self.mean, "se": self.se, "sd": self.sd, "n": self.n, "statistic": DESCRIPTION}


def paired_difference(differences: Iterable[float]) -> PairedDifference:
    d = mean_sd(differences)
    return PairedDifference(d.mean, d.se, d.sd, d.n)

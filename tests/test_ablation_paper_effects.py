"""The paper's ablation comparisons read at a preset: the paired difference and its interval are
scipy's one-sample t interval of the per-seed differences, the paper's effect is carried over as a
relative change of the changed row's mean, and each verdict follows from where 0 and that effect lie
relative to the interval (and the MDE, from ``harness.report.power``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from harness.report.power import minimum_detectable_effect
from harness.suites import ablation
from harness.suites.ablation import paper_effects
from harness.suites.ablation.summary import paper_directions

SUITE = Path(__file__).resolve().parents[1] / "alitok" / "configs" / "ablation.yaml"
A = [0.20, 0.25, 0.15]  # row A's ar_acc per seed: mean 0.20, so the paper's +98.1 % is +0.196 here


def _causal_decoder(b: list[float]) -> dict:
    suite = ablation.load_suite(SUITE, "tiny", rows=["A", "B"], seeds=[0, 1, 2])
    per_seed = {"A": {s: {"ar_acc": A[s]} for s in range(3)}, "B": {s: {"ar_acc": b[s]} for s in range(3)}}
    found = {c["name"]: c for c in paper_directions(per_seed, suite)}
    return found["causal_decoder"]["metrics"]["ar_acc"]


@pytest.mark.parametrize(
    "b, verdict",
    [
        ([0.40, 0.46, 0.35], paper_effects.REPLICATES),  # B − A = +0.20, +0.21, +0.20
        ([0.10, 0.16, 0.04], paper_effects.OPPOSITE),  # −0.10, −0.09, −0.11
        ([0.21, 0.25, 0.16], paper_effects.EXCLUDED),  # +0.01, 0, +0.01: holds 0, not +0.196
        ([0.40, 0.05, 0.30], paper_effects.NOT_TESTABLE),  # +0.20, −0.20, +0.15: sd 0.22
    ],
)
def test_verdicts_follow_the_t_interval(b, verdict):
    j = _causal_decoder(b)
    d = np.array(b) - np.array(A)
    ci = stats.ttest_1samp(d, 0.0).confidence_interval(0.95)
    assert j["mean"] == pytest.approx(d.mean()) and j["interval95"] == pytest.approx([ci.low, ci.high], rel=1e-9)
    effect = (0.107 / 0.054 - 1) * np.mean(A)
    assert j["paper_size_effect"] == pytest.approx(effect) and j["paper_difference"] == pytest.approx(0.053)
    assert j["verdict"] == verdict
    if verdict == paper_effects.NOT_TESTABLE:
        assert ci.low < 0 < effect < ci.high and j["mde"] == pytest.approx(minimum_detectable_effect(d.std(ddof=1), 3))
        assert j["mde"] > effect and j["seeds_needed_for_paper_size"] > 3


def test_within_noise_when_the_seeds_could_have_seen_it():
    # sd of the differences 0.02 at 6 seeds: MDE ~0.03, the paper-size effect 0.1 inside a wide-ish interval
    paired = {"mean": 0.05, "se": 0.03, "sd": 0.02, "n": 6, "interval95": [-0.02, 0.12], "mde": 0.03}
    j = paper_effects.judge(paired, (1.0, 1.1), 1.0)
    assert j["verdict"] == paper_effects.WITHIN_NOISE and j["paper_size_effect"] == pytest.approx(0.1)


def test_a_paper_without_change_and_a_row_not_run():
    still = {"mean": 0.0, "se": 0.01, "sd": 0.02, "n": 3, "interval95": [-0.04, 0.04], "mde": 0.1}
    assert paper_effects.judge(still, (1.0, 1.0), 5.0)["verdict"] == paper_effects.NO_CHANGE
    moved = dict(still, interval95=[0.01, 0.09])
    assert paper_effects.judge(moved, (1.0, 1.0), 5.0)["verdict"] == paper_effects.CHANGES
    none = {"mean": None, "se": None, "sd": None, "n": 0, "interval95": None, "mde": None}
    assert paper_effects.judge(none, (1.0, 2.0), None)["verdict"] == paper_effects.NOT_RUN
    # a comparison whose rows did not run at all says so, row by row, in the table; one seed: no interval
    suite = ablation.load_suite(SUITE, "tiny", rows=["A", "B"], seeds=[0])
    one_seed = {"A": {0: {"ar_acc": 0.2}}, "B": {0: {"ar_acc": 0.3}}}
    text = "\n".join(paper_effects.lines({"paper_directions": paper_directions(one_seed, suite)}))
    assert "| prefix_tokens: C − B | rfid | 1.07 → 1.01 | – |" in text and "not run (n = 0)" in text
    assert (
        "| causal_decoder: B − A | ar_acc | 0.054 → 0.107 | +0.1963 (+98.1%) | +0.1000 | – | – | not run (n = 1)"
        in text
    )

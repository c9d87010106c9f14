"""The paper's ablation comparisons read at a preset: does each change move each metric the paper's way?

A comparison is one change (``row`` against ``against``, e.g. the causal decoder: B against A) with the
paper's values of both rows per metric. At a CPU preset the paper's absolute numbers mean nothing, so
its effect is carried over as a relative change of the ``against`` row's mean at the preset (the
"paper-size effect"), and the paired difference (mean ± paired SE, its 95 % t interval and MDE from
``harness.report.power``) is read against it:

- ``replicates``: the interval excludes 0 on the paper's side;
- ``opposite``: the interval excludes 0 on the other side;
- ``excluded``: the interval holds 0 but not the paper-size effect (no effect that large here);
- ``not testable``: the interval holds both and the MDE exceeds the paper-size effect (seeds needed);
- ``within noise``: the interval holds both though the MDE is below the paper-size effect;
- ``not run``: fewer than 2 seeds have both rows (no interval).

Where the paper's two values are equal its direction is "none": a difference whose interval excludes 0
is ``changes (paper: none)``, otherwise ``no change, as the paper``.
"""

from __future__ import annotations

from typing import Any

from harness.report.power import seeds_needed

REPLICATES = "replicates"
OPPOSITE = "opposite"
EXCLUDED = "excluded"
NOT_TESTABLE = "not testable"
WITHIN_NOISE = "within noise"
NOT_RUN = "not run"
CHANGES = "changes (paper: none)"
NO_CHANGE = "no change, as the paper"


def judge(paired: dict[str, Any], paper: tuple[float, float], against_mean: float | None) -> dict[str, Any]:
    """One metric of one comparison: ``paired`` is the paired difference row − against (the summary's
    ``paired_to``: mean, se, sd, n, interval95, mde); ``paper`` the paper's (against, row) values."""
    before, after = paper
    relative = after / before - 1.0
    effect = None if against_mean is None else relative * abs(against_mean)
    out = {
        "paper": [before, after],
        "paper_difference": after - before,
        "paper_relative": relative,
        "paper_size_effect": effect,
        **{k: paired.get(k) for k in ("mean", "se", "n", "interval95", "mde")},
        "seeds_needed_for_paper_size": None,
    }
    iv = paired.get("interval95")
    if iv is None or effect is None:
        return out | {"verdict": NOT_RUN}
    lo, hi = iv
    holds_zero = lo <= 0.0 <= hi
    if effect == 0.0:
        return out | {"verdict": NO_CHANGE if holds_zero else CHANGES}
    if paired.get("sd"):
        out["seeds_needed_for_paper_size"] = seeds_needed(effect, paired["sd"])
    if not holds_zero:
        return out | {"verdict": REPLICATES if (lo > 0) == (effect > 0) else OPPOSITE}
    if not lo <= effect <= hi:
        return out | {"verdict": EXCLUDED}
    mde = paired.get("mde")
    return out | {"verdict": NOT_TESTABLE if mde is None or mde > abs(effect) else WITHIN_NOISE}


def lines(summary: dict[str, Any]) -> list[str]:
    """The markdown section of ``summary["paper_directions"]``."""
    found = summary.get("paper_directions") or []
    if not found:
        return []
    out = [
        "## The paper's directions at this preset",
        "",
        "Each change of the paper's ablation table (section 4.4, AliTok-B on ImageNet) as a paired difference here. "
        "Paper-size effect: the paper's relative change applied to the mean of the row it changes at this preset. "
        "replicates / opposite: the 95 % interval excludes 0 (on the paper's side / the other); excluded: it holds 0 "
        "but not the paper-size effect; not testable: it holds both and the MDE is larger than the paper-size "
        "effect (seeds needed at this sd); within noise: it holds both though the MDE is smaller.",
        "",
        "| change | metric | paper (before → after) | paper-size effect here | paired diff (mean ± SE) | "
        "95 % interval | MDE | verdict | seeds for the paper-size effect |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for c in found:
        for metric, j in c["metrics"].items():
            d = 4 if metric in ("kid", "prec", "recall", "ssim", "ar_acc") else 3
            eff = j.get("paper_size_effect")
            eff_s = "–" if eff is None else f"{eff:+.{d}f} ({j['paper_relative']:+.1%})"
            diff = "–" if j.get("mean") is None else f"{j['mean']:+.{d}f}"
            diff += "" if j.get("se") is None else f" ± {j['se']:.{d}f}"
            iv = j.get("interval95")
            iv_s = f"[{iv[0]:+.{d}f}, {iv[1]:+.{d}f}]" if iv else "–"
            mde = "–" if j.get("mde") is None else f"{j['mde']:.{d}f}"
            need = j.get("seeds_needed_for_paper_size")
            need_s = "–" if need is None else str(need)
            before, after = j["paper"]
            out.append(
                f"| {c['name']}: {c['row']} − {c['against']} | {metric} | {before:g} → {after:g} | {eff_s} | {diff} "
                f"| {iv_s} | {mde} | {j['verdict']} (n = {j.get('n') or 0}) | {need_s} |"
            )
    notes = [f"- {c['name']}: {c['note']}" for c in found if c.get("note")]
    return out + ([""] + notes if notes else []) + [""]

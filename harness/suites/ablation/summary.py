"""The ablation summary: mean and sample sd per row over seeds, paired differences to the baseline row.

Reads only the records under ``--out`` (``ablate --summarize`` rebuilds it from them): each row's
mean ± sd (``harness.core.stats``) and the difference to the baseline paired by seed, summarised by the
project's one paired statistic (``harness.report.paired``: mean ± paired standard error). Writes
``summary.json`` (through the record writer, with provenance), ``ablation_table.md`` and the bar plot.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from harness.core.io import atomic_path
from harness.core.stats import mean_sd
from harness.report.paired import DESCRIPTION as PAIRED_DESCRIPTION
from harness.report.paired import paired_difference
from harness.report.power import ALPHA, POWER, minimum_detectable_effect, seeds_needed, t_interval
from harness.runs.records import read_record, write_result_json
from harness.suites.ablation import paper_effects
from harness.suites.ablation.planning import EVAL_RECORD, RECORD, command_line, plan
from harness.suites.ablation.suite import TABLE_METRICS, Suite


def paired_differences(
    per_seed: dict[str, dict[int, dict[str, float]]], baseline: str, metric: str
) -> dict[str, dict[str, Any]]:
    """Row minus baseline on the seeds both have, per seed, summarised by the project's one paired
    statistic (``harness.report.paired``): mean ± paired SE, with the sd of the differences kept too,
    and what that sd can detect (``harness.report.power``): the minimum detectable effect at these
    seeds, the seeds the observed mean would need, and the 95 % t interval."""
    return {row: paired_to(per_seed, row, baseline, metric) for row in per_seed}


def paired_to(per_seed: dict[str, dict[int, dict[str, float]]], row: str, other: str, metric: str) -> dict[str, Any]:
    """``row`` minus ``other`` paired by seed (see ``paired_differences``)."""
    seeds, base = per_seed.get(row, {}), per_seed.get(other, {})
    common = sorted(s for s in seeds if s in base and metric in seeds[s] and metric in base[s])
    diffs = [seeds[s][metric] - base[s][metric] for s in common]
    d = paired_difference(diffs)
    interval = t_interval(d.mean, d.se, d.n)
    return {
        **d.to_dict(),
        "seeds": common,
        "per_seed": diffs,
        "mde": minimum_detectable_effect(d.sd, d.n),
        "seeds_needed_for_observed": seeds_needed(d.mean, d.sd) if d.n >= 2 else None,
        "interval95": list(interval) if interval else None,
    }


def sensitivity(
    per_seed: dict[str, dict[int, dict[str, float]]],
    suite: Suite,
    baseline_means: dict[str, float | None],
) -> dict[str, dict[str, Any]]:
    """Per metric: the sd of the paired differences to the baseline pooled over the non-control rows
    (rows that share a stage repeat a difference: each distinct set counts once), the minimum
    detectable effect at the preset's number of seeds, and for a reference effect (relative to the
    baseline's mean) the seeds it would need."""
    out = {}
    n = len(suite.seeds)
    controls = {r.name for r in suite.rows if r.control}
    for metric, _ in TABLE_METRICS:
        seen, ss, df = set(), 0.0, 0
        for r in suite.rows:
            if r.name == suite.baseline or r.name in controls:
                continue
            d = paired_to(per_seed, r.name, suite.baseline, metric)
            key = tuple(round(x, 12) for x in d["per_seed"])
            if d["n"] < 2 or key in seen:
                continue
            seen.add(key)
            ss += d["sd"] ** 2 * (d["n"] - 1)
            df += d["n"] - 1
        if not df:
            continue
        sd = (ss / df) ** 0.5
        mde = minimum_detectable_effect(sd, n)
        base = baseline_means.get(metric)
        entry = {
            "sd_pooled": sd,
            "df": df,
            "rows_pooled": len(seen),
            "seeds": n,
            "mde": mde,
            "mde_relative": mde / abs(base) if mde is not None and base else None,
        }
        ref = suite.reference_effects.get(metric)
        if ref is not None and base:
            entry["reference_effect_relative"] = ref
            entry["reference_effect"] = ref * abs(base)
            entry["seeds_needed_for_reference"] = seeds_needed(ref * abs(base), sd)
        out[metric] = entry
    return out


def control_results(per_seed: dict[str, dict[int, dict[str, float]]], suite: Suite) -> list[dict[str, Any]]:
    """Each positive control's effect against its ``from`` row, paired by seed, and whether it was
    detected: its 95 % t interval excludes 0 on the side the control must move the metric (``opposite``:
    it excludes 0 on the other side, a control whose expected direction did not hold)."""
    out = []
    for r in suite.rows:
        for metric, direction in r.control.items():
            d = paired_to(per_seed, r.name, r.source, metric)
            lo_hi = d["interval95"]
            detected = opposite = None
            if lo_hi is not None:
                up, down = bool(lo_hi[0] > 0), bool(lo_hi[1] < 0)
                detected, opposite = (up, down) if direction == "up" else (down, up)
            out.append(
                {"row": r.name, "label": r.label, "against": r.source, "metric": metric, "expected": direction}
                | {k: d[k] for k in ("mean", "se", "n", "interval95", "mde", "per_seed")}
                | {"detected": detected, "opposite": opposite}
            )
    return out


def paper_directions(per_seed: dict[str, dict[int, dict[str, float]]], suite: Suite) -> list[dict[str, Any]]:
    """Each of the paper's comparisons (``paper_comparisons`` of the suite file) read at this preset:
    the paired difference per metric against the paper's effect carried over (``paper_effects``)."""
    out = []
    for name, c in suite.paper_comparisons.items():
        metrics = {}
        for metric, pair in c.paper.items():
            vals = [v[metric] for v in per_seed.get(c.against, {}).values() if metric in v]
            against_mean = sum(vals) / len(vals) if vals else None
            metrics[metric] = paper_effects.judge(paired_to(per_seed, c.row, c.against, metric), pair, against_mean)
        out.append({"name": name, "row": c.row, "against": c.against, "note": c.note, "metrics": metrics})
    return out


def summarize(suite: Suite, out: str | Path) -> dict[str, Any]:
    """The summary of every finished evaluation under ``out``, written beside them (table, plot, json)."""
    out = Path(out)
    per_seed: dict[str, dict[int, dict[str, float]]] = {r.name: {} for r in suite.rows}
    seconds: dict[str, float] = {}
    jobs = plan(suite, out)
    for job in jobs:
        if not job.done:
            continue
        if job.stage == "eval":
            rec = read_record(job.out / EVAL_RECORD)
            per_seed[job.row][job.seed] = rec["metrics"]
        else:  # only its timings are read here
            rec = json.loads((job.out / RECORD).read_text())
        t = rec.get("timings") or {}
        spent = sum(float(v) for k, v in t.items() if k.endswith("_s") and k != "logged_train_s" and v is not None)
        seconds[job.stage] = seconds.get(job.stage, 0.0) + spent
    rows = {}
    for r in suite.rows:
        rows[r.name] = {"label": r.label, "seeds": sorted(per_seed[r.name]), "metrics": {}}
        for m, _ in TABLE_METRICS:
            vals = [v[m] for v in per_seed[r.name].values() if m in v]
            if vals:
                rows[r.name]["metrics"][m] = {
                    **mean_sd(vals).to_dict(),
                    "diff_to_baseline": paired_differences(per_seed, suite.baseline, m)[r.name],
                }
    base_rows = rows.get(suite.baseline, {"metrics": {}})["metrics"]
    base_means = {m: (base_rows.get(m) or {}).get("mean") for m, _ in TABLE_METRICS}
    summary = {
        "suite": str(suite.path),
        "preset": suite.preset_name,
        "baseline": suite.baseline,
        "command": command_line(suite, out),
        "rows": rows,
        "complete": all(len(per_seed[r.name]) == len(suite.seeds) for r in suite.rows),
        "jobs_done": sum(j.done for j in jobs),
        "jobs": len(jobs),
        # wall seconds of the finished jobs as their records give them (the last invocation of a
        # resumed training counts only its own steps); under the machine's load at the time
        "recorded_seconds_by_stage": {k: round(v, 1) for k, v in seconds.items()},
        "per_seed": {r: {str(s): m for s, m in v.items()} for r, v in per_seed.items()},
        "power": {"alpha": ALPHA, "power": POWER, "test": "two-sided paired t-test (noncentral t), n - 1 df"},
        "sensitivity": sensitivity(per_seed, suite, base_means),
        "controls": control_results(per_seed, suite),
        "paper_directions": paper_directions(per_seed, suite),
    }
    write_result_json(summary, out / "summary.json", command=f"{summary['command']} --summarize")
    with atomic_path(out / "ablation_table.md", "w") as f:
        f.write(table_markdown(summary))
    _plot(summary, out)
    return summary


def _fmt(stat: dict[str, Any] | None, digits: int = 3, spread: str = "sd") -> str:
    """``mean ± spread`` (spread "sd" for a row over seeds, "se" for a paired difference)."""
    if not stat or stat.get("mean") is None:
        return "–"
    sd = stat.get(spread)
    return f"{stat['mean']:.{digits}f} ± {sd:.{digits}f}" if sd is not None else f"{stat['mean']:.{digits}f}"


def table_markdown(summary: dict[str, Any]) -> str:
    rows = summary["rows"]
    metrics = [m for m, _ in TABLE_METRICS if any(m in r["metrics"] for r in rows.values())]
    higher = dict(TABLE_METRICS)
    total = sum((summary.get("recorded_seconds_by_stage") or {}).values())
    lines = [
        f"# Ablation ({summary['preset']} preset)",
        "",
        f"Regenerate: `{summary['command']}`",
        "",
        f"Jobs finished: {summary.get('jobs_done')} of {summary.get('jobs')}; recorded compute "
        f"{total / 60:.0f} min ({', '.join(f'{k} {v / 60:.0f}' for k, v in (summary.get('recorded_seconds_by_stage') or {}).items())} min).",
        "",
        "Each cell: mean ± sample sd over seeds (n seeds in the header of each row). "
        f"Second table: difference to row {summary['baseline']} paired by seed, as {PAIRED_DESCRIPTION}.",
        "AR columns are held-out next-token figures; `ar_ce_gain_*` = baseline CE − model CE "
        "(nats/token, > 0: better than the code-frequency baseline).",
        "",
    ]
    groups = (
        ("AR model, held-out next-token", [m for m in metrics if m.startswith("ar_")]),
        ("Tokenizer and generator, held-out images", [m for m in metrics if not m.startswith("ar_")]),
    )
    for group, ms in groups:
        if not ms:
            continue
        for title, key in (("per row", None), (f"paired difference to {summary['baseline']}", "diff_to_baseline")):
            lines += [
                f"## {group}: {title}",
                "",
                "| row | n | " + " | ".join(f"{m} ({'↑' if higher[m] else '↓'})" for m in ms) + " |",
                "|---|---|" + "---|" * len(ms),
            ]
            for name, r in rows.items():
                cells = []
                for m in ms:
                    stat = r["metrics"].get(m)
                    digits = _digits(m)
                    cell = _fmt(
                        stat if key is None or stat is None else stat[key], digits, "sd" if key is None else "se"
                    )
                    if (
                        key is not None
                        and stat is not None
                        and stat[key].get("mde") is not None
                        and name != summary["baseline"]
                    ):
                        cell += f" (MDE {stat[key]['mde']:.{digits}f})"
                    cells.append(cell)
                lines.append(f"| {name}: {r['label']} | {len(r['seeds'])} | " + " | ".join(cells) + " |")
            lines.append("")
    lines += _sensitivity_lines(summary) + _control_lines(summary) + paper_effects.lines(summary)
    return "\n".join(lines)


def _digits(metric: str) -> int:
    return 4 if metric in ("kid", "prec", "recall", "ssim") else 3


def _sensitivity_lines(summary: dict[str, Any]) -> list[str]:
    sens = summary.get("sensitivity") or {}
    if not sens:
        return []
    power = summary.get("power") or {}
    n = next(iter(sens.values()))["seeds"]
    lines = [
        f"## Sensitivity: minimum detectable effect at {n} paired seeds",
        "",
        f"MDE: the smallest |paired difference| a {power.get('test', 'paired t-test')} at alpha "
        f"{power.get('alpha')} detects with power {power.get('power')}, from the sd of the paired differences "
        f"to {summary['baseline']} pooled over the non-control rows (rows sharing a stage count once). The "
        "MDE beside each difference above uses that row's own sd. Relative: MDE / |baseline mean|. "
        "Seeds needed: for the reference effect (the paper's, relative to the baseline mean) at the pooled sd.",
        "",
        "| metric | pooled sd of paired diffs | df | MDE | MDE relative | reference effect (relative) | seeds needed |",
        "|---|---|---|---|---|---|---|",
    ]
    for m, e in sens.items():
        d = _digits(m)
        rel = f"{e['mde_relative']:.1%}" if e.get("mde_relative") is not None else "–"
        ref = (
            f"{e['reference_effect']:+.{d}f} ({e['reference_effect_relative']:+.0%})"
            if e.get("reference_effect") is not None
            else "–"
        )
        need = e.get("seeds_needed_for_reference")
        need_s = "–" if "reference_effect" not in e else (str(need) if need is not None else "> 10000")
        lines.append(f"| {m} | {e['sd_pooled']:.{d}f} | {e['df']} | {e['mde']:.{d}f} | {rel} | {ref} | {need_s} |")
    return lines + [""]


def _control_lines(summary: dict[str, Any]) -> list[str]:
    controls = summary.get("controls") or []
    if not controls:
        return []
    lines = [
        "## Positive controls",
        "",
        "Variants whose effect is known by construction, run through the same jobs; each paired with the row "
        "it changes. Detected: the 95 % t interval of the paired difference excludes 0 on the expected side.",
        "",
        "| control | vs | metric | expected | paired diff (mean ± SE) | 95 % interval | MDE | detected |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for c in controls:
        d = _digits(c["metric"])
        iv = c.get("interval95")
        iv_s = f"[{iv[0]:.{d}f}, {iv[1]:.{d}f}]" if iv else "–"
        mde = f"{c['mde']:.{d}f}" if c.get("mde") is not None else "–"
        det = {True: "yes", False: "**no**", None: "– (under 2 seeds)"}[c.get("detected")]
        det = "**no: opposite direction**" if c.get("opposite") else det
        lines.append(
            f"| {c['row']}: {c['label']} | {c['against']} | {c['metric']} | {c['expected']} | "
            f"{_fmt(c, d, 'se')} | {iv_s} | {mde} | {det} |"
        )
    return lines + [""]


def _plot(summary: dict[str, Any], out: Path) -> None:
    """Bars of the mean with sd error bars for the headline metrics, and the paired differences."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from harness.report.plots import save

    metrics = [
        m
        for m in ("ar_acc", "ar_ce_gain_positional", "codebook_perplexity", "rfid", "psnr", "fid")
        if any(m in r["metrics"] for r in summary["rows"].values())
    ]
    if not metrics:
        return
    names = list(summary["rows"])
    controls = {c["row"] for c in summary.get("controls") or []}
    panel_w = max(3.3, 0.3 * len(names))  # room for one tick label per row
    fig, axes = plt.subplots(2, len(metrics), figsize=(panel_w * len(metrics), 6.8), squeeze=False)
    for j, m in enumerate(metrics):
        for i, key in enumerate((None, "diff_to_baseline")):
            ax = axes[i][j]
            stats = [summary["rows"][n]["metrics"].get(m) for n in names]
            stats = [None if s is None else (s if key is None else s[key]) for s in stats]
            means = [np.nan if s is None or s["mean"] is None else s["mean"] for s in stats]
            spread = "sd" if key is None else "se"  # rows: sd over seeds; differences: paired SE
            sds = [np.nan if s is None or s.get(spread) is None else s[spread] for s in stats]
            xs = np.arange(len(names))
            ax.bar(xs, means, color=[f"C{k}" for k in range(len(names))])
            ax.errorbar(xs, means, yerr=sds, fmt="none", ecolor="black", capsize=3)
            ax.set_xticks(xs, names, fontsize=7, rotation=60, ha="right", rotation_mode="anchor")
            ax.axhline(0, color="0.5", lw=0.6)
            if key is not None:
                _fit_rows_not_controls(ax, means, sds, [n in controls for n in names])
            arrow = "↑" if dict(TABLE_METRICS)[m] else "↓"
            ax.set_title(f"{m} ({arrow})" if key is None else f"{m} − {summary['baseline']} (paired)", fontsize=8)
    n = max(len(r["seeds"]) for r in summary["rows"].values())
    fig.suptitle(
        f"Ablation, {summary['preset']} preset, {n} paired seeds: rows mean ± sd; differences mean ± paired SE",
        fontsize=10,
    )
    fig.tight_layout()
    save(fig, out / "ablation_bars")


def _fit_rows_not_controls(ax, means, spreads, is_control) -> None:
    """A difference panel's y range fits the rows' bars, not a control's: a control built to move a metric
    far (the half-error control's rFID, -257 against rows within +-20) would flatten every row's bar. A
    control bar ending more than twice the rows' span beyond them is cut at the panel's edge and labelled
    with its value; the others stay whole."""

    def ends(pick):
        return [
            (m - (sd if np.isfinite(sd) else 0.0), m + (sd if np.isfinite(sd) else 0.0))
            for m, sd, c in zip(means, spreads, is_control)
            if pick(c) and np.isfinite(m)
        ]

    rows = ends(lambda c: not c)
    if not rows:
        return
    lo, hi = min(0.0, *(e[0] for e in rows)), max(0.0, *(e[1] for e in rows))
    reach = (lo - 2 * (hi - lo), hi + 2 * (hi - lo))
    whole = [e for e in ends(bool) if reach[0] <= (e[0] + e[1]) / 2 <= reach[1]]  # by the bar, not its error bar
    lo, hi = min([lo, *(e[0] for e in whole)]), max([hi, *(e[1] for e in whole)])
    cut = [(x, m) for x, (m, c) in enumerate(zip(means, is_control)) if c and np.isfinite(m) and not lo <= m <= hi]
    if not cut:
        return
    pad = 0.1 * (hi - lo) or 1.0
    ax.set_ylim(lo - pad, hi + pad)
    for x, m in cut:
        top = m > hi
        ax.annotate(
            f"{m:+.3g}",
            (x, hi + pad if top else lo - pad),
            ha="center",
            va="top" if top else "bottom",
            fontsize=6,
            rotation=90,
        )


def print_summary(summary: dict[str, Any], log=print) -> None:
    log(table_markdown(summary))
    if not summary.get("complete"):
        log("incomplete: rerun the same command to finish the missing rows/seeds (done folders are skipped)")

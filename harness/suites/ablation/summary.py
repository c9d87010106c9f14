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
from harness.runs.records import read_record, write_result_json
from harness.suites.ablation.planning import EVAL_RECORD, RECORD, command_line, plan
from harness.suites.ablation.suite import Suite

# (metric, higher is better) in table order; names follow the report's record fields where they exist
TABLE_METRICS = (
    ("ar_acc", True),
    ("ar_ce", False),
    ("ar_ce_gain_unigram", True),
    ("ar_ce_gain_positional", True),
    ("ar_acc_prefix", True),
    ("ar_acc_first_row", True),
    ("ar_acc_rest", True),
    ("ar_ce_gain_positional_prefix", True),
    ("ar_ce_gain_positional_first_row", True),
    ("ar_ce_gain_positional_rest", True),
    ("rfid", False),
    ("psnr", True),
    ("ssim", True),
    ("codebook_usage", True),
    ("codebook_perplexity", True),
    ("fid", False),
    ("kid", False),
    ("prec", True),
    ("recall", True),
)


def paired_differences(
    per_seed: dict[str, dict[int, dict[str, float]]], baseline: str, metric: str
) -> dict[str, dict[str, Any]]:
    """Row minus baseline on the seeds both have, per seed, summarised by the project's one paired
    statistic (``harness.report.paired``): mean ± paired SE, with the sd of the differences kept too."""
    out = {}
    base = per_seed.get(baseline, {})
    for row, seeds in per_seed.items():
        common = sorted(s for s in seeds if s in base and metric in seeds[s] and metric in base[s])
        d = paired_difference(seeds[s][metric] - base[s][metric] for s in common)
        out[row] = {**d.to_dict(), "seeds": common}
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
                    cells.append(
                        _fmt(
                            stat if key is None or stat is None else stat[key],
                            4 if m in ("kid", "prec", "recall", "ssim") else 3,
                            "sd" if key is None else "se",
                        )
                    )
                lines.append(f"| {name}: {r['label']} | {len(r['seeds'])} | " + " | ".join(cells) + " |")
            lines.append("")
    return "\n".join(lines)


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
    fig, axes = plt.subplots(2, len(metrics), figsize=(3.3 * len(metrics), 6.4), squeeze=False)
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
            ax.set_xticks(xs, names, fontsize=7, rotation=30)
            ax.axhline(0, color="0.5", lw=0.6)
            arrow = "↑" if dict(TABLE_METRICS)[m] else "↓"
            ax.set_title(f"{m} ({arrow})" if key is None else f"{m} − {summary['baseline']} (paired)", fontsize=8)
    n = max(len(r["seeds"]) for r in summary["rows"].values())
    fig.suptitle(
        f"Ablation, {summary['preset']} preset, {n} paired seeds: rows mean ± sd; differences mean ± paired SE",
        fontsize=10,
    )
    fig.tight_layout()
    save(fig, out / "ablation_bars")


def print_summary(summary: dict[str, Any], log=print) -> None:
    log(table_markdown(summary))
    if not summary.get("complete"):
        log("incomplete: rerun the same command to finish the missing rows/seeds (done folders are skipped)")

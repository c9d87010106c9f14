"""Report figures from the canonical record frame (``harness.report.collect.frame``), PNG and SVG.

Each figure reads without the code: axis labels with units, a legend where several series share
axes, a title, and a caption naming the hardware, protocol and sample counts behind the points.
Each plot function returns a Figure, or None when the records hold too little for that plot
(with the reason in ``SKIPPED``-style strings from ``why_not``). ``save`` writes byte-identical
files for identical inputs (fixed SVG hash salt, no dates or software versions in the metadata).
"""

from __future__ import annotations

import math
import textwrap
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from harness.core.io import write_bytes_atomic  # noqa: E402
from harness.core.stats import mean_sd  # noqa: E402
from harness.report.fields import METRIC_TITLES  # noqa: E402

FIGSIZE = (7.0, 4.8)
_RC = {
    "svg.hashsalt": "alitok-bench",
    "svg.fonttype": "path",
    "font.family": "DejaVu Sans",
    "font.size": 9,
    "axes.grid": True,
    "grid.alpha": 0.3,
}


def _ok(v) -> bool:
    return v is not None and not (isinstance(v, float) and math.isnan(v))


def _rows(df, *cols):
    """Rows having every column in ``cols``."""
    if df.empty or any(c not in df for c in cols):
        return df.iloc[0:0]
    mask = np.ones(len(df), bool)
    for c in cols:
        mask &= np.array([_ok(v) for v in df[c]])
    return df[mask]


def caption(df) -> str:
    """Hardware, protocol, N and comparability of the rows a figure shows."""

    def uniq(col):
        vals = sorted({str(v) for v in df[col] if _ok(v)}) if col in df else []
        return ", ".join(vals) if vals else "not recorded"

    ns = sorted({int(v) for v in df["n"] if _ok(v)}) if "n" in df else []
    comparable = int(df["paper_comparable"].sum()) if "paper_comparable" in df else 0
    text = (
        f"Hardware: {uniq('hardware')}. Protocol: {uniq('protocol')}"
        + (f", N = {', '.join(map(str, ns))}" if ns else "")
        + f". Paper-comparable rows: {comparable} of {len(df)}."
    )
    return text


def _figure(ncols: int = 1, size=FIGSIZE):
    with plt.rc_context(_RC):
        fig, axes = plt.subplots(1, ncols, figsize=size, squeeze=False)
    for ax in axes[0]:
        ax.grid(True, alpha=0.3)
    return fig, list(axes[0])


def _finish(fig, title: str, text: str):
    fig.suptitle(title, fontsize=11)
    wrapped = "\n".join(textwrap.wrap(text, 120))
    n_lines = wrapped.count("\n") + 1
    fig.tight_layout(rect=(0, 0.035 * n_lines + 0.02, 1, 0.95))
    fig.text(0.01, 0.01, wrapped, fontsize=7, va="bottom", ha="left", color="0.25")
    return fig


def _err(df, col):
    unc = df.get(f"{col}_unc")
    if unc is None or not any(_ok(v) for v in unc):
        return None
    return np.array([float(v) if _ok(v) else 0.0 for v in unc])


def pareto_front(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Indices of points not dominated when x is maximised and y minimised, by increasing x."""
    order = sorted(range(len(x)), key=lambda i: (-x[i], y[i]))
    front, best = [], math.inf
    for i in order:
        if y[i] < best:
            front.append(i)
            best = y[i]
    return np.array(sorted(front, key=lambda i: x[i]), dtype=int)


def fid_vs_speed(df):
    d = _rows(df, "fid", "images_per_s")
    if len(d) < 1:
        return None
    fig, (ax,) = _figure()
    x, y = d["images_per_s"].to_numpy(float), d["fid"].to_numpy(float)
    ax.errorbar(
        x,
        y,
        yerr=_err(d, "fid"),
        xerr=_err(d, "images_per_s"),
        fmt="o",
        color="C0",
        capsize=3,
        label="run (± sd where measured)",
    )
    for xi, yi, lab in zip(x, y, d["label"]):
        ax.annotate(str(lab), (xi, yi), textcoords="offset points", xytext=(5, 4), fontsize=8)
    f = pareto_front(x, y)
    ax.plot(x[f], y[f], "--", color="C3", label="Pareto front (faster and lower FID)")
    ax.set_xscale("log")
    ax.set_xlabel("throughput (images/s, log scale; class label to uint8 pixels)")
    ax.set_ylabel("FID (lower is better)")
    ax.legend(loc="best", fontsize=8)
    return _finish(fig, "FID against sampling speed", caption(d))


def _series(d, key="model"):
    names = [str(v) if _ok(v) else str(lab) for v, lab in zip(d[key], d["label"])]
    return sorted(set(names)), np.array(names)


def _by_scale(sub, metric):
    """Mean per guidance scale over a series' records (seeds); error = sd across them, or the record's sd."""
    xs, ys, es = [], [], []
    for g in sorted({float(v) for v in sub["guidance_scale"]}):
        rows = sub[(sub["guidance_scale"] == g) & sub[metric].notna()]
        if rows.empty:
            continue
        s = mean_sd(rows[metric].to_numpy(float))
        unc = rows[f"{metric}_unc"].to_numpy()
        xs.append(g)
        ys.append(s.mean)
        es.append(s.sd if s.sd is not None else (float(unc[0]) if _ok(unc[0]) else 0.0))
    return np.array(xs), np.array(ys), (np.array(es) if any(es) else None)


def guidance_sweep(df):
    d = _rows(df, "guidance_scale", "fid")
    if len(d) < 2:
        return None
    groups, names = _series(d)
    if not any(d[names == g]["guidance_scale"].nunique() >= 2 for g in groups):
        return None  # one scale per model is a comparison of models, not a sweep
    right = [m for m in ("is",) if d[m].notna().any()] or [m for m in ("prec", "recall") if d[m].notna().any()]
    fig, axes = _figure(2 if right else 1, size=(10.0, 4.6) if right else FIGSIZE)
    groups, names = _series(d)
    for gi, g in enumerate(groups):
        sub = d[names == g]
        x, y, e = _by_scale(sub, "fid")
        axes[0].errorbar(x, y, yerr=e, marker="o", capsize=3, color=f"C{gi}", label=g)
        for mi, m in enumerate(right):
            x, y, e = _by_scale(sub, m)
            axes[1].errorbar(
                x,
                y,
                yerr=e,
                marker="os^"[mi],
                capsize=3,
                color=f"C{gi}",
                linestyle="-" if mi == 0 else ":",
                label=f"{g}: {METRIC_TITLES[m]}" if len(right) > 1 else g,
            )
    axes[0].set_xlabel("guidance scale (CFG, final value of the schedule)")
    axes[0].set_ylabel("FID (lower is better)")
    axes[0].legend(fontsize=8)
    if right:
        axes[1].set_xlabel("guidance scale (CFG, final value of the schedule)")
        axes[1].set_ylabel(" / ".join(METRIC_TITLES[m] for m in right) + " (higher is better)")
        axes[1].legend(fontsize=8)
    return _finish(
        fig,
        "Quality against guidance scale",
        "Points: mean over a model's records at one scale; error bars: sd across seeds (or the record's sd). "
        + caption(d),
    )


def precision_recall(df):
    d = _rows(df, "prec", "recall")
    if len(d) < 1:
        return None
    fig, (ax,) = _figure()
    ax.errorbar(
        d["recall"],
        d["prec"],
        xerr=_err(d, "recall"),
        yerr=_err(d, "prec"),
        fmt="o",
        capsize=3,
        label="run (k = 3 improved precision/recall)",
    )
    for xi, yi, lab in zip(d["recall"], d["prec"], d["label"]):
        ax.annotate(str(lab), (xi, yi), textcoords="offset points", xytext=(5, 4), fontsize=8)
    ax.set_xlabel("recall (fraction of reference manifold covered, higher is better)")
    ax.set_ylabel("precision (fraction of samples on the reference manifold)")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.legend(fontsize=8)
    return _finish(fig, "Precision against recall", caption(d))


def speed_vs_batch(df):
    d = _rows(df, "batch_size", "images_per_s")
    if len(d) < 2:
        return None
    fig, (ax,) = _figure()
    groups, names = _series(d)
    for gi, g in enumerate(groups):
        sub = d[names == g].sort_values("batch_size")
        ax.errorbar(
            sub["batch_size"],
            sub["images_per_s"],
            yerr=_err(sub, "images_per_s"),
            marker="o",
            capsize=3,
            color=f"C{gi}",
            label=g,
        )
    ax.set_xscale("log", base=2)
    ticks = sorted({int(v) for v in d["batch_size"]})
    ax.set_xticks(ticks, [str(t) for t in ticks])
    ax.minorticks_off()
    ax.set_xlabel("batch size (images per forward pass, log2 scale)")
    ax.set_ylabel("throughput (images/s)")
    ax.legend(fontsize=8)
    return _finish(fig, "Throughput against batch size", caption(d))


ABLATION_METRICS = ("fid", "rfid", "ar_acc", "prec", "recall", "psnr")


def ablation_stats(df, metric: str):
    """(group, mean, sd, n) per variant (label where no variant): sd across a group's records when it has
    several (seeds), else the record's own uncertainty, else None."""
    d = _rows(df, metric)
    groups = [str(v) if _ok(v) else str(lab) for v, lab in zip(d["variant"], d["label"])]
    out = []
    for g in sorted(set(groups)):
        s = mean_sd(d[metric].to_numpy(float)[np.array(groups) == g])
        sd = s.sd
        if sd is None:
            unc = d[f"{metric}_unc"].to_numpy()[np.array(groups) == g][0]
            sd = float(unc) if _ok(unc) else None
        out.append((g, s.mean, sd, s.n))
    return out


def ablation_bars(df):
    d = df[[_ok(v) for v in df["variant"]]] if "variant" in df else df.iloc[0:0]
    metrics = [m for m in ABLATION_METRICS if m in d and d[m].notna().any()][:3]
    if d.empty or not metrics:
        return None
    fig, axes = _figure(len(metrics), size=(4.2 * len(metrics) + 1, 4.6))
    for ax, m in zip(axes, metrics):
        stats = ablation_stats(d, m)
        xs = np.arange(len(stats))
        ax.bar(xs, [s[1] for s in stats], color=[f"C{i}" for i in range(len(stats))])
        has_sd = [i for i, s in enumerate(stats) if s[2] is not None]
        if has_sd:  # no bar at all where nothing measured a spread (a zero bar would claim one)
            ax.errorbar(
                xs[has_sd],
                [stats[i][1] for i in has_sd],
                yerr=[stats[i][2] for i in has_sd],
                fmt="none",
                ecolor="black",
                capsize=4,
            )
        ax.set_xticks(xs, [f"{s[0]}\n(n={s[3]}{'' if s[2] is not None else ', no sd'})" for s in stats], fontsize=8)
        better = "higher" if m in ("ar_acc", "prec", "recall", "psnr") else "lower"
        ax.set_ylabel(f"{METRIC_TITLES[m]} ({better} is better)")
        ax.set_xlabel("variant (n = records)")
    return _finish(
        fig,
        "Ablation: one switch per variant",
        "Bars: mean over a variant's records; error bars: sd across its seeds (n > 1) or the record's "
        "own sd. " + caption(d),
    )


def _grid_images(npz_path: Path, max_classes: int, per_class: int) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """The first ``per_class`` images of the first ``max_classes`` classes, read in batches (never the
    whole file, never a pickle), with their labels and the classes shown."""
    from harness.core.errors import InputFileError
    from harness.data import npz as npz_io

    n = npz_io.check_samples_header(npz_path)[0]  # uint8 [N,H,W,3], from the header alone
    labels = npz_io.load_labels_npz(npz_path, expected_n=n)
    labels = np.zeros(n, np.int64) if labels is None else labels
    if labels.size and labels.min() < 0:
        bad = int(np.flatnonzero(labels < 0)[0])
        raise InputFileError(npz_path, f"labels[{bad}] is {int(labels[bad])}; class labels are >= 0")
    classes = sorted(set(labels.tolist()))[:max_classes]
    keep = np.sort(np.concatenate([np.flatnonzero(labels == c)[:per_class] for c in classes])) if classes else []
    rows, start = [], 0
    for batch in npz_io.iter_npz_batches(npz_path, 256) if len(keep) else ():
        rows += [np.array(batch[i - start]) for i in keep if start <= i < start + len(batch)]
        start += len(batch)
        if start > keep[-1]:
            break
    images = np.stack(rows) if rows else np.zeros((0, 1, 1, 3), np.uint8)
    return images, labels[keep] if len(keep) else labels[:0], classes


def sample_grid(npz_path: str | Path, title: str, class_names=None, max_classes: int = 8, per_class: int = 8):
    """Rows = classes (named on the left), columns = the first samples of that class."""
    images, labels, classes = _grid_images(Path(npz_path), max_classes, per_class)
    if not classes:
        return None
    per_class = min(per_class, max(int(np.sum(labels == c)) for c in classes))
    h = 1.1
    with plt.rc_context(_RC):
        fig, axes = plt.subplots(
            len(classes), per_class, figsize=(per_class * h + 1.6, len(classes) * h + 1.0), squeeze=False
        )
    for r, c in enumerate(classes):
        idx = np.flatnonzero(labels == c)[:per_class]
        for k in range(per_class):
            ax = axes[r][k]
            ax.set_axis_off()
            if k < len(idx):
                ax.imshow(images[idx[k]], interpolation="nearest")
        name = class_names[c] if class_names is not None and c < len(class_names) else f"class {c}"
        axes[r][0].text(-0.1, 0.5, name, transform=axes[r][0].transAxes, ha="right", va="center", fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.subplots_adjust(
        left=1.5 / (per_class * h + 1.6),
        right=0.99,
        top=1 - 0.6 / (len(classes) * h + 1.0),
        bottom=0.35 / (len(classes) * h + 1.0),
        wspace=0.05,
        hspace=0.05,
    )
    fig.text(
        0.01,
        0.01,
        f"{images.shape[1]}x{images.shape[2]} px samples from {Path(npz_path).name}; "
        f"first {per_class} of each class, {len(classes)} classes",
        fontsize=7,
        color="0.25",
    )
    return fig


def save(fig, stem: str | Path) -> list[Path]:
    """``stem.png`` and ``stem.svg``, byte-identical for identical figures; closes the figure."""
    import io

    stem = Path(stem)
    written = []
    with plt.rc_context(_RC):
        for ext, meta in (("png", {"Software": None}), ("svg", {"Date": None, "Creator": "alitok-bench report"})):
            buf = io.BytesIO()
            fig.savefig(buf, format=ext, dpi=150, metadata=meta)
            path = stem.with_suffix(f".{ext}")
            write_bytes_atomic(path, buf.getvalue())
            written.append(path)
    plt.close(fig)
    return written


PLOTS = {
    "fid_vs_speed": (fid_vs_speed, "needs records with both FID and images/s"),
    "guidance_sweep": (guidance_sweep, "needs a model with records at >= 2 guidance scales (a sweep)"),
    "precision_recall": (precision_recall, "needs records with precision and recall"),
    "speed_vs_batch": (speed_vs_batch, "needs >= 2 records with a batch size and images/s"),
    "ablation_bars": (ablation_bars, "needs records with a variant and a metric"),
}

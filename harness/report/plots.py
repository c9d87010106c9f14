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


def _finish(fig, title: str, text: str, labels=()):
    """Title, caption, layout; then the point labels in ``labels`` (``(ax, x, y, names)`` each), placed once
    the layout has fixed where the points sit on the canvas."""
    fig.suptitle(title, fontsize=11)
    wrapped = "\n".join(textwrap.wrap(text, 120))
    n_lines = wrapped.count("\n") + 1
    fig.tight_layout(rect=(0, 0.035 * n_lines + 0.02, 1, 0.95))
    if any([_turn_ticks(ax) for ax in fig.axes]):  # a list: every axes is checked, not up to the first turned
        fig.tight_layout(rect=(0, 0.035 * n_lines + 0.02, 1, 0.95))
    fig.text(0.01, 0.01, wrapped, fontsize=7, va="bottom", ha="left", color="0.25")
    for ax, x, y, names in labels:
        place_labels(ax, x, y, names)
    return fig


def _tick_boxes(ax, renderer):
    return [t.get_window_extent(renderer) for t in ax.get_xticklabels() if t.get_visible() and t.get_text()]


def _turn_ticks(ax) -> bool:
    """Turn the x tick labels (30, 60, then 90 degrees) until no two touch; True if they were turned."""
    renderer = ax.figure.canvas.get_renderer()

    def touching():
        boxes = _tick_boxes(ax, renderer)
        return any(_overlap(a, b) > 0 for i, a in enumerate(boxes) for b in boxes[i + 1 :])

    if not touching():
        return False
    for angle in (30, 60, 90):
        for t in ax.get_xticklabels():
            t.set_rotation(angle)
            t.set_ha("right" if angle < 90 else "center")
            t.set_rotation_mode("anchor" if angle < 90 else "default")
        if not touching():
            break
    return True


# Candidate offsets (points) of a label from its point: near first, then further out with a leader line.
_RADII = (5, 12, 22, 34, 48, 64, 82, 104)
_ANGLES = (30, 150, -30, -150, 90, -90, 0, 180, 60, 120, -60, -120)


def _overlap(a, b) -> float:
    w = min(a.x1, b.x1) - max(a.x0, b.x0)
    h = min(a.y1, b.y1) - max(a.y0, b.y0)
    return w * h if w > 0 and h > 0 else 0.0


def place_labels(ax, x, y, names, fontsize: float = 8):
    """Annotate each point with its name where the text box overlaps no other label, no point marker and
    stays inside the axes: candidate offsets are tried nearest first (a greedy repel on the renderer's
    own text extents); a label pushed out of its point's neighbourhood gets a leader line. Returns the
    annotations."""
    from matplotlib.transforms import Bbox

    fig = ax.figure
    renderer = fig.canvas.get_renderer()
    inside = ax.get_window_extent(renderer)
    pts = ax.transData.transform(np.column_stack([np.asarray(x, float), np.asarray(y, float)]))
    pad = 4 * fig.dpi / 72  # a marker's half width, in display units
    markers = [Bbox.from_extents(px - pad, py - pad, px + pad, py + pad) for px, py in pts]
    legend = ax.get_legend()
    if legend is not None:  # its place is fixed by now (loc="best" looks at the data, not at labels)
        markers.append(legend.get_window_extent(renderer))
    placed, out = [], []
    # densest points first, so the crowded ones get the near places
    crowd = [sum(np.hypot(*(pts[i] - pts[j])) < 40 for j in range(len(pts))) for i in range(len(pts))]
    for i in sorted(range(len(pts)), key=lambda i: (-crowd[i], i)):
        best = None
        for r in _RADII:
            for a in _ANGLES:
                dx, dy = r * math.cos(math.radians(a)), r * math.sin(math.radians(a))
                ha = "left" if dx > 1 else "right" if dx < -1 else "center"
                va = "bottom" if dy > 1 else "top" if dy < -1 else "center"
                t = ax.annotate(
                    str(names[i]), (x[i], y[i]), xytext=(dx, dy), textcoords="offset points", ha=ha, va=va,
                    fontsize=fontsize,
                )  # fmt: skip
                box = t.get_window_extent(renderer).expanded(1.04, 1.15)
                cost = sum(_overlap(box, b) for b in placed) + sum(_overlap(box, m) for m in markers)
                cost += box.width * box.height - _overlap(box, inside)  # the part outside the axes
                if best is None or cost < best[0]:
                    if best is not None:
                        best[1].remove()
                    best = (cost, t, box, r)
                else:
                    t.remove()
                if cost == 0:
                    break
            if best[0] == 0:
                break
        _, t, box, r = best
        if r > _RADII[1]:
            t.remove()
            t = ax.annotate(
                str(names[i]), (x[i], y[i]), xytext=t.xyann, textcoords="offset points", ha=t.get_ha(),
                va=t.get_va(), fontsize=fontsize, arrowprops={"arrowstyle": "-", "color": "0.5", "lw": 0.6},
            )  # fmt: skip
        placed.append(box)
        out.append(t)
    return out


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


def _plain_log_ticks(axis):
    """Log-axis ticks at 1, 2, 5 x 10^k written as plain numbers (no 3x10^1 labels colliding)."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    axis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    axis.set_minor_formatter(NullFormatter())


def _split_reference(d):
    """(systems, references): reference rows are real images scored as if sampled (the FID floor)."""
    ref = np.array([bool(v) for v in d["reference"]], bool) if "reference" in d else np.zeros(len(d), bool)
    return d[~ref], d[ref]


def _speed_note(d) -> str:
    """How the speeds were measured, where not a repeated benchmark: one unrepeated pass is labelled so."""
    if "speed_basis" not in d:
        return ""
    single = [(str(lab), str(b)) for lab, b in zip(d["label"], d["speed_basis"]) if _ok(b)]
    if not single:
        return ""
    loaded = [str(lab) for lab, v in zip(d["label"], d.get("loaded", [False] * len(d))) if _ok(v) and bool(v)]
    bases = sorted({b for _, b in single})
    if len(bases) == 1:
        text = f"Speeds, not a benchmark: {bases[0]} for every system."
    else:
        text = "Speeds are not a benchmark (" + "; ".join(f"{a}: {b}" for a, b in single) + ")."
    if loaded:
        text += f" Load average above the core count during {', '.join(loaded)}: hollow markers, order not reliable."
    return text + " "


def fid_vs_speed(df):
    """FID against throughput of the systems, with their Pareto front (drawn when >= 2 systems); reference
    rows (real images) are a horizontal floor line with its sd band, and do not stretch the speed axis."""
    d = _rows(df, "fid", "images_per_s")
    systems, refs = _split_reference(d)
    if len(systems) < 1:
        return None
    fig, (ax,) = _figure()
    x, y = systems["images_per_s"].to_numpy(float), systems["fid"].to_numpy(float)
    hollow = np.array([_ok(v) and bool(v) for v in systems.get("loaded", [False] * len(systems))], bool)
    single = "speed_basis" in systems and any(_ok(v) for v in systems["speed_basis"])
    for mask, label, face in (
        (~hollow, "system (± sd where measured)", "C0"),
        (hollow, "system, speed measured under load (load average > cores)", "none"),
    ):
        if mask.any():
            sub = systems[mask]
            ax.errorbar(
                x[mask],
                y[mask],
                yerr=_err(sub, "fid"),
                xerr=_err(sub, "images_per_s"),
                fmt="o",
                color="C0",
                mfc=face,
                capsize=3,
                label=label,
            )
    for _, r in refs.iterrows():
        fid, sd = float(r["fid"]), r.get("fid_unc")
        ax.axhline(fid, color="0.35", ls=":", lw=1.2, label=f"{r['label']}: reference (real images), FID {fid:.1f}")
        if _ok(sd):
            ax.axhspan(fid - float(sd), fid + float(sd), color="0.5", alpha=0.15, lw=0)
    if len(systems) >= 2:
        f = pareto_front(x, y)
        ax.plot(x[f], y[f], "--", color="C3", marker="D", mfc="none", ms=9, label="Pareto front of the systems")
    ax.set_xscale("log")
    lo, hi = x.min(), x.max()
    ax.set_xlim(lo / 1.6, hi * 1.6)  # the systems' range; a reference's speed is not on this axis
    _plain_log_ticks(ax.xaxis)
    what = "one unrepeated pass each" if single else "class label to uint8 pixels"
    ax.set_xlabel(f"throughput (images/s, log scale; {what})")
    ax.set_ylabel("FID (lower is better)")
    ax.legend(loc="best", fontsize=7)
    return _finish(
        fig,
        "FID against sampling speed",
        _speed_note(systems) + caption(d),
        labels=[(ax, x, y, list(systems["label"]))],
    )


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
    systems, refs = _split_reference(d)
    for sub, marker, color, label in (
        (systems, "o", "C0", "system (k = 3 improved precision/recall)"),
        (refs, "s", "0.35", "reference (real images)"),
    ):
        if len(sub):
            ax.errorbar(
                sub["recall"],
                sub["prec"],
                xerr=_err(sub, "recall"),
                yerr=_err(sub, "prec"),
                fmt=marker,
                color=color,
                capsize=3,
                label=label,
            )
    ax.set_xlabel("recall (fraction of reference manifold covered, higher is better)")
    ax.set_ylabel("precision (fraction of samples on the reference manifold)")
    ax.set_xlim(-0.02, 1.02)
    ax.set_ylim(-0.02, 1.02)
    ax.legend(fontsize=8, loc="center right")
    return _finish(
        fig,
        "Precision against recall",
        caption(d),
        labels=[(ax, d["recall"].to_numpy(float), d["prec"].to_numpy(float), list(d["label"]))],
    )


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
    n_variants = len({str(v) for v in d["variant"]})
    fig, axes = _figure(len(metrics), size=(max(4.2, 0.5 * n_variants + 1.2) * len(metrics) + 1, 4.8))
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
        ticks = [
            "\n".join(textwrap.wrap(str(s[0]), 14, break_on_hyphens=True))
            + f"\n(n={s[3]}{'' if s[2] is not None else ', no sd'})"
            for s in stats
        ]
        ax.set_xticks(xs, ticks, fontsize=7)  # long variant names wrapped; _finish turns them if they still touch
        better = "higher" if m in ("ar_acc", "prec", "recall", "psnr") else "lower"
        ax.set_ylabel(f"{METRIC_TITLES[m]} ({better} is better)")
        ax.set_xlabel("variant (n = records)")
    return _finish(
        fig,
        "Ablation: one switch per variant",
        "Bars: mean over a variant's records; error bars: sd across its seeds (n > 1) or the record's "
        "own sd. " + caption(d),
    )


def _grid_images(
    npz_path: Path, max_classes: int, per_class: int
) -> tuple[np.ndarray, np.ndarray, list[int], np.ndarray]:
    """The first ``per_class`` images of the first ``max_classes`` classes, read in batches (never the
    whole file, never a pickle), with their labels, the classes shown and their positions in the file."""
    from harness.core.errors import InputFileError
    from harness.data import npz as npz_io

    n = npz_io.check_samples_header(npz_path)[0]  # uint8 [N,H,W,3], from the header alone
    labels = npz_io.load_labels_npz(npz_path, expected_n=n)
    labels = np.zeros(n, np.int64) if labels is None else labels
    if labels.size and labels.min() < 0:
        bad = int(np.flatnonzero(labels < 0)[0])
        raise InputFileError(npz_path, f"labels[{bad}] is {int(labels[bad])}; class labels are >= 0")
    classes = sorted(set(labels.tolist()))[:max_classes]
    keep = npz_io.first_per_class(labels, max_classes, per_class)
    rows, start = [], 0
    for batch in npz_io.iter_npz_batches(npz_path, 256) if len(keep) else ():
        rows += [np.array(batch[i - start]) for i in keep if start <= i < start + len(batch)]
        start += len(batch)
        if start > keep[-1]:
            break
    images = np.stack(rows) if rows else np.zeros((0, 1, 1, 3), np.uint8)
    return images, labels[keep] if len(keep) else labels[:0], classes, keep


def _originals_for(path: Path, positions: np.ndarray, shape) -> np.ndarray | None:
    """The originals (``harness.metrics.recon_run``'s ``originals.npz``) at ``positions`` of the
    reconstructions file, or None when the file does not hold every one of them at that size."""
    from harness.core.errors import InputFileError
    from harness.data import npz as npz_io

    images = npz_io.load_samples_npz(path)
    with np.load(path, allow_pickle=False) as z:
        if "index" not in z.files:
            raise InputFileError(path, "no 'index' array (positions in the reconstructions file)")
        index = np.asarray(z["index"], np.int64)
    where = {int(p): k for k, p in enumerate(index)}
    if images.shape[1:] != tuple(shape) or any(int(p) not in where for p in positions):
        return None
    return images[[where[int(p)] for p in positions]]


def grid_title(label: str, model: str | None, reconstructions: bool = False, originals: bool = False) -> str:
    """ "alitok-tiny", or "alitok-tiny-tokenizer: originals and reconstructions by alitok-tiny"; the model is
    named only where it differs from the label."""
    if reconstructions:
        what = "originals and reconstructions" if originals else "reconstructions (originals not kept)"
        return f"{label}: {what} by {model or 'a tokenizer not recorded'}"
    return label if not model or model == label else f"{label} ({model})"


def sample_grid(
    npz_path: str | Path,
    label: str,
    model: str | None = None,
    class_names=None,
    max_classes: int = 8,
    per_class: int = 8,
    reconstructions: bool = False,
    originals: str | Path | None = None,
):
    """Rows = classes (named on the left), columns = the first samples of that class. For a tokenizer's
    ``reconstructions`` with ``originals`` (its run's kept real images) each class gets two rows: the
    originals, then their reconstructions."""
    images, labels, classes, positions = _grid_images(Path(npz_path), max_classes, per_class)
    if not classes:
        return None
    real = _originals_for(Path(originals), positions, images.shape[1:]) if originals else None
    title = grid_title(label, model, reconstructions, real is not None)
    per_class = min(per_class, max(int(np.sum(labels == c)) for c in classes))
    kinds = ("original", "reconstruction") if real is not None else (None,)
    n_rows = len(classes) * len(kinds)
    h = 1.1
    with plt.rc_context(_RC):
        fig, axes = plt.subplots(n_rows, per_class, figsize=(per_class * h + 1.9, n_rows * h + 1.0), squeeze=False)
    for ci, c in enumerate(classes):
        idx = np.flatnonzero(labels == c)[:per_class]
        name = class_names[c] if class_names is not None and c < len(class_names) else f"class {c}"
        for ki, kind in enumerate(kinds):
            r = ci * len(kinds) + ki
            source = real if kind == "original" else images
            for k in range(per_class):
                ax = axes[r][k]
                ax.set_axis_off()
                if k < len(idx):
                    ax.imshow(source[idx[k]], interpolation="nearest")
            text = name if kind is None else f"{name}\n{kind}"
            axes[r][0].text(
                -0.1, 0.5, text, transform=axes[r][0].transAxes, ha="right", va="center", fontsize=8,
                color="0.1" if kind != "original" else "0.35",
            )  # fmt: skip
    fig.suptitle(title, fontsize=10)
    fig.subplots_adjust(
        left=1.8 / (per_class * h + 1.9),
        right=0.99,
        top=1 - 0.6 / (n_rows * h + 1.0),
        bottom=0.35 / (n_rows * h + 1.0),
        wspace=0.05,
        hspace=0.05 if real is None else 0.12,
    )
    what = (
        f"originals (from {Path(originals).name}) above their reconstructions (from {Path(npz_path).name})"
        if real is not None
        else f"{'reconstructions' if reconstructions else 'samples'} from {Path(npz_path).name}"
    )
    fig.text(
        0.01,
        0.01,
        f"{images.shape[1]}x{images.shape[2]} px {what}; first {per_class} of each class, {len(classes)} classes",
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
    "fid_vs_speed": (fid_vs_speed, "needs a system (not a real-data reference row) with both FID and images/s"),
    "guidance_sweep": (guidance_sweep, "needs a model with records at >= 2 guidance scales (a sweep)"),
    "precision_recall": (precision_recall, "needs records with precision and recall"),
    "speed_vs_batch": (speed_vs_batch, "needs >= 2 records with a batch size and images/s"),
    "ablation_bars": (ablation_bars, "needs records with a variant and a metric"),
}

"""What the report's plots draw, read back from the artists (not only that a file was written).

The demo records committed under results/demo are the case the plots failed on: five systems at
precision and recall near 0, and a real-data row at 60,000 images/s and FID 63 that dominated every
system. Label boxes are measured by the figure's own renderer, after the layout the saved file uses.
"""

import json
from pathlib import Path

import numpy as np
import pytest
from matplotlib.text import Annotation, Text

from harness.report import build, plots
from harness.report.collect import collect, frame, merge_by_label
from harness.runs.records import RunRecord

DEMO = Path(__file__).resolve().parents[1] / "results" / "demo"


@pytest.fixture(scope="module")
def demo():
    return merge_by_label(frame(collect([DEMO])))


def _point_labels(ax):
    return [t for t in ax.texts if isinstance(t, Annotation)]


def _disjoint(boxes) -> list[tuple[int, int]]:
    """Pairs of boxes that share area (touching edges allowed)."""
    return [
        (i, j)
        for i, a in enumerate(boxes)
        for j, b in enumerate(boxes)
        if i < j and min(a.x1, b.x1) > max(a.x0, b.x0) and min(a.y1, b.y1) > max(a.y0, b.y0)
    ]


def _check_labels(fig, ax, expected):
    fig.canvas.draw()  # text positions as saved (an annotation resolves its offset when drawn)
    renderer = fig.canvas.get_renderer()
    texts = _point_labels(ax)
    assert sorted(t.get_text() for t in texts) == sorted(expected)
    boxes = [Text.get_window_extent(t, renderer) for t in texts]  # the text alone, not its leader line
    clashes = _disjoint(boxes)
    assert not clashes, [(texts[i].get_text(), texts[j].get_text()) for i, j in clashes]
    inside = ax.get_window_extent(renderer)
    for t, b in zip(texts, boxes):  # every label readable inside the axes
        assert inside.x0 <= b.x0 and b.x1 <= inside.x1 and inside.y0 <= b.y0 and b.y1 <= inside.y1, t.get_text()


def test_precision_recall_labels_do_not_overlap(demo):
    d = demo[demo["prec"].notna()]
    assert (d["prec"] < 0.02).sum() >= 5  # the crowded corner this test is about
    fig = plots.precision_recall(demo)
    _check_labels(fig, fig.axes[0], list(d["label"]))


def test_fid_vs_speed_front_over_systems_reference_as_a_line(demo):
    fig = plots.fid_vs_speed(demo)
    ax = fig.axes[0]
    d = demo[demo["fid"].notna() & demo["images_per_s"].notna()]
    ref = d[d["label"] == "real-data"]
    systems = d[d["label"] != "real-data"]
    assert len(ref) == 1 and len(systems) >= 2
    # the front is drawn, through exactly the non-dominated systems (brute force over the systems alone)
    x, y = systems["images_per_s"].to_numpy(float), systems["fid"].to_numpy(float)
    front = [
        i
        for i in range(len(x))
        if not any(x[j] >= x[i] and y[j] <= y[i] and (x[j], y[j]) != (x[i], y[i]) for j in range(len(x)))
    ]
    lines = [ln for ln in ax.get_lines() if ln.get_label().startswith("Pareto front")]
    assert len(lines) == 1
    fx, fy = lines[0].get_data()
    assert sorted(zip(fx, fy)) == sorted(zip(x[front], y[front]))
    assert len(fx) >= 2
    # the reference is a horizontal line at its FID, not a point, and does not stretch the speed axis
    r_fid, r_speed = float(ref["fid"].iloc[0]), float(ref["images_per_s"].iloc[0])
    assert r_speed not in fx
    assert any(np.allclose(ln.get_ydata(), r_fid) and "reference" in ln.get_label() for ln in ax.get_lines())
    assert ax.get_xlim()[1] < r_speed / 10
    _check_labels(fig, ax, list(systems["label"]))
    # one unrepeated pass per system is said so on the axis (the committed records hold nothing else)
    assert "one unrepeated pass" in ax.get_xlabel()


def test_fid_vs_speed_one_system_draws_no_front(demo):
    one = demo[demo["label"].isin(["real-data", "alitok-tiny"])]
    ax = plots.fid_vs_speed(one).axes[0]
    assert not [ln for ln in ax.get_lines() if ln.get_label().startswith("Pareto front")]


def _record(folder: Path, label: str, model: str, kind: str, npz: Path, originals: Path | None = None) -> None:
    rec = RunRecord(
        kind=kind,
        model={"name": model},
        spec={"protocol": {"name": "demo"}},
        samples={"n": 24, "npz": str(npz), **({"originals_npz": str(originals)} if originals else {})},
        metrics={"rfid": 10.0} if kind == "recon" else {"fid": 10.0},
        run_id=f"run-{label}",
        created_at="2026-01-01T00:00:00+00:00",
    ).to_dict()
    rec["label"] = label
    (folder / f"{kind}_record.json").write_text(json.dumps(rec))


def test_tokenizer_grid_shows_originals_and_titles_do_not_repeat(tmp_path, monkeypatch):
    from harness.data.npz import first_per_class, save_samples_npz

    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(3), 8)
    real = rng.integers(0, 256, (24, 8, 8, 3), dtype=np.uint8)
    recon = 255 - real  # every reconstruction differs from its original
    tok, gen = tmp_path / "res" / "tok-recon", tmp_path / "res" / "gen"
    tok.mkdir(parents=True), gen.mkdir()
    shown = first_per_class(labels, 8, 8)
    save_samples_npz(tok / "reconstructions.npz", recon, labels)
    save_samples_npz(tok / "originals.npz", real[shown], labels[shown], index=shown)
    _record(tok, "tok-recon", "tok", "recon", tok / "reconstructions.npz", tok / "originals.npz")
    save_samples_npz(gen / "samples.npz", real, labels)
    _record(gen, "gen", "gen", "run", gen / "samples.npz")

    figs = {}
    monkeypatch.setattr(plots, "save", lambda fig, stem: figs.setdefault(Path(stem).name, fig) and [])
    build.build_report([tmp_path / "res"], tmp_path / "out", echo=lambda *_: None)

    gen_fig, tok_fig = figs["grid_gen"], figs["grid_tok-recon"]
    assert gen_fig._suptitle.get_text() == "gen"  # not "gen (gen)"
    assert "reconstructions" in tok_fig._suptitle.get_text() and "originals" in tok_fig._suptitle.get_text()
    # rows: per class an originals row, then its reconstructions; the pixels are the files' own
    rows = {}
    for ax in tok_fig.axes:
        if ax.images:
            rows.setdefault(round(ax.get_position().y0, 4), []).append(ax.images[0].get_array())
    top_down = [np.stack(v) for _, v in sorted(rows.items(), reverse=True)]
    assert len(top_down) == 6
    for c in range(3):
        np.testing.assert_array_equal(top_down[2 * c], real[labels == c])
        np.testing.assert_array_equal(top_down[2 * c + 1], recon[labels == c])
    names = [t.get_text() for ax in tok_fig.axes for t in ax.texts]
    assert [n.split("\n")[1] for n in names[:2]] == ["original", "reconstruction"]


def test_ablation_tick_labels_do_not_overlap():
    import pandas as pd

    variants = [f"tokenizer-variant-{w}-decoder" for w in ("causal", "bidirectional", "no-buffer", "two-stage")]
    variants += [f"long-name-ablation-{i}" for i in range(5)]
    df = pd.DataFrame(
        {
            "label": variants,
            "variant": variants,
            "fid": np.linspace(10, 30, len(variants)),
            "fid_unc": 0.5,
            "n": 220,
            "hardware": "cpu",
            "protocol": "demo",
            "paper_comparable": False,
        }
    )
    df["rfid"], df["rfid_unc"] = np.linspace(1, 3, len(variants)), np.nan  # a second panel, with no sd
    fig = plots.ablation_bars(df)
    assert len(fig.axes) == 2
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    for ax in fig.axes:
        ticks = [t for t in ax.get_xticklabels() if t.get_text()]
        assert len(ticks) == len(variants)
        boxes = [t.get_window_extent(renderer) for t in ticks]
        assert not _disjoint(boxes), [(ticks[i].get_text(), ticks[j].get_text()) for i, j in _disjoint(boxes)]

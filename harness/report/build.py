"""Write a whole report (tables, plots, sample grids) from records alone into one folder."""
from __future__ import annotations

import re
from pathlib import Path

from harness.io import write_text_atomic
from harness.report import plots, tables
from harness.report.collect import collect, frame, merge_by_label


def _class_names(protocol):
    if protocol == "demo":
        from harness.data.embedded import CLASSES

        return CLASSES
    return None


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._=+-]+", "_", name).strip("_") or "run"


def _npz(df_row) -> Path | None:
    p = df_row["samples_npz"]
    if not isinstance(p, str) or not p:  # pandas stores a missing path as NaN
        return None
    p = Path(p)
    if p.is_file():
        return p
    near = Path(df_row["record_path"] or ".").parent / p.name  # a results folder copied elsewhere
    return near if near.is_file() else None


def build_report(results: list[str | Path], out: str | Path, title: str = "Results", grids: bool = True,
                 echo=print) -> dict[str, list[str]]:
    """Returns ``{"written": [...], "skipped": ["name: why", ...]}``."""
    out = Path(out)
    df = frame(collect(results))
    written, skipped = [], []
    for name, text in (("results.md", tables.to_markdown(df, title)), ("results.csv", tables.to_csv(df)),
                       ("results.tex", tables.to_latex(df, title))):
        write_text_atomic(out / name, text)
        written.append(name)
    merged = merge_by_label(df)
    figures = []
    for name, (fn, need) in plots.PLOTS.items():
        fig = fn(merged) if not merged.empty else None
        if fig is None:
            skipped.append(f"{name}: {need}")
            continue
        written += [p.name for p in plots.save(fig, out / name)]
        figures.append(name)
    if grids and not df.empty:
        seen = set()
        for _, row in df.iterrows():
            npz = _npz(row)
            if npz is None or npz.resolve() in seen:
                if isinstance(row["samples_npz"], str) and npz is None:
                    skipped.append(f"grid {row['label']}: samples file {row['samples_npz']} not found")
                continue
            seen.add(npz.resolve())
            fig = plots.sample_grid(npz, f"{row['label']} ({row['model'] or 'model not recorded'})",
                                    _class_names(row["protocol"]))
            if fig is not None:
                name = f"grid_{_safe(str(row['label']))}"
                written += [p.name for p in plots.save(fig, out / name)]
                figures.append(name)
    if figures:
        md = (out / "results.md").read_text() + "\n## Figures\n\n" + "".join(f"![{f}]({f}.png)\n" for f in figures)
        write_text_atomic(out / "results.md", md)
    for w in written:
        echo(f"wrote {out / w}")
    for s in skipped:
        echo(f"skipped {s}")
    return {"written": written, "skipped": skipped}

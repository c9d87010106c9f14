"""Write a whole report (tables, plots, sample grids, index.html) from records alone into one folder."""

from __future__ import annotations

import re
from pathlib import Path

from harness.core.io import write_text_atomic
from harness.report import html, plots, tables
from harness.report.collect import collect, frame, merge_by_label


def _class_names(protocol):
    if protocol == "demo":
        from harness.data.embedded import CLASSES

        return CLASSES
    return None


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._=+-]+", "_", name).strip("_") or "run"


def _roots(results: list[str | Path]) -> list[Path]:
    """The folders a report may read sample files from: those named, and the folders of named record files."""
    return [(p if p.is_dir() else p.parent).resolve() for p in map(Path, results)]


def _npz(df_row, roots: list[Path], column: str = "samples_npz") -> tuple[Path | None, str]:
    """The record's samples file (or the file in ``column``), if it lies inside the results given (else None
    and why): a record is data, and its path may name any file on the machine (a copied, edited or hostile
    record)."""
    p = df_row[column]
    if not isinstance(p, str) or not p:  # pandas stores a missing path as NaN
        return None, ""
    p = Path(p)
    near = Path(df_row["record_path"] or ".").parent / p.name  # a results folder copied elsewhere
    outside = False
    for candidate in (p, near):
        if candidate.is_file():
            if any(candidate.resolve().is_relative_to(r) for r in roots):
                return candidate, ""
            outside = True
    return None, (
        f"samples file {p} is outside the results given (not read)" if outside else f"samples file {p} not found"
    )


def build_report(
    results: list[str | Path],
    out: str | Path,
    title: str = "Results",
    grids: bool = True,
    echo=print,
    claims: str | Path | None = None,
) -> dict[str, list[str]]:
    """Tables, plots, grids and ``index.html`` (with the verdicts of the ``claims`` YAML, when given).
    Returns ``{"written": [...], "skipped": ["name: why", ...]}``."""
    out = Path(out)
    records = collect(results)
    df = frame(records)
    written, skipped = [], []
    for name, text in (
        ("results.md", tables.to_markdown(df, title)),
        ("results.csv", tables.to_csv(df)),
        ("results.tex", tables.to_latex(df, title)),
    ):
        write_text_atomic(out / name, text)
        written.append(name)
    merged = merge_by_label(df)
    figures, grid_names = [], []
    for name, (fn, need) in plots.PLOTS.items():
        fig = fn(merged) if not merged.empty else None
        if fig is None:
            skipped.append(f"{name}: {need}")
            continue
        written += [p.name for p in plots.save(fig, out / name)]
        figures.append(name)
    if grids and not df.empty:
        seen, roots = set(), _roots(results)
        for _, row in df.iterrows():
            npz, why = _npz(row, roots)
            if npz is None or npz.resolve() in seen:
                if why:
                    skipped.append(f"grid {row['label']}: {why}")
                continue
            seen.add(npz.resolve())
            recon = row["kind"] == "recon"
            originals = _npz(row, roots, "originals_npz")[0] if recon else None
            fig = plots.sample_grid(
                npz,
                str(row["label"]),
                row["model"] if isinstance(row["model"], str) else None,
                _class_names(row["protocol"]),
                reconstructions=recon,
                originals=originals,
            )
            if fig is not None:
                name = f"grid_{_safe(str(row['label']))}"
                written += [p.name for p in plots.save(fig, out / name)]
                grid_names.append(name)
    if figures or grid_names:
        md = (out / "results.md").read_text() + "\n## Figures\n\n"
        md += "".join(f"![{f}]({f}.png)\n" for f in figures + grid_names)
        write_text_atomic(out / "results.md", md)
    verdicts = None
    if claims is not None:
        from harness.report.claims import check, load_claims, to_frame

        verdicts = to_frame(check(load_claims(claims), records))
    write_text_atomic(out / "index.html", html.to_html(df, out, title, figures, grid_names, verdicts))
    written.append("index.html")
    for w in written:
        echo(f"wrote {out / w}")
    for s in skipped:
        echo(f"skipped {s}")
    return {"written": written, "skipped": skipped}

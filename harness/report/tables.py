"""Results tables from records alone: Markdown, CSV and LaTeX (booktabs).

One row per record. A value carries ``± sd`` where its record measured an uncertainty; every row
says whether it is ``paper_comparable`` and gets a protocol block (protocol, N, hardware and the
record's protocol findings) below the table, so a number never travels without its conditions.
"""

from __future__ import annotations

import io
import math

from harness.report import fields
from harness.report.collect import present_metrics

DIGITS = {
    "fid": 2,
    "sfid": 2,
    "rfid": 2,
    "is": 1,
    "prec": 3,
    "recall": 3,
    "kid": 4,
    "psnr": 2,
    "ssim": 3,
    "codebook_usage": 3,
    "ar_acc": 3,
    "images_per_s": 1,
}


def _missing(v) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def fmt_value(value, unc=None, metric: str = "", pm: str = "±") -> str:
    if _missing(value):
        return "–"
    d = DIGITS.get(metric, 3)
    s = f"{float(value):.{d}f}"
    if not _missing(unc):
        s += f" {pm} {float(unc):.{d}f}"
    return s


def _columns(df) -> list[str]:
    return present_metrics(df)


def display_rows(df) -> tuple[list[str], list[list[str]]]:
    """Header and formatted cells shared by the Markdown and LaTeX writers."""
    metrics = _columns(df)
    header = ["label", "kind", "N"] + [fields.METRIC_TITLES.get(m, m) for m in metrics] + ["paper_comparable", "status"]
    rows = []
    for _, r in df.iterrows():
        n = "–" if _missing(r["n"]) else str(int(r["n"]))
        cells = [str(r["label"]), str(r["kind"] or "–"), n]
        cells += [fmt_value(r[m], r[f"{m}_unc"], m) + speed_mark(r, m) for m in metrics]
        cells += ["yes" if r["paper_comparable"] else "no", str(r["status"] or "–")]
        rows.append(cells)
    return header, rows


def _flag(v) -> bool:
    return not _missing(v) and bool(v)  # a numpy bool from a frame, or None where no record said


def speed_mark(r, metric: str) -> str:
    """A speed from one unrepeated pass says so in its cell (a benchmark's speed carries its ± instead)."""
    if metric != "images_per_s" or _missing(r[metric]) or _missing(r.get("speed_basis")):
        return ""
    return " (1 pass, load above cores)" if _flag(r.get("loaded")) else " (1 pass)"


def protocol_lines(df) -> list[tuple[str, str]]:
    """(label, one line: protocol, N, hardware, comparability, findings) per row."""
    out = []
    for _, r in df.iterrows():
        parts = [f"protocol {r['protocol'] or 'unknown'}"]
        if not _missing(r["n"]):
            parts.append(f"N={int(r['n'])}")
        if not _missing(r["batch_size"]):
            parts.append(f"batch {int(r['batch_size'])}")
        if not _missing(r["guidance_scale"]):
            parts.append(f"guidance {r['guidance_scale']:g}")
        parts.append(f"hardware {r['hardware'] or 'unknown'}")
        if not _missing(r.get("speed_basis")):
            loaded = "; the load average exceeded the cores: not a reliable speed" if _flag(r.get("loaded")) else ""
            parts.append(f"images/s: {r['speed_basis']}, not a benchmark{loaded}")
        parts.append("paper-comparable" if r["paper_comparable"] else "not paper-comparable")
        parts += list(r["findings"] or [])
        out.append((str(r["label"]), "; ".join(parts)))
    return out


def to_markdown(df, title: str = "Results") -> str:
    if df.empty:
        return f"# {title}\n\nNo records.\n"
    header, rows = display_rows(df)
    lines = [f"# {title}", "", "| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in rows]
    lines += ["", "Values are mean ± one standard deviation where the record measured one.", "", "## Protocol", ""]
    lines += [f"- **{lab}**: {text}" for lab, text in protocol_lines(df)]
    return "\n".join(lines) + "\n"


def to_csv(df) -> str:
    """Machine-readable: raw numbers, one ``<metric>_unc`` column beside each metric, findings joined by ' | '."""
    import pandas as pd

    if df.empty:
        return ""
    metrics = _columns(df)
    cols = ["label", "model", "kind", "status", "protocol", "n", "batch_size", "guidance_scale", "seed", "hardware"]
    out = df[cols].copy()
    for m in metrics:
        out[m] = df[m]
        out[f"{m}_unc"] = df[f"{m}_unc"]
    out["paper_comparable"] = df["paper_comparable"].astype(bool)
    out["protocol_findings"] = [" | ".join(f or []) for f in df["findings"]]
    for c in ("n", "batch_size", "seed"):
        out[c] = pd.to_numeric(out[c]).astype("Int64")
    buf = io.StringIO()
    out.to_csv(buf, index=False, lineterminator="\n", float_format="%.6g")
    return buf.getvalue()


_TEX_ESCAPES = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
}


def tex_escape(text: str) -> str:
    return "".join(_TEX_ESCAPES.get(ch, ch) for ch in str(text))


def to_latex(df, caption: str = "Results") -> str:
    """A booktabs table (needs ``\\usepackage{booktabs}``) followed by the protocol block as a list."""
    if df.empty:
        return "% no records\n"
    header, rows = display_rows(df)
    metrics = _columns(df)

    def cell(c: str) -> str:
        return tex_escape(c).replace("±", r"$\pm$").replace("–", "--")

    align = "ll" + "r" * (1 + len(metrics)) + "ll"
    lines = [
        r"\begin{table}[t]",
        r"\centering",
        r"\small",
        rf"\begin{{tabular}}{{{align}}}",
        r"\toprule",
        " & ".join(cell(h) for h in header) + r" \\",
        r"\midrule",
    ]
    lines += [" & ".join(cell(c) for c in row) + r" \\" for row in rows]
    lines += [
        r"\bottomrule",
        r"\end{tabular}",
        rf"\caption{{{tex_escape(caption)} (mean $\pm$ sd where measured).}}",
        r"\end{table}",
        "",
        r"\begin{itemize}\footnotesize",
    ]
    lines += [rf"\item \textbf{{{tex_escape(lab)}}}: {cell(text)}" for lab, text in protocol_lines(df)]
    lines += [r"\end{itemize}"]
    return "\n".join(lines) + "\n"

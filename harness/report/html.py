"""``index.html``: the whole report as one page a browser opens from disk, with nothing fetched.

CSS and the table-sorting script are inline, the plots are their SVG files inlined (ids prefixed per
figure, so two figures never share one), sample grids are the PNGs beside the page, and each row
links to its record JSON. Tables carry ``±`` where the record measured a spread and sort by their raw
numbers (``data-v``); the protocol block of every row and, when given, the claims verdicts follow.
Identical inputs give identical bytes (no dates).
"""

from __future__ import annotations

import html
import math
import os
import re
from pathlib import Path

from harness.report import fields, tables
from harness.report.collect import present_metrics

_CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:0 auto;max-width:1200px;padding:0 16px;
color:#1d1d1f}
h1{font-size:22px;margin:20px 0 4px}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:8px 0;font-variant-numeric:tabular-nums}
th,td{padding:4px 8px;border-bottom:1px solid #e4e4e4;text-align:right;white-space:nowrap}
th{background:#f4f4f6;cursor:pointer;user-select:none;position:sticky;top:0}
th[aria-sort=ascending]::after{content:" \\25B2"}th[aria-sort=descending]::after{content:" \\25BC"}
td.t,th.t{text-align:left}tr:hover td{background:#fafaff}
.yes{color:#127a2a}.no{color:#a33}.ref td{color:#666;font-style:italic}
.fig svg{max-width:100%;height:auto}.grid img{max-width:100%;border:1px solid #ddd}
details{margin:2px 0}summary{cursor:pointer}.note{color:#555;font-size:13px}
.wrap{overflow-x:auto}#claims td.t{white-space:normal;min-width:6em}
.reproduced{color:#127a2a;font-weight:600}.not-reproduced{color:#b00;font-weight:600}.not-run{color:#888}
"""

# Sort a table by the clicked header: numbers by data-v, text otherwise; a second click reverses.
_JS = """
document.querySelectorAll("table.sortable").forEach(function (table) {
  table.querySelectorAll("th").forEach(function (th, col) {
    th.addEventListener("click", function () {
      var asc = th.getAttribute("aria-sort") !== "ascending";
      table.querySelectorAll("th").forEach(function (h) { h.removeAttribute("aria-sort"); });
      th.setAttribute("aria-sort", asc ? "ascending" : "descending");
      var body = table.tBodies[0];
      var rows = Array.prototype.slice.call(body.rows);
      function key(row) {
        var cell = row.cells[col], v = cell.getAttribute("data-v");
        return v === null || v === "" ? cell.textContent.trim().toLowerCase() : parseFloat(v);
      }
      rows.sort(function (a, b) {
        var x = key(a), y = key(b);
        var missing = (typeof x === "string" && x === "–") - (typeof y === "string" && y === "–");
        if (missing) { return missing; }  // empty cells last either way
        if (typeof x !== typeof y) { return typeof x === "number" ? -1 : 1; }
        return (x < y ? -1 : x > y ? 1 : 0) * (asc ? 1 : -1);
      });
      rows.forEach(function (r) { body.appendChild(r); });
    });
  });
});
"""


def _e(text) -> str:
    return html.escape(str(text), quote=True)


def _num(v) -> str:
    """The raw number a cell sorts by ('' where there is none)."""
    if v is None or isinstance(v, bool) or (isinstance(v, float) and math.isnan(v)):
        return ""
    try:
        return repr(float(v))
    except (TypeError, ValueError):
        return ""


def inline_svg(svg_text: str, prefix: str) -> str:
    """An SVG file's ``<svg>`` element for inlining: prolog dropped, every id (and reference to it) prefixed,
    so the glyph and clip-path ids of two figures on one page never collide."""
    svg = svg_text[svg_text.index("<svg") :]
    svg = re.sub(r'\bid="([^"]+)"', lambda m: f'id="{prefix}-{m.group(1)}"', svg)
    svg = re.sub(r'href="#([^"]+)"', lambda m: f'href="#{prefix}-{m.group(1)}"', svg)
    return re.sub(r"url\(#([^)]+)\)", lambda m: f"url(#{prefix}-{m.group(1)})", svg)


def _results_table(df, out: Path) -> str:
    metrics = present_metrics(df)
    head = ["label", "kind", "N"] + [fields.METRIC_TITLES.get(m, m) for m in metrics] + ["paper-comparable", "status"]
    text_cols = {0, 1, len(head) - 2, len(head) - 1}
    lines = ['<table class="sortable" id="results"><thead><tr>']
    lines += [f'<th class="{"t" if i in text_cols else ""}">{_e(h)}</th>' for i, h in enumerate(head)]
    lines.append("</tr></thead><tbody>")
    for _, r in df.iterrows():
        path = r["record_path"]
        link = os.path.relpath(Path(path).resolve(), out.resolve()) if isinstance(path, str) and path else None
        label = f'<a href="{_e(Path(link).as_posix())}">{_e(r["label"])}</a>' if link else _e(r["label"])
        ref = bool(r.get("reference")) and r.get("reference") is not None
        cells = [f'<td class="t">{label}</td>', f'<td class="t">{_e(r["kind"] or "–")}</td>']
        cells.append(f'<td data-v="{_num(r["n"])}">{"–" if not _num(r["n"]) else int(r["n"])}</td>')
        for m in metrics:
            shown = tables.fmt_value(r[m], r[f"{m}_unc"], m) + tables.speed_mark(r, m)
            cells.append(f'<td data-v="{_num(r[m])}">{_e(shown)}</td>')
        comparable = bool(r["paper_comparable"])
        cells.append(f'<td class="t {"yes" if comparable else "no"}">{"yes" if comparable else "no"}</td>')
        cells.append(f'<td class="t">{_e(r["status"] or "–")}</td>')
        lines.append(f'<tr{" class=ref" if ref else ""}>' + "".join(cells) + "</tr>")
    lines.append("</tbody></table>")
    return "\n".join(lines)


def _claims_table(claims) -> str:
    cols = ["id", "claim", "metric", "paper_value", "measured", "verdict", "tiny_direction", "detail"]
    lines = ['<table class="sortable" id="claims"><thead><tr>']
    lines += [f'<th class="{"" if c in ("paper_value", "measured") else "t"}">{_e(c)}</th>' for c in cols]
    lines.append("</tr></thead><tbody>")
    for _, r in claims.iterrows():
        cells = []
        for c in cols:
            v = r.get(c)
            if c == "measured":
                shown = tables.fmt_value(v, r.get("measured_unc"), str(r.get("metric") or ""))
                cells.append(f'<td data-v="{_num(v)}">{_e(shown)}</td>')
            elif c == "paper_value":
                cells.append(f'<td data-v="{_num(v)}">{_e("–" if v is None else v)}</td>')
            else:
                shown = "" if v is None or (isinstance(v, float) and math.isnan(v)) else str(v)
                klass = re.sub(r"[^a-z]+", "-", shown.lower()) if c == "verdict" else ""
                cells.append(f'<td class="t {klass}">{_e(shown)}</td>')
        lines.append("<tr>" + "".join(cells) + "</tr>")
    lines.append("</tbody></table>")
    return "\n".join(lines)


def to_html(df, out: str | Path, title: str, figures: list[str], grids: list[str], claims=None) -> str:
    """The page for the records frame ``df`` whose figures (``<name>.svg``) and grids (``<name>.png``) were
    written into ``out``; ``claims``: the frame of ``harness.report.claims.to_frame`` or None."""
    out = Path(out)
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{_e(title)}</h1>",
        '<p class="note">Values are mean ± one standard deviation where the record measured one. '
        "Click a column header to sort; each label links to its record. "
        "Speeds marked “1 pass” are one unrepeated pass, not a benchmark.</p>",
    ]
    if df.empty:
        parts.append("<p>No records.</p>")
    else:
        parts += ["<h2>Results</h2>", f'<div class="wrap">{_results_table(df, out)}</div>', "<h2>Protocol</h2>"]
        parts += [
            f"<details><summary>{_e(lab)}</summary><p class=note>{_e(text)}</p></details>"
            for lab, text in tables.protocol_lines(df)
        ]
    if claims is not None and len(claims):
        parts += ["<h2>Claims</h2>", f'<div class="wrap">{_claims_table(claims)}</div>']
    if figures:
        parts.append("<h2>Figures</h2>")
        for i, name in enumerate(figures):
            svg = (out / f"{name}.svg").read_text(encoding="utf-8")
            parts.append(f'<figure class="fig" id="fig-{_e(name)}">{inline_svg(svg, f"f{i}")}</figure>')
    if grids:
        parts.append("<h2>Sample grids</h2>")
        parts += [f'<figure class="grid"><img src="{_e(name)}.png" alt="{_e(name)}"></figure>' for name in grids]
    parts += [f"<script>{_JS}</script>", "</body></html>"]
    return "\n".join(parts) + "\n"

"""A results table as aligned plain text: metrics to 3 decimals, images/s to 1, "n/a" where a
metric could not be computed, "-" where a column does not apply."""

from __future__ import annotations

import sys

TEXT_COLUMNS = ("label", "model", "N", "paper_comparable", "status")


def format_table(table) -> str:
    """The DataFrame ``table`` as the text ``alitok-bench run`` prints."""
    shown = table.copy()
    for col in shown.columns:
        if col in TEXT_COLUMNS:
            continue
        fmt = "{:.1f}" if col == "images/s" else "{:.3f}"
        shown[col] = [("n/a" if v is None or v != v else fmt.format(float(v))) for v in shown[col]]
    return shown.to_string(index=False, na_rep="-")


def print_table(table, file=None) -> None:
    print(format_table(table), file=file or sys.stdout)  # sys.stdout looked up at call time (capsys)

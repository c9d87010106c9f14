"""Gather run records from files and folders, and flatten them into one canonical pandas frame.

The frame's columns are the report's own names (``label``, ``fid``, ``fid_unc``, ``images_per_s`` ...),
filled through ``harness.report.fields``; tables, plots, claims and gates all start from it.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from harness.core.errors import InputFileError
from harness.report import fields
from harness.runs.records import read_record

RECORD_GLOB = "*record*.json"
# metrics a frame carries (with an ``<name>_unc`` column each)
FRAME_METRICS = (
    "fid",
    "is",
    "sfid",
    "prec",
    "recall",
    "kid",
    "rfid",
    "psnr",
    "ssim",
    "codebook_usage",
    "ar_acc",
    "images_per_s",
)


def record_files(paths: Iterable[str | Path]) -> list[Path]:
    """Record files named directly, plus every ``*record*.json`` below named folders (sorted)."""
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            out += sorted(q for q in p.rglob(RECORD_GLOB) if q.is_file())
        elif p.is_file():
            out.append(p)
        else:
            raise InputFileError(p, "no such record file or folder")
    return out


def collect(paths: Iterable[str | Path]) -> list[dict[str, Any]]:
    """Every record below ``paths`` as a nested dict, with ``record_path`` added."""
    records = []
    for p in record_files(paths):
        d = read_record(p)
        d["record_path"] = str(p)
        records.append(d)
    return records


def frame(records: list[dict[str, Any]]):
    """One row per record with canonical columns (None/NaN where a record has no such value)."""
    import pandas as pd

    rows = []
    for r in records:
        row = {
            "label": fields.label(r),
            "model": fields.model_name(r),
            "kind": fields.kind(r),
            "status": fields.status(r),
            "variant": fields.variant(r),
            "protocol": fields.protocol(r),
            "n": fields.num_samples(r),
            "batch_size": fields.batch_size(r),
            "seed": fields.seed(r),
            "guidance_scale": fields.guidance_scale(r),
            "hardware": fields.hardware(r),
            "paper_comparable": fields.paper_comparable(r),
            "findings": fields.protocol_findings(r),
            "samples_npz": str(fields.samples_npz(r) or "") or None,
            "originals_npz": str(fields.originals_npz(r) or "") or None,
            "reference": fields.is_reference(r),
            "speed_basis": fields.speed_basis(r),
            "loaded": fields.loaded(r),
            "record_path": fields.record_path(r),
        }
        for m in FRAME_METRICS:
            row[m] = fields.metric(r, m)
            row[f"{m}_unc"] = fields.uncertainty(r, m)
        rows.append(row)
    df = pd.DataFrame(rows, columns=None if rows else ["label"])
    if not df.empty:
        df = df.sort_values(["label", "kind", "record_path"], na_position="last", kind="stable").reset_index(drop=True)
    return df


SUMMARY_LEADING = ("label", "model", "kind", "protocol", "N")
SUMMARY_TRAILING = ("paper_comparable", "status", "record_path")


def summary_frame(records: list[dict[str, Any]] | Iterable[str | Path]):
    """The tidy results table, one row per record as lm-eval's results table: label, model, kind, protocol, N,
    each metric some record has with its spread (``<metric>_spread``, the disjoint-subset or seed std), then
    paper_comparable, status and record_path. ``records``: record dicts, or files and folders to collect.
    (``load_records`` keeps every nested key, hundreds of columns, for digging.)"""
    records = list(records)
    if records and not isinstance(records[0], dict):
        records = collect(records)
    df = frame(records).rename(columns={"n": "N"})
    if df.empty:
        import pandas as pd

        return pd.DataFrame(columns=list(SUMMARY_LEADING + SUMMARY_TRAILING))
    metric_cols = [c for m in present_metrics(df) for c in (m, f"{m}_unc")]
    out = df[list(SUMMARY_LEADING) + metric_cols + list(SUMMARY_TRAILING)].copy()
    out["N"] = out["N"].astype("Int64")
    return out.rename(columns={f"{m}_unc": f"{m}_spread" for m in present_metrics(df)})


def present_metrics(df) -> list[str]:
    """Metrics that at least one row has, in FRAME_METRICS order."""
    return [m for m in FRAME_METRICS if m in df and df[m].notna().any()]


_SPEED_COLUMNS = ("images_per_s", "images_per_s_unc", "speed_basis", "loaded")


def merge_by_label(df):
    """One row per label: the first non-missing value of each column across that label's records.

    A model's speed and its metrics may sit in different records (a sample record and an eval
    record); plots need them in one row. ``kind`` lists every kind merged.
    """
    import pandas as pd

    if df.empty:
        return df
    rows = []
    for _, g in df.groupby("label", sort=True):
        row = {}
        # a speed's spread and how it was measured come from the record that gave the speed
        timed = [i for i, v in enumerate(g["images_per_s"]) if not (v is None or v != v)]
        if timed:
            row.update({c: g[c].iloc[timed[0]] for c in _SPEED_COLUMNS if c in g})
        for col in df.columns:
            if col in row:
                continue
            vals = [v for v in g[col] if not (v is None or (isinstance(v, float) and v != v))]
            if col == "kind":
                row[col] = "+".join(sorted({str(v) for v in vals})) or None
            elif col == "findings":
                row[col] = [f for v in vals for f in v]
            elif col == "paper_comparable":
                row[col] = bool(vals) and all(bool(v) for v in vals)
            else:
                row[col] = vals[0] if vals else None
        rows.append(row)
    return pd.DataFrame(rows, columns=df.columns)

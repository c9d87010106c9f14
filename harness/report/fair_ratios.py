"""The paper's AR : diffusion speed ratios twice, side by side, from ONE ``bench --upstream`` run: official code
against official code, and the harness's samplers against each other.

A ratio of the harness's own samplers depends on which side this project happened to optimise; the same ratio
between the two official implementations (harness.speed.upstream: each checkout's own sampling function on the
same weights, timed interleaved in the same process) does not. Both come from the rows of one
``bench_summary.json``: same machine, threads, batch and dtype, repeats interleaved A B A B. Which ratios: the
claims file's ``ratio`` claims (``results/claims/alitok.yaml``; the paper's value beside each); a claim whose two
models were not both measured, officially and by the harness, is listed as not measured, saying which is missing.

Each ratio is images/s(A) / images/s(B) of the medians, with the range the per-model ranges allow
(A's slowest over B's fastest .. A's fastest over B's slowest). Extrapolated rows (``--steps-limit``) are named.

    python -m harness.report.fair_ratios BENCH_OUT [--claims FILE] --out results/speed [--stem fair_ratios]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from harness.core.errors import InputFileError, UserError
from harness.core.io import read_json, write_json_atomic, write_text_atomic
from harness.report.claims import ClaimsFile, load_claims

CLAIMS = Path(__file__).resolve().parents[2] / "results" / "claims" / "alitok.yaml"  # as `claims` reads by default
SIDES = (("official", "upstream"), ("harness", "project"))  # column -> the rows' implementation


def base_name(model: str) -> str:
    """``alitok-xl-random-official`` -> ``alitok-xl`` (the registry name claims use)."""
    return model.removesuffix("-official").removesuffix("-random")


def _row(rows: list[dict[str, Any]], model: str, implementation: str, batch: int, dtype: str) -> dict | None:
    for r in rows:
        if (base_name(r["model"]), r["implementation"], r["batch_size"], r["dtype"]) == (
            model,
            implementation,
            batch,
            dtype,
        ):
            return r
    return None


def _ratio(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    lo_a, hi_a = a["images_per_s_range"]
    lo_b, hi_b = b["images_per_s_range"]
    return {
        "ratio": a["images_per_s"] / b["images_per_s"],
        "range": [lo_a / hi_b, hi_a / lo_b],
        "models": [a["model"], b["model"]],
        "images_per_s": [a["images_per_s"], b["images_per_s"]],
        "extrapolated": [r["model"] for r in (a, b) if r.get("extrapolated")],
    }


def fair_ratios(summary: dict[str, Any], claims: ClaimsFile) -> list[dict[str, Any]]:
    """One entry per ratio claim and (batch, dtype) measured: the official and the harness ratio, or why not."""
    rows = summary["rows"]
    settings = sorted({(r["batch_size"], r["dtype"]) for r in rows})
    out = []
    for claim in claims.claims:
        if claim.measure.ratio is None or claim.metric != "images_per_s":
            continue
        qa, qb = claim.measure.ratio
        for batch, dtype in settings:
            entry: dict[str, Any] = {
                "claim": claim.id,
                "text": claim.claim,
                "paper": claim.value,
                "paper_protocol": claim.protocol,
                "a": qa.model,
                "b": qb.model,
                "batch_size": batch,
                "dtype": dtype,
            }
            wants_cfg = qa.guided is not False and qa.sampling.get("cfg_scale", 0.0) != 1.0
            ran_cfg = {r["applied"].get("cfg_scale") != 1.0 for r in rows if r["batch_size"] == batch}
            if ran_cfg != {wants_cfg}:  # a claim with CFG needs a run with it, a no-CFG claim one without
                entry["missing"] = f"the claim is {'with' if wants_cfg else 'without'} CFG; this run is not"
                out.append(entry)
                continue
            missing = []
            for column, implementation in SIDES:
                a, b = (_row(rows, m, implementation, batch, dtype) for m in (qa.model, qb.model))
                if a is None or b is None:
                    missing += [f"{m} ({column})" for m, r in ((qa.model, a), (qb.model, b)) if r is None]
                else:
                    entry[column] = _ratio(a, b)
            if missing:
                entry["missing"] = "not measured in this run: " + ", ".join(missing)
            out.append(entry)
    return out


def _fmt(side: dict[str, Any] | None) -> str:
    if side is None:
        return "n/a"
    lo, hi = side["range"]
    ext = " (extrapolated)" if side["extrapolated"] else ""
    return f"{side['ratio']:.3g} ({lo:.3g}..{hi:.3g}){ext}"


def to_markdown(entries: list[dict[str, Any]], summary: dict[str, Any], source: str) -> str:
    m, code = summary.get("machine", {}), summary.get("code", {})
    lines = [
        "# Paper speed ratios: official against official, harness against harness, one run",
        "",
        f"Machine: {m.get('device_name')}, {m.get('torch_threads')} threads, torch {m.get('torch')}, load average "
        f"{m.get('load_average_start')} -> {m.get('load_average_end')}. Commit {code.get('git_sha')}"
        f"{' (dirty)' if code.get('dirty') else ''}. Source: {source}"
        + (f", command: `{summary['command']}`" if summary.get("command") else "")
        + ".",
        "",
        "Ratio = images/s(A) / images/s(B) of the medians (range: the per-model ranges combined). The paper's "
        "values are A800 GPU figures at batch 64; on another machine or batch the ratio answers only whether the "
        "two implementations order the models alike.",
        "",
        "| claim | A : B | batch | dtype | paper | official : official | harness : harness | note |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for e in entries:
        lines.append(
            f"| {e['claim']} | {e['a']} : {e['b']} | {e['batch_size']} | {e['dtype']} | {e['paper']:.3g} | "
            f"{_fmt(e.get('official'))} | {_fmt(e.get('harness'))} | {e.get('missing', '')} |"
        )
    lines += [
        "",
        "| model | implementation | batch | images/s | total s median (IQR) | extrapolation |",
        "|---|---|---|---|---|---|",
    ]
    for r in summary["rows"]:
        t = r["total_s"]
        lines.append(
            f"| {r['model']} | {r['implementation']} | {r['batch_size']} | {r['images_per_s']:.4g} | "
            f"{t['median']:.4g} ({t['iqr']:.3g}) | {r.get('method', 'measured in full') if r.get('extrapolated') else 'measured in full'} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m harness.report.fair_ratios", description=__doc__.split("\n\n")[0])
    p.add_argument("bench", type=Path, help="a bench --upstream output folder (its bench_summary.json)")
    p.add_argument("--claims", type=Path, default=CLAIMS)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--stem", default="fair_ratios")
    args = p.parse_args(argv)
    try:
        path = args.bench / "bench_summary.json"
        summary = read_json(path)
        if not isinstance(summary, dict) or not isinstance(summary.get("rows"), list):
            raise InputFileError(path, "not a bench summary (no rows)")
        if not any(r.get("implementation") == "upstream" for r in summary["rows"]):
            raise InputFileError(path, "no official-code rows: run bench with --upstream DIR")
        entries = fair_ratios(summary, load_claims(args.claims))
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    data = {"source": str(path), "machine": summary.get("machine"), "code": summary.get("code"), "ratios": entries}
    data["command"] = summary.get("command")
    write_json_atomic(args.out / f"{args.stem}.json", data)
    text = to_markdown(entries, summary, str(path))
    write_text_atomic(args.out / f"{args.stem}.md", text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())

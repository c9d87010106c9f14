"""``alitok-bench eval SAMPLES.npz --ref REF.npz``: FID/IS/sFID/precision/recall/KID with provenance.

Prints a table (with the paper_comparable flag) and writes ``eval_record.json`` (a RunRecord of kind
"eval") into ``--out`` (default: the folder of SAMPLES).
"""
from __future__ import annotations

from pathlib import Path

from harness.metrics.evaluate import ALL_METRICS, DEFAULT_METRICS


def add_arguments(p) -> None:
    p.add_argument("samples", help="ADM-format samples npz (arr_0 uint8 [N,H,W,3], optional labels) or a shards folder")
    p.add_argument("--ref", required=True, help="reference npz (mu, sigma, mu_s, sigma_s, arr_0): ours or OpenAI's")
    p.add_argument("--metrics", default=None,
                   help=f"comma list from {','.join(ALL_METRICS)} (default: {','.join(DEFAULT_METRICS)}, skipping "
                        "those the reference or weights cannot give)")
    p.add_argument("--kid-subset-size", type=int, default=None,
                   help="KID images per subset (default 1000 as torch-fidelity; refused when larger than N)")
    p.add_argument("--inception", default="fid-helper", help="official | fid-helper | random:SEED | PATH")
    p.add_argument("--batch-size", type=int, default=50)
    p.add_argument("--device", default="auto")
    p.add_argument("--fid-method", choices=("eig", "sqrtm"), default="eig",
                   help="eig: fast, proven equal; sqrtm: the ADM evaluator's scipy path (slow on CPU)")
    p.add_argument("--is-mode", choices=("adm", "torch-fidelity"), default="adm")
    p.add_argument("--out", default=None, help="folder for eval_record.json (default: next to SAMPLES)")
    p.add_argument("--no-cache", action="store_true", help="do not read or write the feature cache")


def format_table(result) -> str:
    prov = result.provenance
    lines = [f"{'metric':<8} {'value':>12}"]
    for name, value in result.metrics.items():
        shown = "n/a" if value is None else f"{value:.4f}"
        lines.append(f"{name:<8} {shown:>12}")
    w = prov["weights"]
    lines.append(f"weights: {w['kind']} ({w['sha256'][:12]}...)  N={prov['samples']['n']}  resize={prov['resize']}"
                 f"  IS mode={prov.get('is_mode')}")
    lines.append(f"reference: {prov['reference']['path']} ({prov['reference']['kind']})")
    flag = "yes" if result.paper_comparable else "NO"
    lines.append(f"paper_comparable: {flag}" + ("" if result.paper_comparable else
                 "  (" + "; ".join(prov["not_comparable_because"]) + ")"))
    lines.extend(f"warning: {m}" for m in result.warnings)
    return "\n".join(lines)


def run(args) -> int:
    from harness.devices import resolve_device
    from harness.metrics.evaluate import evaluate_samples
    from harness.records import RunRecord, code_info, env_info, eval_record_name, sample_model_name, write_record

    if args.batch_size < 1:
        raise ValueError(f"--batch-size must be >= 1, got {args.batch_size}")
    device = resolve_device(args.device)
    result = evaluate_samples(args.samples, args.ref, metrics=args.metrics, inception=args.inception,
                              batch_size=args.batch_size, device=str(device), fid_method=args.fid_method,
                              is_mode=args.is_mode, cache=not args.no_cache, kid_subset_size=args.kid_subset_size)
    print(format_table(result))
    samples = result.provenance["samples"]
    record = RunRecord(kind="eval", samples={k: samples[k] for k in ("path", "sha256", "n", "image_size", "labels",
                                                                      "balanced", "num_classes", "class_sorted")},
                       metrics=dict(result.metrics), metric_provenance=result.provenance,
                       paper_comparable=result.paper_comparable, code=code_info(), env=env_info(device),
                       timings=result.timings, notes=list(result.warnings),
                       model={"name": sample_model_name(args.samples) or Path(args.samples).stem})
    out = Path(args.out) if args.out else Path(args.samples).resolve().parent
    name = eval_record_name(record.model["name"], result.provenance.get("reference", {}).get("sha256"),
                            result.provenance.get("weights", {}).get("sha256"), result.metrics)
    path = write_record(record, out, name)
    print(f"record: {path}")
    return 0

"""``alitok-bench eval SAMPLES [REF]``: FID/IS/sFID/precision/recall/KID with provenance.

SAMPLES: an ADM npz, a sampling folder (checked complete against its spec.json and manifest) or a
folder of PNG/JPEG images. REF (or ``--ref``): a reference npz (ours or OpenAI's), or a folder of
images / an npz of images whose statistics are computed on the fly (as ``python -m pytorch_fid A B``).
Prints one line as pytorch-fid does (``FID: 29.71 ± 1.81  ...  (weights: fid-helper pool3, N=30/30)``), the
full table and the known-mistake guard's block with ``--verbose``, or one JSON document and nothing else on
stdout with ``--json``. Writes an eval record (a RunRecord of kind "eval", guard block included) into
``--out``; without it, into the sampling folder when SAMPLES is one, else into ``runs/eval/`` under the current
folder (``DEFAULT_OUT``; never beside an input). The record's file name carries the model, reference, weights
and metrics, so evaluations of other inputs do not overwrite each other.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from harness.cli.common_args import add_feature_args, non_negative_int, positive_int
from harness.data.resize import RESIZE_MODES
from harness.metrics.evaluate import ALL_METRICS, DEFAULT_METRICS


def add_arguments(p) -> None:
    p.add_argument(
        "samples",
        help="ADM samples npz (arr_0 uint8 [N,H,W,3], optional labels), a sampling folder, "
        "or a folder of PNG/JPEG images",
    )
    p.add_argument(
        "reference",
        nargs="?",
        default=None,
        help="reference: stats npz (mu, sigma[, mu_s, sigma_s, arr_0]), or an image folder / images npz",
    )
    p.add_argument("--ref", default=None, help="the reference, as a flag (same as the second positional argument)")
    p.add_argument(
        "--metrics",
        default=None,
        help=f"comma list from {','.join(ALL_METRICS)} (default: {','.join(DEFAULT_METRICS)}, skipping "
        "those the reference or weights cannot give)",
    )
    p.add_argument(
        "--kid-subset-size",
        type=positive_int,
        default=None,
        help="KID images per subset (default 1000 as torch-fidelity; refused when larger than N)",
    )
    add_feature_args(p, batch_size=50)
    p.add_argument(
        "--dinov2",
        default=None,
        metavar="PATH|random:SEED",
        help="DINOv2 ViT-L/14 weights for FD-DINOv2 (adds fd_dinov2 to the default metrics; the reference "
        "must be built with the same --dinov2)",
    )
    p.add_argument(
        "--fid-method",
        choices=("eig", "sqrtm"),
        default="eig",
        help="eig: fast, proven equal; sqrtm: the ADM evaluator's scipy path (slow on CPU) (default: %(default)s)",
    )
    p.add_argument("--is-mode", choices=("adm", "torch-fidelity"), default="adm", help="(default: %(default)s)")
    p.add_argument(
        "--uncertainty",
        action="store_true",
        help="kept for old command lines: FID's disjoint-subset spread is now computed by default "
        "(--uncertainty-subsets 0 turns it off)",
    )
    p.add_argument(
        "--uncertainty-subsets",
        type=non_negative_int,
        default=10,
        help="k disjoint subsets for FID's spread; 0 disables it (default: %(default)s)",
    )
    p.add_argument(
        "--out",
        default=None,
        help=f"folder for the eval record (default: the sampling folder when SAMPLES is one, else {DEFAULT_OUT}/ "
        "under the current folder)",
    )
    p.add_argument(
        "--allow-partial",
        action="store_true",
        help="evaluate the verified prefix of an incomplete sampling folder (recorded as partial)",
    )
    p.add_argument("--json", action="store_true", help="print one JSON document on stdout and nothing else")
    p.add_argument(
        "--resize",
        choices=RESIZE_MODES,
        default=None,
        help="resize every image first (default: none; images of another size than the reference are refused): "
        "clean = clean-fid's float bicubic to 299 px; center-crop = ADM's centre crop to --resize-size. "
        "Marks the result not paper-comparable",
    )
    p.add_argument(
        "--resize-size",
        type=positive_int,
        default=None,
        help="target size of --resize (default: 299 for clean; for center-crop the reference statistics' size, "
        "else the first sample image's short side)",
    )
    p.add_argument(
        "--verbose",
        action="store_true",
        help="print the full table, provenance, warnings and the protocol guard block (always in the record)",
    )


DEFAULT_OUT = "runs/eval"
METRIC_LABELS = {"fid": "FID", "is": "IS", "sfid": "sFID", "prec": "precision", "kid": "KID", "fd_dinov2": "FD-DINOv2"}


def _number(value: float) -> str:
    return f"{value:.2f}" if abs(value) >= 10 else f"{value:.4f}"


def format_line(result) -> str:
    """One line, as pytorch-fid prints: each computed metric with its ± spread, then weights and N."""
    parts = []
    for name, value in result.metrics.items():
        if value is None:
            continue
        spread = result.uncertainty.get(name)
        pm = f" ± {_number(spread['std'])}" if spread and spread.get("std") is not None else ""
        parts.append(f"{METRIC_LABELS.get(name, name)}: {_number(value)}{pm}")
    prov = result.provenance
    ref_n = prov["reference"].get("n_stats")
    facts = [
        f"weights: {prov['weights']['kind']} pool3",
        f"N={prov['samples']['n']}" + (f"/{ref_n}" if ref_n is not None else ""),  # an ADM batch does not say its N
    ]
    if not result.paper_comparable:
        facts.append("not paper-comparable, see --verbose")
    return "  ".join(parts or ["no metric computed"]) + f"  ({', '.join(facts)})"


def _written_by_sample(samples: Path) -> bool:
    """A samples file in the folder of the ``sample`` run that wrote it (a sampling folder or a sample record)."""
    from harness.metrics.features import is_sampling_folder

    folder = samples.parent
    return is_sampling_folder(folder) or any(folder.glob("sample_record*.json"))


def default_out(samples: Path, in_sampling_folder: bool) -> Path:
    """Where the record goes without ``--out``: the sampling folder it belongs to, else ``runs/eval``."""
    return samples.resolve() if in_sampling_folder else Path(DEFAULT_OUT).resolve()


def format_table(result) -> str:
    prov = result.provenance
    lines = [f"{'metric':<8} {'value':>12}  {'± std (method)'}"]
    for name, value in result.metrics.items():
        shown = "n/a" if value is None else f"{value:.4f}"
        spread = result.uncertainty.get(name)
        pm = f"  ± {spread['std']:.4f} ({spread['method']})" if spread else ""
        lines.append(f"{name:<8} {shown:>12}{pm}")
    w = prov["weights"]
    lines.append(
        f"weights: {w['kind']} ({w['sha256'][:12]}...)  N={prov['samples']['n']}  resize={prov['resize']}"
        f"  IS mode={prov.get('is_mode')}"
    )
    lines.append(f"reference: {prov['reference']['path']} ({prov['reference']['kind']})")
    flag = "yes" if result.paper_comparable else "NO"
    lines.append(
        f"paper_comparable: {flag}"
        + ("" if result.paper_comparable else "  (" + "; ".join(prov["not_comparable_because"]) + ")")
    )
    lines.extend(f"warning: {m}" for m in result.warnings)
    lines.append(result.protocol_block())
    return "\n".join(lines)


def _reference_arg(args) -> str:
    from harness.core.errors import UserError

    if args.reference and args.ref and args.reference != args.ref:
        raise UserError(f"two references given ({args.reference} and --ref {args.ref}); give one")
    ref = args.reference or args.ref
    if not ref:
        raise UserError("no reference: give REF as the second argument or --ref REF")
    return ref


def _each_image(arg: str, allow_partial: bool):
    """Every image of a samples or reference argument, one uint8 [H, W, 3] at a time (a plain folder file by
    file, so mixed sizes are read rather than refused)."""
    from harness.data.images import read_rgb
    from harness.data.sources import image_files
    from harness.metrics.features import is_sampling_folder, iter_batches

    p = Path(arg)
    if p.is_dir() and not is_sampling_folder(p) and not any(p.glob("chunk_*.npz")):
        for f in image_files(p):
            yield read_rgb(f)
        return
    for batch in iter_batches(p, 64, allow_partial=allow_partial):
        yield from batch


def _resized(arg: str, mode: str, size: int | None, allow_partial: bool):
    """``(uint8 [N, S, S, 3] array, description)`` of the images of ``arg`` resized by ``mode``."""
    import numpy as np

    from harness.data.resize import CLEAN_SIZE, resize_image

    out, target = [], size or (CLEAN_SIZE if mode == "clean" else None)
    for image in _each_image(arg, allow_partial):
        target = target or min(image.shape[:2])
        out.append(resize_image(image, mode, target))
    return np.stack(out), f"{arg} ({mode} resize to {target} px)"


def _is_stats_file(path: Path) -> bool:
    """A stats npz has mu or sigma; an npz with arr_0 and neither is a set of images."""
    from harness.data.npz import npz_keys

    keys = set(npz_keys(path))
    return bool(keys & {"mu", "sigma", "mu_s", "sigma_s"}) or "arr_0" not in keys


def run(args) -> int:
    """Under ``torchrun -m harness eval ...`` every rank extracts a share of the sample features; rank 0
    computes the metrics, writes the record and prints."""
    import contextlib

    from harness.core import devices
    from harness.metrics.distributed import init_from_env, rank_world

    # a group this call joined is left once rank 0 has computed the metrics and written the record
    with devices.leaving_together() if init_from_env() else contextlib.nullcontext():
        return _run(args, rank_world()[0])


def _run(args, rank: int) -> int:
    from harness.core.devices import resolve_device
    from harness.core.io import check_output_dir
    from harness.metrics.evaluate import EvalOptions, evaluate_samples
    from harness.metrics.inception import InceptionExtractor
    from harness.metrics.refstats import reference_from_source
    from harness.runs.records import RunRecord, code_info, env_info, eval_record_name, sample_model_name, write_record

    if args.batch_size < 1:
        raise ValueError(f"--batch-size must be >= 1, got {args.batch_size}")
    if args.uncertainty_subsets < 0 or args.uncertainty_subsets == 1:
        from harness.core.errors import UserError

        raise UserError(f"--uncertainty-subsets must be 0 (off) or >= 2, got {args.uncertainty_subsets}")
    ref_arg = _reference_arg(args)
    samples = Path(args.samples)
    from harness.metrics.features import is_sampling_folder

    # a sampling folder, or the samples.npz a `sample` run wrote (its sample record beside it): the record goes
    # beside sample_record.json; any other input: runs/eval/
    folder = samples if samples.is_dir() else samples.parent
    in_folder = is_sampling_folder(folder) if samples.is_dir() else _written_by_sample(samples)
    out = Path(args.out) if args.out else default_out(folder, in_folder)
    check_output_dir(out)  # before minutes of feature extraction, not after
    device = resolve_device(args.device)
    progress = False if (args.quiet or args.json or rank != 0) else None  # None: a bar only on a terminal
    cache = not args.no_cache
    inception = args.inception
    ref_path = Path(ref_arg)
    samples_in, resize_note = args.samples, None
    if args.resize:
        ref_is_images = ref_path.is_dir() or (ref_path.is_file() and not _is_stats_file(ref_path))
        size = args.resize_size
        if size is None and args.resize == "center-crop" and not ref_is_images:
            from harness.metrics.refstats import load_reference

            ref_size = load_reference(ref_path).image_size
            size = int(ref_size[0]) if ref_size is not None else None
        samples_in, desc = _resized(args.samples, args.resize, size, args.allow_partial)
        size = samples_in.shape[1]
        resize_note = f"inputs resized explicitly (--resize {args.resize}, {size} px): samples {desc}"
        if ref_is_images:
            inception = InceptionExtractor(args.inception, str(device))
            ref_images, ref_desc = _resized(ref_arg, args.resize, size, False)
            reference = reference_from_source(
                ref_images, inception, args.batch_size, cache=False, progress=progress, description=ref_desc
            )
            resize_note += f"; reference {ref_desc}"
        else:
            reference = ref_arg
    elif ref_path.is_dir() or (ref_path.is_file() and not _is_stats_file(ref_path)):
        inception = InceptionExtractor(args.inception, str(device))
        reference = reference_from_source(ref_path, inception, args.batch_size, cache=cache, progress=progress)
    else:
        reference = ref_arg
    result = evaluate_samples(
        samples_in,
        reference,
        EvalOptions(
            metrics=args.metrics,
            inception=inception,
            batch_size=args.batch_size,
            device=str(device),
            fid_method=args.fid_method,
            is_mode=args.is_mode,
            cache=cache,
            allow_partial=args.allow_partial,
            progress=progress,
            kid_subset_size=args.kid_subset_size,
            uncertainty_subsets=args.uncertainty_subsets,
            keep_features=True,  # FID's spread is printed whatever the metrics (0 subsets turns it off)
            dinov2=args.dinov2,
        ),
    )
    if result is None:  # a helper rank under torchrun: rank 0 writes and prints
        return 0
    if resize_note:  # not the protocol of any paper: said in the warnings, the provenance and the verdict
        result.warnings.append(resize_note)
        result.provenance["input_resize"] = {"mode": args.resize, "size": int(samples_in.shape[1])}
        result.provenance.setdefault("not_comparable_because", []).append(resize_note)
        result.paper_comparable = False
    s = result.provenance["samples"]
    # name the eval after the model that made the samples (its sample_record.json), else the file's stem
    model = {"name": sample_model_name(args.samples) or samples.stem}
    record = RunRecord(
        kind="eval",
        samples={
            k: s.get(k)
            for k in (
                "path",
                "sha256",
                "n",
                "image_size",
                "labels",
                "balanced",
                "num_classes",
                "class_sorted",
                "selection",
            )
        },
        metrics=dict(result.metrics),
        metric_provenance=result.provenance,
        paper_comparable=result.paper_comparable,
        protocol_findings=list(result.findings),
        uncertainty=dict(result.uncertainty),
        code=code_info(),
        env=env_info(device),
        timings=result.timings,
        notes=list(result.warnings),
        model=model,
    )
    name = eval_record_name(
        model["name"],
        result.provenance.get("reference", {}).get("sha256"),
        result.provenance.get("weights", {}).get("sha256"),
        result.metrics,
    )
    path = write_record(record, out, name)
    if args.json:
        doc = {**result.to_dict(), "record": str(path)}
        sys.stdout.write(json.dumps(doc, indent=1, sort_keys=True, default=str, allow_nan=False) + "\n")
    elif args.verbose:
        print(format_table(result))
        print(f"record: {path}")
    else:
        print(format_line(result))
        if not args.quiet:  # stdout keeps its one line; what was skipped or approximated goes to stderr
            for m in result.warnings:
                print(f"warning: {m}", file=sys.stderr)
    return 0

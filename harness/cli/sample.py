"""``alitok-bench sample``: one generator, one protocol -> shards, manifest, samples.npz, a sample record.

Works the same under ``torchrun --nproc_per_node N -m harness sample ...``.
"""

from __future__ import annotations

import time

from harness.cli.common_args import add_dtype_args, add_json_arg, add_weights_root_arg, print_json, use_weights_root
from harness.core import config
from harness.sampling.record import sample_record  # noqa: F401  (the record lives in the engine)


def add_arguments(p) -> None:
    p.add_argument("--model", help="registered generator name (see `alitok-bench list generators`)")
    p.add_argument("--protocol", help="named protocol (demo, imagenet256-gfid50k, imagenet256-smoke5k, ...)")
    p.add_argument("--spec", help="run spec YAML with model: and protocol: sections (instead of --model/--protocol)")
    p.add_argument("--out", required=True, help="output folder (shards/, manifest.jsonl, samples.npz, records)")
    p.add_argument("--num-samples", type=int, help="override protocol.num_samples")
    p.add_argument("--seed", type=int, help="override protocol.seed")
    p.add_argument("--chunk-size", type=int, help="override protocol.chunk_size")
    p.add_argument("--seed-scheme", choices=["chunk", "legacy_rank"], help="override protocol.seed_scheme")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override any spec key, e.g. model.sampling.cfg_scale=4.0 or model.options.per_class=50",
    )
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N (not part of the spec hash)")
    add_dtype_args(p, "model dtype (not hashed)")
    add_weights_root_arg(p)
    add_json_arg(p)
    p.add_argument("--force", action="store_true", help="overwrite a folder made by a different spec")
    p.add_argument("--quiet", "--no-progress", dest="no_progress", action="store_true", help="no progress bar")
    p.add_argument(
        "--wait", action="store_true", help="if another job is writing --out, wait for it instead of failing"
    )


def spec_from_args(args):
    from harness.runs.specs import build_run_spec, load_run_spec

    sets = list(args.set)
    for flag, key in (
        ("num_samples", "num_samples"),
        ("seed", "seed"),
        ("chunk_size", "chunk_size"),
        ("seed_scheme", "seed_scheme"),
    ):
        value = getattr(args, flag, None)
        if value is not None:
            sets.append(f"protocol.{key}={value}")
    if args.spec:
        if args.model or args.protocol:
            raise config.ConfigError("give either --spec or --model/--protocol, not both")
        return load_run_spec(args.spec, sets)
    if not args.model or not args.protocol:
        raise config.ConfigError("need --model and --protocol (or --spec SPEC.yaml)")
    return build_run_spec({"model": args.model, "protocol": args.protocol}, sets, source="command line")


def run(args) -> int:
    from harness.core import devices
    from harness.runs.records import write_record
    from harness.sampling.runner import sample

    started = time.time()
    use_weights_root(args)
    spec = spec_from_args(args)
    with devices.leaving_together():  # the other ranks wait while rank 0 gathers and writes the record
        result = sample(
            spec,
            args.out,
            device=args.device,
            dtype=args.dtype,
            tf32=args.tf32,
            force=args.force,
            progress=not (args.no_progress or args.json),
            wait=args.wait,
        )
        if result.gathered is not None:
            path = write_record(sample_record(result, started), args.out)
            g = result.gathered
            ips = result.images_per_s
            if args.json:
                print_json(
                    {
                        "samples": g["path"],
                        "n": g["num_samples"],
                        "sha256": g["sha256"],
                        "chunks_run": result.chunks_run,
                        "chunks_reused": result.chunks_skipped,
                        "images_per_s": ips,
                        "record": str(path),
                    }
                )
                return 0
            print(
                f"samples: {g['path']}  n={g['num_samples']}  sha256={g['sha256'][:16]}  "
                f"per class {g['min_per_class']}..{g['max_per_class']}"
            )
            print(
                f"chunks: {result.chunks_run} generated, {result.chunks_skipped} reused (rank 0 of {result.world_size})"
                + (f"; {ips:.1f} images/s" if ips else "")
            )
            print(f"record: {path}")
    return 0

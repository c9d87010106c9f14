"""``alitok-bench sample``: one generator, one protocol -> shards, manifest, samples.npz, a sample record.

Works the same under ``torchrun --nproc_per_node N -m harness sample ...``.
"""
from __future__ import annotations

import time

from harness import config


def add_arguments(p) -> None:
    p.add_argument("--model", help="registered generator name (see `alitok-bench list generators`)")
    p.add_argument("--protocol", help="named protocol (demo, imagenet256-gfid50k, imagenet256-smoke5k, ...)")
    p.add_argument("--spec", help="run spec YAML with model: and protocol: sections (instead of --model/--protocol)")
    p.add_argument("--out", required=True, help="output folder (shards/, manifest.jsonl, samples.npz, records)")
    p.add_argument("--num-samples", type=int, help="override protocol.num_samples")
    p.add_argument("--seed", type=int, help="override protocol.seed")
    p.add_argument("--chunk-size", type=int, help="override protocol.chunk_size")
    p.add_argument("--seed-scheme", choices=["chunk", "legacy_rank"], help="override protocol.seed_scheme")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override any spec key, e.g. model.sampling.cfg_scale=4.0 or model.options.per_class=50")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N (not part of the spec hash)")
    p.add_argument("--dtype", default="fp32", choices=["fp32", "bf16", "fp16"], help="model dtype (not hashed)")
    p.add_argument("--tf32", action="store_true", help="allow TF32 matmuls on CUDA (not hashed)")
    p.add_argument("--force", action="store_true", help="overwrite a folder made by a different spec")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--wait", action="store_true", help="if another job is writing --out, wait for it instead of failing")


def spec_from_args(args):
    from harness.specs import build_run_spec, load_run_spec

    sets = list(args.set)
    for flag, key in (("num_samples", "num_samples"), ("seed", "seed"), ("chunk_size", "chunk_size"),
                      ("seed_scheme", "seed_scheme")):
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


def sample_record(result, started: float):
    from harness.records import RunRecord, code_info, env_info

    r = result.resolved
    g = result.gathered or {}
    return RunRecord(
        kind="sample", spec=config.to_dict(r.spec), spec_hash=r.spec_hash,
        model={**r.model_info, "sampling": config.to_dict(r.sampling), "quantization": r.quantization},
        code=code_info(), env=env_info(result.device, result.world_size, result.backend),
        seeds={"seed": r.spec.protocol.seed, "seed_scheme": r.spec.protocol.seed_scheme,
               "sampling_identity_hash": r.identity_hash},
        samples={"n": g.get("num_samples"), "npz": g.get("path"), "npz_sha256": g.get("sha256"),
                 "min_per_class": g.get("min_per_class"), "max_per_class": g.get("max_per_class"),
                 "balanced": g.get("balanced")},
        speed=speed_record(result),
        timings={"generate_s_rank0": round(result.seconds_generating, 3), "total_s": round(time.time() - started, 3)},
        notes=[f"chunks: {result.chunks_total} total, {result.chunks_run} generated and "
               f"{result.chunks_skipped} reused by rank 0 of {result.world_size}"],
    )


def speed_record(result) -> dict:
    """Throughput under this run's conditions (threads, load, device): a label, not a benchmark figure."""
    t = (result.gathered or {}).get("throughput") or {}
    this_run = result.images_generated / result.seconds_generating if result.seconds_generating > 0 else None
    return {"images_per_s": t.get("images_per_s"), "images_per_s_this_run_rank0": this_run,
            "images_timed": t.get("images_timed"), "chunks_timed": t.get("chunks_timed"),
            "chunks_total": t.get("chunks_total"), "conditions": result.conditions,
            "manifest_conditions": t.get("conditions"),
            "label": "throughput per process under this run's conditions (threads, load average, device; "
                     "generate() time of every timed chunk in the manifest, also chunks made before a resume); "
                     "not a benchmark: see the speed benchmarks for authoritative figures"}


def run(args) -> int:
    from harness import devices
    from harness.records import write_record
    from harness.sampling.runner import sample

    started = time.time()
    spec = spec_from_args(args)
    try:
        result = sample(spec, args.out, device=args.device, dtype=args.dtype, tf32=args.tf32, force=args.force,
                        progress=not args.no_progress, wait=args.wait)
        if result.gathered is not None:
            path = write_record(sample_record(result, started), args.out)
            g = result.gathered
            ips = result.images_per_s
            print(f"samples: {g['path']}  n={g['num_samples']}  sha256={g['sha256'][:16]}  "
                  f"per class {g['min_per_class']}..{g['max_per_class']}")
            print(f"chunks: {result.chunks_run} generated, {result.chunks_skipped} reused (rank 0 of {result.world_size})"
                  + (f"; {ips:.1f} images/s" if ips else ""))
            print(f"record: {path}")
    finally:
        devices.cleanup_distributed()
    return 0

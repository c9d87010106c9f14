"""``alitok-bench validate SPEC.yaml``: resolve a run spec, print its hashes and the shard plan."""
from __future__ import annotations


def add_arguments(p) -> None:
    p.add_argument("spec", help="run spec YAML (model: and protocol: sections)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a spec key")
    p.add_argument("--world-size", type=int, default=1, help="show the chunk assignment for this many processes")
    p.add_argument("--device-type", default="cpu", choices=["cpu", "cuda"],
                   help="device type the samples will be made on (part of the sampling identity)")
    p.add_argument("--dtype", default="fp32", choices=["fp32", "bf16", "fp16"])
    p.add_argument("--tf32", action="store_true")


def _ranges(ks: list[int]) -> str:
    if not ks:
        return "none"
    step = ks[1] - ks[0] if len(ks) > 1 else 1
    if all(b - a == step for a, b in zip(ks, ks[1:])):
        return f"{ks[0]}..{ks[-1]} step {step} ({len(ks)} chunks)"
    return f"{len(ks)} chunks: " + ", ".join(map(str, ks[:8])) + (" ..." if len(ks) > 8 else "")


def run(args) -> int:
    import numpy as np

    from harness import config
    from harness.sampling.plan import SamplingPlan
    from harness.sampling.runner import build_generator, resolve
    from harness.specs import load_run_spec, numerics

    if args.world_size < 1:
        raise ValueError(f"--world-size must be >= 1, got {args.world_size}")
    spec = load_run_spec(args.spec, args.set)
    identity, lines = None, []
    try:  # the identity needs the generator's resolved sampling preset; config errors still stop here
        import torch

        r = resolve(spec, build_generator(spec.model, torch.device("cpu")), numerics(args.device_type, args.dtype, args.tf32))
        identity = r.identity_hash
        lines += [f"sampling identity hash: {identity}",
                  f"sampling params:        {config.to_dict(r.sampling)}  quantization: {r.quantization}"]
    except (ImportError, AttributeError, FileNotFoundError, OSError) as e:
        lines.append(f"sampling identity hash: unavailable (generator not loadable here: {type(e).__name__}: {e})")
    print(config.dump_yaml(spec).rstrip())
    print(f"spec hash:              {config.spec_hash(spec)}")
    print("\n".join(lines))
    plan = SamplingPlan(spec.protocol, identity or "unresolved")
    d = plan.describe()
    print("plan: " + ", ".join(f"{k}={v}" for k, v in d.items() if k != "rank_seeds"))
    if "rank_seeds" in d:
        print(f"legacy per-rank seeds: {d['rank_seeds']}")
    for rank in range(args.world_size):
        ks = plan.chunks_for_rank(rank, args.world_size)
        n = sum(len(plan.chunk(k).indices) for k in ks)
        print(f"  rank {rank}: {_ranges(ks)}, {n} samples")
    counts = np.bincount(plan.labels(), minlength=spec.protocol.num_classes)
    print(f"labels: {spec.protocol.num_classes} classes, {counts.min()}..{counts.max()} per class"
          + (" (balanced)" if counts.max() - counts.min() <= 1 else " (UNBALANCED)"))
    return 0

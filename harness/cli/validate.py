"""``alitok-bench validate SPEC.yaml|SUITE``: resolve a run spec (hashes, checkpoints, shard plan), or
show a suite's expansion into labelled runs and every input it lacks, with where each comes from.

For a suite (a registered name, a YAML shipped in harness/suites/, or a YAML with ``entries``) the
exit status is 0 when every run can go and 1 when something is missing (those runs would be
recorded as skipped by ``run``).

Nothing heavy happens: the generator is built inside ``harness.nn.checkpoints.checkpoint.planning()``, so its
weights are never read (headers only, model on the meta device) and a 50k run of a 662M model is
planned in a second. Checkpoint files are checked for existence separately and reported; a missing
one leaves the sampling identity unresolved but not the plan. Metric names come from the metric table.
"""

from __future__ import annotations

from pathlib import Path

from harness.cli.common_args import add_dtype_args, add_json_arg, add_weights_root_arg, print_json, use_weights_root


def add_arguments(p) -> None:
    p.add_argument("spec", help="run spec YAML (model: and protocol: sections), or a suite: name or YAML with entries:")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a spec key (a suite's entries: entries.0.model.checkpoint=PATH or LABEL.model.checkpoint=PATH)",
    )
    add_weights_root_arg(p)
    p.add_argument("--world-size", type=int, default=1, help="show the chunk assignment for this many processes")
    p.add_argument(
        "--device-type",
        default="cpu",
        choices=["cpu", "cuda"],
        help="device type the samples will be made on (part of the sampling identity)",
    )
    add_dtype_args(p, "model dtype of the run (part of the sampling identity)")
    add_json_arg(p)


def _ranges(ks: list[int]) -> str:
    if not ks:
        return "none"
    step = ks[1] - ks[0] if len(ks) > 1 else 1
    if all(b - a == step for a, b in zip(ks, ks[1:])):
        return f"{ks[0]}..{ks[-1]} step {step} ({len(ks)} chunks)"
    return f"{len(ks)} chunks: " + ", ".join(map(str, ks[:8])) + (" ..." if len(ks) > 8 else "")


def checkpoint_lines(model) -> tuple[list[str], bool]:
    """One line per checkpoint the spec names (found with its size, or MISSING); True when all exist."""
    lines, ok = [], True
    for key in ("checkpoint", "tokenizer_checkpoint"):
        path = getattr(model, key)
        if not path:
            continue
        p = Path(path).expanduser()
        if p.is_file():
            lines.append(f"model.{key}: {p} (found, {p.stat().st_size / 2**20:.1f} MiB)")
        else:
            ok = False
            lines.append(f"model.{key}: {p} (MISSING: the run will stop here until it exists)")
    return lines, ok


def plan_identity(spec, runtime) -> tuple[list[str], str | None]:
    """The resolved sampling parameters and identity hash, from a generator built on the meta device."""
    import torch

    from harness.core import config
    from harness.core.config import ConfigError
    from harness.core.errors import UserError, one_line
    from harness.nn.checkpoints.checkpoint import CheckpointError, planning
    from harness.sampling.runner import build_generator, resolve

    try:
        with planning():
            r = resolve(spec, build_generator(spec.model, torch.device("meta")), runtime)
    except ConfigError:
        raise  # a wrong sampling key or size mismatch: the run would fail the same way
    except CheckpointError as e:
        if "no such checkpoint file" not in str(e):
            raise  # a checkpoint for another model, truncated, not a state dict: stop here, not after queueing
        return [f"sampling identity hash: unavailable until the checkpoint exists ({e})"], None
    except (ValueError, UserError) as e:  # e.g. a factory that needs a checkpoint the spec does not name
        return [f"sampling identity hash: unavailable ({one_line(e)})"], None
    except (ImportError, AttributeError, OSError, NotImplementedError, RuntimeError) as e:
        return [f"sampling identity hash: unavailable (generator not buildable here: {type(e).__name__}: {e})"], None
    return [
        f"sampling identity hash: {r.identity_hash}",
        f"sampling params:        {config.to_dict(r.sampling)}  quantization: {r.quantization}",
    ], r.identity_hash


def is_suite(arg: str) -> bool:
    """A suite name (registered or shipped) or a YAML file with ``entries``; else a run spec."""
    from harness.core import config
    from harness.core.registry import load_plugins, suites
    from harness.suites.suite import shipped_suites

    p = Path(arg)
    if p.suffix in (".yaml", ".yml") and p.is_file():
        return "entries" in config.load_yaml(p)
    load_plugins()
    return arg in suites or arg in shipped_suites()


def validate_suite(args) -> int:
    from harness.suites.entries import describe, expand
    from harness.suites.suite import get_suite, run_protocol, suite_missing, why_not_runnable

    suite = get_suite(args.spec, args.set)
    runs = expand(suite.entries)
    if args.json:
        return _suite_json(suite, runs)
    print(f"suite {suite.name}: {suite.description}".rstrip(": "))
    print(
        f"protocol {suite.protocol}; metrics: {', '.join(suite.metrics) or 'none'}; "
        f"reference: {suite.reference or 'none'}; inception: {suite.inception}"
    )
    print(f"runs ({len(runs)}, each into OUT/<label>/):")
    blocked = 0
    for run, line in zip(runs, describe(runs)):
        p = run_protocol(suite, run)
        reasons = why_not_runnable(suite, run)
        blocked += bool(reasons)
        where = f"source {run.source}" if run.task == "recon" else f"{p.name} N={p.num_samples} seed={p.seed}"
        print(f"  {line}; {where}" + ("" if not reasons else f"  -> SKIPPED ({len(reasons)} missing)"))
    missing = suite_missing(suite)
    plugins = sorted({r for run in runs for r in why_not_runnable(suite, run) if r.startswith("plugin ")})
    for line in missing + plugins:
        print(line)
    if blocked:
        print(f"{blocked} of {len(runs)} runs cannot run here; `run` records them as skipped")
        return 1
    print(f"ready: all {len(runs)} runs have their inputs")
    return 0


def _suite_json(suite, runs) -> int:
    from harness.core import config
    from harness.suites.suite import run_protocol, suite_missing, why_not_runnable

    rows = []
    for run in runs:
        p = run_protocol(suite, run)
        rows.append(
            {
                "label": run.label,
                "task": run.task,
                "model": config.to_dict(run.model),
                "protocol": p.name,
                "num_samples": p.num_samples,
                "seed": p.seed,
                "source": run.source,
                "missing": why_not_runnable(suite, run),
            }
        )
    plugins = sorted({r for row in rows for r in row["missing"] if r.startswith("plugin ")})
    blocked = sum(bool(row["missing"]) for row in rows)
    print_json(
        {
            "suite": suite.name,
            "description": suite.description,
            "protocol": suite.protocol,
            "metrics": list(suite.metrics),
            "reference": suite.reference,
            "inception": suite.inception,
            "runs": rows,
            "missing": suite_missing(suite) + plugins,
            "ready": not blocked,
        }
    )
    return 1 if blocked else 0


def run(args) -> int:
    use_weights_root(args)
    if is_suite(args.spec):
        return validate_suite(args)
    return validate_spec(args)


def validate_spec(args) -> int:
    import numpy as np

    from harness.core import config
    from harness.metrics import table
    from harness.runs.specs import load_run_spec, numerics
    from harness.sampling.plan import SamplingPlan

    if args.world_size < 1:
        raise config.ConfigError(f"--world-size must be >= 1, got {args.world_size}")
    spec = load_run_spec(args.spec, args.set)
    from harness.core.registry import generators

    if spec.model.name not in generators:  # the plan would say "unavailable" and exit 0 for a typo
        raise config.ConfigError(f"{args.spec}: model.name: {generators.unknown_message(spec.model.name)}")
    metrics = table.parse(spec.protocol.metrics) if spec.protocol.metrics else ()
    ckpt_lines, _ = checkpoint_lines(spec.model)
    id_lines, identity = plan_identity(spec, numerics(args.device_type, args.dtype, args.tf32))
    from harness.fetch.needs import fetch_hint

    hint = fetch_hint(spec.model)
    plan = SamplingPlan(spec.protocol, identity or "unresolved")
    counts = np.bincount(plan.labels(), minlength=spec.protocol.num_classes)
    if args.json:
        ranks = []
        for rank in range(args.world_size):
            ks = plan.chunks_for_rank(rank, args.world_size)
            ranks.append({"rank": rank, "chunks": ks, "samples": sum(len(plan.chunk(k).indices) for k in ks)})
        print_json(
            {
                "spec": config.to_dict(spec),
                "spec_hash": config.spec_hash(spec),
                "checkpoints": ckpt_lines,
                "fetch_hint": hint,
                "identity_hash": identity,
                "identity": id_lines,
                "metrics": [m.name for m in metrics],
                "plan": plan.describe(),
                "ranks": ranks,
                "per_class": {"min": int(counts.min()), "max": int(counts.max())},
            }
        )
        return 0
    print(config.dump_yaml(spec).rstrip())
    print(f"spec hash:              {config.spec_hash(spec)}")
    print("\n".join(ckpt_lines + ([hint] if hint else []) + id_lines))
    if metrics:
        print(
            "metrics: "
            + ", ".join(
                f"{m.name} ({m.features}:{m.layer}"
                + (", ref images" if m.needs_reference_images else "")
                + (", logits" if m.needs_logits else "")
                + ")"
                for m in metrics
            )
        )
    d = plan.describe()
    print("plan: " + ", ".join(f"{k}={v}" for k, v in d.items() if k != "rank_seeds"))
    if "rank_seeds" in d:
        print(f"legacy per-rank seeds: {d['rank_seeds']}")
    for rank in range(args.world_size):
        ks = plan.chunks_for_rank(rank, args.world_size)
        n = sum(len(plan.chunk(k).indices) for k in ks)
        print(f"  rank {rank}: {_ranges(ks)}, {n} samples")
    print(
        f"labels: {spec.protocol.num_classes} classes, {counts.min()}..{counts.max()} per class"
        + (" (balanced)" if counts.max() - counts.min() <= 1 else " (UNBALANCED)")
    )
    return 0

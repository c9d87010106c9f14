"""``alitok-bench bench``: images/s of generators side by side, decode included (harness.speed.bench).

Writes one ``bench`` record per model and batch size, plus ``bench_summary.json`` and
``bench_summary.md`` (table and per-image ratios), all under ``--out``; prints the table last.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from harness.cli.common_args import add_json_arg, print_json


def add_arguments(p: argparse.ArgumentParser) -> None:
    from harness.speed.bench import DTYPES, PRESETS

    p.add_argument(
        "--model",
        action="append",
        default=None,
        help="registered generator (repeatable; models are interleaved A B A B ...)",
    )
    p.add_argument(
        "--preset",
        choices=sorted(PRESETS),
        help="paper: fp32, batch 64, CFG on, decode included; "
        "gpu-check: bf16, batch 64; cpu-smoke: alitok-tiny, batch 4. Flags override it.",
    )
    p.add_argument("--batch-size", type=int, action="append", default=None, help="repeatable: a sweep")
    p.add_argument("--dtype", choices=DTYPES, default=None, help="fp32 (default), tf32, bf16 (autocast)")
    p.add_argument("--repeats", type=int, default=None, help="timed repeats per model (default 3)")
    p.add_argument("--warmup", type=int, default=None, help="untimed runs per model first (default 1)")
    p.add_argument("--steps", type=int, default=None, help="diffusion step count (AR: n/a, fixed by the tokens)")
    p.add_argument(
        "--steps-limit",
        action="append",
        default=None,
        metavar="[MODEL=]N",
        help="time only N network calls and scale to the full count (labelled extrapolated); N alone: "
        "every model; MODEL=N (repeatable): that model only, e.g. a diffusion model beside AR "
        "models timed in full",
    )
    p.add_argument("--compile", action="store_true", default=None, help="torch.compile the model's step")
    p.add_argument(
        "--linear",
        choices=("auto", "onednn", "aten"),
        default=None,
        help="auto: oneDNN on packed weights on CPU where a measurement on this machine found it faster "
        "(cached; harness/nn/kernels/kernel_choice.py); onednn: packed wherever it exists; aten: packing off",
    )
    p.add_argument(
        "--attention",
        choices=("auto", "c", "sdpa"),
        default=None,
        help="auto: AR decode steps through the C decode-attention kernel where it was measured faster on "
        "this machine; c: wherever it applies; sdpa: PyTorch's SDPA",
    )
    p.add_argument(
        "--calibrate",
        action="store_true",
        default=None,
        help="CPU: time a fixed machine-calibration workload before every repeat and record each repeat "
        "in its units too, so --agree can tell code from a shared machine's drift",
    )
    p.add_argument("--no-cfg", action="store_true", help="guidance off (cfg_scale 1.0: no doubled batch)")
    p.add_argument("--no-kv-cache", action="store_true", help="AR without KV cache where a generator supports it")
    p.add_argument(
        "--random-weights",
        action="store_true",
        default=None,
        help="official architectures with seeded random weights (no checkpoint; speed only)",
    )
    p.add_argument(
        "--low-memory",
        action="store_true",
        help="build each model just before its run (untimed) and free it after, so models that do not fit "
        "in memory together still interleave",
    )
    p.add_argument(
        "--skip-missing",
        action="store_true",
        help="skip (with a message) models that are not registered or whose plugin is not written yet",
    )
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads (recorded either way)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    p.add_argument(
        "--agree",
        nargs=2,
        metavar=("RUN1", "RUN2"),
        default=None,
        help="measure nothing: do two bench output folders of the same settings agree within their own "
        "spread? Writes --out/agreement.json; exit 1 if a row disagrees",
    )
    p.add_argument(
        "--upstream",
        type=Path,
        default=None,
        metavar="DIR",
        help="folder of official checkouts (DIR/alitok, ...): beside each model with an upstream adapter "
        "(harness/speed/upstream.py), time upstream's own sampler on the same weights, interleaved",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the class labels, noise and random weights")
    p.add_argument("--out", required=True, help="folder for the records and the summary")
    add_json_arg(p)


def resolve_settings(args: argparse.Namespace):
    """Preset values, then explicit flags on top -> (models, batch sizes, BenchSettings)."""
    from harness.core.errors import UserError
    from harness.speed.bench import PRESETS, BenchSettings

    preset = dict(PRESETS[args.preset]) if args.preset else {}
    models = args.model or preset.pop("models", None)
    preset.pop("models", None)
    if not models:
        raise UserError("--model: name at least one generator (or use --preset cpu-smoke)")
    if len(set(models)) != len(models):
        raise UserError(f"--model: a model is named twice ({', '.join(models)})")
    batches = args.batch_size or preset.pop("batch_size", [64])
    preset.pop("batch_size", None)
    fields = dict(preset)
    fields.update(_steps_limits(args.steps_limit or [], models))
    for name in (
        "dtype",
        "repeats",
        "warmup",
        "steps",
        "compile",
        "random_weights",
        "linear",
        "attention",
        "calibrate",
    ):
        value = getattr(args, name)
        if value is not None:
            fields[name] = value
    fields.update(cfg=not args.no_cfg and fields.get("cfg", True), kv_cache=not args.no_kv_cache, seed=args.seed)
    settings = [BenchSettings(batch_size=b, **fields) for b in batches]
    return models, settings


def _steps_limits(values: list[str], models: list[str]) -> dict:
    """``--steps-limit`` values (``N`` or ``MODEL=N``) -> BenchSettings fields."""
    from harness.core.errors import UserError

    overall, per_model = None, []
    for value in values:
        name, _, number = value.rpartition("=")
        try:
            limit = int(number)
        except ValueError:
            raise UserError(f"--steps-limit {value!r}: expected N or MODEL=N with an integer N") from None
        if not name:
            if overall is not None:
                raise UserError(f"--steps-limit: two limits for every model ({overall} and {limit})")
            overall = limit
        elif name not in models:
            raise UserError(f"--steps-limit {value}: {name} is not among --model ({', '.join(models)})")
        else:
            per_model.append((name, limit))
    fields: dict = {"model_steps_limits": tuple(per_model)}
    if overall is not None:
        fields["steps_limit"] = overall
    return fields


def _load(names, settings, device, skip_missing: bool, low_memory: bool = False, upstream: Path | None = None):
    """``(generators or factories, registry names, skipped)``: each registered model built now, or with
    ``low_memory`` a factory that builds it for each run (harness.speed.bench.bench_interleaved frees it
    after). With ``upstream``, each model with an adapter is followed by upstream's sampler on its weights
    (harness.speed.upstream), under the same registry name (so a --steps-limit applies to both alike)."""
    from harness.core.errors import UserError
    from harness.core.registry import RegistryError, generators, load_plugins
    from harness.speed import upstream as up
    from harness.suites.suite import plugin_missing

    load_plugins()
    loaded, measured, skipped = [], [], {}
    for name in names:
        try:
            missing = plugin_missing(name)
        except RegistryError as e:
            missing = str(e)
        if missing:
            if not skip_missing:
                raise UserError(f"--model {name}: {missing}")
            skipped[name] = missing
            print(f"bench: skipping {name}: {missing}", file=sys.stderr)
            continue

        def build(name=name):
            try:
                return generators.get(name)(device=device, **settings.factory_options())
            except TypeError as e:  # a factory that does not take an option we pass (dtype, compile, random_weights)
                raise UserError(f"--model {name}: {e}") from None

        project = build if low_memory else build()
        loaded.append(project)
        measured.append(name)
        if upstream is None:
            continue
        if up.adapter_for(name) is None:
            skipped[f"{name} (upstream)"] = f"no upstream adapter (wired: {', '.join(up.ADAPTERS)})"
            print(f"bench: no upstream adapter for {name}; timing the project's only", file=sys.stderr)
            continue

        def official(name=name, project=project):
            return up.official_generator(project() if callable(project) else project, upstream, name)

        loaded.append(official if low_memory else official())
        measured.append(name)
    return loaded, measured, skipped


def run(args: argparse.Namespace) -> int:
    import dataclasses

    import torch

    from harness.core.devices import resolve_device
    from harness.nn.kernels import kernel_choice
    from harness.speed.bench import bench_interleaved
    from harness.speed.bench_records import Measured, write_bench_run
    from harness.speed.timing import load_average, machine_info, set_threads

    if args.agree:
        return agree(args)
    models, sweep = resolve_settings(args)
    set_threads(args.threads)
    device = resolve_device(args.device)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    load_start = load_average()
    gens, names, skipped = _load(
        models, sweep[0], device, args.skip_missing, args.low_memory, getattr(args, "upstream", None)
    )
    if not gens:  # nothing measured, nothing written: exit 0 only when skipping was asked for
        print("bench: no model to measure", file=sys.stderr)
        return 0 if args.skip_missing else 2
    measured = []
    for settings in sweep:
        settings = dataclasses.replace(
            settings, model_steps_limits=tuple((n, k) for n, k in settings.model_steps_limits if n not in skipped)
        )
        results = bench_interleaved(
            gens, settings, device, progress=lambda m: print(f"bench: {m}", file=sys.stderr), names=names
        )
        measured.append(Measured(settings, names, results))
    machine = {  # the kernels chosen on this machine (measured or read from the cache) for the models timed above
        **machine_info(device),
        "load_average_start": load_start,
        "load_average_end": load_average(),
        "kernel_choices": kernel_choice.recorded(),
    }
    text = write_bench_run(
        out,
        measured,
        device=device,
        machine=machine,
        skipped=skipped,
        preset=args.preset,
        low_memory=args.low_memory,
        command=getattr(args, "command_line", None),
    )
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    if args.json:  # the summary the run wrote, rows and ratios, as one document
        from harness.core.io import read_json

        print_json(read_json(out / "bench_summary.json"))
    else:
        print(text)
    return 0


def agree(args: argparse.Namespace) -> int:
    """Two bench runs row by row (harness.speed.bench.runs_agree) -> ``--out/agreement.json``."""
    from harness.core.errors import InputFileError
    from harness.core.io import read_json
    from harness.runs.records import write_result_json
    from harness.speed.bench import runs_agree

    summaries = []
    for run in args.agree:
        path = Path(run) / "bench_summary.json"
        summary = read_json(path)
        if not isinstance(summary, dict) or not isinstance(summary.get("rows"), list):
            raise InputFileError(path, "not a bench summary (no rows)")
        summaries.append(summary)
    rows = runs_agree(summaries[0]["rows"], summaries[1]["rows"])
    if not rows:
        raise InputFileError(Path(args.agree[1]), "no (model, batch, dtype) row in common with " + args.agree[0])
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    # through the result writer: commit, dirty flag, CPU model and this command, like every committed result
    write_result_json(
        {
            "runs": list(args.agree),
            "commands": [s.get("command") for s in summaries],
            "rule": "|median1 - median2| <= max(range1, range2) of the total time per batch, in units of the machine "
            "calibration timed before each repeat where both runs have it (--calibrate), else in seconds "
            "(harness.speed.timing.agree)",
            "rows": rows,
        },
        out / "agreement.json",
        command=getattr(args, "command_line", None),
    )
    for r in rows:
        cal = (
            f"; in calibrations {r['median_calibrations'][0]:.4g} / {r['median_calibrations'][1]:.4g}, ranges "
            f"{r['range_calibrations'][0]:.3g} / {r['range_calibrations'][1]:.3g}"
            if r["unit"] == "calibrations"
            else ""
        )
        print(
            f"{r['model']} batch {r['batch_size']} {r['dtype']}: medians {r['median_s'][0]:.4g} / "
            f"{r['median_s'][1]:.4g} s, ranges {r['range_s'][0]:.3g} / {r['range_s'][1]:.3g} s{cal}: "
            f"{'agree' if r['agree'] else 'DISAGREE'}"
        )
    return 0 if all(r["agree"] for r in rows) else 1

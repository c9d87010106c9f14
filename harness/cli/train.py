"""``alitok-bench train CONFIG.yaml [--set k=v] --out DIR [--publish]``: run the trainer the config names.

A train config is a YAML mapping with ``trainer: NAME`` (a name in the trainers registry, e.g.
``alitok-stage1``) and the trainer's own keys, which the trainer validates strictly. Relative paths
in the YAML resolve against the YAML's folder (those given with ``--set`` against the current
folder). Everything the run writes goes under ``--out``; rerunning with the same ``--out`` resumes
from the last checkpoint there. ``--publish`` also copies the exported weights to the config's
``export:`` path (the package's committed weights), the only write outside ``--out``.

Data parallel: the same command under ``torchrun --nproc_per_node N -m harness train ...`` (gloo on
CPU, NCCL on CUDA); ``batch_size`` stays the global batch, and a run resumes on another world size.
"""

from __future__ import annotations

from pathlib import Path

from harness.cli.common_args import add_json_arg, print_json
from harness.core import config
from harness.core.devices import resolve_device
from harness.core.registry import load_plugins, trainers
from harness.runs.training import close_parallel, resolve_config_paths


def add_arguments(p) -> None:
    p.add_argument("config", help="training YAML (with a 'trainer:' key)")
    p.add_argument(
        "--out", required=True, help="output folder (checkpoints, log, config, export, record); reused to resume"
    )
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config key (dotted), repeatable; relative paths resolve against the current folder",
    )
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    p.add_argument(
        "--publish",
        action="store_true",
        help="also copy the exported weights to the config's export: path (default: write only under --out)",
    )
    add_json_arg(p)


def run(args) -> int:
    load_plugins()
    data = config.load_yaml(args.config)
    name = data.pop("trainer", None)
    if not isinstance(name, str):
        raise config.ConfigError(f"{args.config}: trainer: required key missing (known: {', '.join(trainers.names())})")
    trainer = trainers.get(name)
    keys, keep = getattr(trainer, "path_keys", ()), getattr(trainer, "path_keep", ())
    data = resolve_config_paths(data, Path(args.config).resolve().parent, keys, keep)
    data = config.apply_overrides(data, args.overrides)
    data = resolve_config_paths(data, Path.cwd(), keys, keep)  # --set paths: against the current folder
    try:
        summary = trainer(data, Path(args.out), resolve_device(args.device), publish=args.publish)
    except config.ConfigError as e:
        raise config.ConfigError(f"{args.config}: {e}") from None
    close_parallel()  # under torchrun; other ranks return an empty summary
    if args.json:
        print_json(summary or {})
        return 0
    for key, value in (summary or {}).items():
        print(f"{key}: {value}")
    return 0

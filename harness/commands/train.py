"""``alitok-bench train CONFIG.yaml [--set k=v] --out DIR``: dispatch to the trainer the config names.

A train config is a YAML mapping with ``trainer: NAME`` (a name in the trainers registry, e.g.
``alitok-stage1``) and the trainer's own keys, which the trainer validates strictly. Rerunning
with the same ``--out`` resumes from the last checkpoint there.
"""
from __future__ import annotations

from pathlib import Path

from harness import config
from harness.devices import resolve_device
from harness.registry import load_plugins, trainers


def add_arguments(p) -> None:
    p.add_argument("config", help="training YAML (with a 'trainer:' key)")
    p.add_argument("--out", required=True, help="output folder (checkpoints, log, config); reused to resume")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key (dotted), repeatable")
    p.add_argument("--device", default="auto", help="auto|cpu|cuda[:N]")


def run(args) -> int:
    load_plugins()
    data = config.apply_overrides(config.load_yaml(args.config), args.overrides)
    name = data.pop("trainer", None)
    if not isinstance(name, str):
        raise config.ConfigError(f"{args.config}: trainer: required key missing (known: {', '.join(trainers.names())})")
    trainer = trainers.get(name)
    try:
        summary = trainer(data, Path(args.out), resolve_device(args.device))
    except config.ConfigError as e:
        raise config.ConfigError(f"{args.config}: {e}") from None
    for key, value in (summary or {}).items():
        print(f"{key}: {value}")
    return 0

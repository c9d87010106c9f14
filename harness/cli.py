"""``alitok-bench`` / ``python -m harness``: one dispatcher, one module per verb.

Verb modules live in ``harness/commands/`` and are imported only when their verb runs, so
``alitok-bench list`` stays fast. Each module defines ``add_arguments(parser)`` and
``run(args) -> int``.
"""
from __future__ import annotations

import argparse
import importlib
import sys

import harness  # noqa: F401  (installs the torchvision shim, sets HF_HUB_OFFLINE)

# verb -> (module, one-line help)
VERBS: dict[str, tuple[str, str]] = {
    "list": ("harness.commands.list_cmd", "list registered generators, tokenizers, metrics, suites"),
    "validate": ("harness.commands.validate", "resolve a spec YAML, print its hash and shard plan"),
    "sample": ("harness.commands.sample", "sample a protocol from a generator into shards + samples.npz"),
    "run": ("harness.commands.run", "run a suite (sample, evaluate, record, print a table)"),
    "eval": ("harness.commands.eval", "compute FID/IS/sFID/precision/recall/KID of a samples npz"),
    "ref-stats": ("harness.commands.ref_stats", "build or verify reference statistics"),
    "recon": ("harness.commands.recon", "reconstruct real images with a tokenizer: rFID, PSNR, SSIM, codebook usage"),
    "train": ("harness.commands.train", "train a tokenizer (stage 1/2) or an AR generator from YAML"),
}

ERROR_TYPES: tuple[type[BaseException], ...] = ()


def _error_types() -> tuple[type[BaseException], ...]:
    from harness.config import ConfigError
    from harness.errors import UserError
    from harness.registry import RegistryError

    return (UserError, ConfigError, RegistryError, ValueError, FileNotFoundError, PermissionError)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="alitok-bench", description=__doc__.splitlines()[0])
    parser.add_argument("--debug", action="store_true", help="show tracebacks instead of one-line errors")
    sub = parser.add_subparsers(dest="verb", metavar="VERB")
    for verb, (module, help_text) in VERBS.items():
        p = sub.add_parser(verb, help=help_text, description=help_text)
        p.set_defaults(_module=module)
        p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
        # Defer the verb's own arguments until it is chosen (keeps start-up light).
        p.set_defaults(_parser=p)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    # First pass: find the verb; second pass: parse with the verb's own arguments.
    known, _ = parser.parse_known_args(argv)
    if not getattr(known, "verb", None):
        parser.print_help()
        return 2
    module = importlib.import_module(known._module)
    module.add_arguments(known._parser)
    args = parser.parse_args(argv)
    try:
        return int(module.run(args) or 0)
    except KeyboardInterrupt:
        print("alitok-bench: interrupted", file=sys.stderr)
        return 130
    except _error_types() as e:
        if args.debug:
            raise
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        print(f"alitok-bench {args.verb}: error: {msg}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())

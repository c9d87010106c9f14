"""Floor 5, the command line: ``alitok-bench`` / ``python -m harness``, one dispatcher (here), one module per verb
(beside it).

Verb modules live in ``harness/cli/`` and are imported only when their verb runs, so
``alitok-bench list`` stays fast. Each module defines ``add_arguments(parser)`` and
``run(args) -> int``.
"""

from __future__ import annotations

import argparse
import importlib
import shlex
import sys

import harness  # noqa: F401  (sets HF_HUB_OFFLINE, arms the lazy torchvision shim; imports no torch)

# verb -> (module, one-line help)
VERBS: dict[str, tuple[str, str]] = {
    "list": ("harness.cli.list_cmd", "list registered generators, tokenizers, metrics, suites, trainers, protocols"),
    "validate": ("harness.cli.validate", "resolve a spec YAML, print its hash and shard plan"),
    "sample": ("harness.cli.sample", "sample a protocol from a generator into shards + samples.npz"),
    "run": ("harness.cli.run", "run a suite (sample, evaluate, record, print a table)"),
    "eval": ("harness.cli.eval", "compute FID/IS/sFID/precision/recall/KID of a samples npz"),
    "ref-stats": ("harness.cli.ref_stats", "build or verify reference statistics"),
    "recon": ("harness.cli.recon", "reconstruct real images with a tokenizer: rFID, PSNR, SSIM, codebook usage"),
    "train": ("harness.cli.train", "train a tokenizer (stage 1/2) or an AR generator from YAML"),
    "report": ("harness.cli.report", "tables (md/csv/tex) and plots (png/svg) from run records alone"),
    "claims": ("harness.cli.claims", "the paper's claims against measured records: reproduced / not / not run"),
    "ablate": ("harness.cli.ablate", "the ablation suite: rows x paired seeds, train + evaluate, table with spread"),
    "compare": (
        "harness.cli.compare",
        "regression gates between comparable records (exit 1 on failure, 2 if not comparable)",
    ),
    "cache": ("harness.cli.cache", "list or clear the feature cache ($ALITOK_BENCH_CACHE or ~/.cache/alitok-bench)"),
    "fetch": (
        "harness.cli.fetch",
        "download the official files (weights, reference batches) into the weights root, verified",
    ),
    "bench": ("harness.cli.bench", "images/s of generators side by side, decode included (speed records)"),
}


def _error_types() -> tuple[type[BaseException], ...]:
    from harness.core.errors import UserError

    # Input errors and OS errors (disk full, read-only, permissions) get one line and exit 2;
    # anything else is a programming error and keeps its traceback.
    return (UserError, OSError)


class DefaultsHelpFormatter(argparse.HelpFormatter):
    """Appends "(default: X)" to an option's help when it has a meaningful default (not None/False/[])."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if (
            "%(default)" in text
            or default is argparse.SUPPRESS
            or default is None
            or default is False
            or default == []
            or not (action.option_strings or action.nargs in ("?", "*"))
        ):
            return text
        return f"{text} (default: %(default)s)"


def build_parser() -> tuple[argparse.ArgumentParser, dict[str, argparse.ArgumentParser]]:
    parser = argparse.ArgumentParser(
        prog="alitok-bench",
        description="Evaluate image tokenizers and generators under ImageNet-256 protocols.",
        formatter_class=DefaultsHelpFormatter,
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks instead of one-line errors")
    sub = parser.add_subparsers(dest="verb", metavar="VERB")
    verbs = {}
    for verb, (_, help_text) in VERBS.items():
        p = sub.add_parser(verb, help=help_text, description=help_text, formatter_class=DefaultsHelpFormatter)
        p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
        verbs[verb] = p
    return parser, verbs


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser, verbs = build_parser()
    # The only global option is the flag --debug, so the first bare word is the verb. Only that
    # verb's module is imported (and its arguments added), which keeps start-up light.
    verb = next((a for a in argv if not a.startswith("-")), None)
    module = None
    if verb in VERBS:
        module = importlib.import_module(VERBS[verb][0])
        module.add_arguments(verbs[verb])
    args = parser.parse_args(argv)
    args.command_line = "alitok-bench " + " ".join(shlex.quote(a) for a in argv)  # for records that name their command
    if module is None:
        parser.print_help()
        return 2
    try:
        return int(module.run(args) or 0)
    except KeyboardInterrupt:
        print("alitok-bench: interrupted", file=sys.stderr)
        return 130
    except _error_types() as e:
        if args.debug:
            raise
        from harness.core.errors import one_line

        msg = one_line(e)
        print(f"alitok-bench {args.verb}: error: {msg}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())

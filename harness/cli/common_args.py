"""Argument groups several verbs share, defined once so their names, defaults and help stay the same."""

from __future__ import annotations

import argparse
import os


def _int_at_least(minimum: int):
    """argparse type for counts and sizes below which a value is refused, never read as "unset"."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number >= {minimum}, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {value}")
        return value

    return parse


positive_int = _int_at_least(1)
non_negative_int = _int_at_least(0)


def add_feature_args(p: argparse.ArgumentParser, *, batch_size: int = 50) -> None:
    """The feature extractor: Inception weights, batch, device, feature cache, progress bars."""
    p.add_argument(
        "--inception", default="fid-helper", help="official | fid-helper | random:SEED | PATH (default: %(default)s)"
    )
    p.add_argument(
        "--batch-size", type=positive_int, default=batch_size, help="images per forward pass (default: %(default)s)"
    )
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N (default: %(default)s)")
    p.add_argument("--no-cache", action="store_true", help="do not read or write the feature cache")
    p.add_argument(
        "--quiet",
        "--no-progress",
        dest="quiet",
        action="store_true",
        help="no progress bars (eval: no warnings either)",
    )


def add_image_source_args(p: argparse.ArgumentParser, *, per_class: int) -> None:
    """How an image source is read: ImageNet folder split and crop size, embedded images per class, a limit."""
    p.add_argument("--split", default="val", help="ImageNet folder split (default: %(default)s)")
    p.add_argument(
        "--image-size", type=positive_int, default=256, help="ImageNet centre-crop size (default: %(default)s)"
    )
    p.add_argument(
        "--per-class", type=positive_int, default=per_class, help="embedded: images per class (default: %(default)s)"
    )
    p.add_argument("--limit", type=positive_int, default=None, help="use only the first N images (folders)")


def add_weights_root_arg(p: argparse.ArgumentParser) -> None:
    """Where official files are found by their official names (the weights root of ``alitok-bench fetch``)."""
    p.add_argument(
        "--weights-root",
        metavar="DIR",
        default=None,
        help="folder holding the official files under their official names (default: $ALITOK_BENCH_WEIGHTS, "
        "else ~/.cache/alitok-bench/weights)",
    )


def use_weights_root(args: argparse.Namespace) -> None:
    """``--weights-root DIR`` becomes $ALITOK_BENCH_WEIGHTS for this process and the jobs it starts, so every
    place that resolves an official name (suites, factories, fetch hints) reads the same root."""
    root = getattr(args, "weights_root", None)
    if root:
        from pathlib import Path

        from harness.fetch.store import WEIGHTS_ENV

        path = Path(root).expanduser()
        if path.exists() and not path.is_dir():
            from harness.core.errors import UserError

            raise UserError(f"--weights-root {root}: not a folder")
        os.environ[WEIGHTS_ENV] = str(path.resolve())


# One dtype vocabulary for every verb that runs a model (bench takes the same names; it does not time fp16).
DTYPE_CHOICES = ("fp32", "tf32", "bf16", "fp16")


class _DtypeAction(argparse.Action):
    """``--dtype tf32`` is fp32 weights with TF32 matmuls on CUDA: stored as dtype fp32 + tf32, as records keep it."""

    def __call__(self, parser, namespace, value, _option_string=None):  # argparse passes it positionally
        namespace.dtype = "fp32" if value == "tf32" else value
        if value == "tf32":
            namespace.tf32 = True


class _DeprecatedTf32Action(argparse.Action):
    def __init__(self, option_strings, dest, **kwargs):
        super().__init__(option_strings, dest, nargs=0, **kwargs)

    def __call__(self, parser, namespace, values, _option_string=None):  # argparse passes it positionally
        import sys

        print("warning: --tf32 is deprecated; use --dtype tf32 (same effect)", file=sys.stderr)
        namespace.tf32 = True


def add_dtype_args(p: argparse.ArgumentParser, what: str = "model dtype") -> None:
    """``--dtype fp32|tf32|bf16|fp16`` (sets ``args.dtype`` and ``args.tf32``); ``--tf32`` stays as a deprecated
    alias of ``--dtype tf32`` that warns once."""
    p.set_defaults(dtype="fp32", tf32=False)
    p.add_argument(
        "--dtype",
        choices=DTYPE_CHOICES,
        action=_DtypeAction,
        default="fp32",
        help=f"{what}; tf32 = fp32 with TF32 matmuls on CUDA",
    )
    p.add_argument("--tf32", action=_DeprecatedTf32Action, default=False, help="deprecated: use --dtype tf32")


def add_json_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print one JSON document on stdout and nothing else")


def jsonable(value):
    """Plain JSON types: NaN/inf become null (JSON has no such numbers), numpy/pandas scalars their Python value."""
    import math

    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        try:
            value = value.item()  # numpy / pandas scalar
        except (TypeError, ValueError):
            return str(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    try:
        import pandas as pd

        if pd.isna(value):
            return None
    except (TypeError, ValueError, ImportError):
        pass
    return str(value)


def frame_rows(df) -> list[dict]:
    """A DataFrame as a list of row mappings with JSON values."""
    return [jsonable(row) for row in df.to_dict(orient="records")]


def print_json(doc) -> None:
    """The one JSON writer of the verbs' ``--json``: sorted keys, no NaN (refused by strict readers)."""
    import json
    import sys

    sys.stdout.write(json.dumps(jsonable(doc), indent=1, sort_keys=True, allow_nan=False) + "\n")

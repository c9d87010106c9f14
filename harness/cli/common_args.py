"""Argument groups several verbs share, defined once so their names, defaults and help stay the same."""

from __future__ import annotations

import argparse


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
    p.add_argument("--quiet", "--no-progress", dest="quiet", action="store_true", help="no progress bars")


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

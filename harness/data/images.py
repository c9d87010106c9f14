"""One image file -> 8-bit RGB, the one way every image source (folders, ImageNet, training crops) decodes.

Two things ``Image.open(f).convert("RGB")`` gets wrong, which is what torch-fidelity and clean-fid do:
- 16-bit greyscale PNGs open as mode ``I;16`` and ``convert`` clips every value above 255 to white, so
  FID sees a different image. Here 16 bits become 8 as ``v >> 8`` (the high byte): what Pillow itself
  does for 16-bit RGB PNGs (raw mode ``RGB;16B``) and what torchvision's ``convert_image_dtype``
  (``torchvision/transforms/_functional_tensor.py``) does from uint16 to uint8.
- Pillow only warns about a decompression bomb up to twice ``Image.MAX_IMAGE_PIXELS`` (89.5 M pixels)
  and raises an exception type of its own beyond; both are refused here, naming the file.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import Image

from harness.core.errors import InputFileError, one_line

_SIXTEEN_BIT_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I")


def _to_rgb(im: Image.Image, path: Path) -> Image.Image:
    if im.mode in _SIXTEEN_BIT_MODES:
        a = np.asarray(im)
        if a.size and (int(a.min()) < 0 or int(a.max()) > 65535):
            raise InputFileError(path, f"{im.mode} image with values outside 0..65535; give 8- or 16-bit images")
        return Image.fromarray((a.astype(np.uint32) >> 8).astype(np.uint8), "L").convert("RGB")
    return im.convert("RGB")


@contextlib.contextmanager
def _opened(path: Path) -> Iterator[Image.Image]:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                yield im
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise InputFileError(path, f"refused as a decompression bomb ({one_line(e)})") from None
    except (OSError, SyntaxError, ValueError) as e:
        raise InputFileError(path, f"cannot read image ({type(e).__name__}: {one_line(e)})") from None


def open_rgb(path: str | Path, *, format: str | None = None) -> Image.Image:
    """The decoded 8-bit RGB image; a missing, corrupt or oversized file is one ``InputFileError`` naming it.
    ``format`` ("PNG") refuses files of any other format."""
    path = Path(path)
    with _opened(path) as im:
        if format is not None and im.format != format:
            raise InputFileError(path, f"cannot read image (format is {im.format}, not {format})")
        im.load()
        return _to_rgb(im, path)


def read_rgb(path: str | Path, *, format: str | None = None) -> np.ndarray:
    """uint8 [H, W, 3] of one image file (see ``open_rgb``)."""
    return np.asarray(open_rgb(path, format=format), dtype=np.uint8)

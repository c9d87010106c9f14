"""Explicit resizes for evaluating images of another size than their reference (``eval --resize``).

- ``clean``: clean-fid's "clean" resize (``cleanfid/resize.py`` ``make_resizer("PIL", False, "bicubic",
  (299, 299))``): each channel resized in float32 with PIL's antialiased bicubic, clipped to 0..255. The feature
  pipeline here takes uint8, so the result is rounded to the nearest integer (at most 0.5/255 from clean-fid's
  float input); Inception's own TF1 bilinear resize of a 299 px image to 299 px leaves it as it is.
- ``center-crop``: ADM's ``center_crop_arr`` (``harness.data.imagenet``): BOX halvings, BICUBIC to the short
  side, centre square crop; the reference batches of the papers were made this way.

Neither is the default: images of mixed sizes are refused unless one is asked for.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

RESIZE_MODES = ("clean", "center-crop")
CLEAN_SIZE = 299  # clean-fid resizes to the Inception input size


def resize_image(image: np.ndarray, mode: str, size: int) -> np.ndarray:
    """One uint8 ``[H, W, 3]`` image resized by ``mode`` to ``size`` x ``size`` (uint8)."""
    if mode == "clean":
        channels = [
            np.asarray(Image.fromarray(image[:, :, c].astype(np.float32), mode="F").resize((size, size), Image.BICUBIC))
            for c in range(3)
        ]
        return np.rint(np.clip(np.stack(channels, axis=2), 0, 255)).astype(np.uint8)
    if mode == "center-crop":
        from harness.data.imagenet import center_crop_arr

        return center_crop_arr(Image.fromarray(image), size)
    raise ValueError(f"resize mode {mode!r}: use one of {', '.join(RESIZE_MODES)}")

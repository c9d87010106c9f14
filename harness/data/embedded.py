""" "Natural patches": a class-conditional dataset cut from photos that ship inside installed packages.

Class = source photo (scikit-image, scikit-learn, matplotlib; nothing is downloaded). Each photo is
split by columns into a train region (left 2/3) and a val region (right part), separated by a gap,
so no val crop shares a pixel with any train crop. A crop is a square of random side
``u * short_side`` (u uniform in [0.2, 0.4], clipped to the region) at a random position, cut out and then resized
to ``image_size`` with Pillow's BICUBIC filter (Pillow's resize is antialiased when shrinking).
Randomness: one ``numpy.random.Generator`` per (seed, split, class), so the crops of one class do
not depend on how many classes or other samples are asked for. Photos are cached in memory only.
"""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path

import numpy as np
from PIL import Image

from harness.core.errors import UserError

# name -> how to load it (module, attribute or file); order fixes the class ids.
_SOURCES: dict[str, tuple[str, str]] = {
    "astronaut": ("skimage", "astronaut"),
    "chelsea": ("skimage", "chelsea"),
    "coffee": ("skimage", "coffee"),
    "rocket": ("skimage", "rocket"),
    "hubble_deep_field": ("skimage", "hubble_deep_field"),
    "immunohistochemistry": ("skimage", "immunohistochemistry"),
    "retina": ("skimage", "retina"),
    "stereo_motorcycle": ("skimage", "stereo_motorcycle"),  # the left view
    "china": ("sklearn", "china.jpg"),
    "flower": ("sklearn", "flower.jpg"),
    "grace_hopper": ("matplotlib", "grace_hopper.jpg"),
}
CLASSES: tuple[str, ...] = tuple(_SOURCES)
NUM_CLASSES = len(CLASSES)
SPLITS = ("train", "val")
SUPPORTED_SIZES = (32, 64, 256)

TRAIN_FRACTION = 2 / 3  # columns [0, 2W/3 - gap) are train, [2W/3, W) are val
GAP_FRACTION = 0.02  # of the width, removed from the end of the train region
SCALE_RANGE = (0.2, 0.4)  # crop side as a fraction of the photo's short side


class EmbeddedDataError(UserError, ValueError):
    """An embedded-dataset argument out of range (split, image size, count, photo name)."""


def num_classes() -> int:
    return NUM_CLASSES


@functools.cache
def load_photo(name: str) -> np.ndarray:
    """The full RGB photo as uint8 [H, W, 3] (read-only, cached in memory)."""
    if name not in _SOURCES:
        raise EmbeddedDataError(f"unknown embedded photo {name!r} (known: {', '.join(CLASSES)})")
    kind, what = _SOURCES[name]
    if kind == "skimage":
        import skimage.data

        arr = getattr(skimage.data, what)()
        if isinstance(arr, tuple):  # stereo_motorcycle -> (left, right, disparity)
            arr = arr[0]
    elif kind == "sklearn":
        import sklearn.datasets

        path = Path(sklearn.datasets.__file__).parent / "images" / what
        arr = np.asarray(Image.open(path).convert("RGB"))
    else:
        import matplotlib.cbook

        with matplotlib.cbook.get_sample_data(what) as f:
            arr = np.asarray(Image.open(f).convert("RGB"))
    arr = np.ascontiguousarray(arr[..., :3], dtype=np.uint8)
    arr.setflags(write=False)
    return arr


def split_region(width: int, split: str) -> tuple[int, int]:
    """Column range ``[x0, x1)`` of ``split`` in a photo ``width`` pixels wide (train/val disjoint)."""
    cut = int(width * TRAIN_FRACTION)
    gap = max(1, int(width * GAP_FRACTION))
    if split == "train":
        return 0, cut - gap
    if split == "val":
        return cut, width
    raise EmbeddedDataError(f"split must be one of {SPLITS}, got {split!r}")


def _class_rng(seed: int, split: str, class_id: int) -> np.random.Generator:
    digest = hashlib.sha256(f"natural-patches:{seed}:{split}:{class_id}".encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


def crop_boxes(class_id: int, split: str, count: int, seed: int = 0) -> np.ndarray:
    """The ``count`` crop boxes ``(x0, y0, x1, y1)`` in photo pixels for one class (int64 [count, 4])."""
    h, w = load_photo(CLASSES[class_id]).shape[:2]
    x0, x1 = split_region(w, split)
    rng = _class_rng(seed, split, class_id)
    max_side = min(x1 - x0, h)
    u = rng.uniform(size=(count, 3))  # one row per crop, so fewer crops are a prefix of more
    lo, hi = SCALE_RANGE
    sides = np.minimum(((lo + (hi - lo) * u[:, 0]) * min(h, w)).astype(np.int64), max_side)
    sides = np.maximum(sides, 8)
    xs = x0 + (u[:, 1] * (x1 - x0 - sides + 1)).astype(np.int64)
    ys = (u[:, 2] * (h - sides + 1)).astype(np.int64)
    return np.stack([xs, ys, xs + sides, ys + sides], axis=1)


def natural_patches(
    split: str = "train", image_size: int = 32, per_class: int = 64, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """``(images uint8 [N,H,W,3], labels int64 [N])``, N = per_class * NUM_CLASSES, label(i) = i % NUM_CLASSES.

    Same arguments -> identical bytes. ``split`` is "train" or "val" (disjoint photo regions).
    """
    if split not in SPLITS:
        raise EmbeddedDataError(f"split must be one of {SPLITS}, got {split!r}")
    if image_size not in SUPPORTED_SIZES:
        raise EmbeddedDataError(f"image_size must be one of {SUPPORTED_SIZES}, got {image_size}")
    if per_class < 1:
        raise EmbeddedDataError(f"per_class must be >= 1, got {per_class}")
    n = per_class * NUM_CLASSES
    images = np.empty((n, image_size, image_size, 3), dtype=np.uint8)
    for c, name in enumerate(CLASSES):
        photo = load_photo(name)
        for j, (bx0, by0, bx1, by1) in enumerate(crop_boxes(c, split, per_class, seed)):
            # cut first, then resize: the filter must not reach pixels outside the box (split gap)
            patch = Image.fromarray(photo[by0:by1, bx0:bx1]).resize((image_size, image_size), Image.BICUBIC)
            images[j * NUM_CLASSES + c] = np.asarray(patch)
    labels = np.arange(n, dtype=np.int64) % NUM_CLASSES
    return images, labels

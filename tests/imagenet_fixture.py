"""A fake ImageNet folder for tests: ``root/{train,val}/<synset>/*`` with small JPEG and PNG images of
varying sizes and class-dependent colours (4 synsets)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

SYNSETS = ("n01440764", "n01443537", "n01484850", "n01491361")
SIZES = ((40, 48), (64, 36), (50, 50), (37, 70))  # (width, height): portrait, landscape, square


def make_fake_imagenet(root: Path, train_per_class: int = 3, val_per_class: int = 2, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    for split, per_class in (("train", train_per_class), ("val", val_per_class)):
        for c, synset in enumerate(SYNSETS):
            folder = root / split / synset
            folder.mkdir(parents=True, exist_ok=True)
            for j in range(per_class):
                w, h = SIZES[(c + j) % len(SIZES)]
                base = np.array([60 * c, 255 - 50 * c, 120], dtype=np.float64)
                yy, xx = np.mgrid[0:h, 0:w]
                img = base + 40 * np.sin(xx[..., None] / (3 + c)) + rng.normal(0, 12, (h, w, 3))
                arr = np.clip(img, 0, 255).astype(np.uint8)
                ext = "JPEG" if j % 2 == 0 else "png"
                Image.fromarray(arr).save(
                    folder / f"{synset}_{split}_{j}.{ext}", format="JPEG" if ext == "JPEG" else "PNG"
                )
    return root


def corrupt_one(root: Path, split: str = "train") -> Path:
    """Truncate the first JPEG of the split to its first bytes: a file that cannot be decoded."""
    path = sorted((root / split).rglob("*.JPEG"))[0]
    data = path.read_bytes()
    path.write_bytes(data[:20])
    return path

"""Image sources named on the command line, shared by ``ref-stats build`` and ``recon``.

A source is an npz (``arr_0``), a shards folder, a folder of PNGs, an ImageNet folder
(``root/<split>/<synset>/...``, ADM ``center_crop_arr``), or ``embedded[:split[:size]]``.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from harness.errors import InputFileError


@dataclasses.dataclass
class ImageSource:
    images: Any            # uint8 [N,H,W,3] array, an npz/shards path, or an iterator of uint8 batches
    description: str
    labels: np.ndarray | None = None


def _png_batches(files: list[Path], batch: int) -> Iterator[np.ndarray]:
    from PIL import Image

    for i in range(0, len(files), batch):
        imgs = []
        for f in files[i : i + batch]:
            try:
                with Image.open(f) as im:
                    imgs.append(np.asarray(im.convert("RGB"), dtype=np.uint8))
            except OSError as e:
                raise InputFileError(f, f"unreadable image ({e})") from None
        if len({a.shape for a in imgs}) != 1:
            raise InputFileError(files[i], "images in the folder differ in size")
        yield np.stack(imgs)


def _imagenet_batches(ds, n: int, batch: int) -> Iterator[np.ndarray]:
    for i in range(0, n, batch):
        yield np.stack([ds.load(j) for j in range(i, min(n, i + batch))])


def open_source(src: str, *, split: str = "val", image_size: int = 256, per_class: int = 64,
                limit: int | None = None, batch_size: int = 50) -> ImageSource:
    if limit is not None and limit < 1:
        raise ValueError(f"--limit must be >= 1, got {limit}")
    if src == "embedded" or src.startswith("embedded:"):
        from harness.data.embedded import natural_patches

        parts = src.split(":")
        e_split = parts[1] if len(parts) > 1 and parts[1] else "val"
        size = int(parts[2]) if len(parts) > 2 else 32
        images, labels = natural_patches(split=e_split, image_size=size, per_class=per_class, seed=0)
        if limit:
            images, labels = images[:limit], labels[:limit]
        return ImageSource(images, f"embedded natural patches split={e_split} size={size} per_class={per_class} "
                                   f"seed=0 n={len(images)}", labels)
    p = Path(src)
    if p.is_file():
        return ImageSource(p, f"npz:{p}")
    if not p.is_dir():
        raise InputFileError(p, "source not found (npz, folder, or embedded[:split[:size]])")
    if any(p.glob("chunk_*.npz")) or (p / "shards").is_dir():
        return ImageSource(p, f"shards:{p}")
    if (p / split).is_dir():
        from harness.data.imagenet import ImageFolderDataset

        ds = ImageFolderDataset(p, split, image_size)
        n = len(ds) if limit is None else min(limit, len(ds))
        return ImageSource(_imagenet_batches(ds, n, batch_size),
                           f"imagenet:{p}/{split} center_crop_arr {image_size} n={n}", np.asarray(ds.labels[:n]))
    files = sorted(f for f in p.iterdir() if f.suffix.lower() == ".png")
    if not files:
        raise InputFileError(p, f"no .png files, chunk_*.npz shards or {split!r} split folder")
    files = files[:limit] if limit else files
    return ImageSource(_png_batches(files, batch_size), f"png-folder:{p} n={len(files)}")

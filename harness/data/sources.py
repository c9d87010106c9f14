"""Image sources named on the command line, shared by ``ref-stats build`` and ``recon``.

A source is an npz (``arr_0``), a shards folder, a folder of PNG/JPEG images, an ImageNet folder
(``root/<split>/<synset>/...``, ADM ``center_crop_arr``), or ``embedded[:split[:size]]``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from harness.core.errors import InputFileError


@dataclasses.dataclass
class ImageSource:
    images: Any  # uint8 [N,H,W,3] array, an npz/shards path, or an iterator of uint8 batches
    description: str
    labels: np.ndarray | None = None


IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


def image_files(folder: str | Path) -> list[Path]:
    """PNG/JPEG files of a folder, sorted by name (as pytorch-fid and torch-fidelity read a folder)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputFileError(folder, "image folder not found")
    files = sorted(f for f in folder.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES and f.is_file())
    if not files:
        raise InputFileError(folder, "no .png/.jpg/.jpeg images, chunk_*.npz shards or spec.json in the folder")
    return files


def iter_image_batches(files: list[Path], batch: int) -> Iterator[np.ndarray]:
    """uint8 RGB batches of the files (every image must have the first one's size)."""
    from harness.data.images import read_rgb

    first = None
    for i in range(0, len(files), batch):
        imgs = []
        for f in files[i : i + batch]:
            arr = read_rgb(f)
            if first is None:
                first = (f, arr.shape)
            elif arr.shape != first[1]:
                raise InputFileError(
                    f,
                    f"size {arr.shape[1]}x{arr.shape[0]} differs from {first[1][1]}x{first[1][0]} of {first[0].name} "
                    "(eval --resize clean|center-crop resizes each image explicitly)",
                )
            imgs.append(arr)
        yield np.stack(imgs)


def _imagenet_batches(ds, n: int, batch: int) -> Iterator[np.ndarray]:
    for i in range(0, n, batch):
        yield np.stack([ds.load(j) for j in range(i, min(n, i + batch))])


def open_source(
    src: str,
    *,
    split: str = "val",
    image_size: int = 256,
    per_class: int = 64,
    limit: int | None = None,
    batch_size: int = 50,
) -> ImageSource:
    if limit is not None and limit < 1:
        raise ValueError(f"--limit must be >= 1, got {limit}")
    if src == "embedded" or src.startswith("embedded:"):
        from harness.data.embedded import natural_patches

        parts = src.split(":")
        if len(parts) > 3 or (len(parts) == 3 and not parts[2].isdigit()):
            raise InputFileError(src, "expected embedded[:split[:size]] with a whole-number size, e.g. embedded:val:32")
        e_split = parts[1] if len(parts) > 1 and parts[1] else "val"
        size = int(parts[2]) if len(parts) > 2 else 32
        images, labels = natural_patches(split=e_split, image_size=size, per_class=per_class, seed=0)
        if limit:
            images, labels = images[:limit], labels[:limit]
        return ImageSource(
            images,
            f"embedded natural patches split={e_split} size={size} per_class={per_class} seed=0 n={len(images)}",
            labels,
        )
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
        return ImageSource(
            _imagenet_batches(ds, n, batch_size),
            f"imagenet:{p}/{split} center_crop_arr {image_size} n={n}",
            np.asarray(ds.labels[:n]),
        )
    if not any(f.suffix.lower() in IMAGE_SUFFIXES for f in p.iterdir()):
        raise InputFileError(p, f"no .png/.jpg images, chunk_*.npz shards or {split!r} split folder")
    if limit is None:
        return ImageSource(p, f"image-folder:{p}")  # a path: hashed, so its features are cached
    files = image_files(p)[:limit]
    return ImageSource(iter_image_batches(files, batch_size), f"image-folder:{p} n={len(files)}")

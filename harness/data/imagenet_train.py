"""Training images from an ImageNet folder, drawn so that a batch is a pure function of (seed, step).

Tokenizer crops follow the official AliTok / 1d-tokenizer recipe: resize the short side to S
(Pillow BICUBIC, antialiased when shrinking, as torchvision's ``Resize`` on a PIL image), a random
S x S crop, a random horizontal flip. AR pretokenisation follows upstream ``pretokenization.py
--ten_crop``: ADM ``center_crop_arr`` to int(1.1 S), then torchvision's TenCrop layout (four corners
and the centre, then the same five of the horizontally flipped image).

Determinism and data parallel: ``plan(seed, step, batch_size)`` draws the whole global batch (image
indices, crop positions as uniform fractions, flips) from a generator seeded by (seed, step) alone;
each rank keeps its slice of the plan and decodes only those images. So every rank sees the same
global batch whatever the world size, a resumed run needs no data state, and a prefetcher can
prepare step s+1 while step s trains. Decoding uses a thread pool (Pillow releases the GIL).
"""

from __future__ import annotations

import dataclasses
import hashlib
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from harness.core.config import ConfigError
from harness.data.imagenet import ImageFolderDataset, center_crop_arr
from harness.data.images import open_rgb


def random_crop_arr(img: Image.Image, size: int, u_y: float, u_x: float, flip: bool) -> np.ndarray:
    """Resize(short side = size, BICUBIC) + crop at fractions (u_y, u_x) of the free range + flip -> uint8 [S,S,3]."""
    w, h = img.size
    scale = size / min(w, h)
    new = (max(size, round(w * scale)), max(size, round(h * scale)))
    if new != (w, h):
        img = img.resize(new, resample=Image.BICUBIC)
    arr = np.asarray(img)
    top = int(u_y * (arr.shape[0] - size + 1))
    left = int(u_x * (arr.shape[1] - size + 1))
    out = arr[top : top + size, left : left + size]
    return np.ascontiguousarray(out[:, ::-1] if flip else out)


def ten_crop_arr(img: Image.Image, size: int) -> np.ndarray:
    """ADM centre crop to int(1.1*size), then TenCrop(size) -> uint8 [10,S,S,3] (corners, centre; flipped)."""
    big = center_crop_arr(img, int(1.1 * size))
    b = big.shape[0]
    offsets = [(0, 0), (0, b - size), (b - size, 0), (b - size, b - size), ((b - size) // 2, (b - size) // 2)]
    out = np.empty((10, size, size, 3), dtype=np.uint8)
    for flip in (0, 1):
        src = big[:, ::-1] if flip else big
        for j, (top, left) in enumerate(offsets):
            out[5 * flip + j] = src[top : top + size, left : left + size]
    return out


def step_generator(seed: object, step: int, salt: str = "imagenet-train") -> torch.Generator:
    """A generator seeded by (seed, step) alone (``seed`` may be a tuple such as (run seed, data seed))."""
    digest = hashlib.sha256(f"{salt}:{seed}:{step}".encode()).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest[:8], "little") & ((1 << 63) - 1))


@dataclasses.dataclass(frozen=True)
class BatchPlan:
    """What a batch holds before any pixel is read: dataset indices, crop fractions [B,2], flips."""

    index: torch.Tensor
    crop: torch.Tensor
    flip: torch.Tensor

    def __len__(self) -> int:
        return len(self.index)

    def slice(self, start: int, stop: int) -> BatchPlan:
        return BatchPlan(self.index[start:stop], self.crop[start:stop], self.flip[start:stop])


class ImageNetTrainSource:
    """Random crops of ``root/<split>`` for training (file listing as ``ImageFolderDataset``)."""

    def __init__(
        self,
        root: str | Path,
        split: str = "train",
        image_size: int = 256,
        workers: int = 4,
        label_file: str | Path | None = None,
    ):
        self.dataset = ImageFolderDataset(root, split, image_size, label_file=label_file)
        self.image_size = image_size
        self.workers = workers
        self._pool = ThreadPoolExecutor(workers) if workers > 0 else None  # decodes images
        self._prefetch = ThreadPoolExecutor(1) if workers > 0 else None  # assembles the next step's slice
        self._ahead: dict[tuple, Future] = {}

    def __len__(self) -> int:
        return len(self.dataset)

    @property
    def num_classes(self) -> int:
        return len(self.dataset.classes)

    def describe(self) -> dict:
        return {
            "source": "imagenet",
            "root": str(self.dataset.root),
            "split": self.dataset.split,
            "images": len(self),
            "classes": self.num_classes,
            "image_size": self.image_size,
            "crop": "resize short side (bicubic) + random crop + random hflip",
        }

    def plan(self, seed: object, step: int, batch_size: int, hflip: bool = True) -> BatchPlan:
        """The global batch of ``step``: a function of (seed, step, batch_size) only."""
        g = step_generator(seed, step)
        index = torch.randint(len(self), (batch_size,), generator=g)
        crop = torch.rand(batch_size, 2, generator=g, dtype=torch.float64)
        flip = torch.rand(batch_size, generator=g) < 0.5
        return BatchPlan(index, crop, flip if hflip else torch.zeros_like(flip))

    def crop(self, index: int, u_y: float, u_x: float, flip: bool) -> np.ndarray:
        return random_crop_arr(open_rgb(self.dataset.samples[index][0]), self.image_size, u_y, u_x, flip)

    def load(self, plan: BatchPlan) -> np.ndarray:
        """uint8 [b,S,S,3] of the planned crops (in plan order)."""
        args = [(int(i), float(c[0]), float(c[1]), bool(f)) for i, c, f in zip(plan.index, plan.crop, plan.flip)]
        if self._pool is None:
            return np.stack([self.crop(*a) for a in args])
        return np.stack(list(self._pool.map(lambda a: self.crop(*a), args)))

    def rank_batch(
        self, seed: object, step: int, batch_size: int, hflip: bool, rank: int = 0, world_size: int = 1
    ) -> np.ndarray:
        """This rank's slice of the global batch of ``step``; the next step's slice is decoded in
        the background meanwhile (it is known in advance, being a function of the step)."""
        key = (seed, step, batch_size, hflip, rank, world_size)
        fut = self._ahead.pop(key, None)
        out = fut.result() if fut is not None else self._rank_slice(*key)
        self._ahead.clear()  # a step that was not asked for next (a restart) is dropped
        if self._prefetch is not None:
            nxt = (seed, step + 1, batch_size, hflip, rank, world_size)
            self._ahead[nxt] = self._prefetch.submit(self._rank_slice, *nxt)
        return out

    def _rank_slice(
        self, seed: object, step: int, batch_size: int, hflip: bool, rank: int, world_size: int
    ) -> np.ndarray:
        if batch_size % world_size:
            raise ConfigError(f"batch_size: {batch_size} is not divisible by the world size {world_size}")
        n = batch_size // world_size
        return self.load(self.plan(seed, step, batch_size, hflip).slice(rank * n, (rank + 1) * n))

    def close(self) -> None:
        for pool in (self._prefetch, self._pool):
            if pool is not None:
                pool.shutdown(wait=True, cancel_futures=True)
        self._pool = self._prefetch = None
        self._ahead.clear()


def first_per_class(labels: np.ndarray, per_class: int | None) -> np.ndarray:
    """Indices of the first ``per_class`` images of every class in listing order (None: all), sorted."""
    if per_class is None:
        return np.arange(len(labels))
    keep = np.zeros(len(labels), dtype=bool)
    for c in np.unique(labels):
        keep[np.flatnonzero(labels == c)[:per_class]] = True
    return np.flatnonzero(keep)


def iter_center_crops(
    dataset: ImageFolderDataset, indices: np.ndarray, batch_size: int, workers: int = 4, ten_crop: bool = False
):
    """uint8 batches [b,S,S,3] (or [b,10,S,S,3] with ``ten_crop``) of ``indices`` in order: ADM
    centre crops at the dataset's size (held-out images, pretokenisation). Decoded by a thread pool."""
    size = dataset.image_size

    def one(i: int) -> np.ndarray:
        img = open_rgb(dataset.samples[int(i)][0])
        return ten_crop_arr(img, size) if ten_crop else center_crop_arr(img, size)

    pool = ThreadPoolExecutor(workers) if workers > 0 else None
    try:
        for start in range(0, len(indices), batch_size):
            chunk = indices[start : start + batch_size]
            yield np.stack(list(pool.map(one, chunk)) if pool else [one(i) for i in chunk])
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)

"""AR training codes of an ImageNet folder: pretokenised once, in chunks, shared out over the ranks.

Upstream (``pretokenization.py --ten_crop``): every train image -> ADM centre crop to int(1.1 S) ->
TenCrop(S) -> 10 code sequences; the loader picks one of the ten per draw. Held-out codes: the
val split's ADM centre crops at S. Here the images are cut into chunks of ``CHUNK`` (train, then
val); each missing chunk is encoded by one rank (missing chunk j -> rank j % world) and written
as ``out/codes-KEY/{split}_{i:05d}.npy`` (int16 / int32), so a killed pretokenisation resumes at
the missing chunks and N processes encode N times as fast. The key hashes the data settings, the
file listing and the tokenizer (its checkpoint sha256), so a different tokenizer never reads stale
codes. Train codes stay memory-mapped (one page cache for all ranks of a node).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

import harness.runs.training as training
from harness.core.config import ConfigError, spec_hash
from harness.core.io import atomic_path

CHUNK = 4096  # images per chunk file


@torch.no_grad()
def pretokenize(tokenizer, images: np.ndarray, batch: int = 256) -> torch.Tensor:
    """uint8 [N,...,H,W,3] -> codes [N,...,T] through ``Tokenizer.encode`` (CPU LongTensor)."""
    lead = images.shape[:-3]
    flat = torch.from_numpy(np.ascontiguousarray(images.reshape(-1, *images.shape[-3:])))
    codes = [tokenizer.encode(flat[i : i + batch]).cpu() for i in range(0, len(flat), batch)]
    return torch.cat(codes).reshape(*lead, -1)


def _datasets(data) -> tuple[Any, Any]:
    from harness.data.imagenet import ImageFolderDataset

    train = ImageFolderDataset(data.root, data.train_split, data.image_size)
    val = ImageFolderDataset(data.root, data.val_split, data.image_size)
    if train.classes != val.classes:
        raise ConfigError(
            f"data.root: {data.root}: the {data.train_split} and {data.val_split} class folders differ "
            f"({len(train.classes)} vs {len(val.classes)} classes)"
        )
    return train, val


def imagenet_num_classes(data) -> int:
    return len(_datasets(data)[0].classes)


def first_val_images(data, n: int) -> np.ndarray:
    """The first ``n`` held-out images (ADM centre crops) of the val selection."""
    from harness.data.imagenet_train import first_per_class, iter_center_crops

    _, val = _datasets(data)
    idx = first_per_class(val.labels, data.per_class_val)[:n]
    return next(iter_center_crops(val, idx, n, data.workers))


class CodeStore:
    """Train codes [N, V, T] held as chunk arrays (memory-mapped); ``take(idx, view)`` -> LongTensor [B, T]."""

    def __init__(self, arrays: list[np.ndarray]):
        self.arrays = arrays
        self.starts = np.cumsum([0] + [len(a) for a in arrays])
        self.shape = (int(self.starts[-1]), *arrays[0].shape[1:])

    def take(self, idx: torch.Tensor, view: torch.Tensor) -> torch.Tensor:
        idx, view = idx.numpy(), view.numpy()
        chunk = np.searchsorted(self.starts, idx, side="right") - 1
        rows = [self.arrays[c][i - self.starts[c], v] for c, i, v in zip(chunk, idx, view)]
        return torch.from_numpy(np.stack(rows).astype(np.int64))

    def chunks(self) -> Iterator[torch.Tensor]:
        """Every sequence, chunk by chunk, as LongTensor [n*V, T] (for the code-frequency baselines)."""
        for a in self.arrays:
            yield torch.from_numpy(np.asarray(a, dtype=np.int64).reshape(-1, a.shape[-1]))


def _listing_hash(ds) -> str:
    h = hashlib.sha256()
    for path, label in ds.samples:
        h.update(f"{path.relative_to(ds.root)}:{label}\n".encode())
    return h.hexdigest()


def imagenet_codes(
    data, tokenizer, out: Path, tokenizer_id: dict[str, Any], tokenizer_seed: int, parallel: training.Parallel
) -> dict[str, Any]:
    """``train_store`` (CodeStore [N,V,T]), ``train_labels`` [N], ``val_codes`` [M,T], ``val_labels`` [M], ``describe``."""
    from harness.data.imagenet_train import first_per_class, iter_center_crops

    train, val = _datasets(data)
    train_idx = first_per_class(train.labels, data.per_class_train)
    val_idx = first_per_class(val.labels, data.per_class_val)
    settings = {
        k: getattr(data, k)
        for k in ("image_size", "per_class_train", "per_class_val", "ten_crop", "train_split", "val_split")
    }
    key = spec_hash(
        {
            "data": settings,
            "train_files": _listing_hash(train),
            "val_files": _listing_hash(val),
            "tokenizer": tokenizer_id,
            "seed": tokenizer_seed,
            "chunk": CHUNK,
        }
    )
    folder = out / f"codes-{key[:16]}"
    dtype = np.int16 if tokenizer.codebook_size <= np.iinfo(np.int16).max else np.int32
    jobs = [
        (name, ds, idx, i)
        for name, ds, idx in (("train", train, train_idx), ("val", val, val_idx))
        for i in range(-(-len(idx) // CHUNK))
    ]

    def path(name: str, i: int) -> Path:
        return folder / f"{name}_{i:05d}.npy"

    parallel.barrier()  # every rank lists the same missing chunks
    missing = [j for j in jobs if not path(j[0], j[3]).is_file()]
    for n, (name, ds, idx, i) in enumerate(missing):
        if n % parallel.world_size != parallel.rank:
            continue
        ten = name == "train" and data.ten_crop
        sel = idx[i * CHUNK : (i + 1) * CHUNK]
        codes = [
            pretokenize(tokenizer, b if ten or name == "val" else b[:, None], data.encode_batch)
            for b in iter_center_crops(ds, sel, data.encode_batch, data.workers, ten_crop=ten)
        ]
        arr = torch.cat(codes).numpy().astype(dtype)
        folder.mkdir(parents=True, exist_ok=True)
        with atomic_path(path(name, i), "wb") as f:
            np.save(f, arr)
    parallel.barrier()  # every chunk is on disk
    train_arrays = [np.load(path("train", i), mmap_mode="r") for i in range(-(-len(train_idx) // CHUNK))]
    val_codes = np.concatenate([np.load(path("val", i)) for i in range(-(-len(val_idx) // CHUNK))])
    return {
        "train_store": CodeStore(train_arrays),
        "train_labels": torch.from_numpy(train.labels[train_idx]),
        "val_codes": torch.from_numpy(val_codes.astype(np.int64)),
        "val_labels": torch.from_numpy(val.labels[val_idx]),
        "describe": {
            "source": "imagenet",
            "root": str(data.root),
            "train_split": data.train_split,
            "val_split": data.val_split,
            "train_images": int(len(train_idx)),
            "val_images": int(len(val_idx)),
            "classes": len(train.classes),
            "views_per_train_image": 10 if data.ten_crop else 1,
            "codes_folder": str(folder),
            "pretokenisation": "ADM centre crop to int(1.1 S) + TenCrop(S)"
            if data.ten_crop
            else "ADM centre crop at S",
        },
    }

"""Feature extraction split over processes (``torchrun -m harness eval ...``) with single-process results.

The images are cut into the same batches a single process would use (batch b = images
[b*bs, (b+1)*bs)); rank r extracts the contiguous run of batches ``[r*B//W, (r+1)*B//W)``. Every batch
therefore holds the same images at the same batch size as in one process, so each feature is
bit-identical, and after an all-gather in rank order every rank holds exactly the single-process
feature matrix, and rank 0 streams the same float64 moments: the metrics are bit for bit those of one
process run with the same thread counts (torchrun gives each rank OMP_NUM_THREADS=1; a one-process run on
more BLAS threads rounds the Frechet distance's linear algebra differently, ~1e-10 relative). Rank 0 alone writes
the cache, atomically (harness/core/io.py), and the others wait at a barrier, so the file is written once.
Backend: gloo on CPU, nccl when CUDA is present (``init_from_env``, through
``devices.join_torchrun_group``); without torch.distributed
initialised everything runs in one process.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist

from harness.core.devices import join_torchrun_group
from harness.data import npz as npz_io


def rank_world() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def init_from_env(backend: str | None = None) -> bool:
    """Join the process group torchrun describes (RANK, WORLD_SIZE, MASTER_ADDR/PORT); False when single-process."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return False
    return join_torchrun_group(backend)


def batch_range(n_batches: int, rank: int, world: int) -> tuple[int, int]:
    """The contiguous run of batch indices rank ``rank`` of ``world`` extracts."""
    return rank * n_batches // world, (rank + 1) * n_batches // world


def _count(source) -> int:
    if isinstance(source, np.ndarray):
        npz_io.check_images_array(source, "images")
        return int(source.shape[0])
    shape, _ = npz_io.npz_array_info(source, "arr_0")
    return int(shape[0])


def _my_batches(source, batch_size: int, first: int, last: int) -> Iterator[np.ndarray]:
    if isinstance(source, np.ndarray):
        for b in range(first, last):
            yield source[b * batch_size : (b + 1) * batch_size]
        return
    for b, batch in enumerate(npz_io.iter_npz_batches(source, batch_size)):  # streaming; skipped batches are only read
        if b >= last:
            break
        if b >= first:
            yield batch


def _comm_device() -> torch.device:
    return torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")


def _gather_rows(local: np.ndarray, counts: list[int]) -> np.ndarray:
    """All-gather row blocks of different lengths (padded to the longest) and join them in rank order."""
    dev = _comm_device()
    width = max(counts)
    pad = np.zeros((width,) + local.shape[1:], local.dtype)
    pad[: local.shape[0]] = local
    t = torch.from_numpy(pad).to(dev)
    parts = [torch.empty_like(t) for _ in counts]
    dist.all_gather(parts, t)
    return np.concatenate([p[:c].cpu().numpy() for p, c in zip(parts, counts)])


def extract_sharded(
    source, extractor: Callable[[np.ndarray], Mapping[str, np.ndarray]], batch_size: int = 50
) -> dict[str, np.ndarray]:
    """Features of every image of ``source`` (uint8 array or npz path) in order, on every rank."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    rank, world = rank_world()
    n = _count(source)
    n_batches = -(-n // batch_size)
    first, last = batch_range(n_batches, rank, world)
    parts: dict[str, list[np.ndarray]] = {}
    for batch in _my_batches(source, batch_size, first, last):
        for layer, arr in extractor(batch).items():
            parts.setdefault(layer, []).append(np.asarray(arr))
    local = {k: np.concatenate(v) for k, v in parts.items()}
    if world == 1:
        return local
    # ranks without batches learn the layer shapes from the others
    info = [None] * world
    mine = (len(next(iter(local.values()))) if local else 0, {k: (v.shape[1:], v.dtype.str) for k, v in local.items()})
    dist.all_gather_object(info, mine)
    counts = [c for c, _ in info]
    layouts = next(lay for c, lay in info if c > 0)
    out = {}
    for layer, (shape, dtype) in sorted(layouts.items()):
        block = local.get(layer, np.zeros((0,) + tuple(shape), np.dtype(dtype)))
        out[layer] = _gather_rows(block, counts)
    if sum(counts) != n:
        raise RuntimeError(f"gathered {sum(counts)} feature rows for {n} images")
    return out


def save_features_npz(path: str | Path, features: Mapping[str, np.ndarray]) -> None:
    from harness.core.io import atomic_path

    with atomic_path(path, "wb") as f:
        np.savez(f, **features)


def write_once(
    path: str | Path,
    features: Mapping[str, np.ndarray],
    writer: Callable[[Path, Mapping[str, np.ndarray]], None] = save_features_npz,
) -> None:
    """Rank 0 writes ``path`` (atomically, through ``writer``); every rank returns only after it exists."""
    rank, world = rank_world()
    if rank == 0:
        writer(Path(path), features)
    if world > 1:
        dist.barrier()

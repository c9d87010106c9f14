"""Two gloo processes (joined the way torchrun joins them) give the single-process features and statistics."""

import os
import socket

import numpy as np
import torch
import torch.multiprocessing as mp

from harness.core.io import stale_temps
from harness.data import npz as npz_io
from harness.metrics.distributed import batch_range, extract_sharded, write_once
from harness.metrics.fid import feature_statistics


class TinyExtractor:
    """A seeded random conv net with two output layers (a stand-in for Inception / DINOv2)."""

    def __init__(self, seed=0):
        g = torch.Generator().manual_seed(seed)
        self.w1 = torch.randn(16, 3, 3, 3, generator=g) * 0.3
        self.w2 = torch.randn(8, 16, 3, 3, generator=g) * 0.2

    @torch.no_grad()
    def __call__(self, batch):
        x = torch.as_tensor(np.array(batch)).permute(0, 3, 1, 2).float() / 255
        h = torch.relu(torch.nn.functional.conv2d(x, self.w1))
        s = torch.relu(torch.nn.functional.conv2d(h, self.w2))
        return {"pool": h.mean((2, 3)).numpy(), "spatial": s[:, :, ::4, ::4].flatten(1).numpy()}


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank, world, port, source, out_dir):
    import torch.distributed as dist

    from harness.metrics.distributed import init_from_env

    os.environ.update(
        RANK=str(rank),
        WORLD_SIZE=str(world),
        LOCAL_RANK=str(rank),
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        OMP_NUM_THREADS="1",
    )
    torch.set_num_threads(1)
    assert init_from_env(backend="gloo")
    feats = extract_sharded(source, TinyExtractor(), batch_size=5)
    few = extract_sharded(npz_io.load_samples_npz(source)[:3], TinyExtractor(), batch_size=5)  # rank 1: no batch
    np.savez(os.path.join(out_dir, f"few{rank}.npz"), **few)

    def counting_writer(path, features):
        with open(os.path.join(out_dir, "writes.log"), "a") as f:
            f.write(f"rank {rank}\n")
        from harness.metrics.distributed import save_features_npz

        save_features_npz(path, features)

    write_once(os.path.join(out_dir, "cache", "features.npz"), feats, counting_writer)
    assert os.path.isfile(os.path.join(out_dir, "cache", "features.npz"))  # every rank sees the finished file
    np.savez(os.path.join(out_dir, f"rank{rank}.npz"), **feats)
    dist.destroy_process_group()


def test_batch_ranges_cover_every_batch_once():
    for n_batches in (0, 1, 7, 8, 100):
        for world in (1, 2, 3, 8):
            runs = [batch_range(n_batches, r, world) for r in range(world)]
            assert runs[0][0] == 0 and runs[-1][1] == n_batches
            assert all(a[1] == b[0] for a, b in zip(runs, runs[1:]))


def test_single_process_equals_plain_extraction():
    images = np.random.default_rng(0).integers(0, 256, (23, 20, 20, 3), dtype=np.uint8)
    feats = extract_sharded(images, TinyExtractor(), batch_size=4)
    direct = TinyExtractor()(images)
    for layer in ("pool", "spatial"):
        np.testing.assert_allclose(feats[layer], direct[layer], rtol=1e-5, atol=1e-6)


def test_two_gloo_processes_match_one(tmp_path):
    images = np.random.default_rng(1).integers(0, 256, (37, 20, 20, 3), dtype=np.uint8)  # 8 batches of 5, last short
    source = tmp_path / "samples.npz"
    npz_io.save_samples_npz(source, images)
    single = extract_sharded(str(source), TinyExtractor(), batch_size=5)
    mp.spawn(_worker, args=(2, _free_port(), str(source), str(tmp_path)), nprocs=2, join=True)
    for rank in (0, 1):
        with np.load(tmp_path / f"rank{rank}.npz") as z:
            for layer in ("pool", "spatial"):
                assert np.array_equal(z[layer], single[layer]), (rank, layer)
                mu1, s1 = feature_statistics(single[layer])
                mu2, s2 = feature_statistics(z[layer])
                np.testing.assert_allclose(mu2, mu1, rtol=0, atol=1e-12)
                np.testing.assert_allclose(s2, s1, rtol=0, atol=1e-12)
    few_single = TinyExtractor()(images[:3])
    for rank in (0, 1):
        with np.load(tmp_path / f"few{rank}.npz") as z:
            assert all(np.array_equal(z[k], few_single[k]) for k in ("pool", "spatial"))
    assert (tmp_path / "writes.log").read_text() == "rank 0\n"  # the cache is written once, by rank 0
    with np.load(tmp_path / "cache" / "features.npz") as z:
        assert np.array_equal(z["pool"], single["pool"])
    assert stale_temps(tmp_path / "cache") == []

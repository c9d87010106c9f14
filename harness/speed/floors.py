"""This machine's hardware floors, measured in the same process as the code they judge.

- ``matmul_gflops``: best-of-n fp32 (or bf16) matmul throughput on square matrices at the
  current thread count, through the faster of ``torch.mm`` (MKL on CPU) and oneDNN with a packed
  weight (``harness.nn.kernels.packed_linear``; on the AMD EPYC here oneDNN runs ~2x MKL's fp32 rate, so a
  floor from ``torch.mm`` alone would sit below what the sampler itself reaches): the compute floor
  of a batch where matmuls dominate.
- ``read_gbps``: best-of-n bandwidth of summing a tensor much larger than the last-level cache:
  the floor of a step that must read every weight once (small-batch decoding).

Best of n, not the median: a floor is what the hardware *can* do; noise only makes a run slower.
"""

from __future__ import annotations

import time

import torch

from harness.nn.kernels import packed_linear


def _best(fn, repeats: int) -> float:
    fn()  # warm-up: page faults, thread pool start
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def matmul_gflops(n: int = 2048, repeats: int = 5, dtype: torch.dtype = torch.float32, kernel: str = "best") -> float:
    """Peak GFLOP/s of an ``n x n @ n x n`` matmul (2 n^3 FLOPs); ``kernel`` ``aten`` (``torch.mm``),
    ``onednn-packed`` (CPU only) or ``best`` (the faster of the two available)."""
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(n, n, generator=g).to(dtype), torch.randn(n, n, generator=g).to(dtype)
    best = 0.0
    if kernel in ("aten", "best"):
        out = torch.empty(n, n, dtype=dtype)
        best = 2 * n**3 / _best(lambda: torch.mm(a, b, out=out), repeats) / 1e9
    if kernel in ("onednn-packed", "best") and packed_linear.available("cpu", dtype):
        w = torch.ops.mkldnn._reorder_linear_weight(b.t().contiguous(), None)  # linear(a, b^T) = a @ b
        run = lambda: torch.ops.mkldnn._linear_pointwise(a, w, None, "none", [], "")  # noqa: E731
        best = max(best, 2 * n**3 / _best(run, repeats) / 1e9)
    return best


def read_gbps(megabytes: int = 512, repeats: int = 5) -> float:
    """Memory read bandwidth in GB/s: ``sum`` over a fp32 tensor of ``megabytes`` MB."""
    x = torch.ones(megabytes * 2**20 // 4)
    seconds = _best(lambda: x.sum(), repeats)
    return x.numel() * 4 / seconds / 1e9


def measure_quick() -> dict[str, float]:
    """The two floors the AR report divides by (fp32 matmul peak, read bandwidth), at the sizes of
    ``measure`` but best of 3 (about a second), so every timed run can have its own, measured
    just before it. (A 1024-square matmul would be quicker but reads ~5 % below the peak.)"""
    return {"matmul_fp32_gflops": matmul_gflops(repeats=3), "read_gbps": read_gbps(repeats=3)}


def measure(threads: int | None = None) -> dict[str, float | int]:
    """All floors at ``threads`` torch threads (default: the current setting), with the setting."""
    if threads:
        torch.set_num_threads(threads)
    return {
        "threads": torch.get_num_threads(),
        "matmul_fp32_gflops": matmul_gflops(),
        "matmul_fp32_gflops_aten": matmul_gflops(kernel="aten"),
        "matmul_bf16_gflops": matmul_gflops(dtype=torch.bfloat16),
        "read_gbps": read_gbps(),
    }

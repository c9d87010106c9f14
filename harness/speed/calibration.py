"""How fast this machine is right now: the time of a fixed CPU workload.

A shared VM changes speed as a whole (host load slowed every benchmark here by 30-70 % at once, and
two identical `bench` runs minutes apart by 1.8x with an IQR of 2-3 % inside each). Dividing a
time by this workload's time from the same moment turns it into a machine-independent unit, so such
drift does not read as a difference, while a change that slows one code path still does. Used by
the `make bench` gate (tests/benchmarks/test_bench_calibration.py) and by `bench --calibrate`.

The workload mixes what the measured code is bound by: fp32 matmul (torch), float64 matmul (numpy)
and a memory-bound read (a 256 MB sum). It does not register every kind of drift: one VM phase here
slowed the streaming of a full-size model's weights by 60-90 % and this workload by nothing
(results/bench/README.md).
"""
from __future__ import annotations

import time

import numpy as np
import torch

WORKLOAD = "4 x (fp32 mm 1024^3 + 256 MB sum) + float64 768^3 matmul"


class Calibration:
    """The workload's tensors, made once (``__call__`` runs it; ``seconds()`` times one run)."""

    def __init__(self) -> None:
        g = torch.Generator().manual_seed(0)
        self.a, self.b = torch.randn(1024, 1024, generator=g), torch.randn(1024, 1024, generator=g)
        self.big = torch.ones(64 * 2 ** 20)  # 256 MB fp32: well past any last-level cache
        rng = np.random.default_rng(0)
        self.x, self.y = rng.standard_normal((768, 768)), rng.standard_normal((768, 768))

    def __call__(self) -> float:
        for _ in range(4):
            torch.mm(self.a, self.b)
            self.big.sum()
        return float((self.x @ self.y)[0, 0])

    def seconds(self) -> float:
        t = time.perf_counter()
        self()
        return time.perf_counter() - t

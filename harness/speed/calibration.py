"""How fast this machine is right now: the time of a fixed CPU workload.

A shared VM changes speed as a whole (host load slowed every benchmark here by 30-70 % at once, and
two identical `bench` runs minutes apart by 1.8x with an IQR of 2-3 % inside each). Dividing a
time by this workload's time from the same moment turns it into a machine-independent unit, so such
drift does not read as a difference, while a change that slows one code path still does. Used by
the `make bench` gate (tests/benchmarks/test_bench_calibration.py) and by `bench --calibrate`.

The workload mixes what the measured code is bound by: fp32 matmul (torch), float64 matmul (numpy)
and a memory-bound read (a 256 MB sum). It does not register every kind of drift: VM phases here
slowed the streaming of a full-size model's weights by 25-90 % while this workload ran 4-8 % faster
(results/bench/README.md). ``StreamCalibration`` is the unit for work bound by that streaming (a
small-batch decode step): 4 rows through oneDNN over packed weights far larger than the last-level
cache, called through PyTorch's ops directly, so a regression in this project's own Linear path
(``harness.nn.kernels.packed_linear``) still shows against it.
"""

from __future__ import annotations

import time

import numpy as np
import torch
import torch.nn.functional as F

WORKLOAD = "4 x (fp32 mm 1024^3 + 256 MB sum) + float64 768^3 matmul"


class _Workload:
    """A fixed workload whose tensors are made once: ``__call__`` runs it, ``seconds()`` times one run."""

    def __call__(self) -> float:
        raise NotImplementedError

    def seconds(self) -> float:
        t = time.perf_counter()
        self()
        return time.perf_counter() - t


class Calibration(_Workload):
    """Mixed compute and memory work: the default unit."""

    def __init__(self) -> None:
        g = torch.Generator().manual_seed(0)
        self.a, self.b = torch.randn(1024, 1024, generator=g), torch.randn(1024, 1024, generator=g)
        self.big = torch.ones(64 * 2**20)  # 256 MB fp32: well past any last-level cache
        rng = np.random.default_rng(0)
        self.x, self.y = rng.standard_normal((768, 768)), rng.standard_normal((768, 768))

    def __call__(self) -> float:
        for _ in range(4):
            torch.mm(self.a, self.b)
            self.big.sum()
        return float((self.x @ self.y)[0, 0])


STREAM_WORKLOAD = (
    "4 passes of 4 rows x 16 fp32 weights of 2048 x 2048 (256 MB), oneDNN packed where it exists, else F.linear"
)


class StreamCalibration(_Workload):
    """Weight streaming at decode batch sizes: a fixed 4-row Linear over 256 MB of weights."""

    def __init__(self) -> None:
        g = torch.Generator().manual_seed(0)
        self.x = torch.randn(4, 2048, generator=g)
        weights = [torch.randn(2048, 2048, generator=g) for _ in range(16)]
        if torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise"):
            self.kernel = "onednn-packed"
            self.weights = [torch.ops.mkldnn._reorder_linear_weight(w, None) for w in weights]
        else:
            self.kernel, self.weights = "aten", weights

    def _linear(self, w: torch.Tensor) -> torch.Tensor:
        if self.kernel == "aten":
            return F.linear(self.x, w)
        return torch.ops.mkldnn._linear_pointwise(self.x, w, None, "none", [], "")

    def __call__(self) -> float:
        with torch.inference_mode():
            return float(sum(self._linear(w)[0, 0] for _ in range(4) for w in self.weights))

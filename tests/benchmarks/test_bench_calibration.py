"""Machine calibrations for the `make bench` gate, timed like every other benchmark: a fixed mix of fp32
matmul (torch), float64 matmul (numpy) and a memory-bound read (a 256 MB sum), and a fixed 4-row Linear
streaming 256 MB of packed weights. The gate divides each benchmark's median by one of these from the
same run (the stream one for benchmarks that say ``extra_info["calibration"] = "stream"``), so a machine
that is slower as a whole (host load on a shared VM slowed every benchmark here by 30-70 % at once, FID
math included) does not read as a regression, while a change that slows one code path still does
(harness/speed/gate.py). The workloads are harness/speed/calibration.py. Run with `make bench`."""

import numpy as np
import pytest
import torch

from harness.speed.calibration import STREAM_WORKLOAD, WORKLOAD, Calibration, StreamCalibration

pytestmark = pytest.mark.bench


def test_bench_machine_calibration(benchmark):
    work = Calibration()
    benchmark.pedantic(work, rounds=9, warmup_rounds=2)
    benchmark.extra_info.update({"workload": WORKLOAD, "threads": torch.get_num_threads()})
    assert np.isclose(float(torch.mm(work.a[:2], work.b[:, :2])[0, 0]), float(work.a[0] @ work.b[:, 0]), rtol=1e-4)


def test_bench_machine_calibration_stream(benchmark):
    work = StreamCalibration()
    benchmark.pedantic(work, rounds=9, warmup_rounds=2)
    benchmark.extra_info.update(
        {"workload": STREAM_WORKLOAD, "kernel": work.kernel, "threads": torch.get_num_threads()}
    )
    g = torch.Generator().manual_seed(0)  # the calibration's own draws: x, then the first weight
    x, w0 = torch.randn(4, 2048, generator=g), torch.randn(2048, 2048, generator=g)
    with torch.inference_mode():
        assert torch.allclose(work._linear(work.weights[0]), torch.nn.functional.linear(x, w0), rtol=1e-4, atol=1e-3)

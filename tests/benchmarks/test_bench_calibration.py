"""Machine calibration for the `make bench` gate: a fixed mix of fp32 matmul (torch), float64 matmul
(numpy) and a memory-bound read (a 256 MB sum), timed like every other benchmark. The gate divides
each benchmark's median by this one's from the same run, so a machine that is slower as a whole
(host load on a shared VM slowed every benchmark here by 30-70 % at once, FID math included) does
not read as a regression, while a change that slows one code path still does (harness/speed/gate.py).
The workload is harness/speed/calibration.py. Run with `make bench`."""
import numpy as np
import pytest
import torch

from harness.speed.calibration import WORKLOAD, Calibration

pytestmark = pytest.mark.bench


def test_bench_machine_calibration(benchmark):
    work = Calibration()
    benchmark.pedantic(work, rounds=9, warmup_rounds=2)
    benchmark.extra_info.update({"workload": WORKLOAD, "threads": torch.get_num_threads()})
    assert np.isclose(float(torch.mm(work.a[:2], work.b[:, :2])[0, 0]), float(work.a[0] @ work.b[:, 0]), rtol=1e-4)

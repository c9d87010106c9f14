"""Machine calibration for the `make bench` gate: a fixed mix of fp32 matmul (torch), float64 matmul
(numpy) and a memory-bound read (a 256 MB sum), timed like every other benchmark. The gate divides
each benchmark's median by this one's from the same run, so a machine that is slower as a whole
(host load on a shared VM slowed every benchmark here by 30-70 % at once, FID math included) does
not read as a regression, while a change that slows one code path still does (harness/speed/gate.py).
Run with `make bench`."""
import numpy as np
import pytest
import torch

pytestmark = pytest.mark.bench


def test_bench_machine_calibration(benchmark):
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(1024, 1024, generator=g), torch.randn(1024, 1024, generator=g)
    big = torch.ones(64 * 2 ** 20)  # 256 MB fp32
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((768, 768)), rng.standard_normal((768, 768))

    def work():
        for _ in range(4):
            torch.mm(a, b)
            big.sum()
        return float((x @ y)[0, 0])

    benchmark.pedantic(work, rounds=9, warmup_rounds=2)
    benchmark.extra_info.update({"workload": "4 x (fp32 mm 1024^3 + 256 MB sum) + float64 768^3 matmul",
                                 "threads": torch.get_num_threads()})
    assert np.isclose(float(torch.mm(a[:2], b[:, :2])[0, 0]), float(a[0] @ b[:, 0]), rtol=1e-4)

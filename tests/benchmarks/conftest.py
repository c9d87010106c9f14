"""pytest-benchmark machine info: device, threads and load, plus the machine class that
``harness.speed.gate`` picks the stored baseline by."""

import torch

from harness.speed import timing
from harness.speed.gate import machine_class


def pytest_benchmark_update_machine_info(config, machine_info):
    ours = timing.machine_info("cuda" if torch.cuda.is_available() else "cpu")
    machine_info.update(
        {"alitok_bench": ours, "machine_class": machine_class(ours), "load_average": timing.load_average()}
    )

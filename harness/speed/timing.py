"""The measuring core: synchronised timing, robust statistics, peak memory and the machine's state.

- Warm-up calls are run and thrown away; the caller decides how many.
- GPU: CUDA events around the call and a synchronise after it (no host timer on async work);
  CPU: ``perf_counter`` (CPU ops are synchronous).
- Statistics: median and spread (quartiles, IQR, min, max) over the repeats.
- Peak memory: CUDA ``max_memory_allocated`` since the last reset; CPU the growth of the process's
  peak RSS (a high-water mark: it only shows memory beyond what the process already peaked at).
"""

from __future__ import annotations

import dataclasses
import os
import platform
import resource
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import torch


@dataclasses.dataclass(frozen=True)
class Spread:
    """Median and spread of repeated timings (seconds)."""

    n: int
    median: float
    q1: float
    q3: float
    min: float
    max: float
    mean: float

    @property
    def iqr(self) -> float:
        return self.q3 - self.q1

    @property
    def range(self) -> float:
        return self.max - self.min

    def to_dict(self) -> dict[str, float]:
        return {**dataclasses.asdict(self), "iqr": self.iqr, "range": self.range}

    def scaled(self, factor: float) -> Spread:
        return Spread(self.n, *(v * factor for v in (self.median, self.q1, self.q3, self.min, self.max, self.mean)))


def spread(values: list[float]) -> Spread:
    """Quartiles by linear interpolation (numpy's default); one value gives a zero spread."""
    if not values:
        raise ValueError("no timings to summarise")
    xs = sorted(float(v) for v in values)

    def q(p: float) -> float:
        pos = p * (len(xs) - 1)
        lo = int(pos)
        hi = min(lo + 1, len(xs) - 1)
        return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)

    return Spread(len(xs), statistics.median(xs), q(0.25), q(0.75), xs[0], xs[-1], statistics.fmean(xs))


def agree(a: Spread, b: Spread) -> bool:
    """Two measurements of the same thing agree when their medians differ by no more than the larger
    of the two runs' own ranges (max - min over repeats): the difference is within the noise each
    run shows by itself."""
    return abs(a.median - b.median) <= max(a.range, b.range)


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class Stopwatch:
    """Times one call on ``device``: CUDA events on GPU, ``perf_counter`` on CPU."""

    def __init__(self, device: torch.device | str):
        self.device = torch.device(device)

    def time(self, fn: Callable[[], Any]) -> tuple[float, Any]:
        """``(seconds, result)``; the device is synchronised before and after."""
        synchronize(self.device)
        if self.device.type == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            out = fn()
            end.record()
            end.synchronize()
            return start.elapsed_time(end) / 1000.0, out
        t0 = time.perf_counter()
        out = fn()
        return time.perf_counter() - t0, out


def _rss_peak_mib() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 1024.0 / (1024.0 if sys.platform == "darwin" else 1.0)  # bytes on macOS, KiB on Linux


def _proc_status_mib(field: str) -> float | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024.0  # kB
    except OSError:
        pass
    return None


def _reset_rss_high_water() -> bool:
    """Linux >= 4.0: writing 5 to clear_refs resets the process's peak RSS (VmHWM) to its current RSS."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


class PeakMemory:
    """Peak memory of a block: CUDA max allocated (reset at entry); on CPU the peak RSS above the RSS at
    entry, where Linux lets the peak be reset (``cpu_peak_rss_above_start``), else the growth of the
    process's lifetime peak (``cpu_peak_rss_growth``: 0 for a block that stays under an earlier peak,
    e.g. a model built after a larger one was freed). Either CPU figure counts resident memory the block
    adds: memory the allocator kept from earlier frees and hands out again does not show, so a CPU
    figure is a lower bound (CUDA's allocator counts every live tensor)."""

    def __init__(self, device: torch.device | str):
        self.device = torch.device(device)
        self.mib: float | None = None
        self.kind = "cuda_max_allocated" if self.device.type == "cuda" else "cpu_peak_rss_growth"

    def __enter__(self) -> PeakMemory:
        if self.device.type == "cuda":
            synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
        else:
            rss = _proc_status_mib("VmRSS") if _reset_rss_high_water() else None
            if rss is not None:
                self.kind, self._start = "cpu_peak_rss_above_start", rss
            else:
                self._start = _rss_peak_mib()
        return self

    def __exit__(self, *_: Any) -> None:
        if self.device.type == "cuda":
            synchronize(self.device)
            self.mib = torch.cuda.max_memory_allocated(self.device) / 2**20
        elif self.kind == "cpu_peak_rss_above_start":
            self.mib = max(0.0, (_proc_status_mib("VmHWM") or 0.0) - self._start)
        else:
            self.mib = max(0.0, _rss_peak_mib() - self._start)


def set_threads(n: int | None) -> None:
    """Intra-op threads for torch (OMP_NUM_THREADS only applies at start-up, so it is recorded, not set)."""
    if n is not None:
        if n < 1:
            raise ValueError(f"threads must be >= 1, got {n}")
        torch.set_num_threads(n)


def load_average() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def load_check() -> dict[str, Any]:
    """The 1-minute load average against the core count, for a speed taken in one unrepeated pass: above the
    cores, other work shares them and the figure (and the order of systems) is not reliable."""
    try:
        load = round(os.getloadavg()[0], 2)
    except OSError:
        load = None
    cores = os.cpu_count()
    loaded = load is not None and cores is not None and load > cores
    return {
        "loadavg_1m": load,
        "cpu_count": cores,
        "load_warning": loaded,
        "warning": f"load average {load:.1f} exceeds the {cores} cores: this images/s is not a reliable speed "
        "(rerun on a quiet machine, or take speeds from `alitok-bench bench`)"
        if loaded
        else None,
    }


def machine_info(device: torch.device | str) -> dict[str, Any]:
    """Device, versions and thread settings: what a timing depends on besides the code."""
    import numpy

    device = torch.device(device)
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        props = torch.cuda.get_device_properties(device)
        extra = {
            "gpu_memory_gib": round(props.total_memory / 2**30, 1),
            "cuda": torch.version.cuda,
            "cudnn": torch.backends.cudnn.version(),
            "gpu_count": torch.cuda.device_count(),
        }
    else:
        name = cpu_name()
        extra = {}
    return {
        "device": str(device),
        "device_name": name,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch_interop_threads": torch.get_num_interop_threads(),
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
        "MKL_NUM_THREADS": os.environ.get("MKL_NUM_THREADS"),
        "tf32_matmul": torch.backends.cuda.matmul.allow_tf32,
        **extra,
    }


def cpu_name() -> str:
    """The CPU model name (/proc/cpuinfo), else what platform says."""
    from harness.core.devices import cpu_model

    return cpu_model()

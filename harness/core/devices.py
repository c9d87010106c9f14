"""Device, dtype, TF32 and process-group set-up, written once so CPU tests run the CUDA code paths.

``--device auto`` picks CUDA when present. Under torchrun the process group uses NCCL on GPUs and
gloo on CPUs; each rank takes ``cuda:LOCAL_RANK``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import os
from collections.abc import Iterator

import torch
import torch.distributed as dist

from harness.core.errors import UserError

DTYPES = {
    "fp32": torch.float32,
    "float32": torch.float32,
    "bf16": torch.bfloat16,
    "bfloat16": torch.bfloat16,
    "fp16": torch.float16,
    "float16": torch.float16,
}


class DeviceError(UserError, ValueError):
    """A --device or --dtype the machine or the harness does not have."""


def resolve_device(name: str = "auto") -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise DeviceError(f"--device {name}: CUDA is not available on this machine")
        if name == "cuda" and dist.is_available() and dist.is_initialized():
            name = f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}"
    elif name != "cpu":
        raise DeviceError(f"--device {name!r}: use auto, cpu, cuda or cuda:N")
    return torch.device(name)


def resolve_dtype(name: str) -> torch.dtype:
    try:
        return DTYPES[name]
    except KeyError:
        raise DeviceError(f"dtype {name!r} unknown (known: {', '.join(DTYPES)})") from None


def set_tf32(enabled: bool) -> None:
    """TF32 matmuls/convs (AliTok samples with TF32 on; metric extraction wants it off)."""
    torch.backends.cuda.matmul.allow_tf32 = enabled
    torch.backends.cudnn.allow_tf32 = enabled


@contextlib.contextmanager
def tf32(enabled: bool | None) -> Iterator[None]:
    """TF32 switched to ``enabled`` for the block (None: left as it is), both flags restored on the way
    out, exceptions included, so a metric that forces it off cannot leak that into the sampler."""
    old = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    if enabled is not None:
        set_tf32(enabled)
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = old


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``'s ``model name``; else what ``platform`` knows): kernels and
    their rounding differ between CPU models, so records name it, not just the architecture."""
    try:
        with open("/proc/cpuinfo", errors="replace") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform

    return platform.processor() or platform.machine() or "cpu"


def gpu_name(device: torch.device | str | None = None) -> str | None:
    """``torch.cuda.get_device_name`` of ``device`` (a CUDA device) or of the current GPU; None without CUDA."""
    if not torch.cuda.is_available():
        return None
    device = torch.device(device) if device is not None else None
    if device is not None and device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return torch.cuda.get_device_name(torch.cuda.current_device())


def device_name(device: torch.device) -> str:
    return torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_model()


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@dataclasses.dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str | None = None

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def join_torchrun_group(backend: str | None = None) -> bool:
    """The one call to ``init_process_group``: join the group torchrun describes in the environment
    (RANK, WORLD_SIZE, MASTER_ADDR/PORT) unless this process is already in one. ``backend`` None means
    NCCL when CUDA is present, else gloo; NCCL pins the rank to ``cuda:LOCAL_RANK`` first (one GPU per
    process). True when this call joined, so the caller knows to leave the group again."""
    if dist.is_initialized():
        return False
    if backend is None:
        backend = "nccl" if torch.cuda.is_available() else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group(backend=backend)
    global _wait_group
    # made now, while every rank is here: new_group is itself a collective under the default timeout
    _wait_group = dist.new_group(backend="gloo", timeout=RANK0_WAIT_TIMEOUT)
    return True


def init_distributed(device: str = "auto") -> DistInfo:
    """Join the torchrun process group if launched by torchrun; otherwise a single process."""
    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
        return DistInfo()
    join_torchrun_group("nccl" if device != "cpu" and torch.cuda.is_available() else "gloo")
    return DistInfo(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", 0)), dist.get_backend())


def barrier() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


# Rank 0's solo work (a reconstruction entry, a reference's features) can outlast the default group's
# timeout (NCCL 10 min, gloo 30 min) while the other ranks wait for it: they wait in a gloo group of
# their own whose timeout only a hung job reaches.
RANK0_WAIT_TIMEOUT = datetime.timedelta(days=2)
_wait_group = None


def wait_for_rank0() -> None:
    """Every rank returns once all have called it; the wait has ``RANK0_WAIT_TIMEOUT``, not the group's."""
    if dist.is_available() and dist.is_initialized():
        dist.barrier(group=_wait_group)


def leave_group() -> None:
    """A run's normal end: every rank leaves the group together, so none tears its connections down while
    another is still working in it (a gloo rank that did so while rank 0 was still reconstructing was
    seen to abort: "terminate called without an active exception")."""
    wait_for_rank0()
    cleanup_distributed()


@contextlib.contextmanager
def leaving_together() -> Iterator[None]:
    """A verb's body: on a normal end (a ``return`` too) ``leave_group``; on an error leave at once."""
    try:
        yield
    except BaseException:
        cleanup_distributed()
        raise
    leave_group()


def cleanup_distributed() -> None:
    """Leave at once (after an error too, when the other ranks may never arrive)."""
    global _wait_group
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
    _wait_group = None

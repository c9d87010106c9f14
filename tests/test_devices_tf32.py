"""TF32 is switched for a block and restored after it, exceptions included (one rule: ``devices.tf32``).

The flags are plain Python attributes even on CPU builds, so this runs everywhere; a leak would make a
metric's forced-off TF32 change the sampler's numerics (or the reverse) for the rest of the process."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

from harness.core import devices
from harness.nn.samplers.ar_sampling import precision


def _flags() -> tuple[bool, bool]:
    return torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32


@pytest.fixture(autouse=True)
def keep_flags():
    saved = _flags()
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


@pytest.mark.parametrize("start", [(True, False), (False, True)])  # unequal, so a swapped restore shows
@pytest.mark.parametrize("enabled", [True, False, None])
def test_restored_after_an_exception(start, enabled):
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = start
    with pytest.raises(RuntimeError, match="boom"):
        with devices.tf32(enabled):
            assert _flags() == (start if enabled is None else (enabled, enabled))
            raise RuntimeError("boom")
    assert _flags() == start


def test_sampler_precision_restores_after_an_exception():
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = (False, True)
    with pytest.raises(RuntimeError, match="boom"):
        with precision(torch.device("cpu"), torch.float32, tf32=True):
            assert _flags() == (True, True)
            raise RuntimeError("boom")
    assert _flags() == (False, True)


def test_one_place_switches_tf32():
    """Outside devices.py nobody writes the flags by hand (bench sets them per timed run through devices.tf32)."""
    root = Path(__file__).resolve().parent.parent
    assigns = re.compile(r"allow_tf32[^=\n]*=[^=]")  # `x.allow_tf32 = v` and `a.allow_tf32, b.allow_tf32 = v`
    writers = [
        str(p.relative_to(root))
        for pkg in ("harness", "alitok", "baselines")
        for p in (root / pkg).rglob("*.py")
        if assigns.search(p.read_text())
    ]
    assert sorted(writers) == ["harness/core/devices.py"]

"""One way to join a torchrun group: the sampler (``devices.init_distributed``) and the evaluator
(``metrics.distributed.init_from_env``) both call ``devices.join_torchrun_group``, the one caller of
``init_process_group``. The real two-process runs are in tests/test_metrics_distributed.py."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch.distributed as dist

from harness.core import devices
from harness.metrics import distributed


@pytest.fixture
def joins(monkeypatch):
    """Record the backends init_process_group is asked for, instead of starting a group."""
    seen: list[str] = []
    monkeypatch.setattr(dist, "is_initialized", lambda: bool(seen))
    monkeypatch.setattr(dist, "init_process_group", lambda backend: seen.append(backend))
    monkeypatch.setattr(dist, "new_group", lambda backend, timeout: f"{backend} group, timeout {timeout}")
    monkeypatch.setattr(devices, "_wait_group", None)
    monkeypatch.setattr(devices.torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(dist, "get_rank", lambda: 1)
    monkeypatch.setattr(dist, "get_world_size", lambda: 2)
    monkeypatch.setattr(dist, "get_backend", lambda: seen[-1])
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_RANK", "1")
    return seen


def test_sampler_and_evaluator_join_once_with_gloo_on_cpu(joins):
    info = devices.init_distributed("auto")
    assert (info.rank, info.world_size, info.local_rank, info.backend) == (1, 2, 1, "gloo")
    assert distributed.init_from_env() is False  # already in the group: not joined twice, not left by eval
    assert joins == ["gloo"]
    assert devices._wait_group == f"gloo group, timeout {devices.RANK0_WAIT_TIMEOUT}"


def test_evaluator_joins_only_under_torchrun_with_more_than_one_rank(joins, monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "1")
    assert distributed.init_from_env() is False and joins == []
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert distributed.init_from_env(backend="gloo") is True and joins == ["gloo"]


def test_one_caller_of_init_process_group():
    root = Path(__file__).resolve().parent.parent
    callers = sorted(
        str(p.relative_to(root))
        for pkg in ("harness", "alitok", "baselines")
        for p in (root / pkg).rglob("*.py")
        if "init_process_group(" in p.read_text()
    )
    assert callers == ["harness/core/devices.py"]

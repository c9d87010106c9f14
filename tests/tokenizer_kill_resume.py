"""Shared by the tokenizer trainers' kill-and-resume tests: kill a run at one step, resume it in
the same folder, and compare its final weights with an uninterrupted run's."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from alitok.train import tokenizer_loop
from harness.nn.checkpoints.checkpoint import load_state_dict


def kill_then_resume(monkeypatch, train: Callable[[], object], kill_at: int) -> None:
    """Run ``train()`` with a KeyboardInterrupt at step ``kill_at``, then run it again to the end."""
    real_step = tokenizer_loop.TokenizerTraining._step

    def dying_step(self, loss_fn, i):
        if i == kill_at:
            raise KeyboardInterrupt
        return real_step(self, loss_fn, i)

    monkeypatch.setattr(tokenizer_loop.TokenizerTraining, "_step", dying_step)
    with pytest.raises(KeyboardInterrupt):
        train()
    monkeypatch.setattr(tokenizer_loop.TokenizerTraining, "_step", real_step)
    train()  # resumes from the last checkpoint before kill_at


def same_weights(a_path: Path, b_path: Path) -> dict[str, torch.Tensor]:
    """Assert two checkpoints hold the same keys and bit-equal tensors; return the first."""
    a, b = load_state_dict(a_path), load_state_dict(b_path)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    return a

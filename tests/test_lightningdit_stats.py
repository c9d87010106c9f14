"""``latents_stats.pt`` is read like every checkpoint (harness/nn/checkpoints/checkpoint.py: one weights-only read);
a wrong file is one CheckpointError line naming it."""

from __future__ import annotations

import pickle

import pytest
import torch

from baselines.lightningdit import load_latent_stats
from harness.nn.checkpoints.checkpoint import CheckpointError


def test_stats_reshaped_per_channel(tmp_path):
    p = tmp_path / "latents_stats.pt"
    torch.save({"mean": torch.arange(4.0).view(1, 4, 1, 1), "std": torch.full((4,), 2.0)}, p)
    mean, std = load_latent_stats(str(p), channels=4)
    assert mean.shape == std.shape == (1, 4, 1, 1) and mean.flatten().tolist() == [0, 1, 2, 3]


@pytest.mark.parametrize(
    "content, problem",
    [
        ({"mu": torch.zeros(4), "std": torch.ones(4)}, "with 'mean' and 'std'"),
        ({"mean": torch.zeros(4), "std": torch.ones(4), "note": "hi"}, "not a plain state dict"),
    ],
)
def test_wrong_file_is_one_line(tmp_path, content, problem):
    p = tmp_path / "latents_stats.pt"
    torch.save(content, p)
    with pytest.raises(CheckpointError, match=f"latents_stats.pt: .*{problem}") as e:
        load_latent_stats(str(p), channels=4)
    assert "\n" not in str(e.value)


def test_pickled_code_is_refused(tmp_path):
    p = tmp_path / "latents_stats.pt"
    with open(p, "wb") as f:
        pickle.dump({"mean": torch.zeros(4), "std": torch.ones(4), "x": pickle.PickleError}, f)
    with pytest.raises(CheckpointError, match="latents_stats.pt"):
        load_latent_stats(str(p), channels=4)

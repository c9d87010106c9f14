"""``random_weights=True``: every full AR baseline builds its published architecture without a file (speed
runs), exposes the speed hooks, and refuses a checkpoint given beside it."""

import pytest
import torch

from harness.core.errors import UserError
from harness.core.interfaces import PhasedGenerator
from harness.core.registry import generators, load_plugins


@pytest.mark.parametrize("name", ["rar-b", "llamagen-gpt-b"])
def test_random_weights_build_the_published_architecture(name):
    load_plugins()
    g = generators.get(name)(device="cpu", random_weights=True)
    assert isinstance(g, PhasedGenerator)
    if name == "rar-b":
        from baselines.rar import build, rar_config

        meta = build(rar_config("b"), "meta")
    else:
        from baselines.llamagen import GPT_PRESETS, build_gpt

        meta = build_gpt(GPT_PRESETS[name].config, "meta")
    assert sum(p.numel() for p in g.model.parameters()) == sum(p.numel() for p in meta.parameters())
    codes = g.run_steps(torch.tensor([3]), torch.Generator().manual_seed(0), None, 2)
    assert codes.shape == (1, g.total_steps())
    with pytest.raises(UserError, match="takes no checkpoints"):
        generators.get(name)(device="cpu", random_weights=True, checkpoint="x.bin")

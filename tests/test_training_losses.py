"""Every training loss the project computes, against an independent value.

Upstream-produced values: tests/fixtures/upstream/losses/ was written by
scripts/upstream_fixtures/make_losses_{diffusion,ar}.py, which ran the official training-loss code
(DiT ``GaussianDiffusion.training_losses``, SiT ``Transport.training_losses``, AliTok
``train_tokenizer/`` quantizer and ``MSE_LPIPS_GAN``, AliTok ``ARLoss``, LlamaGen ``vq_model.py``
quantizer and GPT ``forward(targets=...)``, TiTok's quantizer) on fixed inputs; see its manifest.json.
No upstream code runs here. Where no official loss exists (the EffNet stand-in perceptual term) or
the project's term has no upstream counterpart, the reference is a closed form written below from
the definition, with explicit loops, not through the project's function.

Tolerance, unless a test says otherwise: 1e-5 relative. Both sides compute in float32 (unit
roundoff 6e-8) over at most a few hundred elements per mean and a handful of elementwise ops
(logs, exps, tanh in the DDPM decoder NLL), so the rounding difference of two operation orders is
~1e-6 relative at most; every constant of these losses (a beta of 0.25, a weight 10 K / G^2, a
1/ln 2, a mean against a sum) moves them by 1e-2 or more.
"""
from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

FIX = Path(__file__).parent / "fixtures" / "upstream" / "losses"
RTOL = 1e-5


def fixture(name: str) -> dict[str, torch.Tensor]:
    return load_file(str(FIX / f"{name}.safetensors"))


def close(actual: torch.Tensor, expected: torch.Tensor, rtol: float = RTOL) -> None:
    a, e = torch.as_tensor(actual).double(), torch.as_tensor(expected).double()
    assert a.shape == e.shape, (a.shape, e.shape)
    err = float((a - e).abs().max())
    assert err <= rtol * max(float(e.abs().max()), 1e-12), f"max |diff| {err:.3e} vs scale {float(e.abs().max()):.3e}"


class FixedNet:
    """A "network" that returns a fixed output and records what it was called with."""

    def __init__(self, out: torch.Tensor):
        self.out, self.seen = out, {}

    def __call__(self, x, t, y=None):
        self.seen.update(x=x.clone(), t=t.clone())
        return self.out


# ----------------------------------------------------------------------------------------------
# Diffusion (baselines/train_diffusion.py loss_at, harness/nn/diffusion.py training_losses)
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("variance", ["learned", "fixed"])
def test_ddpm_loss_matches_dit_training_losses(variance):
    """DiT's ``training_losses`` (create_diffusion(""), loss type MSE) at fixed x0, t, noise and
    network output, t = 0 included (the decoder-NLL branch of vb): x_t, mse, vb and the total."""
    from baselines.train_diffusion import loss_at
    from harness.nn.diffusion import GaussianDiffusion

    f = fixture("dit_training_losses")
    learned = variance == "learned"
    ddpm = GaussianDiffusion.respaced(1000, learn_sigma=learned)
    net = FixedNet(f[f"model_out_{variance}"])
    y = torch.zeros(len(f["t"]), dtype=torch.long)
    out = loss_at("ddpm", net, f["x_start"], y, f["t"], f["noise"], ddpm)
    close(net.seen["x"], f[f"{variance}_x_t"])
    assert torch.equal(net.seen["t"], f["t"])
    # upstream returns per-sample terms; the trainer averages over the batch
    close(out["mse"], f[f"{variance}_mse"].mean())
    close(out["loss"], f[f"{variance}_loss"].mean())
    if learned:
        close(out["vb"], f["learned_vb"].mean())
        assert float(f["learned_vb"][0]) > 10 * float(f["learned_vb"][1:].max())  # the NLL row is in play
    else:
        assert "vb" not in out


def test_flow_loss_matches_sit_training_losses():
    """SiT's ``training_losses`` (Linear path, velocity model) with upstream's own draws of x0 and t
    (recorded by the fixture script from the seeded global RNG): x_t and the velocity MSE."""
    from baselines.train_diffusion import loss_at

    f = fixture("sit_training_losses")
    net = FixedNet(f["model_out"])
    y = torch.zeros(len(f["t"]), dtype=torch.long)
    out = loss_at("flow", net, f["x1"], y, f["t"], f["x0"], ddpm=None)
    close(net.seen["x"], f["x_t"])
    close(net.seen["t"], f["t"])
    close(out["loss"], f["loss"].mean())


def test_diffusion_loss_draws_noise_then_t_from_the_generator():
    """``diffusion_loss`` is ``loss_at`` at (noise, t) drawn in that order from the passed generator
    (the order of the committed runs): the same numbers as drawing them by hand."""
    from baselines.train_diffusion import diffusion_loss, loss_at
    from harness.nn.diffusion import GaussianDiffusion

    f = fixture("dit_training_losses")
    ddpm = GaussianDiffusion.respaced(1000, learn_sigma=True)
    x, y = f["x_start"], torch.zeros(4, dtype=torch.long)
    for kind in ("ddpm", "flow"):
        out_shape = f["model_out_learned"] if kind == "ddpm" else f["model_out_fixed"]
        g = torch.Generator().manual_seed(5)
        noise = torch.randn(x.shape, generator=g)
        t = torch.randint(0, 1000, (4,), generator=g) if kind == "ddpm" else torch.rand((4,), generator=g)
        want = loss_at(kind, FixedNet(out_shape), x, y, t, noise, ddpm)["loss"]
        got = diffusion_loss(kind, FixedNet(out_shape), x, y, torch.Generator().manual_seed(5), ddpm)["loss"]
        assert torch.equal(got, want)

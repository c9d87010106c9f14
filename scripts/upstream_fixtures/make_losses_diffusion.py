"""Training-loss fixtures from the official diffusion code: per-sample loss terms on fixed inputs.

- DiT (facebookresearch/DiT ``diffusion/gaussian_diffusion.py``): ``GaussianDiffusion.training_losses``
  of ``create_diffusion(timestep_respacing="")`` (1000 steps, loss type MSE) with fixed x_start,
  t and noise, learned sigma (MSE on eps + the frozen-mean ``vb`` term; t = 0 takes the decoder-NLL
  branch) and fixed variance (``learn_sigma=False``: MSE only). The "network" is a fixed output
  tensor; the x_t upstream hands it is recorded too.
- SiT (willisma/SiT ``transport/transport.py``): ``Transport.training_losses`` of
  ``create_transport("Linear", "velocity")``. Its draws (``randn_like`` x0, then ``rand`` t) come
  from the global RNG, seeded here; the script redraws them from the same seed, checks they are what
  upstream used (the x_t and t it handed the network) and writes them as the fixture's inputs.

LightningDiT's ``training_losses`` is SiT's velocity MSE plus optional cosine and log-normal-t
options; the project has no LightningDiT trainer, so nothing of it is written here.

    python -m scripts.upstream_fixtures.make_losses_diffusion --upstream /path/to/checkouts
"""

from __future__ import annotations

import subprocess
import sys

import torch

from scripts.upstream_fixtures.common import FIXTURES, import_upstream, parse_args, write_fixture

SCRIPT = "scripts/upstream_fixtures/make_losses_diffusion.py"
B, C, H = 4, 3, 8
T_DDPM = [0, 1, 500, 999]  # t = 0: the discretised-Gaussian NLL branch of vb; 999: the last step
SEED = 0


def pixels(g: torch.Generator) -> torch.Tensor:
    """8-bit images in [-1, 1] (the decoder NLL's data), with exact -1 and 1 values (its edge branches)."""
    x = torch.randint(0, 256, (B, C, H, H), generator=g).float() / 127.5 - 1.0
    x[0, 0, 0, :2] = torch.tensor([-1.0, 1.0])
    return x


def dit(args) -> None:
    commit = import_upstream(args.checkout)
    from diffusion import create_diffusion

    g = torch.Generator().manual_seed(SEED)
    x_start = pixels(g)
    noise = torch.randn(B, C, H, H, generator=g)
    t = torch.tensor(T_DDPM)
    # eps part near the true noise (a realistic MSE), variance part in [-1, 1] (the learned range)
    out_eps = noise + 0.3 * torch.randn(B, C, H, H, generator=g)
    out_var = torch.tanh(torch.randn(B, C, H, H, generator=g))
    tensors = dict(
        x_start=x_start, noise=noise, t=t, model_out_learned=torch.cat([out_eps, out_var], 1), model_out_fixed=out_eps
    )
    for name, learn_sigma in (("learned", True), ("fixed", False)):
        diffusion = create_diffusion(timestep_respacing="", learn_sigma=learn_sigma)
        seen = {}

        def model(x, ts, out=tensors[f"model_out_{name}"]):
            seen["x_t"], seen["t"] = x.clone(), ts.clone()
            return out

        terms = diffusion.training_losses(model, x_start, t, noise=noise)
        assert torch.equal(seen["t"], t), "DiT's 1000-step respacing should call the network with t itself"
        tensors[f"{name}_x_t"] = seen["x_t"]
        for k in ("loss", "mse", "vb"):
            if k in terms:
                tensors[f"{name}_{k}"] = terms[k].clone()
    write_fixture(
        args.out,
        "dit_training_losses",
        tensors,
        upstream="facebookresearch/DiT",
        commit=commit,
        script=SCRIPT,
        notes={
            "diffusion": 'create_diffusion(timestep_respacing="", learn_sigma=...)',
            "terms": "per-sample loss, mse, vb (vb only with learned sigma)",
        },
    )


def sit(args) -> None:
    commit = import_upstream(args.checkout)
    from transport import create_transport

    transport = create_transport("Linear", "velocity")
    g = torch.Generator().manual_seed(SEED + 1)
    x1 = torch.randn(B, C, H, H, generator=g)
    out = torch.randn(B, C, H, H, generator=g)
    seen = {}

    def model(x, ts):
        seen["x_t"], seen["t"] = x.clone(), ts.clone()
        return out

    torch.manual_seed(SEED)
    terms = transport.training_losses(model, x1)
    torch.manual_seed(SEED)  # upstream's draws, in its order: x0 = randn_like(x1), then t = rand(B)
    x0 = torch.randn_like(x1)
    t = torch.rand((B,))
    assert torch.equal(seen["t"], t), "SiT's t draw is not rand(B) on [0, 1] after randn_like"
    assert torch.allclose(seen["x_t"], t[:, None, None, None] * x1 + (1 - t[:, None, None, None]) * x0), (
        "SiT's x_t is not t x1 + (1 - t) x0 of the redrawn noise"
    )
    write_fixture(
        args.out,
        "sit_training_losses",
        dict(x1=x1, x0=x0, t=t, model_out=out, x_t=seen["x_t"], loss=terms["loss"]),
        upstream="willisma/SiT",
        commit=commit,
        script=SCRIPT,
        notes={
            "transport": 'create_transport("Linear", "velocity")',
            "draws": f"torch.manual_seed({SEED}); x0 = randn_like(x1); t = rand(B)",
        },
    )


def main() -> None:
    # one process per checkout: DiT and SiT both have top-level `models` / `diffusion` modules
    if len(sys.argv) > 1 and sys.argv[1] in ("--only-dit", "--only-sit"):
        which = sys.argv.pop(1)
        args = parse_args("losses", "DiT" if which == "--only-dit" else "SiT")
        (dit if which == "--only-dit" else sit)(args)
        return
    args = parse_args("losses", "DiT")
    for flag in ("--only-dit", "--only-sit"):
        cmd = [
            sys.executable,
            "-m",
            "scripts.upstream_fixtures.make_losses_diffusion",
            flag,
            "--upstream",
            str(args.upstream),
            "--out",
            str(args.out),
        ]
        subprocess.run(cmd, check=True, cwd=FIXTURES.parents[2])


if __name__ == "__main__":
    main()

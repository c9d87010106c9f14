"""SiT fixtures from willisma/SiT (``models.py``, ``transport/``): a small SiT with seeded weights saved
as the released file is (a raw state dict), its forward and ``forward_with_cfg`` outputs, and
``Sampler`` runs from fixed noise drawn as ``sample.py`` draws it (global RNG: ``torch.manual_seed``,
``z = randn``, CFG doubles ``z`` and ``y``; the SDE then draws ``randn`` of the doubled batch per
step): ODE Euler, Heun (torchdiffeq heun2) and dopri5 at ``sample.py``'s tolerances, SDE
Euler-Maruyama with ``sample.py``'s defaults (diffusion form "sigma", last step "Mean" 0.04), with
and without guidance. Each run counts the network calls upstream makes. Also SiT-XL/2's full-size
key list and parameter count (meta device).

    python -m scripts.upstream_fixtures.make_sit --upstream /path/to/checkouts   # reads .../SiT
"""

from __future__ import annotations

import torch

from scripts.upstream_fixtures.common import (
    open_checkout,
    seed_weights_,
    write_class_network,
    write_fixture,
    write_full_size,
)

TINY = dict(
    input_size=8, patch_size=2, in_channels=4, hidden_size=64, depth=2, num_heads=4, num_classes=10, learn_sigma=True
)
SEED, CFG_SCALE = 0, 1.5
LABELS = [3, 7]
# sampler runs: (name, mode, options); steps kept small, the solver settings are sample.py's defaults
RUNS = [
    ("ode_euler", "ODE", dict(sampling_method="euler", num_steps=6, atol=1e-6, rtol=1e-3), CFG_SCALE),
    ("ode_heun", "ODE", dict(sampling_method="heun2", num_steps=5, atol=1e-6, rtol=1e-3), CFG_SCALE),
    ("ode_dopri5", "ODE", dict(sampling_method="dopri5", num_steps=6, atol=1e-6, rtol=1e-3), CFG_SCALE),
    (
        "sde",
        "SDE",
        dict(
            sampling_method="Euler",
            diffusion_form="sigma",
            diffusion_norm=1.0,
            last_step="Mean",
            last_step_size=0.04,
            num_steps=6,
        ),
        CFG_SCALE,
    ),
    (
        "sde_unguided",
        "SDE",
        dict(
            sampling_method="Euler",
            diffusion_form="sigma",
            diffusion_norm=1.0,
            last_step="Mean",
            last_step_size=0.04,
            num_steps=6,
        ),
        1.0,
    ),
]


def main() -> None:
    # timm imports torchvision; the CPU wheel needs the shim (harness/core/_tv_shim.py)
    args, meta = open_checkout("sit", "SiT", "willisma/SiT", shim=True)
    from models import SiT, SiT_models
    from transport import Sampler, create_transport

    torch.set_grad_enabled(False)

    model = seed_weights_(SiT(**TINY), seed=SEED, std=0.1).eval()
    t = torch.tensor([0.1, 0.7])
    y, y2 = write_class_network(args.out, model, "SiT-tiny.pt", TINY, t, LABELS, CFG_SCALE, meta)
    b, c, s = len(LABELS), TINY["in_channels"], TINY["input_size"]

    sampler = Sampler(create_transport("Linear", "velocity", None, None, None))  # sample.py's transport defaults
    tensors, notes = {"labels": y}, {"config": TINY, "seed": SEED, "runs": {}}
    for name, mode, opts, scale in RUNS:
        fn = sampler.sample_ode(**opts) if mode == "ODE" else sampler.sample_sde(**opts)
        calls = [0]

        def counted(xx, tt, **kw):
            calls[0] += 1
            return model.forward_with_cfg(xx, tt, **kw) if scale > 1.0 else model.forward(xx, tt, **kw)

        torch.manual_seed(SEED)
        z = torch.randn(b, c, s, s)
        if scale > 1.0:
            out = fn(torch.cat([z, z]), counted, y=y2, cfg_scale=scale)
        else:
            out = fn(z, counted, y=y)
        traj = torch.stack(list(out))[:, :b]  # [points, B, C, H, W]; guided: the conditional half
        tensors[f"{name}_noise"], tensors[f"{name}_trajectory"] = z, traj
        notes["runs"][name] = {
            "mode": mode,
            **opts,
            "cfg_scale": scale,
            "upstream_network_calls": calls[0],
            "rows_per_call": 2 * b if scale > 1.0 else b,
        }
    write_fixture(args.out, "samplers", tensors, **meta, notes=notes)

    # dopri5 on a smooth closed-form field in float64: with the network in fp32 the adaptive step
    # control amplifies rounding to the solver's tolerance, in float64 it does not, so this run pins
    # the solver call itself (method, tolerances, grid, time vector) to many digits
    gf = torch.Generator().manual_seed(2)
    d = c * s * s
    u = torch.randn(d, 8, generator=gf, dtype=torch.float64) / d**0.5 * 1.5  # low rank: a small fixture
    v = torch.randn(8, d, generator=gf, dtype=torch.float64) / 8**0.5
    bias = torch.randn(d, generator=gf, dtype=torch.float64)

    def field(xx, tt):
        return torch.tanh((xx.flatten(1) @ u) @ v + tt[:, None].to(xx.dtype) * bias).reshape(xx.shape)

    x0 = torch.randn(b, c, s, s, generator=gf, dtype=torch.float64)
    field_runs = {"field_u": u, "field_v": v, "field_b": bias, "field_x0": x0}
    for method, steps in (("dopri5", 6), ("euler", 6)):
        fn = sampler.sample_ode(sampling_method=method, num_steps=steps, atol=1e-6, rtol=1e-3)
        field_runs[f"field_{method}"] = fn(x0, field)[-1]
    write_fixture(
        args.out,
        "ode_field",
        field_runs,
        **meta,
        notes={
            "field": "v(x, t) = tanh((x.flatten(1) @ u) @ v + t[:, None] * b), float64",
            "num_steps": 6,
            "atol": 1e-6,
            "rtol": 1e-3,
        },
    )

    write_full_size(
        args.out, "SiT-XL/2", lambda: SiT_models["SiT-XL/2"](input_size=32, num_classes=1000, learn_sigma=True), meta
    )


if __name__ == "__main__":
    main()

"""LightningDiT fixtures from hustvl/LightningDiT (``models/lightningdit.py``, ``transport/``,
``inference.py``'s pipeline): a small LightningDiT (RMSNorm, SwiGLU, RoPE, as the released XL/1)
with seeded weights saved in the training-checkpoint layout upstream loads (``{"model", "ema"}``,
``inference.py`` takes ``["ema"]``; the RoPE tables are buffers and stay as built), its forward
and ``forward_with_cfg`` (three channels, CFG interval) outputs, the ODE time grids with
``timestep_shift`` (the 250-point one at 0.3 included), an Euler run with shift, guidance and
interval from fixed noise, and its images through ``latents_stats``-style de-normalisation and
the small VA-VAE of make_vae.py (same official classes and seed; tests read it from ../vae/).
Also LightningDiT-XL/1's full-size key list and parameter count (meta device).

    python -m scripts.upstream_fixtures.make_lightningdit --upstream /path/to/checkouts
"""

from __future__ import annotations

import os

os.environ.setdefault("TORCHDYNAMO_DISABLE", "1")  # upstream decorates forwards with @torch.compile: run them eagerly

import torch  # noqa: E402

from scripts.upstream_fixtures.common import open_checkout, seed_weights_, write_fixture, write_full_size  # noqa: E402
from scripts.upstream_fixtures.ldm_vae_tiny import VAVAE_SEED, VAVAE_TINY, build  # noqa: E402

# small LightningDiT over the small VA-VAE's latents (16x16x8), options as the released config
TINY = dict(
    input_size=16,
    patch_size=1,
    in_channels=8,
    hidden_size=64,
    depth=2,
    num_heads=4,
    num_classes=10,
    learn_sigma=False,
    use_qknorm=False,
    use_swiglu=True,
    use_rope=True,
    use_rmsnorm=True,
    wo_shift=False,
)
# configs/reproductions/lightningdit_xl_vavae_f16d32_800ep_cfg.yaml (steps cut to keep the fixture small)
SAMPLE = dict(sampling_method="euler", num_steps=10, atol=1e-6, rtol=1e-3, reverse=False, timestep_shift=0.3)
CFG_SCALE, CFG_INTERVAL_START, LATENT_MULTIPLIER = 6.7, 0.125, 1.0
SEED, LABELS = 0, [3, 7]


def main() -> None:
    # timm imports torchvision; the CPU wheel needs the shim (harness/core/_tv_shim.py)
    args, meta = open_checkout("lightningdit", "LightningDiT", "hustvl/LightningDiT", shim=True)
    from models.lightningdit import LightningDiT, LightningDiT_models
    from transport import Sampler, create_transport

    torch.set_grad_enabled(False)

    model = LightningDiT(**TINY).eval()
    rope = {k: v.clone() for k, v in model.state_dict().items() if k.startswith("feat_rope.")}
    seed_weights_(model, seed=SEED, std=0.1)
    model.load_state_dict(rope, strict=False)  # computed tables, not learned: keep them as built
    args.out.mkdir(parents=True, exist_ok=True)
    ema = model.state_dict()
    raw = dict(ema)  # the training weights differ from the EMA ones (one tensor; the rest share storage)
    raw["final_layer.linear.bias"] = ema["final_layer.linear.bias"] + 1.0
    torch.save({"model": raw, "ema": ema}, args.out / "lightningdit-tiny.pt")
    g = torch.Generator().manual_seed(3)
    c, s = TINY["in_channels"], TINY["input_size"]
    stats = {"mean": torch.randn(1, c, 1, 1, generator=g) * 0.5, "std": torch.rand(1, c, 1, 1, generator=g) + 0.5}
    torch.save(stats, args.out / "latents_stats.pt")

    b = len(LABELS)
    y = torch.tensor(LABELS)
    y2 = torch.cat([y, torch.full_like(y, TINY["num_classes"])])
    x = torch.randn(b, c, s, s, generator=g)
    t = torch.tensor([0.05, 0.6])
    out = model(x, t, y)
    xx = torch.cat([x, x])
    # upstream decides the interval on t[0] for the whole batch: one call below it, one above
    cfg_low = model.forward_with_cfg(xx, torch.full((2 * b,), 0.05), y2, CFG_SCALE, True, CFG_INTERVAL_START)
    cfg_high = model.forward_with_cfg(xx, torch.full((2 * b,), 0.6), y2, CFG_SCALE, True, CFG_INTERVAL_START)
    write_fixture(
        args.out,
        "network",
        dict(x=x, t=t, y=y, out=out, cfg_low=cfg_low, cfg_high=cfg_high),
        **meta,
        notes={
            "config": TINY,
            "cfg_scale": CFG_SCALE,
            "cfg_interval_start": CFG_INTERVAL_START,
            "t_low": 0.05,
            "t_high": 0.6,
            "weights": "lightningdit-tiny.pt (['ema'])",
        },
    )

    sampler = Sampler(create_transport("Linear", "velocity", None, None, None))
    grids = {}
    for steps, shift in ((250, 0.3), (4, 0.3), (SAMPLE["num_steps"], SAMPLE["timestep_shift"]), (250, 0.0)):
        fn = sampler.sample_ode(**{**SAMPLE, "num_steps": steps, "timestep_shift": shift})
        grids[f"grid_{steps}_shift{shift}"] = fn.__self__.t  # the ode object's time grid
    write_fixture(args.out, "grids", grids, **meta, notes={"source": "transport/integrators.py ode.t (compute_tm)"})

    # inference.py: z = randn; CFG doubles z and y; euler ODE with shift; [-1]; conditional half;
    # z * std / multiplier + mean; VA-VAE decode; clamp(127.5 x + 128) -> uint8
    fn = sampler.sample_ode(**SAMPLE)
    calls = [0]

    def counted(*a, **kw):
        calls[0] += 1
        return model.forward_with_cfg(*a, **kw)

    torch.manual_seed(SEED)
    z = torch.randn(b, c, s, s)
    traj = fn(
        torch.cat([z, z]), counted, y=y2, cfg_scale=CFG_SCALE, cfg_interval=True, cfg_interval_start=CFG_INTERVAL_START
    )[:, :b]
    vae = build(VAVAE_TINY, VAVAE_SEED)
    latents = traj[-1] * stats["std"] / LATENT_MULTIPLIER + stats["mean"]
    decoded = vae.decode(latents)
    images = torch.clamp(127.5 * decoded + 128.0, 0, 255).permute(0, 2, 3, 1).to(torch.uint8)
    write_fixture(
        args.out,
        "sampler",
        dict(labels=y, noise=z, trajectory=traj, decoded=decoded, images=images),
        **meta,
        notes={
            "sample": SAMPLE,
            "cfg_scale": CFG_SCALE,
            "cfg_interval_start": CFG_INTERVAL_START,
            "latent_multiplier": LATENT_MULTIPLIER,
            "seed": SEED,
            "upstream_network_calls": calls[0],
            "vae": "../vae/VA-VAE-tiny.pt",
            "latent_stats": "latents_stats.pt",
        },
    )

    xl = dict(input_size=16, in_channels=32, use_qknorm=False, use_swiglu=True, use_rope=True, use_rmsnorm=True)
    write_full_size(
        args.out, "LightningDiT-XL/1", lambda: LightningDiT_models["LightningDiT-XL/1"](**xl, wo_shift=False), meta
    )


if __name__ == "__main__":
    main()

"""DiT fixtures from facebookresearch/DiT (``models.py``, ``diffusion/``): a small DiT with seeded
weights saved as the released file is (a raw state dict), its forward and ``forward_with_cfg``
outputs, DDPM and DDIM trajectories of ``create_diffusion`` from fixed noise drawn as
``sample.py`` draws it (global RNG: the initial noise, then one ``randn_like`` of the doubled
batch per step), and DiT-XL/2's full-size key list and parameter count (built on the meta device).

    python -m scripts.upstream_fixtures.make_dit --upstream /path/to/checkouts   # reads .../DiT
"""

from __future__ import annotations

import json

import torch

from scripts.upstream_fixtures.common import import_upstream, parse_args, seed_weights_, write_fixture

# the small configuration of the official class (fixtures stay under a MB)
TINY = dict(
    input_size=8, patch_size=2, in_channels=4, hidden_size=64, depth=2, num_heads=4, num_classes=10, learn_sigma=True
)
SEED, CFG_SCALE, STEPS = 0, 1.5, 8
LABELS = [3, 7]


def main() -> None:
    args = parse_args("dit", "DiT")
    from harness.core._tv_shim import install

    install()  # timm imports torchvision; the CPU wheel needs the shim (harness/core/_tv_shim.py)
    commit = import_upstream(args.checkout)
    from diffusion import create_diffusion
    from models import DiT, DiT_models

    script = "scripts/upstream_fixtures/make_dit.py"
    meta = dict(upstream="facebookresearch/DiT", commit=commit, script=script)
    torch.set_grad_enabled(False)

    model = seed_weights_(DiT(**TINY), seed=SEED, std=0.1).eval()
    args.out.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), args.out / "DiT-tiny.pt")  # released layout: a raw state dict

    # network outputs: plain forward and three-channel guidance on the doubled batch
    g = torch.Generator().manual_seed(1)
    b, c, s = len(LABELS), TINY["in_channels"], TINY["input_size"]
    x = torch.randn(b, c, s, s, generator=g)
    t = torch.tensor([999, 250])
    y = torch.tensor(LABELS)
    out = model(x, t, y)
    x2, t2, y2 = torch.cat([x, x]), torch.cat([t, t]), torch.cat([y, torch.full_like(y, TINY["num_classes"])])
    cfg_out = model.forward_with_cfg(x2, t2, y2, CFG_SCALE)
    write_fixture(
        args.out,
        "network",
        dict(x=x, t=t, y=y, out=out, cfg_out=cfg_out),
        **meta,
        notes={"config": TINY, "cfg_scale": CFG_SCALE, "weights": "DiT-tiny.pt (raw state dict)"},
    )

    # samplers: sample.py's draws (torch.manual_seed, then z; CFG doubles z and y)
    trajectories = {}
    for name in ("ddpm", "ddim"):
        diffusion = create_diffusion(str(STEPS))
        torch.manual_seed(SEED)
        z = torch.randn(b, c, s, s)
        zz = torch.cat([z, z])
        kwargs = dict(y=y2, cfg_scale=CFG_SCALE)
        loop = diffusion.p_sample_loop_progressive if name == "ddpm" else diffusion.ddim_sample_loop_progressive
        steps = [
            o["sample"]
            for o in loop(model.forward_with_cfg, zz.shape, zz, clip_denoised=False, model_kwargs=kwargs, device="cpu")
        ]
        trajectories[f"{name}_noise"] = z
        trajectories[f"{name}_trajectory"] = torch.stack([st[:b] for st in steps])  # [steps, B, C, H, W]
        trajectories[f"{name}_timestep_map"] = torch.tensor(diffusion.timestep_map)
    write_fixture(
        args.out,
        "samplers",
        {"labels": y, **trajectories},
        **meta,
        notes={
            "config": TINY,
            "cfg_scale": CFG_SCALE,
            "steps": STEPS,
            "seed": SEED,
            "ddim_eta": 0.0,
            "draws": "torch.manual_seed(seed); z = randn(B,C,H,W); per step randn_like of the doubled batch",
        },
    )

    # full size: DiT-XL/2 keys, shapes and parameter count (meta device, nothing allocated)
    with torch.device("meta"):
        xl = DiT_models["DiT-XL/2"](input_size=32, num_classes=1000)
    full = {
        "model": "DiT-XL/2",
        "num_params": sum(p.numel() for p in xl.parameters()),
        "state_dict": {k: list(v.shape) for k, v in xl.state_dict().items()},
        "upstream": meta,
    }
    (args.out / "full_size.json").write_text(json.dumps(full, indent=0, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()

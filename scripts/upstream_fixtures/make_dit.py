"""DiT fixtures from facebookresearch/DiT (``models.py``, ``diffusion/``): a small DiT with seeded
weights saved as the released file is (a raw state dict), its forward and ``forward_with_cfg``
outputs, DDPM and DDIM trajectories of ``create_diffusion`` from fixed noise drawn as
``sample.py`` draws it (global RNG: the initial noise, then one ``randn_like`` of the doubled
batch per step), and DiT-XL/2's full-size key list and parameter count (built on the meta device).

    python -m scripts.upstream_fixtures.make_dit --upstream /path/to/checkouts   # reads .../DiT
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

# the small configuration of the official class (fixtures stay under a MB)
TINY = dict(
    input_size=8, patch_size=2, in_channels=4, hidden_size=64, depth=2, num_heads=4, num_classes=10, learn_sigma=True
)
SEED, CFG_SCALE, STEPS = 0, 1.5, 8
LABELS = [3, 7]


def main() -> None:
    # timm imports torchvision; the CPU wheel needs the shim (harness/core/_tv_shim.py)
    args, meta = open_checkout("dit", "DiT", "facebookresearch/DiT", shim=True)
    from diffusion import create_diffusion
    from models import DiT, DiT_models

    torch.set_grad_enabled(False)

    # network outputs: plain forward and three-channel guidance on the doubled batch
    model = seed_weights_(DiT(**TINY), seed=SEED, std=0.1).eval()
    t = torch.tensor([999, 250])
    y, y2 = write_class_network(args.out, model, "DiT-tiny.pt", TINY, t, LABELS, CFG_SCALE, meta)
    b, c, s = len(LABELS), TINY["in_channels"], TINY["input_size"]

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
    write_full_size(args.out, "DiT-XL/2", lambda: DiT_models["DiT-XL/2"](input_size=32, num_classes=1000), meta)


if __name__ == "__main__":
    main()

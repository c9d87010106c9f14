"""SiT (willisma/SiT): DiT's network (same keys, learn_sigma head whose first half is the
velocity) with the linear-interpolant flow sampler. Headline: SDE Euler-Maruyama, 250 steps,
diffusion form "sigma", last step "Mean" 0.04, cfg 1.5 on the first 3 channels, SD VAE.

Factories: ``sit_xl_2`` (released ``SiT-XL-2-256.pt``, strict) and ``flow_tiny`` (the committed
tiny pixel-space flow model).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from baselines.dit import WEIGHTS, _dtype, _options, load_tiny, sd_vae_generator
from harness.core.interfaces import DiffusionSampling
from harness.nn.models.diffusion_generator import DiffusionGenerator

SIT_XL_SAMPLING = DiffusionSampling(steps=250, solver="euler-maruyama", cfg_scale=1.5, cfg_first3=True)


def sit_xl_2(
    *,
    device,
    checkpoint=None,
    tokenizer_checkpoint=None,
    dtype=None,
    tf32=None,
    random_weights=False,
    config: str | Mapping[str, Any] = "XL/2",
    **options,
):
    """SiT-XL/2 256 px (675M, DiT's network) + SD VAE, flow sampling."""
    return sd_vae_generator(
        "sit",
        "flow",
        SIT_XL_SAMPLING,
        "SiT-XL-2-256.pt",
        device=device,
        checkpoint=checkpoint,
        tokenizer_checkpoint=tokenizer_checkpoint,
        dtype=dtype,
        tf32=tf32,
        random_weights=random_weights,
        config=config,
        options=options,
    )


def flow_tiny(*, device, checkpoint=None, tokenizer_checkpoint=None, dtype=None, tf32=None, **options):
    """The committed tiny pixel-space flow model (velocity, Euler ODE preset)."""
    _options("flow-tiny", options)
    path = Path(checkpoint) if checkpoint else WEIGHTS / "flow_tiny.safetensors"
    model, sampling, meta = load_tiny(path, device, "flow")
    return DiffusionGenerator(
        model,
        name="flow-tiny",
        kind="flow",
        sampling=sampling,
        image_size=model.cfg.input_size,
        checkpoint=str(path),
        dtype=_dtype(dtype),
        tf32=tf32,
        extra_info={"step": meta.get("step"), "pixel_space": True},
    )

"""VAE fixtures: VA-VAE and the SD VAE, small, with seeded weights, in the layouts they are released in.

- VA-VAE (hustvl/LightningDiT ``tokenizer/autoencoder.py``, the LDM classes): ``{"state_dict": ...}``
  with training-only entries beside it (as ``vavae-imagenet256-f16d32-dinov2.pt``; upstream loads
  it with ``strict=False`` and drops ``loss`` keys); posterior mean / std of ``encode``, ``decode``
  and the uint8 image of ``VA_VAE.decode_to_images`` (its formula, on CPU).
- SD VAE, LDM layout (same LDM classes, the SD VAE's shape: no attention inside levels), as
  ``vae-ft-ema-560000-ema-pruned.ckpt`` is (``{"state_dict": ...}``).
- SD VAE, diffusers layout (``diffusers.AutoencoderKL`` as DiT's ``sample.py`` uses it):
  ``save_pretrained`` folder; ``decode(z / 0.18215)`` and ``sample_ddp.py``'s uint8 rule.
- Full size: the LDM key lists and parameter counts of VA-VAE f16d32 and the SD VAE (meta device).

    python -m scripts.upstream_fixtures.make_vae --upstream /path/to/checkouts   # reads .../LightningDiT
"""

from __future__ import annotations

import json

import torch

from scripts.upstream_fixtures.common import import_upstream, parse_args, seed_weights_, write_fixture
from scripts.upstream_fixtures.ldm_vae_tiny import SDVAE_SEED, SDVAE_TINY, VAVAE_SEED, VAVAE_TINY, build, full_size_keys

SD_SCALE = 0.18215
# the released configs (LightningDiT tokenizer/configs/vavae_f16d32.yaml; CompVis first_stage_models/kl-f8)
VAVAE_FULL = dict(
    ch=128, ch_mult=(1, 1, 2, 2, 4), num_res_blocks=2, attn_resolutions=(16,), resolution=256, z_channels=32
)
SDVAE_FULL = dict(ch=128, ch_mult=(1, 2, 4, 4), num_res_blocks=2, attn_resolutions=(), resolution=256, z_channels=4)


def uint8_images(x: torch.Tensor) -> torch.Tensor:
    """DiT sample_ddp.py / LightningDiT decode_to_images: clamp(127.5 x + 128) -> uint8 NHWC."""
    return torch.clamp(127.5 * x + 128.0, 0, 255).permute(0, 2, 3, 1).to(torch.uint8)


def main() -> None:
    args = parse_args("vae", "LightningDiT")
    from harness.core._tv_shim import install

    install()  # LightningDiT's tokenizer imports torchvision; the CPU wheel needs the shim
    commit = import_upstream(args.checkout)
    import diffusers

    torch.set_grad_enabled(False)
    script = "scripts/upstream_fixtures/make_vae.py"
    ldm_meta = dict(upstream="hustvl/LightningDiT", commit=commit, script=script)
    args.out.mkdir(parents=True, exist_ok=True)
    g = torch.Generator().manual_seed(5)
    images = torch.rand(2, 3, 32, 32, generator=g) * 2 - 1

    for name, cfg, seed in (("vavae", VAVAE_TINY, VAVAE_SEED), ("sdvae_ldm", SDVAE_TINY, SDVAE_SEED)):
        vae = build(cfg, seed)
        sd = dict(vae.state_dict())
        if name == "vavae":  # training-only parts the released file carries beside the autoencoder
            sd["loss.discriminator.main.0.weight"] = torch.zeros(4, 3, 1, 1)
            sd["foundation_model.model.cls_token"] = torch.zeros(1, 1, 4)
            sd["linear_proj.weight"] = torch.zeros(4, cfg["z_channels"], 1, 1)
        torch.save({"state_dict": sd}, args.out / ("VA-VAE-tiny.pt" if name == "vavae" else "sd-vae-ldm-tiny.ckpt"))
        post = vae.encode(images)
        z = torch.randn(post.mean.shape, generator=g)
        decoded = vae.decode(z if name == "vavae" else z / SD_SCALE)
        write_fixture(
            args.out,
            name,
            dict(
                images=images, mean=post.mean, std=post.std, z=z, decoded=decoded, decoded_uint8=uint8_images(decoded)
            ),
            **ldm_meta,
            notes={
                "ldm_config": {k: list(v) if isinstance(v, tuple) else v for k, v in cfg.items()},
                "decode_input": "z" if name == "vavae" else "z / 0.18215",
            },
        )

    # the SD VAE in diffusers' layout, as DiT's sample.py builds it (diffusers is the official code here)
    cfg = dict(
        in_channels=3,
        out_channels=3,
        latent_channels=4,
        block_out_channels=(32, 32),
        layers_per_block=1,
        down_block_types=("DownEncoderBlock2D",) * 2,
        up_block_types=("UpDecoderBlock2D",) * 2,
        act_fn="silu",
        norm_num_groups=32,
        sample_size=32,
        scaling_factor=SD_SCALE,
    )
    vae = seed_weights_(diffusers.AutoencoderKL(**cfg), seed=SDVAE_SEED + 1, std=0.05).eval()
    vae.save_pretrained(args.out / "sd-vae-diffusers-tiny", safe_serialization=True)
    dist = vae.encode(images).latent_dist
    z = torch.randn(dist.mean.shape, generator=g)
    decoded = vae.decode(z / SD_SCALE).sample
    write_fixture(
        args.out,
        "sdvae_diffusers",
        dict(images=images, mean=dist.mean, std=dist.std, z=z, decoded=decoded, decoded_uint8=uint8_images(decoded)),
        upstream="huggingface/diffusers (AutoencoderKL, as facebookresearch/DiT sample.py uses it)",
        commit=f"diffusers=={diffusers.__version__}",
        script=script,
        notes={"decode_input": "z / 0.18215", "folder": "sd-vae-diffusers-tiny"},
    )

    full = {"vavae_f16d32": full_size_keys(VAVAE_FULL), "sd_vae_ldm": full_size_keys(SDVAE_FULL), "upstream": ldm_meta}
    (args.out / "full_size.json").write_text(json.dumps(full, indent=0, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()

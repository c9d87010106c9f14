"""Small LDM autoencoders from the official LDM classes in hustvl/LightningDiT
``tokenizer/autoencoder.py`` (CompVis ``Encoder`` / ``Decoder`` with their key names): its
``AutoencoderKL`` hard-codes ``ch=128``, so the small encoder and decoder are built from the same
classes with a small ``ch`` and put in its place. Used by make_vae.py (VA-VAE and the SD VAE in the
LDM layout) and make_lightningdit.py (the VA-VAE that decodes its samples): same seed, same weights.
Run from a script that already put the LightningDiT checkout on ``sys.path``.
"""

from __future__ import annotations

import torch

from scripts.upstream_fixtures.common import seed_weights_

# VA-VAE shape in small: attention at 16 px in the last encoder level and the first decoder level
VAVAE_TINY = dict(ch=32, ch_mult=(1, 1), num_res_blocks=1, attn_resolutions=(16,), resolution=32, z_channels=8)
# SD VAE shape in small: no attention inside levels (mid-block attention only)
SDVAE_TINY = dict(ch=32, ch_mult=(1, 1), num_res_blocks=1, attn_resolutions=(), resolution=32, z_channels=4)
VAVAE_SEED, SDVAE_SEED = 11, 12


def build(cfg: dict, seed: int) -> torch.nn.Module:
    from tokenizer.autoencoder import AutoencoderKL, Decoder, Encoder

    z = cfg["z_channels"]
    kw = {k: v for k, v in cfg.items() if k != "z_channels"}
    with torch.device("meta"):  # the class's own ch=128 encoder/decoder are replaced below
        vae = AutoencoderKL(embed_dim=z, ch_mult=cfg["ch_mult"])
    vae.encoder = Encoder(**kw, z_channels=z, double_z=True)
    vae.decoder = Decoder(**kw, z_channels=z)
    vae.quant_conv = torch.nn.Conv2d(2 * z, 2 * z, 1)
    vae.post_quant_conv = torch.nn.Conv2d(z, z, 1)
    return seed_weights_(vae, seed=seed, std=0.05).eval()


def full_size_keys(cfg: dict) -> dict:
    """Keys, shapes and parameter count of an LDM autoencoder (meta device)."""
    from tokenizer.autoencoder import Decoder, Encoder

    z = cfg["z_channels"]
    kw = {k: v for k, v in cfg.items() if k != "z_channels"}
    with torch.device("meta"):
        parts = {
            "encoder": Encoder(**kw, z_channels=z, double_z=True),
            "decoder": Decoder(**kw, z_channels=z),
            "quant_conv": torch.nn.Conv2d(2 * z, 2 * z, 1),
            "post_quant_conv": torch.nn.Conv2d(z, z, 1),
        }
    sd = {f"{p}.{k}": list(v.shape) for p, m in parts.items() for k, v in m.state_dict().items()}
    n = sum(p.numel() for m in parts.values() for p in m.parameters())
    return {
        "num_params": n,
        "state_dict": sd,
        "config": {k: list(v) if isinstance(v, tuple) else v for k, v in cfg.items()},
    }

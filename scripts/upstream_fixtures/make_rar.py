"""RAR + MaskGIT-VQGAN fixtures from bytedance/1d-tokenizer: VQGAN encode/decode, RAR logits,
CFG schedule, tokens.

Official modules: ``modeling/modules/maskgit_vqgan.py`` (``Encoder``, ``Decoder``,
``VectorQuantizer``; ``modeling/titok.py:PretrainedTokenizer`` hard-codes their full-size config,
so they are built from a small config and its ``encode`` / ``decode`` methods run on a module
with the same attribute names) and ``modeling/rar.py`` (``RAR`` from an OmegaConf config as
``configs/training/generator/rar.yaml``). Released layouts: ``maskgit-vqgan-imagenet-f16-256.bin``
and ``rar_{b,l,xl,xxl}.bin`` are plain ``torch.save``d state dicts.

Run: ``python -m scripts.upstream_fixtures.make_rar --upstream /path/to/checkouts``
"""

from __future__ import annotations

import torch

from scripts.upstream_fixtures.common import (
    ar_logits,
    open_checkout,
    save_released,
    seed_weights_,
    uint8_images,
    unit_images,
    write_fixture,
    write_key_list,
    write_sample_preset,
)

# 64 px, two 2x downsamplings -> the official 16 x 16 grid (256 tokens)
PIXEL = {
    "channel_mult": [1, 1, 1],
    "num_resolutions": 3,
    "dropout": 0.0,
    "hidden_channels": 32,
    "num_channels": 3,
    "num_res_blocks": 1,
    "resolution": 64,
    "z_channels": 32,
}
CODEBOOK = 256  # the official 1024 would make the logit fixtures 4x larger
RAR_SIZES = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 128}
LOGIT_STRIDE = 4  # logits of every 4th position (and the last) are stored
HEAD_STD = 0.5  # a wide head makes tokens depend on context and guidance
# README_RAR.md sampling commands: guidance_scale, guidance_scale_pow, randomize_temperature; seed 42
PRESETS = {"b": (16.0, 2.75, 1.0), "l": (15.5, 2.5, 1.02)}
SEED = 42  # sample_imagenet_rar.py: seed = 42 + rank
FULL = {"b": (768, 24, 3072), "l": (1024, 24, 4096), "xl": (1280, 32, 5120), "xxl": (1408, 40, 6144)}
FULL_PIXEL = {
    "channel_mult": [1, 1, 2, 2, 4],
    "num_resolutions": 5,
    "dropout": 0.0,
    "hidden_channels": 128,
    "num_channels": 3,
    "num_res_blocks": 2,
    "resolution": 256,
    "z_channels": 256,
}


def rar_config(hidden, layers, heads, mlp, codebook):
    from omegaconf import OmegaConf

    return OmegaConf.create(
        {
            "model": {
                "vq_model": {"codebook_size": codebook, "token_size": 256, "num_latent_tokens": 256},
                "generator": {
                    "hidden_size": hidden,
                    "num_hidden_layers": layers,
                    "num_attention_heads": heads,
                    "intermediate_size": mlp,
                    "dropout": 0.1,
                    "attn_drop": 0.1,
                    "class_label_dropout": 0.1,
                    "image_seq_len": 256,
                    "condition_num_classes": 1000,
                    "use_checkpoint": False,
                },
            }
        }
    )


def pixel_vq(conf: dict, codebook: int, z: int):
    """The module ``PretrainedTokenizer`` builds (encoder, decoder, quantize), from ``conf``."""
    from modeling.modules.maskgit_vqgan import Decoder, Encoder, VectorQuantizer
    from omegaconf import OmegaConf

    m = torch.nn.Module()
    m.encoder, m.decoder = Encoder(OmegaConf.create(conf)), Decoder(OmegaConf.create(conf))
    m.quantize = VectorQuantizer(num_embeddings=codebook, embedding_dim=z, commitment_cost=0.25)
    return m


@torch.no_grad()
def main():
    args, common = open_checkout("rar", "1d-tokenizer", "bytedance/1d-tokenizer", shim=True)
    from modeling.rar import RAR
    from modeling.titok import PretrainedTokenizer

    out = args.out

    write_key_list(out, "maskgit-vqgan-imagenet-f16-256.bin", lambda: pixel_vq(FULL_PIXEL, 1024, 256))
    for size, (hidden, layers, mlp) in FULL.items():
        write_key_list(out, f"rar_{size}.bin", lambda: RAR(rar_config(hidden, layers, 16, mlp, 1024)))

    # -- MaskGIT-VQGAN ----------------------------------------------------------------------------
    vq = seed_weights_(pixel_vq(PIXEL, CODEBOOK, PIXEL["z_channels"]), seed=1).eval()
    save_released(out / "maskgit-vqgan-imagenet-f16-256.bin", vq.state_dict())
    images = torch.randint(0, 256, (2, 64, 64, 3), generator=torch.Generator().manual_seed(2), dtype=torch.uint8)
    codes = PretrainedTokenizer.encode(vq, unit_images(images))
    decode_codes = torch.randint(0, CODEBOOK, (8, 16, 16), generator=torch.Generator().manual_seed(3))
    decoded = PretrainedTokenizer.decode(vq, decode_codes)  # clamped to [0, 1]
    decoded_u8 = uint8_images(decoded)
    write_fixture(
        out,
        "tokenizer",
        {
            "images": images,
            "codes": codes.reshape(2, -1),
            "decode_codes": decode_codes.reshape(8, -1),
            "decoded_float_first2": decoded[:2],
            "decoded_uint8": decoded_u8,
        },
        **common,
        notes={"pixel_config": PIXEL, "codebook_size": CODEBOOK},
    )

    # -- RAR ----------------------------------------------------------------------------------------
    rar = RAR(
        rar_config(
            RAR_SIZES["hidden_size"],
            RAR_SIZES["num_hidden_layers"],
            RAR_SIZES["num_attention_heads"],
            RAR_SIZES["intermediate_size"],
            CODEBOOK,
        )
    )
    seed_weights_(rar, seed=4)
    torch.nn.init.normal_(rar.lm_head.weight, std=HEAD_STD, generator=torch.Generator().manual_seed(5))
    rar.eval()
    save_released(out / "rar_ar.bin", rar.state_dict())

    tensors = ar_logits(rar, CODEBOOK, 256, 6, LOGIT_STRIDE, is_sampling=True)  # of [B, 256, V]
    write_fixture(out, "rar_logits", tensors, **common, notes={"rar_sizes": RAR_SIZES, "head_std": HEAD_STD})

    for preset, (g, power, temp) in PRESETS.items():
        write_sample_preset(
            out, f"sample_{preset}", rar, CODEBOOK, (g, power, temp), SEED, common, key="cfg_scales_over_temperature"
        )
    print(f"wrote {out}")


if __name__ == "__main__":
    main()

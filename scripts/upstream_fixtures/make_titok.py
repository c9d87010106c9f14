"""TiTok fixtures from bytedance/1d-tokenizer: TiTok-S-128's layout (legacy proxy-code decoder through
the MaskGIT pixel decoder), encode and decode.

Official modules: ``modeling/titok.py`` (``TiTok`` from an OmegaConf config as
``configs/infer/TiTok/titok_s128.yaml``) and ``modeling/modules/blocks.py`` (``TiTokEncoder`` /
``TiTokDecoder``, widths looked up from the model size, set smaller through ``common.sized``).
``TiTok.__init__`` hard-codes the full-size MaskGIT pixel decoder and quantizer; while it runs,
those two names in ``modeling.titok`` build the official classes from a small config instead.
Released layout: ``tokenizer_titok_s128.bin``, a plain state dict.

Run: ``python -m scripts.upstream_fixtures.make_titok --upstream /path/to/checkouts``
"""

from __future__ import annotations

import torch

from scripts.upstream_fixtures.common import (
    open_checkout,
    save_released,
    seed_weights_,
    sized,
    uint8_images,
    unit_images,
    write_fixture,
    write_key_list,
)

VIT = {"width": 32, "num_layers": 1, "num_heads": 2}
# 32 px, patch 4 -> an 8 x 8 proxy-code grid; the pixel decoder upsamples it 4x (three levels)
PIXEL = {
    "channel_mult": [1, 1, 1],
    "num_resolutions": 3,
    "dropout": 0.0,
    "hidden_channels": 32,
    "num_channels": 3,
    "num_res_blocks": 1,
    "resolution": 32,
    "z_channels": 32,
}
CODEBOOK = 256  # official 4096 x 12


def titok_config(crop, patch, size, codebook):
    from omegaconf import OmegaConf

    return OmegaConf.create(
        {
            "model": {
                "vq_model": {
                    "codebook_size": codebook,
                    "token_size": 12,
                    "use_l2_norm": True,
                    "commitment_cost": 0.25,
                    "vit_enc_model_size": size,
                    "vit_dec_model_size": size,
                    "vit_enc_patch_size": patch,
                    "vit_dec_patch_size": patch,
                    "num_latent_tokens": 128,
                    "finetune_decoder": True,
                }
            },
            "dataset": {"preprocessing": {"crop_size": crop}},
        }
    )


def build(pixel: dict | None, crop: int, patch: int, codebook: int):
    """``TiTok`` as the config builds it; ``pixel``: the small pixel decoder config (None: the official one)."""
    from modeling import titok
    from modeling.modules.blocks import TiTokDecoder, TiTokEncoder
    from omegaconf import OmegaConf

    if pixel is None:
        return titok.TiTok(titok_config(crop, patch, "small", codebook))
    real_decoder, real_quantizer = titok.Pixel_Decoder, titok.Pixel_Quantizer
    titok.Pixel_Decoder = lambda conf: real_decoder(OmegaConf.create(pixel))
    titok.Pixel_Quantizer = lambda **kw: real_quantizer(**{**kw, "embedding_dim": pixel["z_channels"]})
    try:
        with sized(TiTokEncoder, **VIT), sized(TiTokDecoder, **VIT):
            return titok.TiTok(titok_config(crop, patch, "small", codebook))
    finally:
        titok.Pixel_Decoder, titok.Pixel_Quantizer = real_decoder, real_quantizer


@torch.no_grad()
def main():
    args, common = open_checkout("titok", "1d-tokenizer", "bytedance/1d-tokenizer", shim=True)
    out = args.out

    write_key_list(out, "tokenizer_titok_s128.bin", lambda: build(None, 256, 16, 4096))

    model = seed_weights_(build(PIXEL, 32, 4, CODEBOOK), seed=1).eval()
    save_released(out / "tokenizer_titok_s128.bin", model.state_dict())
    images = torch.randint(0, 256, (2, 32, 32, 3), generator=torch.Generator().manual_seed(2), dtype=torch.uint8)
    _, result = model.encode(unit_images(images))
    codes = result["min_encoding_indices"].reshape(2, -1)
    decode_codes = torch.randint(0, CODEBOOK, (8, 128), generator=torch.Generator().manual_seed(3))
    decoded = torch.clamp(model.decode_tokens(decode_codes), 0.0, 1.0)  # demo_util.sample_fn clamps
    decoded_u8 = uint8_images(decoded)
    write_fixture(
        out,
        "tokenizer",
        {
            "images": images,
            "codes": codes,
            "decode_codes": decode_codes,
            "decoded_float": decoded,
            "decoded_uint8": decoded_u8,
        },
        **common,
        notes={"vit_sizes": VIT, "pixel_config": PIXEL, "codebook_size": CODEBOOK, "image_size": 32, "patch_size": 4},
    )
    print(f"wrote {out}")


if __name__ == "__main__":
    main()

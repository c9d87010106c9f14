"""AliTok fixtures from ali-vilab/alitok: tokenizer encode/decode, AR logits, CFG schedule, tokens.

Official modules: ``modeling/alitok.py`` (``VAutoencoder``, sizes hard-coded in ``__init__``, built
smaller through ``common.sized``) and ``modeling/ar.py`` (``ARModel`` from an OmegaConf config as
``configs/alitok_{b,l,xl}.yaml``). Weights are written as the release ships them: ``AliTok.pth`` and
``alitok_b.bin`` are plain ``torch.save``d state dicts (``sample_imagenet.py`` loads them strictly).

Run: ``python -m scripts.upstream_fixtures.make_alitok --upstream /path/to/checkouts``
"""

from __future__ import annotations

import torch

from scripts.upstream_fixtures.common import (
    ar_logits,
    open_checkout,
    save_released,
    seed_weights_,
    sized,
    uint8_images,
    write_fixture,
    write_key_list,
    write_sample_preset,
)

TOKENIZER_SIZES = {"width": 32, "num_layers": 1, "num_heads": 2}  # Encoder and Decoder
CODEBOOK = 256  # the official 4096 would make the logit fixtures 16x larger
AR_SIZES = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2}
LOGIT_STRIDE = 4  # logits of every 4th position (and the last) are stored
HEAD_STD = 0.5  # upstream zero-initialises the head; a wide head makes tokens depend on context and guidance
PRESETS = {"b": (16.0, 1.8, 1.0, 42), "xl": (13.0, 1.4, 1.0, 2)}  # configs/alitok_{b,xl}.yaml: cfg, pow, temp, seed
FULL = {"b": (768, 24, 16), "l": (1024, 24, 16), "xl": (1280, 32, 16)}


def ar_config(hidden, layers, heads, codebook):
    from omegaconf import OmegaConf

    return OmegaConf.create(
        {
            "model": {
                "vq_model": {"codebook_size": codebook, "token_size": 32, "num_latent_tokens": 273},
                "generator": {
                    "hidden_size": hidden,
                    "num_hidden_layers": layers,
                    "num_attention_heads": heads,
                    "dropout": 0.1,
                    "attn_drop": 0.1,
                    "tok_dropout": 0.1,
                    "class_label_dropout": 0.1,
                    "image_seq_len": 273,
                    "condition_num_classes": 1000,
                    "use_checkpoint": False,
                },
            }
        }
    )


def small_tokenizer():
    from modeling import alitok

    with (
        sized(alitok.Encoder, **TOKENIZER_SIZES),
        sized(alitok.Decoder, **TOKENIZER_SIZES),
        sized(alitok.VAutoencoder, codebook_size=CODEBOOK),
    ):
        return alitok.AliTok()


@torch.no_grad()
def main():
    args, common = open_checkout("alitok", "alitok", "ali-vilab/alitok")
    from modeling import alitok
    from modeling.ar import ARModel

    out = args.out

    # -- full-size key lists and parameter counts (meta device) --------------------------------
    write_key_list(out, "AliTok.pth", alitok.AliTok)
    for size, (hidden, layers, heads) in FULL.items():
        write_key_list(out, f"alitok_{size}.bin", lambda: ARModel(ar_config(hidden, layers, heads, 4096)))

    # -- tokenizer ------------------------------------------------------------------------------
    tok = seed_weights_(small_tokenizer(), seed=1).eval()
    save_released(out / "AliTok.pth", tok.state_dict())
    images = torch.randint(0, 256, (1, 3, 256, 256), generator=torch.Generator().manual_seed(2), dtype=torch.uint8)
    x = images.float() / 255.0  # pretokenization.py: transforms.ToTensor()
    _, result = tok.encode(x, tok.latent_tokens)
    codes = result["min_encoding_indices"].view(1, -1)
    recon = tok.decode_tokens(codes)
    recon_u8 = uint8_images(recon)
    write_fixture(
        out,
        "tokenizer",
        {
            "images": images.permute(0, 2, 3, 1).contiguous(),
            "codes": codes,
            "decoded_float_crop": recon[..., :64, :64],
            "decoded_uint8": recon_u8,
        },
        **common,
        notes={
            "tokenizer_sizes": TOKENIZER_SIZES,
            "codebook_size": CODEBOOK,
            "images": "uint8 NHWC; the official encoder sees images / 255 (NCHW)",
            "decoded_float_crop": "the top-left 64 x 64 pixels of the float output (size)",
        },
    )

    # -- AR model -------------------------------------------------------------------------------
    ar = ARModel(
        ar_config(AR_SIZES["hidden_size"], AR_SIZES["num_hidden_layers"], AR_SIZES["num_attention_heads"], CODEBOOK)
    )
    seed_weights_(ar, seed=3)
    torch.nn.init.normal_(ar.output.weight, std=HEAD_STD, generator=torch.Generator().manual_seed(4))
    ar.eval()
    save_released(out / "alitok_ar.bin", ar.state_dict())

    # logits of every LOGIT_STRIDE-th position of [B, 273, V]: class + 272 codes
    tensors = ar_logits(ar, CODEBOOK, 273, 5, LOGIT_STRIDE)
    write_fixture(out, "ar_logits", tensors, **common, notes={"ar_sizes": AR_SIZES, "head_std": HEAD_STD})

    # CFG schedule and tokens per preset (temperature 1.0 in both: the schedule tensor is the scale)
    for preset, (g, power, temp, seed) in PRESETS.items():
        write_sample_preset(out, f"sample_{preset}", ar, CODEBOOK, (g, power, temp), seed, common, key="cfg_scales")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()

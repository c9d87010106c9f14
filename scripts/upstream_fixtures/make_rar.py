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
    import_upstream,
    install_torchvision_shim,
    parse_args,
    save_released,
    seed_weights_,
    write_fixture,
    write_key_list,
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
    args = parse_args("rar", "1d-tokenizer")
    install_torchvision_shim()
    commit = import_upstream(args.checkout)
    import torch.nn.functional as F
    from modeling.rar import RAR
    from modeling.titok import PretrainedTokenizer

    out, script = args.out, "scripts/upstream_fixtures/make_rar.py"
    common = {"upstream": "bytedance/1d-tokenizer", "commit": commit, "script": script}

    write_key_list(out, "maskgit-vqgan-imagenet-f16-256.bin", lambda: pixel_vq(FULL_PIXEL, 1024, 256))
    for size, (hidden, layers, mlp) in FULL.items():
        write_key_list(out, f"rar_{size}.bin", lambda: RAR(rar_config(hidden, layers, 16, mlp, 1024)))

    # -- MaskGIT-VQGAN ----------------------------------------------------------------------------
    vq = seed_weights_(pixel_vq(PIXEL, CODEBOOK, PIXEL["z_channels"]), seed=1).eval()
    save_released(out / "maskgit-vqgan-imagenet-f16-256.bin", vq.state_dict())
    images = torch.randint(0, 256, (2, 64, 64, 3), generator=torch.Generator().manual_seed(2), dtype=torch.uint8)
    x = images.permute(0, 3, 1, 2).float() / 255.0  # ToTensor: [0, 1]
    codes = PretrainedTokenizer.encode(vq, x)
    decode_codes = torch.randint(0, CODEBOOK, (8, 16, 16), generator=torch.Generator().manual_seed(3))
    decoded = PretrainedTokenizer.decode(vq, decode_codes)  # clamped to [0, 1]
    # demo_util.sample_fn: clamp(0, 1) * 255, NHWC, .to(uint8) (truncation)
    decoded_u8 = (torch.clamp(decoded, 0.0, 1.0) * 255.0).permute(0, 2, 3, 1).to("cpu", dtype=torch.uint8)
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

    labels = torch.tensor([207])
    cond = rar.preprocess_condition(labels.clone(), cond_drop_prob=0.0)
    null = rar.get_none_condition(cond)
    ids = torch.randint(0, CODEBOOK, (1, 255), generator=torch.Generator().manual_seed(6))
    positions = torch.tensor(sorted({*range(0, 256, LOGIT_STRIDE), 255}))  # kept to keep the file small
    tensors = {"labels": labels, "codes_in": ids, "positions": positions}
    for name, c in (("cond", cond), ("null", null)):
        tensors[f"logits_full_{name}"] = rar.forward_fn(ids, c, is_sampling=True)[:, positions]  # of [B, 256, V]
        rar.enable_kv_cache()  # generate's cached path
        tensors[f"logits_cached_{name}"] = torch.stack(
            [rar.forward_fn(ids[:, :n], c, is_sampling=True)[:, -1] for n in range(256)], 1
        )[:, positions]
        rar.disable_kv_cache()
    write_fixture(out, "rar_logits", tensors, **common, notes={"rar_sizes": RAR_SIZES, "head_std": HEAD_STD})

    for preset, (g, power, temp) in PRESETS.items():
        # the schedule as generate computes it (stub forward: one-hot cond rows, zero uncond rows)
        seen, real_softmax = [], F.softmax

        def stub_forward(input_ids, condition, **kw):
            z = torch.zeros(condition.shape[0], input_ids.shape[1] + 1, CODEBOOK)
            z[: condition.shape[0] // 2, :, 0] = 1.0
            return z

        def spy_softmax(logits, dim=None, **kw):
            seen.append(logits[0, 0].clone())  # scale / temperature
            return real_softmax(logits, dim=dim, **kw)

        rar.forward_fn, F.softmax = stub_forward, spy_softmax
        try:
            rar.generate(torch.tensor([1]), guidance_scale=g, randomize_temperature=temp, guidance_scale_pow=power)
        finally:
            F.softmax = real_softmax
            del rar.forward_fn

        torch.manual_seed(SEED)
        batches = [torch.tensor([207, 1, 999]), torch.tensor([3, 500])]
        tokens = [
            rar.generate(y, guidance_scale=g, randomize_temperature=temp, guidance_scale_pow=power) for y in batches
        ]
        write_fixture(
            out,
            f"sample_{preset}",
            {
                "cfg_scales_over_temperature": torch.stack(seen),
                "labels_0": batches[0],
                "labels_1": batches[1],
                "tokens_0": tokens[0],
                "tokens_1": tokens[1],
            },
            **common,
            notes={
                "guidance_scale": g,
                "guidance_scale_pow": power,
                "randomize_temperature": temp,
                "seed": SEED,
                "rng": "torch.manual_seed(seed), global CPU stream, two batches",
            },
        )
    print(f"wrote {out}")


if __name__ == "__main__":
    main()

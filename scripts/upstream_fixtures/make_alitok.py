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
    import_upstream,
    parse_args,
    save_released,
    seed_weights_,
    sized,
    write_fixture,
    write_key_list,
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
    args = parse_args("alitok", "alitok")
    commit = import_upstream(args.checkout)
    from modeling import alitok
    from modeling.ar import ARModel

    out, script = args.out, "scripts/upstream_fixtures/make_alitok.py"
    common = {"upstream": "ali-vilab/alitok", "commit": commit, "script": script}

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
    # demo_util.sample_fn: clamp(0, 1) * 255, permute to NHWC, .to(uint8) (truncation)
    recon_u8 = (torch.clamp(recon, 0.0, 1.0) * 255.0).permute(0, 2, 3, 1).to("cpu", dtype=torch.uint8)
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

    labels = torch.tensor([207])
    cond = ar.preprocess_condition(labels.clone(), cond_drop_prob=0.0)
    null = ar.get_none_condition(cond)
    ids = torch.randint(0, CODEBOOK, (1, 272), generator=torch.Generator().manual_seed(5))
    positions = torch.tensor(sorted({*range(0, 273, LOGIT_STRIDE), 272}))  # kept to keep the file small
    tensors = {"labels": labels, "codes_in": ids, "positions": positions}
    for name, c in (("cond", cond), ("null", null)):
        tensors[f"logits_full_{name}"] = ar.forward_fn(ids, c)[:, positions]  # of [B, 273, V]: class + 272 codes
        ar.enable_kv_cache()  # generate's cached path: the whole prefix at step 0, then one token a step
        tensors[f"logits_cached_{name}"] = torch.stack(
            [ar.forward_fn(ids[:, :n], c, is_sampling=True)[:, -1] for n in range(273)], 1
        )[:, positions]
        ar.disable_kv_cache()
    write_fixture(out, "ar_logits", tensors, **common, notes={"ar_sizes": AR_SIZES, "head_std": HEAD_STD})

    # -- CFG schedule as generate computes it: a stub forward whose cond rows are one-hot and
    # uncond rows zero makes the combined logit of code 0 equal the step's scale; F.softmax sees it
    import torch.nn.functional as F

    for preset, (g, power, temp, seed) in PRESETS.items():
        seen = []
        real_softmax = F.softmax

        def stub_forward(input_ids, condition, **kw):
            z = torch.zeros(condition.shape[0], input_ids.shape[1] + 1, CODEBOOK)
            z[: condition.shape[0] // 2, :, 0] = 1.0
            return z

        def spy_softmax(logits, dim=None, **kw):
            seen.append(logits[0, 0].clone())  # scale / temperature (1.0 in both presets)
            return real_softmax(logits, dim=dim, **kw)

        ar.forward_fn, F.softmax = stub_forward, spy_softmax
        try:
            ar.generate(torch.tensor([1]), guidance_scale=g, randomize_temperature=temp, guidance_scale_pow=power)
        finally:
            F.softmax = real_softmax
            del ar.forward_fn  # back to the class's method

        # -- tokens: sample_imagenet.py seeds torch.manual_seed(seed + rank) once, then calls generate
        # batch after batch on that one stream (rank 0 here)
        torch.manual_seed(seed)
        batches = [torch.tensor([207, 1, 999]), torch.tensor([3, 500])]
        tokens = [
            ar.generate(y, guidance_scale=g, randomize_temperature=temp, guidance_scale_pow=power) for y in batches
        ]
        write_fixture(
            out,
            f"sample_{preset}",
            {
                "cfg_scales": torch.stack(seen),
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
                "seed": seed,
                "rng": "torch.manual_seed(seed), global CPU stream, two batches",
            },
        )
    print(f"wrote {out}")


if __name__ == "__main__":
    main()

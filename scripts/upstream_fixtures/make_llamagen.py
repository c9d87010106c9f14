"""LlamaGen fixtures from FoundationVision/LlamaGen: VQ encode/decode, GPT logits, tokens.

Official modules: ``tokenizer/tokenizer_image/vq_model.py`` (``VQModel``; its ``Encoder`` /
``Decoder`` take ``ch``, which ``VQModel`` leaves at 128, so they are rebuilt at ``ch=32`` with the
official constructors) and ``autoregressive/models/gpt.py`` + ``generate.py`` (``Transformer``,
``generate``). Released layouts: ``vq_ds16_c2i.pt`` and ``c2i_*.pt`` hold ``{"model": state_dict}``;
a training checkpoint (``autoregressive/train/train_c2i.py``) adds ``optimizer``, ``steps`` and
``args`` (an ``argparse.Namespace``).

Run: ``python -m scripts.upstream_fixtures.make_llamagen --upstream /path/to/checkouts``
"""

from __future__ import annotations

import argparse

import torch

from scripts.upstream_fixtures.common import (
    import_upstream,
    parse_args,
    save_released,
    seed_weights_,
    write_fixture,
    write_key_list,
)

VQ = {
    "ch": 32,
    "ch_mult": [1, 1],
    "num_res_blocks": 1,
    "z_channels": 32,
    "codebook_size": 256,
}  # 32 px -> 16 x 16 codes
GPT = {"dim": 32, "n_layer": 2, "n_head": 2}
LOGIT_STRIDE = 4  # logits of every 4th position (and the last) are stored
HEAD_STD = 0.5  # upstream zero-initialises the head; a wide head makes tokens depend on context and guidance
# sample_c2i.py arguments: (cfg_scale, cfg_interval, temperature, top_k, top_p, seed)
SAMPLINGS = {
    "preset_b": (2.0, -1, 1.0, 0, 1.0, 0),
    "filtered": (1.75, 100, 0.9, 100, 0.95, 7),
    "top_k": (2.0, -1, 1.0, 20, 1.0, 3),
}  # top-k alone, binding (the nucleus above is smaller than 100)
FULL_GPT = {"B": "GPT-B", "L": "GPT-L", "XL": "GPT-XL", "XXL": "GPT-XXL", "3B": "GPT-3B"}


def small_vq():
    from tokenizer.tokenizer_image.vq_model import Decoder, Encoder, ModelArgs, VQModel

    args = ModelArgs(
        codebook_size=VQ["codebook_size"],
        encoder_ch_mult=VQ["ch_mult"],
        decoder_ch_mult=VQ["ch_mult"],
        z_channels=VQ["z_channels"],
    )
    vq = VQModel(args)
    sizes = {k: VQ[k] for k in ("ch", "ch_mult", "num_res_blocks", "z_channels")}
    vq.encoder, vq.decoder = Encoder(**sizes), Decoder(**sizes)
    return vq


@torch.no_grad()
def main():
    args = parse_args("llamagen", "LlamaGen")
    commit = import_upstream(args.checkout)
    from autoregressive.models.generate import generate
    from autoregressive.models.gpt import GPT_models, ModelArgs, Transformer
    from tokenizer.tokenizer_image.vq_model import VQ_models

    out, script = args.out, "scripts/upstream_fixtures/make_llamagen.py"
    common = {"upstream": "FoundationVision/LlamaGen", "commit": commit, "script": script}

    # -- full-size key lists and parameter counts (meta device) --------------------------------
    write_key_list(out, "vq_ds16_c2i.pt", lambda: VQ_models["VQ-16"]())
    real_linspace = torch.linspace  # Transformer.__init__ reads drop-path rates with .item(): not on meta
    torch.linspace = lambda *a, **k: real_linspace(*a, **{**k, "device": "cpu"})
    try:
        for size, name in FULL_GPT.items():
            for image_size in (256, 384):
                write_key_list(
                    out,
                    f"c2i_{size}_{image_size}.pt",
                    lambda: GPT_models[name](
                        vocab_size=16384,
                        block_size=(image_size // 16) ** 2,
                        num_classes=1000,
                        cls_token_num=1,
                        model_type="c2i",
                    ),
                )
    finally:
        torch.linspace = real_linspace

    # -- VQ tokenizer ---------------------------------------------------------------------------
    vq = seed_weights_(small_vq(), seed=1).eval()
    codes = torch.randint(0, VQ["codebook_size"], (16, 256), generator=torch.Generator().manual_seed(2))
    qzshape = [16, 8, 16, 16]
    # give the decoder's last conv a scale that spreads pixels over [-1, 1] (random small weights
    # leave them near 0), so the uint8 comparison sees many rounding boundaries
    spread = 0.6 / vq.decode_code(codes, qzshape).std().item()
    vq.decoder.conv_out.weight.mul_(spread)
    vq.decoder.conv_out.bias.mul_(spread)
    save_released(out / "vq_ds16_c2i.pt", {"model": vq.state_dict()})
    decoded = vq.decode_code(codes, qzshape)  # [-1, 1]
    # sample_c2i_ddp.py: torch.clamp(127.5 * samples + 128.0, 0, 255) ... .to(uint8)
    decoded_u8 = torch.clamp(127.5 * decoded + 128.0, 0, 255).permute(0, 2, 3, 1).to("cpu", dtype=torch.uint8)
    images = torch.randint(0, 256, (2, 32, 32, 3), generator=torch.Generator().manual_seed(3), dtype=torch.uint8)
    # reconstruction_vq_ddp.py: ToTensor, then Normalize(mean 0.5, std 0.5)
    x = (images.permute(0, 3, 1, 2).float() / 255.0 - 0.5) / 0.5
    _, _, (_, _, enc_codes) = vq.encode(x)
    write_fixture(
        out,
        "tokenizer",
        {
            "codes": codes,
            "decoded_float": decoded,
            "decoded_uint8": decoded_u8,
            "images": images,
            "encoded_codes": enc_codes.view(2, -1),
        },
        **common,
        notes={"vq_sizes": VQ, "decoder_conv_out_spread": spread},
    )

    # -- GPT ------------------------------------------------------------------------------------
    gpt = Transformer(
        ModelArgs(
            **GPT, vocab_size=VQ["codebook_size"], block_size=256, num_classes=1000, cls_token_num=1, model_type="c2i"
        )
    )
    seed_weights_(gpt, seed=4)
    torch.nn.init.normal_(gpt.output.weight, std=HEAD_STD, generator=torch.Generator().manual_seed(5))
    gpt.eval()
    sd = gpt.state_dict()
    save_released(out / "c2i_gpt.pt", {"model": sd})
    # a training checkpoint (train_c2i.py) whose state dict carries a key the model does not have
    # (the sampling scripts load non-strictly and ignore it)
    train_sd = {**sd, "freqs_cis": gpt.freqs_cis.clone()}
    save_released(
        out / "c2i_gpt_train.pt",
        {
            "model": train_sd,
            "optimizer": {"state": {}, "param_groups": []},
            "steps": 1000,
            "args": argparse.Namespace(gpt_model="GPT-B", lr=1e-4),
        },
    )

    labels = torch.tensor([207])
    codes_in = torch.randint(0, VQ["codebook_size"], (1, 255), generator=torch.Generator().manual_seed(6))
    positions = torch.tensor(sorted({*range(0, 256, LOGIT_STRIDE), 255}))  # kept to keep the file small
    tensors = {"labels": labels, "codes_in": codes_in, "positions": positions}
    for name, c in (("cond", labels), ("null", torch.full_like(labels, 1000))):
        # full causal forward ("naive inference": idx and cond_idx, no cache, is_causal)
        for layer in gpt.layers:
            layer.attention.kv_cache = None
        tensors[f"logits_full_{name}"] = gpt(codes_in, c, input_pos=torch.arange(256))[0][:, positions]
        # generate's cached path: prefill the class token, then one token per call
        gpt.setup_caches(max_batch_size=1, max_seq_length=256, dtype=torch.float32)
        steps = [gpt(None, c, input_pos=torch.arange(1))[0][:, -1]]
        for pos in range(1, 256):
            steps.append(gpt(codes_in[:, pos - 1 : pos], None, input_pos=torch.tensor([pos]))[0][:, -1])
        tensors[f"logits_cached_{name}"] = torch.stack(steps, 1)[:, positions]
    write_fixture(out, "gpt_logits", tensors, **common, notes={"gpt_sizes": GPT, "head_std": HEAD_STD})

    # -- tokens: sample_c2i.py seeds torch.manual_seed(seed) once and calls generate; two batches on one stream
    for name, (cfg, interval, temp, top_k, top_p, seed) in SAMPLINGS.items():
        torch.manual_seed(seed)
        batches = [torch.tensor([207, 360, 387]), torch.tensor([974, 88])]
        tokens = [
            generate(
                gpt,
                y,
                256,
                cfg_scale=cfg,
                cfg_interval=interval,
                temperature=temp,
                top_k=top_k,
                top_p=top_p,
                sample_logits=True,
            )
            for y in batches
        ]
        write_fixture(
            out,
            f"sample_{name}",
            {"labels_0": batches[0], "labels_1": batches[1], "tokens_0": tokens[0], "tokens_1": tokens[1]},
            **common,
            notes={
                "cfg_scale": cfg,
                "cfg_interval": interval,
                "temperature": temp,
                "top_k": top_k,
                "top_p": top_p,
                "seed": seed,
                "rng": "torch.manual_seed(seed), global CPU stream",
            },
        )
    print(f"wrote {out}")


if __name__ == "__main__":
    main()

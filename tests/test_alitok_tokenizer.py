"""AliTok tokenizer: official shapes and counts (meta device), masks, aux head layout, VQ, loading."""

from __future__ import annotations

import dataclasses
import math
import os
import time

import pytest
import torch
from micro_configs import MICRO_TOKENIZER

from alitok.tokenizer import (
    OFFICIAL,
    AliTokTokenizer,
    TokenizerConfig,
    ToPixels,
    aux_target,
    build,
    encoder_time_mask,
    export_metadata,
    load_model,
    tiny_checkpoint_path,
)
from harness.nn.checkpoints.checkpoint import CheckpointError, save_safetensors
from harness.nn.layers.vq import VectorQuantizer

# A micro config: same code paths as the official model, sizes for milliseconds.
MICRO = TokenizerConfig(**{**MICRO_TOKENIZER, "encoder_layers": 2})


def nparams(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


# ----------------------------------------------------------------------------------------------
# Official configuration (ali-vilab/alitok modeling/alitok.py and its AliTok.pth key list)
# ----------------------------------------------------------------------------------------------
def official_keys(stage: str) -> dict[str, tuple[int, ...]]:
    """The AliTok.pth key list (the official module's state-dict names, written out)."""
    keys: dict[str, tuple[int, ...]] = {"latent_tokens": (273, 768)}

    def block(prefix: str, w: int) -> None:
        keys.update(
            {
                f"{prefix}.ln_1.weight": (w,),
                f"{prefix}.ln_1.bias": (w,),
                f"{prefix}.attn.in_proj.weight": (3 * w, w),
                f"{prefix}.attn.in_proj.bias": (3 * w,),
                f"{prefix}.attn.out_proj.weight": (w, w),
                f"{prefix}.attn.out_proj.bias": (w,),
                f"{prefix}.ln_2.weight": (w,),
                f"{prefix}.ln_2.bias": (w,),
                f"{prefix}.mlp.c_fc.weight": (4 * w, w),
                f"{prefix}.mlp.c_fc.bias": (4 * w,),
                f"{prefix}.mlp.c_proj.weight": (w, 4 * w),
                f"{prefix}.mlp.c_proj.bias": (w,),
            }
        )

    keys.update(
        {
            "encoder.patch_embed.weight": (768, 3, 16, 16),
            "encoder.patch_embed.bias": (768,),
            "encoder.positional_embedding": (256, 768),
            "encoder.latent_token_positional_embedding": (273, 768),
            "encoder.ln_pre.weight": (768,),
            "encoder.ln_pre.bias": (768,),
            "encoder.ln_post.weight": (768,),
            "encoder.ln_post.bias": (768,),
            "encoder.conv_out.weight": (32, 768, 1, 1),
            "encoder.conv_out.bias": (32,),
            "quantize.embedding.weight": (4096, 32),
            "decoder.decoder_embed.weight": (1024, 32),
            "decoder.decoder_embed.bias": (1024,),
            "decoder.ln_pre.weight": (1024,),
            "decoder.ln_pre.bias": (1024,),
            "decoder.ln_post.weight": (1024,),
            "decoder.ln_post.bias": (1024,),
            "decoder.ffn.0.weight": (768, 1024, 1, 1),
            "decoder.ffn.0.bias": (768,),
            "decoder.conv_out.weight": (3, 3, 1, 1),
            "decoder.conv_out.bias": (3,),
        }
    )
    for i in range(12):
        block(f"encoder.transformer.{i}", 768)
    for i in range(24):
        block(f"decoder.transformer.{i}", 1024)
    if stage == "stage2":
        keys.update({"decoder.class_embedding": (32, 1024), "decoder.latent_token_positional_embedding": (305, 1024)})
    else:
        keys.update(
            {
                "decoder.class_embedding": (1, 1024),
                "decoder.latent_token_positional_embedding": (274, 1024),
                "decoder.ffn_aux.0.weight": (768, 1024, 1, 1),
                "decoder.ffn_aux.0.bias": (768,),
                "decoder.conv_out_aux.weight": (3, 3, 1, 1),
                "decoder.conv_out_aux.bias": (3,),
                "quantize.embed_prob": (4096,),
            }
        )
    return keys


@pytest.mark.parametrize("stage", ["stage2", "stage1"])
def test_official_state_dict_matches_the_published_key_list(stage):
    model = build(OFFICIAL, stage, device="meta")
    got = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    expected = official_keys(stage)
    assert sorted(set(got) ^ set(expected)) == []
    assert {k: got[k] for k in expected} == expected


def test_official_parameter_counts():
    inference = build(OFFICIAL, "stage2", device="meta")
    stage1 = build(OFFICIAL, "stage1", device="meta")
    assert nparams(inference.encoder) == 86_079_008
    assert inference.latent_tokens.numel() == 209_664
    assert nparams(inference.quantize) == 131_072
    assert nparams(inference.decoder) == 303_479_564
    assert nparams(stage1.decoder) == 304_203_288
    total = nparams(inference)
    assert total == 86_079_008 + 209_664 + 131_072 + 303_479_564
    assert round(total / 1e6, 2) == 389.90
    assert OFFICIAL.num_tokens == 273 and OFFICIAL.prefix_tokens == 17


def test_official_yaml_equals_the_dataclass_defaults():
    from pathlib import Path

    from alitok.tokenizer import config_from_dict
    from harness.core.config import load_yaml

    path = Path(__file__).resolve().parents[1] / "alitok/configs/tokenizer_official.yaml"
    assert config_from_dict(load_yaml(path)) == OFFICIAL


@pytest.mark.slow
def test_full_config_decode_of_random_codes_on_cpu():
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    model = build(OFFICIAL, "stage2", generator=torch.Generator().manual_seed(0))
    tok = AliTokTokenizer(model)
    codes = torch.randint(0, 4096, (1, 273), generator=torch.Generator().manual_seed(1))
    t0 = time.perf_counter()
    images = tok.decode(codes)
    print(f"official decode, batch 1, CPU: {time.perf_counter() - t0:.2f} s")
    assert images.shape == (1, 256, 256, 3) and images.dtype == torch.uint8


# ----------------------------------------------------------------------------------------------
# Decoder and encoder masks
# ----------------------------------------------------------------------------------------------
def _decode_patches(model, zq):
    image, aux = model.decoder(zq, with_aux=True)
    g, p = model.cfg.grid, model.cfg.patch_size
    patches = image.unfold(2, p, p).unfold(3, p, p)  # [B,3,G,G,p,p]
    return patches.permute(0, 2, 3, 1, 4, 5).reshape(image.shape[0], g * g, -1), aux


@pytest.mark.parametrize("attention", ["causal", "bidirectional"])
def test_causal_decoder_hides_later_latents(attention):
    cfg = dataclasses.replace(MICRO, decoder_attention=attention)
    model = build(cfg, "stage1", generator=torch.Generator().manual_seed(0)).eval()
    k, g2 = cfg.prefix_tokens, cfg.grid**2
    zq = torch.randn(1, cfg.num_tokens, cfg.token_dim, generator=torch.Generator().manual_seed(1))
    q = 9
    bumped = zq.clone()
    bumped[:, k + q] += 3.0
    with torch.no_grad():
        base, _ = _decode_patches(model, zq)
        moved, _ = _decode_patches(model, bumped)
    changed = [bool((base[0, p] != moved[0, p]).any()) for p in range(g2)]
    assert changed[q]
    if attention == "causal":
        assert not any(changed[:q])  # bit-identical: patch p never sees latent q > p
    else:
        assert all(changed[:q])


def test_stage2_decoder_is_bidirectional():
    model = build(MICRO, "stage2", generator=torch.Generator().manual_seed(0)).eval()
    zq = torch.randn(1, MICRO.num_tokens, MICRO.token_dim, generator=torch.Generator().manual_seed(1))
    bumped = zq.clone()
    bumped[:, -1] += 3.0
    with torch.no_grad():
        base, _ = _decode_patches(model, zq)
        moved, _ = _decode_patches(model, bumped)
    assert (base[0, 0] != moved[0, 0]).any()
    assert model.decoder.class_embedding.shape == (3, MICRO.decoder_width)
    assert not hasattr(model.decoder, "ffn_aux") and not hasattr(model.quantize, "embed_prob")


def test_causal_encoder_latent_p_sees_only_patches_up_to_p():
    cfg = dataclasses.replace(MICRO, encoder_attention="causal")
    mask = encoder_time_mask(cfg)
    g2, k = cfg.grid**2, cfg.prefix_tokens
    # mask[i, j]: query i may see key j. Image latent p (row g2 + k + p) sees patches 0..p only.
    for p in range(g2):
        assert mask[g2 + k + p, :g2].nonzero().flatten().tolist() == list(range(p + 1))
    model = build(cfg, "stage1", generator=torch.Generator().manual_seed(0)).eval()
    x = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    y = x.clone()
    y[:, :, 8:16, 16:24] = 1 - y[:, :, 8:16, 16:24]  # patch (1, 2) -> raster index 6
    with torch.no_grad():
        za, zb = model.encoder(x, model.latent_tokens), model.encoder(y, model.latent_tokens)
    changed = (za != zb).any(-1)[0, k:]
    assert not changed[:6].any() and changed[6]
    bidir = build(MICRO, "stage1", generator=torch.Generator().manual_seed(0)).eval()
    with torch.no_grad():
        za, zb = bidir.encoder(x, bidir.latent_tokens), bidir.encoder(y, bidir.latent_tokens)
    assert (za != zb).any(-1)[0, k : k + 6].all()


# ----------------------------------------------------------------------------------------------
# Aux prefix head
# ----------------------------------------------------------------------------------------------
def test_aux_target_is_top_left_patch_then_first_row():
    p, g = 8, 4
    x = torch.rand(2, 3, 32, 32)
    strip = aux_target(x, p)
    assert strip.shape == (2, 3, p, (1 + g) * p)
    assert torch.equal(strip[..., :p], x[:, :, :p, :p])  # prefix 0 -> patch (0,0)
    for j in range(1, g + 1):  # prefix j -> first-row patch j-1
        assert torch.equal(strip[..., j * p : (j + 1) * p], x[:, :, :p, (j - 1) * p : j * p])


def test_aux_head_decodes_prefix_j_into_strip_block_j():
    model = build(MICRO, "stage1", generator=torch.Generator().manual_seed(0)).eval()
    p, k = MICRO.patch_size, MICRO.prefix_tokens
    zq = torch.randn(1, MICRO.num_tokens, MICRO.token_dim, generator=torch.Generator().manual_seed(1))
    bumped = zq.clone()
    bumped[:, 2] += 3.0  # prefix latent 2
    with torch.no_grad():
        _, a = model.decoder(zq, with_aux=True)
        _, b = model.decoder(bumped, with_aux=True)
    assert a.shape == (1, 3, p, k * p)
    blocks = [bool((a[..., j * p : (j + 1) * p] != b[..., j * p : (j + 1) * p]).any()) for j in range(k)]
    assert blocks == [False, False] + [True] * (k - 2)  # causal: prefix 2 reaches outputs 2.. only


def test_to_pixels_matches_the_b_p1_p2_c_layout():
    p = 4
    x = torch.randn(2, p * p * 3, 3, 5)
    out = ToPixels(p)(x)
    ref = torch.empty(2, 3, 3 * p, 5 * p)
    for h in range(3):
        for w in range(5):
            for i in range(p):
                for j in range(p):
                    for c in range(3):
                        ref[:, c, h * p + i, w * p + j] = x[:, (i * p + j) * 3 + c, h, w]
    assert torch.equal(out, ref)


def test_no_prefix_variant_has_no_aux_head():
    cfg = dataclasses.replace(MICRO, num_prefix_tokens=0)
    model = build(cfg, "stage1", device="meta")
    assert cfg.num_tokens == cfg.grid**2 and not hasattr(model.decoder, "ffn_aux")


# ----------------------------------------------------------------------------------------------
# VQ
# ----------------------------------------------------------------------------------------------
def test_vq_nearest_code_loss_and_straight_through():
    vq = VectorQuantizer(16, 4)
    torch.nn.init.normal_(vq.embedding.weight, generator=torch.Generator().manual_seed(0))
    z = torch.randn(3, 5, 4, generator=torch.Generator().manual_seed(1), requires_grad=True)
    zq, codes, losses = vq(z)
    ref_codes = torch.cdist(z.detach().reshape(-1, 4).double(), vq.embedding.weight.detach().double()).argmin(1)
    assert torch.equal(codes.flatten(), ref_codes)
    e = vq.embedding.weight[ref_codes].view(3, 5, 4)
    assert torch.allclose(zq, e, atol=1e-6)
    mse = ((e - z) ** 2).mean()
    assert torch.allclose(losses["vq_loss"], 1.25 * mse)
    g = torch.randn(3, 5, 4, generator=torch.Generator().manual_seed(2))
    (zq * g).sum().backward()
    assert torch.equal(z.grad, g)  # straight-through: d zq / d z = identity


def test_vq_clustering_reseeds_dead_codes_at_their_closest_feature():
    vq = VectorQuantizer(4, 2, clustering=True).train()
    with torch.no_grad():
        vq.embedding.weight.copy_(torch.tensor([[0.0, 0.0], [1.0, 1.0], [50.0, 50.0], [-40.0, 0.0]]))
    z = torch.tensor([[0.1, 0.0], [0.9, 1.1], [0.0, 0.2], [1.2, 1.0]], requires_grad=True)
    vq(z)
    # usage: codes 0 and 1 each take half the batch; 2 and 3 are dead.
    assert torch.allclose(vq.embed_prob, torch.tensor([0.005, 0.005, 0.0, 0.0]))
    w_dead = math.exp(-1e-3)
    assert torch.allclose(
        vq.embedding.weight[2], torch.tensor([50.0, 50.0]) * (1 - w_dead) + torch.tensor([1.2, 1.0]) * w_dead
    )
    # (-40,0) is nearest to (0.0,0.2): 40^2 + 0.04 < 40.1^2
    assert torch.allclose(
        vq.embedding.weight[3], torch.tensor([-40.0, 0.0]) * (1 - w_dead) + torch.tensor([0.0, 0.2]) * w_dead
    )
    w_used = math.exp(-(0.005 * 4 * 10) / 0.01 - 1e-3)  # ~e^-20: codes in use do not move
    assert torch.allclose(
        vq.embedding.weight[0], torch.tensor([0.0, 0.0]) * (1 - w_used) + torch.tensor([0.1, 0.0]) * w_used
    )
    before = vq.embedding.weight.detach().clone()
    vq.eval()(z)
    assert torch.equal(vq.embedding.weight, before)  # no update outside training
    assert "embed_prob" not in VectorQuantizer(4, 2).state_dict()


# ----------------------------------------------------------------------------------------------
# Plugin and checkpoints
# ----------------------------------------------------------------------------------------------
def _save_micro(tmp_path, stage="stage2"):
    model = build(MICRO, stage, generator=torch.Generator().manual_seed(0))
    path = save_safetensors(tmp_path / "micro.safetensors", model.state_dict(), export_metadata(model))
    return model, path


def test_plugin_round_trip_and_exact_reload(tmp_path):
    model, path = _save_micro(tmp_path)
    tok = AliTokTokenizer.from_checkpoint(path)
    images = torch.randint(0, 256, (3, 32, 32, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    codes = tok.encode(images)
    assert codes.shape == (3, MICRO.num_tokens) and codes.dtype == torch.int64
    assert int(codes.min()) >= 0 and int(codes.max()) < MICRO.codebook_size
    out = tok.decode(codes)
    assert out.shape == (3, 32, 32, 3) and out.dtype == torch.uint8
    with torch.no_grad():
        x = images.permute(0, 3, 1, 2).float() / 255
        ref_codes = model.eval().encode(x)[1]
        ref = (model.decode_codes(ref_codes).clamp(0, 1) * 255).to(torch.uint8).permute(0, 2, 3, 1)
    assert torch.equal(codes, ref_codes) and torch.equal(out, ref)  # AliTok truncating rule
    info = tok.info()
    assert info["quantization"] == "truncate" and info["stage"] == "stage2" and len(info["checkpoint_sha256"]) == 64
    with pytest.raises(ValueError, match="shape"):
        tok.decode(codes[:, :-1])
    with pytest.raises(ValueError, match=r"codes must lie in \[0, 64\)"):
        tok.decode(torch.full((1, MICRO.num_tokens), 64))


def test_official_style_pickle_loads_strictly(tmp_path):
    model = build(MICRO, "stage2", generator=torch.Generator().manual_seed(0))
    torch.save(model.state_dict(), tmp_path / "AliTok.pth")
    loaded, meta = load_model(tmp_path / "AliTok.pth", config=MICRO)
    assert meta == {}
    for k, v in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[k], v)


def test_wrong_architecture_is_refused_with_one_line(tmp_path):
    other = build(dataclasses.replace(MICRO, codebook_size=32), "stage2", generator=torch.Generator().manual_seed(0))
    torch.save(other.state_dict(), tmp_path / "other.pth")
    with pytest.raises(CheckpointError) as e:
        load_model(tmp_path / "other.pth", config=MICRO)
    msg = str(e.value)
    assert "\n" not in msg and "other.pth" in msg and "quantize.embedding.weight" in msg
    stage1 = build(MICRO, "stage1", generator=torch.Generator().manual_seed(0))
    torch.save(stage1.state_dict(), tmp_path / "s1.pth")
    with pytest.raises(CheckpointError, match="unexpected keys"):
        load_model(tmp_path / "s1.pth", config=MICRO, stage="stage2")


def test_truncated_and_non_state_dict_files_are_refused(tmp_path):
    _, path = _save_micro(tmp_path)
    data = path.read_bytes()
    (tmp_path / "cut.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="cut.safetensors"):
        AliTokTokenizer.from_checkpoint(tmp_path / "cut.safetensors")
    model = build(MICRO, "stage2", generator=torch.Generator().manual_seed(0))
    torch.save(model.state_dict(), tmp_path / "full.pth")
    raw = (tmp_path / "full.pth").read_bytes()
    (tmp_path / "cut.pth").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        load_model(tmp_path / "cut.pth", config=MICRO)
    torch.save(
        build(MICRO, "stage2", device="meta").to_empty(device="cpu"), tmp_path / "module.pth"
    )  # a pickled module
    with pytest.raises(CheckpointError, match="weights_only"):
        load_model(tmp_path / "module.pth", config=MICRO)
    # not a checkpoint at all: a few bytes of text (was a KeyError traceback from the unpickler's memo)
    (tmp_path / "five.pth").write_bytes(b"hello")
    with pytest.raises(CheckpointError, match="five.pth: .*(truncated or corrupt|weights_only)"):
        load_model(tmp_path / "five.pth", config=MICRO)


def test_full_plugins_demand_a_checkpoint():
    from alitok.plugin import alitok_tokenizer
    from harness.core.errors import UserError

    with pytest.raises(UserError, match="alitok needs the official checkpoint: pass --checkpoint "):
        alitok_tokenizer(device=torch.device("cpu"))


def test_registry_names_resolve():
    from harness.core.registry import load_plugins, tokenizers, trainers

    load_plugins()
    assert tokenizers.get("alitok-tiny").__name__ == "tiny_tokenizer"
    assert tokenizers.get("alitok").__name__ == "alitok_tokenizer"
    assert trainers.get("alitok-stage1").__name__ == "train_stage1"
    assert trainers.get("alitok-stage2").__name__ == "train_stage2"


@pytest.mark.skipif(not tiny_checkpoint_path().exists(), reason="tiny tokenizer not trained yet")
def test_committed_tiny_tokenizer_reconstructs_held_out_patches():
    from alitok.plugin import tiny_tokenizer
    from harness.data.embedded import natural_patches

    tok = tiny_tokenizer(device=torch.device("cpu"))
    assert (tok.num_tokens, tok.image_size) == (73, 32)
    images = torch.from_numpy(natural_patches("val", 32, per_class=4, seed=0)[0])
    recon = tok.reconstruct(images).float()
    x = images.float()
    mse = ((recon - x) ** 2).mean()
    # an independent floor: each image replaced by its own mean colour
    flat = ((x.mean(dim=(1, 2), keepdim=True) - x) ** 2).mean()
    assert mse < 0.5 * flat


def test_two_stage_false_infers_with_the_stage1_causal_decoder(tmp_path):
    cfg = dataclasses.replace(MICRO, two_stage=False)
    assert build(cfg, device="meta").stage == "stage1"
    model = build(cfg, "stage1", generator=torch.Generator().manual_seed(0))
    torch.save(model.state_dict(), tmp_path / "one_stage.pth")  # no metadata: the config decides
    loaded, _ = load_model(tmp_path / "one_stage.pth", config=cfg)
    assert loaded.stage == "stage1" and loaded.decoder.attention == "causal"

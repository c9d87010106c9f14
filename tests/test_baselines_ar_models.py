"""AR baselines (LlamaGen VQGAN + GPT, MaskGIT-VQGAN, RAR, TiTok): published parameter counts,
state-dict keys/shapes against upstream's module structure, the loading quirks, bad checkpoints.

The expected keys are written out below from upstream's code (read for this test):
FoundationVision/LlamaGen ``tokenizer/tokenizer_image/vq_model.py`` and
``autoregressive/models/gpt.py``; bytedance/1d-tokenizer ``modeling/modules/maskgit_vqgan.py``,
``modeling/titok.py`` (``TiTok``, ``PretrainedTokenizer``), ``modeling/modules/blocks.py``
(``TiTokEncoder``, ``TiTokDecoder``, ``ResidualAttentionBlock`` = ``nn.MultiheadAttention``) and
``modeling/rar.py``. They are independent of our module tree: a renamed or reshaped tensor fails.
"""

import math

import pytest
import torch

from baselines import llamagen as lg
from baselines import maskgit_vqgan as mv
from baselines import rar, titok
from harness.core.errors import UserError
from harness.nn.checkpoints.checkpoint import CheckpointError


def _count(model) -> int:
    return sum(p.numel() for p in model.parameters())


def _shapes(model) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


# ---------------------------------------------------------------------------------------------- expected upstream layouts
def _conv(prefix, cout, cin, k, bias=True):
    out = {f"{prefix}.weight": (cout, cin, k, k)}
    if bias:
        out[f"{prefix}.bias"] = (cout,)
    return out


def _gn(prefix, c):
    return {f"{prefix}.weight": (c,), f"{prefix}.bias": (c,)}


def _taming_res(p, cin, cout):
    d = {
        **_gn(f"{p}.norm1", cin),
        **_conv(f"{p}.conv1", cout, cin, 3),
        **_gn(f"{p}.norm2", cout),
        **_conv(f"{p}.conv2", cout, cout, 3),
    }
    if cin != cout:
        d.update(_conv(f"{p}.nin_shortcut", cout, cin, 1))
    return d


def _taming_attn(p, c):
    d = _gn(f"{p}.norm", c)
    for n in ("q", "k", "v", "proj_out"):
        d.update(_conv(f"{p}.{n}", c, c, 1))
    return d


def llamagen_vq_expected(ch_mult, ch=128, n=2, z=256, dim=8, codebook=16384):
    """vq_model.py: Encoder/Decoder ``conv_blocks[i].{res, attn, downsample|upsample}``, mid = Res-Attn-Res."""
    d = _conv("encoder.conv_in", ch, 3, 3)
    cin = ch
    last = len(ch_mult) - 1
    for i, m in enumerate(ch_mult):
        for j in range(n):
            d.update(_taming_res(f"encoder.conv_blocks.{i}.res.{j}", cin, ch * m))
            cin = ch * m
            if i == last:
                d.update(_taming_attn(f"encoder.conv_blocks.{i}.attn.{j}", cin))
        if i != last:
            d.update(_conv(f"encoder.conv_blocks.{i}.downsample.conv", cin, cin, 3))
    d.update(
        {
            **_taming_res("encoder.mid.0", cin, cin),
            **_taming_attn("encoder.mid.1", cin),
            **_taming_res("encoder.mid.2", cin, cin),
            **_gn("encoder.norm_out", cin),
            **_conv("encoder.conv_out", z, cin, 3),
        }
    )
    cin = ch * ch_mult[-1]
    d.update(
        {
            **_conv("decoder.conv_in", cin, z, 3),
            **_taming_res("decoder.mid.0", cin, cin),
            **_taming_attn("decoder.mid.1", cin),
            **_taming_res("decoder.mid.2", cin, cin),
        }
    )
    for b, i in enumerate(reversed(range(len(ch_mult)))):
        for j in range(n + 1):
            d.update(_taming_res(f"decoder.conv_blocks.{b}.res.{j}", cin, ch * ch_mult[i]))
            cin = ch * ch_mult[i]
            if i == last:
                d.update(_taming_attn(f"decoder.conv_blocks.{b}.attn.{j}", cin))
        if i != 0:
            d.update(_conv(f"decoder.conv_blocks.{b}.upsample.conv", cin, cin, 3))
    d.update(
        {
            **_gn("decoder.norm_out", cin),
            **_conv("decoder.conv_out", 3, cin, 3),
            "quantize.embedding.weight": (codebook, dim),
            "quantize.codebook_used": (65536,),
            **_conv("quant_conv", dim, z, 1),
            **_conv("post_quant_conv", z, dim, 1),
        }
    )
    return d


def llamagen_gpt_expected(n_layer, dim, vocab=16384, classes=1000):
    """gpt.py Transformer (c2i): LabelEmbedder with the null row, wqkv/wo, SwiGLU w1/w2/w3, no biases."""
    hidden = int(2 * 4 * dim / 3)
    hidden = hidden if hidden % 256 == 0 else hidden + 256 - hidden % 256  # find_multiple
    d = {
        "cls_embedding.embedding_table.weight": (classes + 1, dim),
        "tok_embeddings.weight": (vocab, dim),
        "norm.weight": (dim,),
        "output.weight": (vocab, dim),
    }
    for i in range(n_layer):
        d.update(
            {
                f"layers.{i}.attention.wqkv.weight": (3 * dim, dim),
                f"layers.{i}.attention.wo.weight": (dim, dim),
                f"layers.{i}.feed_forward.w1.weight": (hidden, dim),
                f"layers.{i}.feed_forward.w3.weight": (hidden, dim),
                f"layers.{i}.feed_forward.w2.weight": (dim, hidden),
                f"layers.{i}.attention_norm.weight": (dim,),
                f"layers.{i}.ffn_norm.weight": (dim,),
            }
        )
    return d


def _maskgit_res(p, cin, cout):
    d = {
        **_gn(f"{p}.norm1", cin),
        **_conv(f"{p}.conv1", cout, cin, 3, bias=False),
        **_gn(f"{p}.norm2", cout),
        **_conv(f"{p}.conv2", cout, cout, 3, bias=False),
    }
    if cin != cout:  # the quirk: out -> out
        d.update(_conv(f"{p}.nin_shortcut", cout, cout, 1, bias=False))
    return d


def maskgit_decoder_expected(prefix, ch=128, mult=(1, 1, 2, 2, 4), n=2, z=256):
    top = ch * mult[-1]
    d = _conv(f"{prefix}.conv_in", top, z, 3)
    for j in range(n):
        d.update(_maskgit_res(f"{prefix}.mid.{j}", top, top))
    for i in range(len(mult)):  # UpsamplingBlock(block_idx=i) stored at up[i]
        cin = top if i == len(mult) - 1 else ch * mult[i + 1]
        for j in range(n):
            d.update(_maskgit_res(f"{prefix}.up.{i}.block.{j}", cin if j == 0 else ch * mult[i], ch * mult[i]))
        if i != 0:
            d.update(_conv(f"{prefix}.up.{i}.upsample_conv", ch * mult[i], ch * mult[i], 3))
    d.update({**_gn(f"{prefix}.norm_out", ch * mult[0]), **_conv(f"{prefix}.conv_out", 3, ch * mult[0], 3)})
    return d


def maskgit_expected(ch=128, mult=(1, 1, 2, 2, 4), n=2, z=256):
    """maskgit_vqgan.py + PretrainedTokenizer: encoder.down[i].block[j], decoder.up[i], quantize.embedding."""
    d = _conv("encoder.conv_in", ch, 3, 3, bias=False)
    ins = (1,) + tuple(mult)
    for i in range(len(mult)):
        for j in range(n):
            d.update(_maskgit_res(f"encoder.down.{i}.block.{j}", ch * (ins[i] if j == 0 else mult[i]), ch * mult[i]))
    for j in range(n):
        d.update(_maskgit_res(f"encoder.mid.{j}", ch * mult[-1], ch * mult[-1]))
    d.update({**_gn("encoder.norm_out", ch * mult[-1]), **_conv("encoder.conv_out", z, ch * mult[-1], 1)})
    d.update(maskgit_decoder_expected("decoder", ch, mult, n, z))
    d["quantize.embedding.weight"] = (1024, z)
    return d


def rar_expected(depth, dim, mlp, seq=256, codebook=1024, classes=1000):
    """rar.py RAR: cls_token, pos_embed / target_aware_pos_embed (seq + 1024), timesteps (seq + 100), adaLN blocks."""
    hd = dim // 16
    d = {
        "cls_token": (1, 1, dim),
        "pos_embed": (1, seq + 1024, dim),
        "target_aware_pos_embed": (1, seq + 1024, dim),
        "timesteps_embeddings": (1, seq + 100, dim),
        "embeddings.weight": (codebook + 1 + classes + 1, dim),
        "adaln_before_head.adaLN_modulation.1.weight": (2 * dim, dim),
        "adaln_before_head.adaLN_modulation.1.bias": (2 * dim,),
        "lm_head.weight": (codebook, dim),
        "lm_head.bias": (codebook,),
    }
    for i in range(depth):
        p = f"blocks.{i}"
        d.update(
            {
                f"{p}.norm1.weight": (dim,),
                f"{p}.norm1.bias": (dim,),
                f"{p}.attn.qkv.weight": (3 * dim, dim),
                f"{p}.attn.qkv.bias": (3 * dim,),
                f"{p}.attn.q_norm.weight": (hd,),
                f"{p}.attn.q_norm.bias": (hd,),
                f"{p}.attn.k_norm.weight": (hd,),
                f"{p}.attn.k_norm.bias": (hd,),
                f"{p}.attn.proj.weight": (dim, dim),
                f"{p}.attn.proj.bias": (dim,),
                f"{p}.norm2.weight": (dim,),
                f"{p}.norm2.bias": (dim,),
                f"{p}.mlp.fc1.weight": (mlp, dim),
                f"{p}.mlp.fc1.bias": (mlp,),
                f"{p}.mlp.fc2.weight": (dim, mlp),
                f"{p}.mlp.fc2.bias": (dim,),
                f"{p}.adaLN_modulation.1.weight": (6 * dim, dim),
                f"{p}.adaLN_modulation.1.bias": (6 * dim,),
            }
        )
    return d


def _vit_blocks(prefix, width, layers):
    d = {}
    for i in range(layers):
        p = f"{prefix}.transformer.{i}"
        d.update(
            {
                f"{p}.ln_1.weight": (width,),
                f"{p}.ln_1.bias": (width,),
                f"{p}.attn.in_proj_weight": (3 * width, width),
                f"{p}.attn.in_proj_bias": (3 * width,),
                f"{p}.attn.out_proj.weight": (width, width),
                f"{p}.attn.out_proj.bias": (width,),
                f"{p}.ln_2.weight": (width,),
                f"{p}.ln_2.bias": (width,),
                f"{p}.mlp.c_fc.weight": (4 * width, width),
                f"{p}.mlp.c_fc.bias": (4 * width,),
                f"{p}.mlp.c_proj.weight": (width, 4 * width),
                f"{p}.mlp.c_proj.bias": (width,),
            }
        )
    return d


def titok_expected(width, layers, k, token_size=12, codebook=4096, grid=16, patch=16):
    """titok.py TiTok (finetune_decoder=True, legacy): encoder, decoder (ffn 0/2), quantize, pixel_quantize, pixel_decoder."""
    d = {
        "latent_tokens": (k, width),
        "encoder.patch_embed.weight": (width, 3, patch, patch),
        "encoder.patch_embed.bias": (width,),
        "encoder.class_embedding": (1, width),
        "encoder.positional_embedding": (grid * grid + 1, width),
        "encoder.latent_token_positional_embedding": (k, width),
        "encoder.ln_pre.weight": (width,),
        "encoder.ln_pre.bias": (width,),
        "encoder.ln_post.weight": (width,),
        "encoder.ln_post.bias": (width,),
        "encoder.conv_out.weight": (token_size, width, 1, 1),
        "encoder.conv_out.bias": (token_size,),
        "decoder.decoder_embed.weight": (width, token_size),
        "decoder.decoder_embed.bias": (width,),
        "decoder.class_embedding": (1, width),
        "decoder.positional_embedding": (grid * grid + 1, width),
        "decoder.mask_token": (1, 1, width),
        "decoder.latent_token_positional_embedding": (k, width),
        "decoder.ln_pre.weight": (width,),
        "decoder.ln_pre.bias": (width,),
        "decoder.ln_post.weight": (width,),
        "decoder.ln_post.bias": (width,),
        "decoder.ffn.0.weight": (2 * width, width, 1, 1),
        "decoder.ffn.0.bias": (2 * width,),
        "decoder.ffn.2.weight": (1024, 2 * width, 1, 1),
        "decoder.ffn.2.bias": (1024,),
        "quantize.embedding.weight": (codebook, token_size),
        "pixel_quantize.embedding.weight": (1024, 256),
    }
    d.update(_vit_blocks("encoder", width, layers))
    d.update(_vit_blocks("decoder", width, layers))
    d.update(maskgit_decoder_expected("pixel_decoder"))
    return d


# ---------------------------------------------------------------------------------------------- counts and keys
@pytest.mark.parametrize("name,millions,calc", [("VQ-16", 72, 71.9), ("VQ-8", 70, 70.1)])
def test_llamagen_vq_parameter_counts(name, millions, calc):
    """README: VQ-16 72M, VQ-8 70M; counted from the configs: 71.9M / 70.1M."""
    n = _count(lg.build_vq(lg.VQ_CONFIGS[name], "meta"))
    assert round(n / 1e6) == millions and round(n / 1e5) / 10 == calc


@pytest.mark.parametrize("name,ch_mult", [("VQ-16", (1, 1, 2, 2, 4)), ("VQ-8", (1, 2, 2, 4))])
def test_llamagen_vq_keys_and_shapes_equal_upstream(name, ch_mult):
    assert _shapes(lg.build_vq(lg.VQ_CONFIGS[name], "meta")) == llamagen_vq_expected(ch_mult)


# published (gpt.py comments / paper): 111M, 343M, 775M, 1.4B, 3.1B; whole model incl. embeddings and head
@pytest.mark.parametrize("size,millions", [("B", 111), ("L", 343), ("XL", 775), ("XXL", 1411), ("3B", 3097)])
def test_llamagen_gpt_parameter_counts(size, millions):
    n = _count(lg.build_gpt(lg.gpt_config(size), "meta"))
    assert round(n / 1e6) == millions
    if size == "XXL":
        assert round(n / 1e8) / 10 == 1.4
    if size == "3B":
        assert round(n / 1e8) / 10 == 3.1


@pytest.mark.parametrize("size", ["B", "XL", "3B"])
def test_llamagen_gpt_keys_and_shapes_equal_upstream(size):
    depth, width, _ = lg.GPT_SIZES[size]
    assert _shapes(lg.build_gpt(lg.gpt_config(size), "meta")) == llamagen_gpt_expected(depth, width)


def test_llamagen_384_checkpoints_only_change_the_rope_table_not_the_weights():
    """block_size 576 changes only the (non-persistent) RoPE table: the _384 files share the key layout."""
    a, b = lg.build_gpt(lg.gpt_config("L", 256), "meta"), lg.build_gpt(lg.gpt_config("L", 384), "meta")
    assert _shapes(a) == _shapes(b)
    assert lg.gpt_rope_table(b.cfg).shape == (1 + 576, 64 // 2, 2)
    assert set(lg.GPT_PRESETS) >= {"llamagen-gpt-b", "llamagen-gpt-l", "llamagen-gpt-3b-384"}
    assert lg.GPT_PRESETS["llamagen-gpt-xl-384"].sampling.cfg_scale == 1.75


def test_maskgit_vqgan_parameter_count_and_keys():
    """(calc) encoder 23.8M + decoder 30.5M + codebook 0.26M = 54.5M (the 66M third-party figure has no stated basis)."""
    m = mv.build(device="meta")
    assert round(_count(m.encoder) / 1e5) == 238 and round(_count(m.decoder) / 1e5) == 305
    assert round(_count(m) / 1e5) == 545
    assert _shapes(m) == maskgit_expected()


# RAR paper Table 1 (millions, 3 significant figures): B 261, L 461, XL 955, XXL 1499
@pytest.mark.parametrize("size", ["b", "l", "xl", "xxl"])
def test_rar_parameter_counts_and_keys(size):
    m = rar.build(rar.rar_config(size), "meta")
    assert abs(_count(m) - rar.RAR_PARAMS[size]) < 1e6  # every published count within its rounding unit
    depth, width, mlp = rar.RAR_SIZES[size]
    if size in ("b", "xxl"):
        assert _shapes(m) == rar_expected(depth, width, mlp)


# (calc) tokenizer incl. the MaskGIT pixel decoder: L-32 ~641M (303 + 307 + 31), B-64 ~205M, S-128 ~84M
@pytest.mark.parametrize(
    "name,millions,width,layers,k",
    [("titok-l-32", 641, 1024, 24, 32), ("titok-b-64", 205, 768, 12, 64), ("titok-s-128", 84, 512, 8, 128)],
)
def test_titok_parameter_counts_and_keys(name, millions, width, layers, k):
    m = titok.build(titok.TITOK_CONFIGS[name], "meta")
    assert round(_count(m) / 1e6) == millions
    assert _shapes(m) == titok_expected(width, layers, k)


# ---------------------------------------------------------------------------------------------- quirks and formulas
def test_maskgit_nin_shortcut_applies_to_the_block_output():
    torch.manual_seed(0)
    block = mv.ResnetBlock(32, 64).eval()
    x = torch.randn(1, 32, 6, 6)
    h = block.conv2(torch.nn.functional.silu(block.norm2(block.conv1(torch.nn.functional.silu(block.norm1(x))))))
    assert torch.allclose(block(x), h + block.nin_shortcut(h), atol=1e-6)


@pytest.mark.parametrize("size,k,s", [(7, 3, 1), (8, 3, 2), (7, 4, 2), (5, 1, 1)])
def test_conv2d_same_matches_tensorflow_same_padding(size, k, s):
    """TF SAME: output ceil(n/s); total pad max((ceil(n/s)-1)s + k - n, 0), the extra pixel bottom/right."""
    torch.manual_seed(0)
    conv = mv.Conv2dSame(2, 3, k, stride=s)
    x = torch.randn(1, 2, size, size)
    total = max((math.ceil(size / s) - 1) * s + k - size, 0)
    ref = torch.nn.functional.conv2d(
        torch.nn.functional.pad(x, [total // 2, total - total // 2] * 2), conv.weight, conv.bias, stride=s
    )
    out = conv(x)
    assert out.shape[-1] == math.ceil(size / s) and torch.allclose(out, ref)


def _tiny_titok(legacy):
    cfg = titok.TiTokConfig(
        image_size=32,
        patch_size=8,
        enc_width=64,
        enc_depth=1,
        enc_heads=4,
        dec_width=64,
        dec_depth=1,
        dec_heads=4,
        num_latent_tokens=6,
        token_size=8,
        codebook_size=32,
        is_legacy=legacy,
    )
    return titok.build(cfg, generator=torch.Generator().manual_seed(0)).eval()


def test_titok_legacy_raw_reshape_quirk():
    """Legacy: the [B, K, width] latents are reshaped to [B, width, K, 1] without a permute."""
    m = _tiny_titok(True)
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        z = m.encoder(x, m.latent_tokens)
        enc = m.encoder
        h = enc.patch_embed(x).flatten(2).transpose(1, 2)
        h = torch.cat([enc.class_embedding.expand(2, -1, -1), h], 1) + enc.positional_embedding
        lat = (m.latent_tokens + enc.latent_token_positional_embedding).expand(2, -1, -1)
        h = enc.ln_post(enc.transformer(enc.ln_pre(torch.cat([h, lat], 1)))[:, -6:])
        raw = enc.conv_out(h.reshape(2, 64, 6, 1)).reshape(2, 8, 1, 6)
        fixed = enc.conv_out(h.transpose(1, 2).reshape(2, 64, 6, 1)).reshape(2, 8, 1, 6)
    assert torch.allclose(z, raw, atol=1e-5) and not torch.allclose(z, fixed, atol=1e-3)


def test_titok_multihead_attention_layout_matches_torch():
    """Our fused ``in_proj`` under the ``in_proj_weight`` name computes what nn.MultiheadAttention computes."""
    m = _tiny_titok(False)
    block = m.encoder.transformer[0]
    sd = {
        k.removeprefix("encoder.transformer.0.attn."): v
        for k, v in m.state_dict().items()
        if k.startswith("encoder.transformer.0.attn.")
    }
    mha = torch.nn.MultiheadAttention(64, 4)
    mha.load_state_dict(sd)
    x = torch.randn(5, 2, 64)  # sequence-first, as upstream
    with torch.no_grad():
        ref = mha(x, x, x, need_weights=False)[0].transpose(0, 1)
        ours = block.attn(x.transpose(0, 1))
    assert torch.allclose(ours, ref, atol=1e-5)


def test_quantisers_follow_the_upstream_rules():
    """LlamaGen / TiTok: argmin over L2-normalised z and codes; MaskGIT: plain squared distance."""
    g = torch.Generator().manual_seed(0)
    vq = lg.L2VectorQuantizer(lg.VQConfig(ch=32, codebook_size=20, codebook_dim=4))
    torch.nn.init.normal_(vq.embedding.weight, generator=g)
    z = torch.randn(2, 4, 3, 3, generator=g) * 5
    _, codes, _ = vq.eval()(z)
    zn = torch.nn.functional.normalize(z.permute(0, 2, 3, 1).reshape(-1, 4), dim=-1)
    en = torch.nn.functional.normalize(vq.embedding.weight, dim=-1)
    assert torch.equal(codes.flatten(), torch.cdist(zn, en).argmin(1))
    m = mv.MaskGITVQGAN(
        mv.PixelVQConfig(hidden_channels=32, channel_mult=(1, 2), codebook_size=16, z_channels=8, image_size=8)
    )
    zz = torch.randn(10, 8, generator=g)
    assert torch.equal(m.quantize.codes(zz), torch.cdist(zz, m.quantize.embedding.weight).argmin(1))


def test_tiny_tokenizers_round_trip_shapes():
    from harness.core.interfaces import check_images

    vq = lg.LlamaGenTokenizer(
        lg.build_vq(
            lg.VQConfig(ch=32, ch_mult=(1, 2), num_res_blocks=1, z_channels=32, codebook_size=64, image_size=16)
        ),
        name="t",
    )
    imgs = torch.randint(0, 256, (2, 16, 16, 3), dtype=torch.uint8)
    codes = vq.encode(imgs)
    assert codes.shape == (2, 64) and codes.dtype == torch.long
    check_images(vq.decode(codes), 16)
    tk = titok.TiTokTokenizer(_tiny_titok(True), name="t")
    codes = tk.encode(torch.randint(0, 256, (2, 32, 32, 3), dtype=torch.uint8))
    assert codes.shape == (2, 6) and int(codes.max()) < 32
    with pytest.raises(ValueError):
        tk.decode(torch.full((1, 6), 99))


# ---------------------------------------------------------------------------------------------- checkpoints
def _tiny_gpt():
    return lg.build_gpt(lg.GPTConfig(depth=1, width=32, num_heads=2, vocab_size=20, num_classes=5, num_tokens=4))


def test_llamagen_checkpoint_under_model_key_loads_strictly(tmp_path):
    m = _tiny_gpt()
    path = tmp_path / "c2i.pt"
    torch.save({"model": m.state_dict(), "steps": 3}, path)  # upstream trainer layout (plus extras)
    sd = torch.load(path, weights_only=True)
    torch.save({"model": sd["model"]}, path)
    loaded = lg.load_gpt(path, m.cfg)
    for (k, a), b in zip(m.state_dict().items(), loaded.state_dict().values()):
        assert torch.equal(a, b), k


@pytest.mark.parametrize("case", ["wrong_family", "truncated", "wrong_shapes", "not_a_state_dict"])
def test_bad_checkpoints_give_one_line_errors(tmp_path, case):
    m = _tiny_gpt()
    path = tmp_path / "bad.pt"
    if case == "wrong_family":
        torch.save(
            rar.build(
                rar.RARConfig(
                    depth=1, width=32, num_heads=2, mlp_hidden=64, codebook_size=20, num_classes=5, image_seq_len=4
                )
            ).state_dict(),
            path,
        )
    elif case == "truncated":
        torch.save({"model": m.state_dict()}, path)
        path.write_bytes(path.read_bytes()[:200])
    elif case == "wrong_shapes":
        other = lg.build_gpt(lg.GPTConfig(depth=1, width=64, num_heads=2, vocab_size=20, num_classes=5, num_tokens=4))
        torch.save({"model": other.state_dict()}, path)
    else:
        torch.save({"model": [1, 2, 3]}, path)
    with pytest.raises(CheckpointError) as e:
        lg.load_gpt(path, m.cfg)
    assert "\n" not in str(e.value) and str(path) in str(e.value)


@pytest.mark.parametrize("loader", ["vq", "maskgit", "rar", "titok"])
def test_every_family_refuses_another_familys_file(tmp_path, loader):
    path = tmp_path / "gpt.pt"
    torch.save({"model": _tiny_gpt().state_dict()}, path)
    load = {
        "vq": lambda: lg.load_vq(path, lg.VQ_CONFIGS["VQ-16"]),
        "maskgit": lambda: mv.load(path),
        "rar": lambda: rar.load(path, rar.rar_config("b")),
        "titok": lambda: titok.load(path, titok.TITOK_CONFIGS["titok-s-128"]),
    }[loader]
    with pytest.raises(CheckpointError, match="not a") as e:
        load()
    assert "\n" not in str(e.value)


def test_factories_need_paths_and_report_bad_files_as_user_errors(tmp_path):
    from baselines import plugin_ar

    with pytest.raises(UserError, match="vq_ds16_c2i.pt"):
        plugin_ar.vq_16(device="cpu")
    with pytest.raises(UserError, match="rar_xxl.bin"):
        plugin_ar.rar_xxl(device="cpu")
    with pytest.raises(UserError, match="vq_ds16_c2i.pt"):
        plugin_ar.llamagen_gpt_xl_384(device="cpu", checkpoint=str(tmp_path / "x.pt"))
    bad = tmp_path / "trunc.bin"
    bad.write_bytes(b"PK\x03\x04 not really")
    with pytest.raises(UserError) as e:
        plugin_ar.maskgit_vqgan(device="cpu", checkpoint=str(bad))
    assert "\n" not in str(e.value)
    with pytest.raises(UserError, match="unknown option"):
        plugin_ar.titok_l_32(device="cpu", checkpoint=str(bad), foo=1)


def test_registry_lists_the_baseline_plugins():
    from harness.core.plugins import BUILTIN

    gens, toks = BUILTIN["generators"], BUILTIN["tokenizers"]
    for name in ("llamagen-gpt-b", "llamagen-gpt-l", "llamagen-gpt-xxl-384", "llamagen-gpt-3b-384", "rar-b", "rar-xxl"):
        assert name in gens
    for name in ("vq-16", "vq-8", "maskgit-vqgan", "titok-l-32", "titok-b-64", "titok-s-128"):
        assert name in toks
    import importlib

    for table in (gens, toks):
        for name, (target, _) in table.items():
            if target.startswith("baselines.plugin_ar:"):
                module, attr = target.split(":")
                assert callable(getattr(importlib.import_module(module), attr)), name


# ---------------------------------------------------------------------------------------------- full configs on CPU
@pytest.mark.slow
def test_full_config_forwards_at_batch_one_on_cpu():
    torch.manual_seed(0)
    with torch.no_grad():
        vq = lg.build_vq(lg.VQ_CONFIGS["VQ-16"]).eval()
        rec, codes, _ = vq(torch.rand(1, 3, 256, 256) * 2 - 1)
        assert rec.shape == (1, 3, 256, 256) and codes.shape == (1, 256)
        gpt = lg.build_gpt(lg.gpt_config("B")).eval()
        tokens = torch.cat([torch.tensor([[7]]), codes[:, :-1]], 1)
        assert gpt(tokens).shape == (1, 256, 16384)
        mg = mv.build().eval()
        mcodes = mg.encode(torch.rand(1, 3, 256, 256))
        assert mcodes.shape == (1, 256) and mg.decode_codes(mcodes).shape == (1, 3, 256, 256)
        rb = rar.build(rar.rar_config("b")).eval()
        assert rb(torch.cat([rb.condition_tokens(torch.tensor([3])), mcodes[:, :-1]], 1)).shape == (1, 256, 1024)
        tk = titok.build(titok.TITOK_CONFIGS["titok-s-128"]).eval()
        zq, tcodes, _ = tk.encode(torch.rand(1, 3, 256, 256))
        assert tcodes.shape == (1, 128) and tk.decode(zq).shape == (1, 3, 256, 256)


def test_llamagen_384_protocol_resizes_bicubic_before_the_offset_half_quantisation():
    """sample_c2i_ddp: decode at --image-size, F.interpolate(bicubic) to --image-size-eval, then
    clamp(127.5 x + 128, 0, 255) -> uint8."""
    model = lg.build_vq(
        lg.VQConfig(
            ch=32, ch_mult=(1, 2), num_res_blocks=1, z_channels=32, codebook_size=16, codebook_dim=4, image_size=24
        )
    ).eval()
    tok = lg.LlamaGenTokenizer(model, name="t", eval_size=16)
    codes = torch.randint(0, 16, (2, 144))
    with torch.no_grad():
        x = model.decode_codes(codes)
    x = torch.nn.functional.interpolate(x, size=(16, 16), mode="bicubic")
    want = torch.clamp(127.5 * x + 128.0, 0, 255).permute(0, 2, 3, 1).to(torch.uint8)
    assert tok.image_size == 16 and tok.num_tokens == 144
    assert torch.equal(tok.decode(codes), want)

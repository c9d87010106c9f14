"""AR baselines through the one shared sampler / generator: upstream formulas and reproducibility.

References written here from upstream code (read for this test): LlamaGen
``autoregressive/models/gpt.py`` (``precompute_freqs_cis_2d``, ``apply_rotary_emb``, ``Attention``,
``FeedForward``, ``RMSNorm``, ``Transformer.forward``) and ``autoregressive/models/generate.py``
(``generate``, ``prefill``, ``decode_n_tokens``, ``top_k_top_p_filtering``, ``sample``);
bytedance/1d-tokenizer ``modeling/rar.py`` (``RAR.forward_fn`` in raster order, ``RAR.generate``).
"""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from cli_runs import HANG_GUARD_S

from baselines import llamagen as lg
from baselines import maskgit_vqgan as mv
from baselines import rar, titok
from harness.core.interfaces import ARSampling
from harness.nn.models.ar_generator import ARGenerator
from harness.nn.samplers.ar_sampling import ar_sample, ar_sample_naive, cfg_scales

REPO = Path(__file__).resolve().parent.parent


# ---------------------------------------------------------------------------------------------- toy systems
def _randomise(model, seed):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.3)
    return model.eval()


def build_toy(family: str, seed: int = 0) -> ARGenerator:
    """Tiny random-weight systems, identical in every process (weights from a seeded generator)."""
    if family == "llamagen":
        vq = lg.build_vq(
            lg.VQConfig(ch=32, ch_mult=(1, 2, 2), num_res_blocks=1, z_channels=32, codebook_size=24, image_size=16)
        )
        tok = lg.LlamaGenTokenizer(_randomise(vq, seed + 1), name="toy-vq")
        model = lg.build_gpt(lg.GPTConfig(depth=2, width=32, num_heads=2, vocab_size=24, num_classes=10, num_tokens=16))
        sampling = ARSampling(cfg_scale=2.0, top_k=12, top_p=0.95, cfg_interval=8)
    elif family == "rar":
        vq = mv.build(
            mv.PixelVQConfig(hidden_channels=32, channel_mult=(1, 2, 2), codebook_size=24, z_channels=16, image_size=16)
        )
        tok = mv.MaskGITTokenizer(_randomise(vq, seed + 1), name="toy-maskgit")
        model = rar.build(
            rar.RARConfig(
                depth=2, width=32, num_heads=2, mlp_hidden=64, codebook_size=24, num_classes=10, image_seq_len=16
            )
        )
        sampling = ARSampling(cfg_scale=4.0, cfg_schedule="power-cosine", cfg_power=1.5, temperature=1.02)
    elif family == "titok-ar":
        cfg = titok.TiTokConfig(
            image_size=16,
            patch_size=4,
            enc_width=32,
            enc_depth=1,
            enc_heads=2,
            dec_width=32,
            dec_depth=1,
            dec_heads=2,
            num_latent_tokens=8,
            token_size=4,
            codebook_size=24,
            is_legacy=False,
        )
        tok = titok.TiTokTokenizer(_randomise(titok.build(cfg), seed + 1), name="toy-titok")
        model = lg.build_gpt(
            lg.GPTConfig(depth=2, width=32, num_heads=2, vocab_size=24, num_classes=10, num_tokens=8, rope="1d")
        )
        sampling = ARSampling(cfg_scale=3.0, cfg_schedule="linear")
    else:
        raise KeyError(family)
    return ARGenerator(_randomise(model, seed), tok, name=f"toy-{family}", sampling=sampling)


FAMILIES = ["llamagen", "rar", "titok-ar"]


# ---------------------------------------------------------------------------------------------- LlamaGen formulas
def upstream_freqs_cis_2d(grid_size, n_elem, base=10000, cls_token_num=1):
    half_dim = n_elem // 2
    freqs = 1.0 / (base ** (torch.arange(0, half_dim, 2)[: (half_dim // 2)].float() / half_dim))
    t = torch.arange(grid_size)
    freqs = torch.outer(t, freqs)
    freqs_grid = torch.concat(
        [freqs[:, None, :].expand(-1, grid_size, -1), freqs[None, :, :].expand(grid_size, -1, -1)], dim=-1
    )
    cache = torch.stack([torch.cos(freqs_grid), torch.sin(freqs_grid)], dim=-1).flatten(0, 1)
    return torch.cat([torch.zeros(cls_token_num, n_elem // 2, 2), cache])


def upstream_freqs_cis_1d(seq_len, n_elem, base=10000, cls_token_num=1):
    freqs = 1.0 / (base ** (torch.arange(0, n_elem, 2)[: (n_elem // 2)].float() / n_elem))
    freqs_cis = torch.polar(torch.ones(seq_len, n_elem // 2), torch.outer(torch.arange(seq_len).float(), freqs))
    cache = torch.stack([freqs_cis.real, freqs_cis.imag], dim=-1)
    return torch.cat([torch.zeros(cls_token_num, n_elem // 2, 2), cache])


@pytest.mark.parametrize("size,image", [("B", 256), ("XL", 384), ("3B", 384)])
def test_llamagen_rope_table_equals_upstream(size, image):
    cfg = lg.gpt_config(size, image)
    assert torch.equal(lg.gpt_rope_table(cfg), upstream_freqs_cis_2d(cfg.grid, cfg.head_dim))


def test_1d_rope_variant_equals_the_gpt_fast_table():
    cfg = lg.GPTConfig(depth=1, width=64, num_heads=2, num_tokens=32, rope="1d")
    assert torch.allclose(lg.gpt_rope_table(cfg), upstream_freqs_cis_1d(32, 32), atol=1e-6)


def upstream_gpt_forward(sd, cfg, tokens):
    """LlamaGen ``Transformer.forward`` (training branch, eval mode) on a state dict with upstream names."""

    def rms(x, w):
        xf = x.float()
        return (xf * torch.rsqrt(torch.mean(xf * xf, dim=-1, keepdim=True) + cfg.norm_eps)).type_as(x) * w

    def rotary(x, freqs):  # x: (bs, seq, head, hd)
        xs = x.float().reshape(*x.shape[:-1], -1, 2)
        f = freqs.view(1, xs.size(1), 1, xs.size(3), 2)
        out = torch.stack(
            [xs[..., 0] * f[..., 0] - xs[..., 1] * f[..., 1], xs[..., 1] * f[..., 0] + xs[..., 0] * f[..., 1]], dim=-1
        )
        return out.flatten(3).type_as(x)

    b, n = tokens.shape
    h = torch.cat(
        [sd["cls_embedding.embedding_table.weight"][tokens[:, :1]], sd["tok_embeddings.weight"][tokens[:, 1:]]], dim=1
    )
    freqs = upstream_freqs_cis_2d(cfg.grid, cfg.head_dim)[:n]
    for i in range(cfg.depth):
        p = f"layers.{i}."
        x = rms(h, sd[p + "attention_norm.weight"])
        q, k, v = (x @ sd[p + "attention.wqkv.weight"].t()).split([cfg.width] * 3, dim=-1)
        q, k, v = (t.view(b, n, cfg.num_heads, cfg.head_dim) for t in (q, k, v))
        q, k = rotary(q, freqs), rotary(k, freqs)
        o = F.scaled_dot_product_attention(*(t.transpose(1, 2) for t in (q, k, v)), is_causal=True)
        h = h + o.transpose(1, 2).reshape(b, n, cfg.width) @ sd[p + "attention.wo.weight"].t()
        x = rms(h, sd[p + "ffn_norm.weight"])
        ff = F.silu(x @ sd[p + "feed_forward.w1.weight"].t()) * (x @ sd[p + "feed_forward.w3.weight"].t())
        h = h + ff @ sd[p + "feed_forward.w2.weight"].t()
    return (rms(h, sd["norm.weight"]) @ sd["output.weight"].t()).float()


def test_llamagen_gpt_forward_equals_upstream_formulas():
    model = build_toy("llamagen").model
    tokens = torch.cat([torch.tensor([[3], [10]]), torch.randint(0, 24, (2, 15))], dim=1)  # 10 = null class
    with torch.no_grad():
        assert torch.allclose(model(tokens), upstream_gpt_forward(model.state_dict(), model.cfg, tokens), atol=1e-4)


def upstream_top_k_top_p(logits, top_k=0, top_p=1.0):
    if top_k > 0:
        top_k = min(max(top_k, 1), logits.size(-1))
        logits[logits < torch.topk(logits, top_k)[0][..., -1, None]] = -float("inf")
    if top_p < 1.0:
        sorted_logits, sorted_indices = torch.sort(logits, descending=True)
        cum = torch.cumsum(F.softmax(sorted_logits, dim=-1), dim=-1)
        remove = cum > top_p
        remove[..., 1:] = remove[..., :-1].clone()
        remove[..., 0] = 0
        logits[remove.scatter(1, sorted_indices, remove)] = -float("inf")
    return logits


def upstream_generate(model, cond, max_new_tokens, cfg_scale, cfg_interval, temperature, top_k, top_p, generator):
    """``generate.py`` with the KV cache replaced by full recompute and the global RNG by ``generator``."""

    def sample(logits):
        logits = logits / max(temperature, 1e-5)
        if top_k > 0 or top_p < 1.0:
            logits = upstream_top_k_top_p(logits, top_k, top_p)
        return torch.multinomial(F.softmax(logits, dim=-1), 1, generator=generator)

    seq = torch.cat([cond, torch.full_like(cond, model.cfg.num_classes)])[:, None] if cfg_scale > 1.0 else cond[:, None]
    cfg_flag = True
    out = []
    for i in range(max_new_tokens):
        logits = model(seq)[:, -1]
        if cfg_scale > 1.0:
            c, u = torch.split(logits, len(logits) // 2, dim=0)
            if i >= 1 and cfg_interval > -1 and i - 1 > cfg_interval:  # decode step i-1 (prefill is i = 0)
                cfg_flag = False
            logits = u + (c - u) * cfg_scale if cfg_flag else c
        tok = sample(logits)
        out.append(tok)
        seq = torch.cat([seq, torch.cat([tok, tok]) if cfg_scale > 1.0 else tok], dim=1)
    return torch.cat(out, dim=1)


@pytest.mark.parametrize(
    "params",
    [
        dict(cfg_scale=2.0, cfg_interval=-1, temperature=1.0, top_k=0, top_p=1.0),
        dict(cfg_scale=1.75, cfg_interval=4, temperature=0.9, top_k=10, top_p=0.9),
        dict(cfg_scale=1.0, cfg_interval=-1, temperature=1.0, top_k=5, top_p=1.0),
    ],
)
def test_llamagen_sampling_equals_upstream_generate(params):
    """Constant CFG u + s(c - u) (doubled batch, only when s > 1), cfg_interval, temperature, top-k/top-p."""
    gen = build_toy("llamagen")
    labels = torch.tensor([0, 4, 9])
    with torch.no_grad():
        ref = upstream_generate(gen.model, labels, 16, generator=torch.Generator().manual_seed(5), **params)
    ours = gen.generate_codes(labels, torch.Generator().manual_seed(5), ARSampling(**params))
    assert torch.equal(ours, ref)


@pytest.mark.parametrize("family", FAMILIES)
def test_cached_sampling_equals_naive_recompute(family):
    gen = build_toy(family)
    m, params = gen.model, gen.default_sampling
    cond = m.condition_tokens(torch.tensor([1, 2, 7, 9]))
    uncond = m.null_condition_tokens(cond)
    a = ar_sample(m, cond, m.num_tokens, params, torch.Generator().manual_seed(3), uncond=uncond)
    b = ar_sample_naive(m, cond, m.num_tokens, params, torch.Generator().manual_seed(3), uncond=uncond)
    assert torch.equal(a, b)
    assert len(set(a.flatten().tolist())) > 3  # not a degenerate constant stream


# ---------------------------------------------------------------------------------------------- RAR formulas
def upstream_rar_forward(m, input_ids, condition):
    """``RAR.forward_fn`` with raster orders, no KV cache (returns logits after removing the cls token)."""
    n = m.cfg.image_seq_len
    ids = torch.cat([condition.view(condition.shape[0], -1), input_ids.view(input_ids.shape[0], -1)], dim=1)
    emb = m.embeddings(ids)
    cond_tok = emb[:, 0]
    pos = m.pos_embed.repeat(ids.shape[0], 1, 1)
    tape = m.target_aware_pos_embed.repeat(ids.shape[0], 1, 1)[:, 2 : 2 + n]
    x = torch.cat([m.cls_token.expand(ids.shape[0], -1, -1), emb], dim=1)
    x = x + torch.cat([pos[:, :2], pos[:, 2 : 2 + n]], dim=1)[:, : x.shape[1]]
    x = x + torch.cat([torch.zeros_like(x[:, :1]), tape, torch.zeros_like(x[:, -1:])], dim=1)[:, : x.shape[1]]
    c = cond_tok.unsqueeze(1) + m.timesteps_embeddings[:, : x.shape[1]]
    for blk in m.blocks:
        x = blk(x, c)  # block internals: the model's own (the test targets sequence assembly)
    x, c = x[:, 1:], c[:, 1:]
    return m.lm_head(m.adaln_before_head(x, c))


def test_rar_forward_equals_upstream_sequence_assembly():
    m = build_toy("rar").model
    codes = torch.randint(0, 24, (2, 16))
    cond = m.condition_tokens(torch.tensor([2, 5]))
    with torch.no_grad():
        ref = upstream_rar_forward(m, codes, cond)
        ours = m(torch.cat([cond, codes[:, :-1]], dim=1))
    assert ref.shape == (2, 17, 24)
    assert torch.allclose(ours, ref[:, :16], atol=1e-5)


def test_rar_block_adaln_equals_the_dit_formula():
    m = build_toy("rar").model
    blk = m.blocks[0]
    x, c = torch.randn(2, 5, 32), torch.randn(2, 5, 32)
    with torch.no_grad():
        s1, sc1, g1, s2, sc2, g2 = blk.adaLN_modulation(c).chunk(6, dim=-1)
        h = x + g1 * blk.attn(blk.norm1(x) * (1 + sc1) + s1)
        ref = h + g2 * blk.mlp.fc2(F.gelu(blk.mlp.fc1(blk.norm2(h) * (1 + sc2) + s2)))
        assert torch.allclose(blk(x, c), ref, atol=1e-5)


@pytest.mark.parametrize("size", ["b", "l", "xl", "xxl"])
def test_rar_power_cosine_presets(size):
    """``RAR.generate``: cfg = (g - 1) * (1 - cos(((step / N) ** pow) * pi)) / 2 + 1, N = 256."""
    params = rar.rar_sampling(size)
    g, power, temperature = {
        "b": (16.0, 2.75, 1.0),
        "l": (15.5, 2.5, 1.02),
        "xl": (6.9, 1.5, 1.02),
        "xxl": (8.0, 1.2, 1.02),
    }[size]
    assert (params.cfg_scale, params.cfg_power, params.temperature) == (g, power, temperature)
    want = torch.cat(
        [(g - 1) * ((1 - torch.cos(((t / 256) ** (torch.ones(1) * power)) * torch.pi)) * 1 / 2) + 1 for t in range(256)]
    )
    assert torch.equal(cfg_scales(256, params), want)


def upstream_rar_generate(m, condition, guidance_scale, temperature, power, generator):
    """``RAR.generate`` (kv_cache=False) with its random draws taken from ``generator``."""
    torch.rand(condition.shape, generator=generator)  # preprocess_condition's dropout draw
    cond = condition + m.cfg.codebook_size + 1
    ids = torch.full((len(cond), 0), -1, dtype=torch.long)
    n = m.cfg.image_seq_len
    for step in range(n):
        scale = (guidance_scale - 1) * ((1 - torch.cos(((step / n) ** (torch.ones(1) * power)) * torch.pi)) * 1 / 2) + 1
        logits = upstream_rar_forward(
            m, torch.cat([ids, ids]), torch.cat([cond, torch.full_like(cond, m.cfg.null_class_id)])
        )
        c, u = logits[: len(cond)], logits[len(cond) :]
        logits = (u + (c - u) * scale)[:, -1] / temperature
        ids = torch.cat([ids, torch.multinomial(F.softmax(logits, dim=-1), 1, generator=generator)], dim=-1)
    return ids


def test_rar_sampling_equals_upstream_generate():
    gen = build_toy("rar")
    labels = torch.tensor([1, 8])
    p = gen.default_sampling
    with torch.no_grad():
        ref = upstream_rar_generate(
            gen.model, labels, p.cfg_scale, p.temperature, p.cfg_power, torch.Generator().manual_seed(11)
        )
    assert torch.equal(gen.generate_codes(labels, torch.Generator().manual_seed(11)), ref)


# ---------------------------------------------------------------------------------------------- reproducibility
@pytest.mark.parametrize("family", FAMILIES)
def test_same_seed_same_images_and_other_seed_differs(family):
    gen = build_toy(family)
    labels = torch.tensor([0, 3, 3, 8])
    a = gen.generate(labels, torch.Generator().manual_seed(7))
    b = build_toy(family).generate(labels, torch.Generator().manual_seed(7))
    c = gen.generate(labels, torch.Generator().manual_seed(8))
    assert a.dtype == torch.uint8 and a.shape == (4, 16, 16, 3)
    assert torch.equal(a, b) and not torch.equal(a, c)


_SCRIPT = """
import sys
sys.path.insert(0, {tests!r})
from test_baselines_ar_sampling import build_toy
from harness.sampling.runner import sample
from harness.runs.specs import ModelSpec, ProtocolSpec, RunSpec
for family in ("llamagen", "rar", "titok-ar"):
    spec = RunSpec(ModelSpec("toy-" + family), ProtocolSpec(name="toy", num_samples=10, num_classes=10, image_size=16,
                                                           chunk_size=3, seed=4))
    sample(spec, sys.argv[1] + "/" + family, device="cpu", progress=False, generator=build_toy(family))
"""


@pytest.mark.slow  # ~35 s: three toy families, 1 process and 2 gloo processes
def test_one_vs_two_processes_byte_identical(tmp_path):
    script = tmp_path / "toy_sample.py"
    script.write_text(_SCRIPT.format(tests=str(REPO / "tests")))
    env = {"PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"}
    one = subprocess.run(
        [sys.executable, str(script), str(tmp_path / "one")],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=HANG_GUARD_S,
    )
    assert one.returncode == 0, one.stderr[-2000:]
    two = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node",
            "2",
            str(script),
            str(tmp_path / "two"),
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=HANG_GUARD_S,
    )
    assert two.returncode == 0, two.stderr[-2000:]
    for family in FAMILIES:
        a = (tmp_path / "one" / family / "samples.npz").read_bytes()
        assert a == (tmp_path / "two" / family / "samples.npz").read_bytes(), family
        with np.load(tmp_path / "one" / family / "samples.npz") as z:
            assert z["arr_0"].shape == (10, 16, 16, 3) and len(np.unique(z["arr_0"].reshape(10, -1), axis=0)) > 1

"""The shared AR sampler (harness/nn/samplers/ar_sampling.py), static KV cache, RoPE table and norms."""

import math

import numpy as np
import pytest
import torch

from alitok.generator import ARConfig, build
from harness.core.interfaces import ARSampling
from harness.nn.layers.llama import swiglu_hidden
from harness.nn.layers.norms import RMSNorm
from harness.nn.layers.rope import apply_rope, cond_prefix_grid_rope_table
from harness.nn.samplers.ar_sampling import (
    ar_sample,
    ar_sample_naive,
    cfg_scale_at,
    cfg_scales,
    filter_logits,
    sample_next,
)

TINY = ARConfig(depth=2, width=64, num_heads=4, codebook_size=48, num_classes=6, num_prefix_tokens=3, grid=3)


@pytest.fixture(scope="module")
def model():
    m = build(TINY, generator=torch.Generator().manual_seed(0)).eval()
    # the official head starts at zero (uniform logits); give it weights so tokens depend on context
    torch.nn.init.normal_(m.output.weight, std=0.5, generator=torch.Generator().manual_seed(1))
    return m


def _cond(labels):
    cond = TINY.class_ids(torch.tensor(labels))[:, None]
    return cond, torch.full_like(cond, TINY.null_class_id)


# -- CFG schedule ----------------------------------------------------------------------------------
@pytest.mark.parametrize("g,power", [(16.0, 1.8), (6.0, 0.7), (13.0, 1.4)])
def test_power_cosine_schedule_matches_formula(g, power):
    T = 273
    p = ARSampling(cfg_scale=g, cfg_schedule="power-cosine", cfg_power=power)
    assert cfg_scale_at(0, T, p) == 1.0
    for t in (T // 2, T - 1):
        expected = 1 + (g - 1) * (1 - math.cos(math.pi * (t / T) ** power)) / 2
        assert cfg_scale_at(t, T, p) == pytest.approx(expected, rel=1e-6)  # float32 arithmetic
    # rises monotonically towards g without reaching it at the last step
    values = [cfg_scale_at(t, T, p) for t in range(T)]
    assert all(b >= a for a, b in zip(values, values[1:])) and values[-1] < g


@pytest.mark.parametrize("g,power", [(16.0, 1.8), (6.0, 0.7), (13.0, 1.4)])  # the B, L, XL presets
def test_power_cosine_schedule_is_bit_identical_to_upstream_float32(g, power):
    # ali-vilab/alitok modeling/ar.py, ARModel.generate, loop head (written from reading upstream):
    #   scale_pow = torch.ones((1), device=device) * guidance_scale_pow
    #   scale_step = (1 - torch.cos(((step / self.image_seq_len) ** scale_pow) * torch.pi)) * 1/2
    #   cfg_scale = (guidance_scale - 1) * scale_step + 1
    T = 273
    upstream = []
    for step in range(T):
        scale_pow = torch.ones(1) * power
        scale_step = (1 - torch.cos(((step / T) ** scale_pow) * torch.pi)) * 1 / 2
        upstream.append((g - 1) * scale_step + 1)
    upstream = torch.cat(upstream)
    ours = cfg_scales(T, ARSampling(cfg_scale=g, cfg_schedule="power-cosine", cfg_power=power))
    assert ours.dtype == torch.float32 and torch.equal(ours, upstream)
    # the Python-float64 formula the project used before differs at many steps
    f64 = torch.tensor([1 + (g - 1) * (1 - math.cos(math.pi * (t / T) ** power)) / 2 for t in range(T)]).float()
    assert not torch.equal(f64, upstream)


def test_linear_and_constant_schedules():
    assert cfg_scale_at(5, 10, ARSampling(cfg_scale=3.0, cfg_schedule="linear")) == pytest.approx(1 + 2.0 * 0.5)
    assert cfg_scale_at(0, 10, ARSampling(cfg_scale=3.0, cfg_schedule="constant")) == 3.0


# -- cached vs naive -------------------------------------------------------------------------------
PARAMS = {
    "cfg-power-cosine": ARSampling(cfg_scale=4.0, cfg_schedule="power-cosine", cfg_power=1.5, temperature=1.0),
    "cfg-topk-topp": ARSampling(cfg_scale=2.5, cfg_schedule="linear", temperature=0.9, top_k=10, top_p=0.8),
    "no-cfg": ARSampling(cfg_scale=1.0, temperature=1.3),
}


@pytest.mark.parametrize("name", list(PARAMS))
def test_cached_sampling_equals_full_recompute(model, name):
    params = PARAMS[name]
    cond, uncond = _cond([0, 1, 2, 3, 4, 5, 0, 1])
    a = ar_sample(model, cond, TINY.num_tokens, params, torch.Generator().manual_seed(7), uncond=uncond)
    b = ar_sample_naive(model, cond, TINY.num_tokens, params, torch.Generator().manual_seed(7), uncond=uncond)
    assert a.shape == (8, TINY.num_tokens) and a.dtype == torch.long
    assert torch.equal(a, b)
    assert int(a.min()) >= 0 and int(a.max()) < TINY.codebook_size
    assert len(torch.unique(a)) > 5  # really sampling, not a constant sequence


def test_cached_prefill_and_steps_match_forward_logits(model):
    tokens = torch.cat(
        [
            TINY.class_ids(torch.tensor([2, 4]))[:, None],
            torch.randint(0, TINY.codebook_size, (2, TINY.num_tokens - 1), generator=torch.Generator().manual_seed(0)),
        ],
        1,
    )
    full = model(tokens)
    model.reset_cache(2)
    step_logits = [model.prefill(tokens[:, :1])]
    for pos in range(1, tokens.shape[1]):
        step_logits.append(model.decode_step(tokens[:, pos], torch.tensor([pos])))
    torch.testing.assert_close(torch.stack(step_logits, 1), full, rtol=1e-5, atol=1e-5)


def test_kv_cache_is_preallocated_once(model):
    cond, uncond = _cond([0, 1])
    params = PARAMS["cfg-power-cosine"]
    seen, lengths = [], []
    original = model.decode_step

    def spy(token, pos, kv_len):
        seen.append(tuple((b.attn.kv_cache.k.data_ptr(), b.attn.kv_cache.v.data_ptr()) for b in model.blocks))
        lengths.append((int(pos), kv_len))
        return original(token, pos, kv_len)

    ar_sample(model, cond, TINY.num_tokens, params, torch.Generator().manual_seed(0), uncond=uncond, decode_step=spy)
    assert len(seen) == TINY.num_tokens - 1 and len(set(seen)) == 1
    # attention reads only a bucketed prefix of the cache, never fewer slots than are filled
    assert all(pos < kv <= min(1 + TINY.num_tokens, pos + 16) for pos, kv in lengths)
    cache = model.blocks[0].attn.kv_cache
    assert cache.shape == (4, TINY.num_heads, 1 + TINY.num_tokens, TINY.head_dim)  # doubled batch, full length
    # a second call with the same batch reuses the same buffers
    ar_sample(model, cond, TINY.num_tokens, params, torch.Generator().manual_seed(1), uncond=uncond, decode_step=spy)
    assert len(set(seen)) == 1
    assert "kv_cache" not in "".join(model.state_dict())  # never saved with the weights


def test_randomness_only_from_the_passed_generator(model):
    cond, uncond = _cond([3, 4, 5])
    params = PARAMS["cfg-power-cosine"]
    torch.manual_seed(1234)
    state = torch.get_rng_state()
    a = ar_sample(model, cond, TINY.num_tokens, params, torch.Generator().manual_seed(11), uncond=uncond)
    assert torch.equal(torch.get_rng_state(), state)
    torch.manual_seed(999)  # a different global state must not matter
    b = ar_sample(model, cond, TINY.num_tokens, params, torch.Generator().manual_seed(11), uncond=uncond)
    c = ar_sample(model, cond, TINY.num_tokens, params, torch.Generator().manual_seed(12), uncond=uncond)
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_cfg_needs_uncond(model):
    cond, _ = _cond([0])
    with pytest.raises(ValueError, match="uncond"):
        ar_sample(model, cond, 3, PARAMS["cfg-power-cosine"], torch.Generator())


def test_bf16_autocast_path_stays_close_to_fp32_on_the_same_context(model):
    cond, uncond = _cond([0, 1])
    seen = []

    def spy(*args):
        logits = model.decode_step(*args)
        seen.append(logits.float())
        return logits

    out = ar_sample(
        model,
        cond,
        TINY.num_tokens,
        PARAMS["no-cfg"],
        torch.Generator().manual_seed(0),
        dtype=torch.bfloat16,
        decode_step=spy,
    )
    assert out.shape == (2, TINY.num_tokens)
    assert model.blocks[0].attn.kv_cache.k.dtype == torch.bfloat16
    # teacher-forced fp32 forward over the tokens the bf16 run drew: the logits each cached bf16 step
    # produced (for tokens 1..T-1) against the uncached fp32 ones on the same context
    with torch.no_grad():
        ref = model(torch.cat([cond, out], dim=1))[:, cond.shape[1] : -1].float()
    got = torch.stack(seen, dim=1)
    assert got.shape == ref.shape
    # bf16 keeps 8 significant bits (unit roundoff 2^-9); a width-64, depth-2 network accumulates a few
    # dozen such roundings, so a few percent of the logit scale bounds it, while a wrong cache, position
    # or mask moves logits by their full scale
    scale = float(ref.abs().max())
    assert float((got - ref).abs().max()) <= 0.05 * scale
    assert float((got - ref).abs().max()) > 0  # the bf16 path really ran


# -- token draws -----------------------------------------------------------------------------------
def test_top_k_and_top_p_filters_against_numpy():
    logits = torch.tensor([[2.0, 1.0, 0.5, 0.0, -1.0, 3.0]])
    kept = torch.isfinite(filter_logits(logits, top_k=2))[0].tolist()
    assert kept == [True, False, False, False, False, True]
    p = np.exp(logits[0].numpy()) / np.exp(logits[0].numpy()).sum()
    order = np.argsort(-p)
    # nucleus: the smallest prefix of the sorted tokens whose mass reaches top_p
    for top_p in (0.3, 0.6, 0.9, 0.99):
        n = int(np.searchsorted(np.cumsum(p[order]), top_p) + 1)
        expected = np.zeros(6, bool)
        expected[order[:n]] = True
        assert torch.isfinite(filter_logits(logits, top_p=top_p))[0].numpy().tolist() == expected.tolist()


def test_sample_frequencies_follow_tempered_softmax():
    logits = torch.tensor([1.0, 0.0, -0.5, 2.0]).repeat(20000, 1)
    for temp in (0.7, 1.0, 2.0):
        draws = sample_next(logits, ARSampling(temperature=temp), torch.Generator().manual_seed(5))
        freq = torch.bincount(draws, minlength=4).double() / len(draws)
        expected = torch.softmax(logits[0].double() / temp, 0)
        # 4 sigma of a binomial proportion with n = 20000
        assert torch.all((freq - expected).abs() < 4 * torch.sqrt(expected * (1 - expected) / len(draws)))


# -- RoPE and norms --------------------------------------------------------------------------------
def test_cond_prefix_grid_rope_table_layout():
    hd, K, G = 16, 5, 4
    table = cond_prefix_grid_rope_table(hd, K, G)
    assert table.shape == (1 + K + G * G, hd // 2, 2)
    assert torch.count_nonzero(table[0]) == 0  # class token: cos = sin = 0
    for k in range(K):  # prefix: 1D position k over all hd/2 pairs
        for j in range(hd // 2):
            angle = k * 10000 ** (-2 * j / hd)
            assert table[1 + k, j, 0].item() == pytest.approx(math.cos(angle), abs=1e-6)
            assert table[1 + k, j, 1].item() == pytest.approx(math.sin(angle), abs=1e-6)
    for r in range(G):  # image: rows and cols K..K+G-1, first hd/4 pairs row, last hd/4 column
        for c in range(G):
            row = table[1 + K + r * G + c]
            for j in range(hd // 4):
                f = 10000 ** (-2 * j / (hd // 2))
                assert row[j, 0].item() == pytest.approx(math.cos((K + r) * f), abs=1e-6)
                assert row[hd // 4 + j, 1].item() == pytest.approx(math.sin((K + c) * f), abs=1e-6)


def test_apply_rope_is_complex_rotation_and_zeroes_class_token():
    hd, K, G = 16, 3, 2
    table = cond_prefix_grid_rope_table(hd, K, G)
    x = torch.randn(2, 3, table.shape[0], hd, generator=torch.Generator().manual_seed(0))
    out = apply_rope(x, table)
    ref = torch.view_as_real(
        torch.view_as_complex(x.reshape(*x.shape[:-1], hd // 2, 2)) * torch.complex(table[..., 0], table[..., 1])
    ).flatten(-2)
    torch.testing.assert_close(out, ref)
    assert torch.count_nonzero(out[:, :, 0]) == 0  # LlamaGen quirk kept for checkpoint parity
    # rotations preserve norms of every other token
    torch.testing.assert_close(out[:, :, 1:].norm(dim=-1), x[:, :, 1:].norm(dim=-1))


def test_rope_scores_depend_on_relative_prefix_position():
    hd = 8
    table = cond_prefix_grid_rope_table(hd, 8, 1)[1:9]  # prefix rows: 1D positions 0..7
    q, k = (
        torch.randn(hd, generator=torch.Generator().manual_seed(1)),
        torch.randn(hd, generator=torch.Generator().manual_seed(2)),
    )
    rq = apply_rope(q.expand(1, 1, 8, hd), table)[0, 0]
    rk = apply_rope(k.expand(1, 1, 8, hd), table)[0, 0]
    assert (rq[5] @ rk[2]).item() == pytest.approx((rq[4] @ rk[1]).item(), rel=1e-4)


def test_rmsnorm_and_swiglu_hidden():
    x = torch.randn(3, 10, generator=torch.Generator().manual_seed(0))
    norm = RMSNorm(10, eps=1e-5)
    torch.nn.init.normal_(norm.weight, generator=torch.Generator().manual_seed(1))
    expected = x / torch.sqrt((x**2).mean(-1, keepdim=True) + 1e-5) * norm.weight
    torch.testing.assert_close(norm(x), expected)
    assert [swiglu_hidden(d) for d in (768, 1024, 1280)] == [
        2048,
        2816,
        3584,
    ]  # ali-vilab/alitok modeling/ar.py (LlamaGen's find_multiple rule)


def test_device_generator_keeps_a_generator_of_the_right_device():
    from harness.nn.samplers.ar_sampling import device_generator

    g = torch.Generator().manual_seed(3)
    assert device_generator(g, torch.device("cpu")) is g


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_a_fresh_cpu_generator_stands_for_upstreams_cuda_stream_batch_after_batch():
    # upstream: torch.manual_seed(s), then draws on the CUDA generator that call seeded, batch after batch
    from harness.nn.samplers.ar_sampling import device_generator

    cpu = torch.Generator().manual_seed(7)
    ref = torch.Generator(device="cuda").manual_seed(7)
    for _ in range(2):  # a second call with the untouched CPU generator continues the same device stream
        g = device_generator(cpu, torch.device("cuda"))
        assert torch.equal(torch.rand(5, device="cuda", generator=g), torch.rand(5, device="cuda", generator=ref))
    used = torch.Generator().manual_seed(7)
    torch.rand(1, generator=used)  # drawn from: no upstream stream, a seed derived from its state
    assert not torch.equal(
        torch.rand(5, device="cuda", generator=device_generator(used, torch.device("cuda"))),
        torch.rand(5, device="cuda", generator=torch.Generator(device="cuda").manual_seed(7)),
    )

"""The shared AR generator class (harness/nn/models/ar_generator.py) with a second, toy family; top-p
against the Hugging Face formula LlamaGen copies; LlamaGen's cfg_interval."""

import pytest
import torch
from torch import nn

from harness.core.interfaces import ARSampling, Tokenizer
from harness.nn.layers.attention import KVCache
from harness.nn.layers.llama import LlamaBlock
from harness.nn.layers.rope import rope_table_1d
from harness.nn.models.ar_generator import ARGenerator
from harness.nn.samplers.ar_sampling import _combine, ar_sample, ar_sample_naive, filter_logits, guided_at


# -- a second AR family from ARGenerator: LlamaGen-style (class table with a null row), 1D RoPE -----
class ToyGPT(nn.Module):
    num_classes, num_tokens, codebook_size = 5, 6, 32

    def __init__(self):
        super().__init__()
        self.cls, self.tok = nn.Embedding(self.num_classes + 1, 32), nn.Embedding(self.codebook_size, 32)
        self.block, self.head = LlamaBlock(32, 2), nn.Linear(32, self.codebook_size)
        self.rope = rope_table_1d(torch.arange(1 + self.num_tokens), 16)
        self.mask = torch.tril(torch.ones(1 + self.num_tokens, 1 + self.num_tokens, dtype=torch.bool))

    def condition_tokens(self, labels):
        return labels[:, None]

    def null_condition_tokens(self, cond):
        return torch.full_like(cond, self.num_classes)

    def reset_cache(self, batch, dtype=torch.float32):
        self.block.attn.kv_cache = KVCache(batch, 2, 1 + self.num_tokens, 16, dtype)

    def free_cache(self):
        self.block.attn.kv_cache = None

    def _run(self, h, pos, kv_len):
        return self.head(self.block(h, self.rope[pos], pos, self.mask[pos, :kv_len], kv_len)[:, -1])

    def prefill(self, cond):
        return self._run(self.cls(cond), torch.arange(cond.shape[1]), cond.shape[1])

    def decode_step(self, token, pos, kv_len):
        return self._run(self.tok(token[:, None]), pos, kv_len)

    def forward(self, tokens):  # [class | codes] -> logits at every position
        h = torch.cat([self.cls(tokens[:, :1]), self.tok(tokens[:, 1:])], 1)
        return self.head(self.block(h, self.rope[: h.shape[1]]))


class ToyTokenizer(Tokenizer):
    name, image_size, quantization, num_tokens, codebook_size = "toy-tok", 2, "truncate", 6, 32

    def encode(self, images):
        raise NotImplementedError

    def decode(self, codes):  # codes [B, 6] -> 2x2 RGB, a fixed pixel value per code
        return (codes[:, :4, None] * 8).to(torch.uint8).expand(-1, 4, 3).reshape(-1, 2, 2, 3)


def test_a_second_family_runs_on_the_shared_generator():
    torch.manual_seed(0)
    model = ToyGPT()
    params = ARSampling(cfg_scale=3.0, cfg_schedule="linear", temperature=1.1)
    gen = ARGenerator(model, ToyTokenizer(), name="toy", sampling=params)
    labels = torch.tensor([0, 4, 2])
    codes = gen.generate_codes(labels, torch.Generator().manual_seed(1))
    # same tokens as the naive full recompute driven by the family's own cond/null tokens
    cond = model.condition_tokens(labels)
    naive = ar_sample_naive(
        model, cond, 6, params, torch.Generator().manual_seed(1), uncond=model.null_condition_tokens(cond)
    )
    assert torch.equal(codes, naive) and codes.shape == (3, 6)
    images = gen.generate(labels, torch.Generator().manual_seed(1))
    assert images.dtype == torch.uint8 and images.shape == (3, 2, 2, 3)
    assert torch.equal(images, ToyTokenizer().decode(codes))
    info = gen.info()
    assert info["num_tokens"] == 6 and info["presample_draws"] is False and info["config"] is None
    with pytest.raises(ValueError, match="labels"):
        gen.generate(torch.tensor([5]), torch.Generator())


def test_bf16_generator_casts_the_model_once():
    model = ToyGPT()
    gen = ARGenerator(model, ToyTokenizer(), name="toy", sampling=ARSampling(cfg_scale=2.0), dtype=torch.bfloat16)
    assert all(p.dtype == torch.bfloat16 for p in model.parameters())
    codes = gen.generate_codes(torch.tensor([1, 2]), torch.Generator().manual_seed(0))
    assert codes.shape == (2, 6) and model.block.attn.kv_cache.k.dtype == torch.bfloat16


# -- top-p: Hugging Face transformers v3.2.0 top_k_top_p_filtering, as LlamaGen generate.py copies it
def _hf_top_p(logits, top_p):
    logits = logits.clone()
    sorted_logits, sorted_indices = torch.sort(logits, descending=True)
    cumulative_probs = torch.cumsum(torch.softmax(sorted_logits, dim=-1), dim=-1)
    sorted_indices_to_remove = cumulative_probs > top_p
    sorted_indices_to_remove[..., 1:] = sorted_indices_to_remove[..., :-1].clone()
    sorted_indices_to_remove[..., 0] = 0
    indices_to_remove = sorted_indices_to_remove.scatter(1, sorted_indices, sorted_indices_to_remove)
    logits[indices_to_remove] = -float("inf")
    return logits


def test_top_p_equals_the_hugging_face_formula_including_the_crossing_token():
    logits = torch.randn(64, 50, generator=torch.Generator().manual_seed(0)) * 3
    for top_p in (0.05, 0.3, 0.6, 0.9, 0.999):
        assert torch.equal(filter_logits(logits, top_p=top_p), _hf_top_p(logits, top_p))
    # p exactly equal to a cumulative mass: HF keeps the next token too (cum > p, shifted)
    row = logits[:1]
    cum = torch.softmax(torch.sort(row, descending=True).values, -1).cumsum(-1)
    tie = float(cum[0, 2])
    kept = torch.isfinite(filter_logits(row, top_p=tie)).sum().item()
    assert kept == torch.isfinite(_hf_top_p(row, tie)).sum().item() == 4


# -- cfg_interval: LlamaGen decode_n_tokens switches guidance off once i > cfg_interval ------------
@pytest.mark.parametrize("interval", [-1, 0, 3])
def test_cfg_interval_follows_llamagen(interval):
    n = 8
    expected, flag = [True], True  # prefill (token 0) is always guided
    for i in range(n - 1):  # LlamaGen: decode step i makes token i + 1
        if interval > -1 and i > interval:
            flag = False
        expected.append(flag)
    params = ARSampling(cfg_scale=4.0, cfg_interval=interval)
    assert [guided_at(t, params) for t in range(n)] == expected
    logits = torch.randn(4, 10, generator=torch.Generator().manual_seed(0))
    scales = torch.full((n,), 4.0)
    for t in range(n):
        out = _combine(logits, t, scales, params, True)
        c, u = logits.chunk(2)
        assert torch.equal(out, u + (c - u) * 4.0 if expected[t] else c)


def test_cfg_interval_changes_sampling_only_after_the_interval():
    torch.manual_seed(0)
    model = ToyGPT().eval()
    cond = model.condition_tokens(torch.tensor([1, 2, 3, 4]))
    uncond = model.null_condition_tokens(cond)
    run = lambda p: ar_sample(model, cond, 6, p, torch.Generator().manual_seed(3), uncond=uncond)  # noqa: E731
    always = run(ARSampling(cfg_scale=6.0))
    assert torch.equal(always, run(ARSampling(cfg_scale=6.0, cfg_interval=10)))
    early = run(ARSampling(cfg_scale=6.0, cfg_interval=0))  # guided tokens 0 and 1 only
    assert torch.equal(early[:, :2], always[:, :2])


@pytest.mark.parametrize("name", ["alitok-tiny", "llamagen-tiny", "titok-ar-tiny"])
def test_kv_cache_off_draws_the_cached_tokens_in_every_family(name):
    from harness.core.registry import generators, load_plugins

    load_plugins()
    gen = generators.get(name)(device="cpu")
    labels = torch.tensor([1, 2, 7])
    cached = gen.generate_codes(labels, torch.Generator().manual_seed(0))
    gen.kv_cache = False  # full causal recompute per step (bench --no-kv-cache)
    assert torch.equal(gen.generate_codes(labels, torch.Generator().manual_seed(0)), cached)
    assert gen.info()["kv_cache"] == "off"

"""Logits parity with the official AliTok AR architecture, after the sampler's speed changes.

``_Official`` is a port of ali-vilab/alitok ``modeling/ar.py`` (read from the Xudangliatiger/alitok
mirror, commit 6cba0a9): ``precompute_freqs_cis`` (1D, via ``torch.polar``, one zero row for the
class token), ``precompute_freqs_cis_2d`` (grid coordinates from 17), ``apply_rotary_emb`` on
``[b, seq, h, dim]``, ``RMSNorm``, ``FeedForward`` (w1/w3/w2), ``Attention`` (fused qkv with bias,
QK-norm before RoPE, concatenating KV cache) and ``forward_fn`` (class token prepended, head on
every position; with a filled cache only the last token). It is loaded *strictly* with our model's
state dict (the official key names), and our teacher-forced and KV-cached (bucketed attention)
logits must agree with it within 1e-5.
"""
import contextlib
import dataclasses

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from alitok.generator import PRESETS, build
from harness.nn import decode_attention
from harness.nn.packed_linear import PackedLinears


def _freqs_1d(seq_len, n_elem, cls_token_num=1, base=10000):
    freqs = 1.0 / (base ** (torch.arange(0, n_elem, 2)[: (n_elem // 2)].float() / n_elem))
    freqs = torch.outer(torch.arange(seq_len), freqs)
    cis = torch.polar(torch.ones_like(freqs), freqs)
    return torch.cat([torch.zeros(cls_token_num, n_elem // 2, 2), torch.stack([cis.real, cis.imag], dim=-1)])


def _freqs_2d(start, grid, n_elem, base=10000):
    half = n_elem // 2
    freqs = 1.0 / (base ** (torch.arange(0, half, 2)[: (half // 2)].float() / half))
    freqs = torch.outer(torch.arange(start, start + grid), freqs)
    grid_f = torch.cat([freqs[:, None, :].expand(-1, grid, -1), freqs[None, :, :].expand(grid, -1, -1)], dim=-1)
    return torch.stack([torch.cos(grid_f), torch.sin(grid_f)], dim=-1).flatten(0, 1)


def _rotary(x, freqs):  # x [b, seq, h, d]
    xs = x.float().reshape(*x.shape[:-1], -1, 2)
    f = freqs.view(1, xs.size(1), 1, xs.size(3), 2)
    out = torch.stack([xs[..., 0] * f[..., 0] - xs[..., 1] * f[..., 1], xs[..., 1] * f[..., 0] + xs[..., 0] * f[..., 1]], -1)
    return out.flatten(3).type_as(x)


class _RMSNorm(nn.Module):
    def __init__(self, dim, eps=1e-5):
        super().__init__()
        self.eps, self.weight = eps, nn.Parameter(torch.ones(dim))

    def forward(self, x):
        xf = x.float()
        return (xf * torch.rsqrt(torch.mean(xf * xf, dim=-1, keepdim=True) + self.eps)).type_as(x) * self.weight


class _Attention(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.h, self.hd = heads, dim // heads
        self.qkv, self.proj = nn.Linear(dim, 3 * dim, bias=True), nn.Linear(dim, dim)
        self.q_norm, self.k_norm = _RMSNorm(self.hd), _RMSNorm(self.hd)
        self.cache = None

    def forward(self, x, freqs, mask):
        b, n, c = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.h, self.hd).permute(2, 0, 3, 1, 4).unbind(0)
        q, k = self.q_norm(q), self.k_norm(k)
        q = _rotary(q.transpose(1, 2), freqs).transpose(1, 2)
        k = _rotary(k.transpose(1, 2), freqs).transpose(1, 2)
        if self.cache is not None:
            k, v = torch.cat([self.cache[0], k], -2), torch.cat([self.cache[1], v], -2)
        self.cache = (k, v)
        return self.proj(F.scaled_dot_product_attention(q, k, v, attn_mask=mask).transpose(1, 2).reshape(b, n, c))


class _Block(nn.Module):
    def __init__(self, dim, heads, hidden):
        super().__init__()
        self.norm1, self.attn, self.norm2 = _RMSNorm(dim), _Attention(dim, heads), _RMSNorm(dim)
        self.mlp = nn.Module()
        self.mlp.w1, self.mlp.w3 = nn.Linear(dim, hidden, bias=False), nn.Linear(dim, hidden, bias=False)
        self.mlp.w2 = nn.Linear(hidden, dim, bias=False)

    def forward(self, x, freqs, mask):
        x = x + self.attn(self.norm1(x), freqs, mask)
        h = self.norm2(x)
        return x + self.mlp.w2(F.silu(self.mlp.w1(h)) * self.mlp.w3(h))


class _Official(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        d, hd = cfg.width, cfg.head_dim
        hidden = int(2 * (4 * d) / 3)
        hidden = hidden if hidden % 256 == 0 else hidden + 256 - hidden % 256
        self.blocks = nn.ModuleList(_Block(d, cfg.num_heads, hidden) for _ in range(cfg.depth))
        self.embeddings = nn.Embedding(cfg.vocab_size, d)
        self.norm, self.output = _RMSNorm(d), nn.Linear(d, cfg.codebook_size, bias=True)
        self.freqs = torch.cat([_freqs_1d(cfg.num_prefix_tokens, hd), _freqs_2d(cfg.num_prefix_tokens, cfg.grid, hd)])
        n = cfg.num_tokens + 1
        self.mask = torch.full((n, n), float("-inf")).triu_(1)

    def forward(self, seq, cached=False):  # seq = [class | codes]
        x, freqs, mask = self.embeddings(seq), self.freqs[: seq.shape[1]], self.mask[: seq.shape[1], : seq.shape[1]]
        if cached and self.blocks[0].attn.cache is not None:
            x, freqs, mask = x[:, -1:], freqs[-1:], None
        for blk in self.blocks:
            x = blk(x, freqs, mask)
        return self.output(self.norm(x))

    def reset(self):
        for blk in self.blocks:
            blk.attn.cache = None


@pytest.mark.parametrize("linear,attention", [("aten", "sdpa"), ("onednn-packed", "sdpa"), ("aten", "c"),
                                              ("onednn-packed", "c")])
def test_logits_match_the_official_architecture_teacher_forced_and_cached(linear, attention):
    # "onednn-packed" and attention "c" (the C decode kernel, harness.nn.decode_attention, forced on): the
    # CPU kernels ARGenerator runs where they win on the machine at hand, held to the same tolerance
    if attention == "c" and decode_attention.build_error():
        pytest.skip(f"no C compiler here: {decode_attention.build_error()}")
    cfg = dataclasses.replace(PRESETS["alitok-b"].config, depth=3, width=128, num_heads=4)
    ours = build(cfg, generator=torch.Generator().manual_seed(0)).eval()
    torch.nn.init.normal_(ours.output.weight, std=0.02, generator=torch.Generator().manual_seed(1))
    official = _Official(cfg).eval()
    official.load_state_dict(ours.state_dict(), strict=True)  # the official key names, nothing extra
    g = torch.Generator().manual_seed(2)
    seq = torch.cat([cfg.class_ids(torch.tensor([207, 3]))[:, None], torch.randint(0, 4096, (2, 272), generator=g)], 1)
    packed = PackedLinears(ours).active() if linear == "onednn-packed" else contextlib.nullcontext()
    with torch.no_grad(), packed, decode_attention.use(attention):
        ref = official(seq)  # the official model's own Linear layers are never packed
        torch.testing.assert_close(ours(seq), ref, rtol=0, atol=1e-5)
        official.reset()
        ref_cached = torch.cat([official(seq[:, :n], cached=True)[:, -1:] for n in range(1, 274)], 1)
        ours.reset_cache(2)
        step = [ours.prefill(seq[:, :1])]
        for pos in range(1, 273):
            step.append(ours.decode_step(seq[:, pos], torch.tensor([pos]), min(274, -(-(pos + 1) // 16) * 16)))
    torch.testing.assert_close(torch.stack(step, 1), ref_cached, rtol=0, atol=1e-5)
    torch.testing.assert_close(ref_cached, ref, rtol=0, atol=1e-5)

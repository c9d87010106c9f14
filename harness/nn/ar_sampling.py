"""The one autoregressive sampling loop (AliTok, LlamaGen, RAR-style decoders).

A model drives this loop through four methods (``CachedDecoder``):

- ``reset_cache(batch, dtype)``: make sure a static KV cache for ``batch`` rows exists (allocated
  once; reused while batch and dtype stay the same);
- ``prefill(cond [B, C]) -> logits [B, V]``: run the condition tokens (AliTok: the class token),
  filling cache positions 0..C-1, and return the logits for the first generated token;
- ``decode_step(token [B], pos [1]) -> logits [B, V]``: feed one token at sequence position ``pos``;
- ``forward(tokens [B, L]) -> logits [B, L, V]``: full causal recompute (training; the naive
  reference path the tests compare the cached path with).

Classifier-free guidance runs cond and uncond rows as one doubled batch ``[cond | uncond]``; the
combined logits are ``u + (c - u) * s_t`` with ``s_t`` from ``cfg_scale_at``; temperature divides
them; optional top-k / top-p filters; ``torch.multinomial(probs, 1, generator=...)`` draws. All
randomness comes from the generator passed in.

Parity with the official AliTok ``generate``: 273 steps, the first feeds only the class token, later
steps one token each; doubled-batch CFG with the power-cosine schedule, t = 0..272 and T = 273;
full softmax at temperature 1.0; fp32. Upstream draws ``torch.multinomial`` from the *global*
CUDA RNG seeded with ``seed + rank``; a ``torch.Generator(device="cuda").manual_seed(seed + rank)``
passed here produces the same Philox stream in principle, but that bit-exactness is UNVERIFIED
(no GPU was available when this was written), and any extra global-RNG draw upstream (e.g. a
different call order) would break it.
"""
from __future__ import annotations

import contextlib
import math
from typing import Iterator, Protocol

import torch

from harness.interfaces import ARSampling


class CachedDecoder(Protocol):
    def reset_cache(self, batch: int, dtype: torch.dtype = torch.float32) -> None: ...
    def prefill(self, cond: torch.Tensor) -> torch.Tensor: ...
    def decode_step(self, token: torch.Tensor, pos: torch.Tensor) -> torch.Tensor: ...
    def __call__(self, tokens: torch.Tensor) -> torch.Tensor: ...


def cfg_scale_at(t: int, num_steps: int, params: ARSampling) -> float:
    """Guidance scale at step ``t`` (0-based) of ``num_steps``.

    constant: g;  linear: 1 + (g-1) t/T;  power-cosine (MDT, AliTok): 1 + (g-1)(1 - cos(pi (t/T)^pow))/2.
    """
    g = params.cfg_scale
    if params.cfg_schedule == "constant":
        return g
    frac = t / num_steps
    if params.cfg_schedule == "linear":
        return 1.0 + (g - 1.0) * frac
    if params.cfg_schedule == "power-cosine":
        return 1.0 + (g - 1.0) * (1.0 - math.cos(math.pi * frac ** params.cfg_power)) / 2.0
    raise ValueError(f"unknown cfg schedule {params.cfg_schedule!r}")


def uses_cfg(params: ARSampling) -> bool:
    """Guidance needs the doubled batch only when some step's scale differs from 1."""
    return params.cfg_scale != 1.0


def filter_logits(logits: torch.Tensor, top_k: int = 0, top_p: float = 1.0) -> torch.Tensor:
    """Set logits outside the top-k and outside the top-p nucleus to -inf (0 / 1.0 = off)."""
    if top_k and top_k < logits.shape[-1]:
        kth = torch.topk(logits, top_k, dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p < 1.0:
        sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
        cum = torch.softmax(sorted_logits, dim=-1).cumsum(-1)
        drop_sorted = cum - torch.softmax(sorted_logits, dim=-1) >= top_p  # keep until p is reached
        drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
        logits = logits.masked_fill(drop, float("-inf"))
    return logits


def sample_next(logits: torch.Tensor, params: ARSampling, generator: torch.Generator) -> torch.Tensor:
    """``logits [B, V]`` -> LongTensor ``[B]`` drawn from the (filtered) softmax at the temperature."""
    logits = logits.float() / params.temperature
    logits = filter_logits(logits, params.top_k, params.top_p)
    probs = torch.softmax(logits, dim=-1)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)


def device_generator(generator: torch.Generator, device: torch.device) -> torch.Generator:
    """The generator itself if it lives on ``device``; else a ``device`` generator seeded from it.

    The derived seed is one draw from ``generator``, so the result is still a pure function of the
    caller's generator state (but not the same stream a device generator with that seed would give).
    """
    device = torch.device(device)
    if generator.device.type == device.type:
        return generator
    seed = int(torch.randint(0, 2**62, (1,), generator=generator))
    return torch.Generator(device=device).manual_seed(seed)


@contextlib.contextmanager
def precision(device: torch.device, dtype: torch.dtype = torch.float32, tf32: bool | None = None) -> Iterator[None]:
    """fp32 (default), or autocast to ``dtype``; TF32 matmuls switched for the block, then restored."""
    old = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    if tf32 is not None:
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = tf32
    try:
        with torch.autocast(device_type=torch.device(device).type, dtype=dtype, enabled=dtype != torch.float32):
            yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = old


def _combine(logits: torch.Tensor, t: int, num_steps: int, params: ARSampling, cfg: bool) -> torch.Tensor:
    if not cfg:
        return logits
    cond, uncond = logits.float().chunk(2, dim=0)
    return uncond + (cond - uncond) * cfg_scale_at(t, num_steps, params)


def _check_inputs(cond: torch.Tensor, uncond: torch.Tensor | None, params: ARSampling, num_tokens: int) -> bool:
    if cond.ndim != 2 or cond.dtype != torch.long:
        raise ValueError(f"cond tokens must be a LongTensor [B, C], got {cond.dtype} {tuple(cond.shape)}")
    if num_tokens < 1:
        raise ValueError(f"num_tokens must be >= 1, got {num_tokens}")
    cfg = uses_cfg(params)
    if cfg and (uncond is None or uncond.shape != cond.shape):
        raise ValueError("classifier-free guidance needs uncond tokens of the same shape as cond")
    return cfg


@torch.no_grad()
def ar_sample(model: CachedDecoder, cond: torch.Tensor, num_tokens: int, params: ARSampling,
              generator: torch.Generator, *, uncond: torch.Tensor | None = None,
              dtype: torch.dtype = torch.float32, tf32: bool | None = None,
              decode_step=None) -> torch.Tensor:
    """KV-cached sampling: prefill ``cond``, then one token per step. Returns LongTensor ``[B, num_tokens]``.

    ``decode_step`` may replace ``model.decode_step`` (e.g. a ``torch.compile``d version).
    """
    cfg = _check_inputs(cond, uncond, params, num_tokens)
    device = cond.device
    x = torch.cat([cond, uncond]) if cfg else cond
    batch, n_cond = x.shape
    step = decode_step or model.decode_step
    out = torch.empty(cond.shape[0], num_tokens, dtype=torch.long, device=device)
    positions = torch.arange(n_cond, n_cond + num_tokens, device=device)
    with precision(device, dtype, tf32):
        model.reset_cache(batch, dtype)
        logits = model.prefill(x)  # logits for token 0
        for t in range(num_tokens):
            tok = sample_next(_combine(logits, t, num_tokens, params, cfg), params, generator)
            out[:, t] = tok
            if t + 1 < num_tokens:  # feed token t at sequence position n_cond + t
                logits = step(torch.cat([tok, tok]) if cfg else tok, positions[t:t + 1])
    return out


@torch.no_grad()
def ar_sample_naive(model: CachedDecoder, cond: torch.Tensor, num_tokens: int, params: ARSampling,
                    generator: torch.Generator, *, uncond: torch.Tensor | None = None,
                    dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Reference path: recompute the whole causal forward every step (no cache). Same draws."""
    cfg = _check_inputs(cond, uncond, params, num_tokens)
    seq = torch.cat([cond, uncond]) if cfg else cond
    out = torch.empty(cond.shape[0], num_tokens, dtype=torch.long, device=cond.device)
    with precision(cond.device, dtype):
        for t in range(num_tokens):
            logits = model(seq)[:, -1]
            tok = sample_next(_combine(logits, t, num_tokens, params, cfg), params, generator)
            out[:, t] = tok
            seq = torch.cat([seq, (torch.cat([tok, tok]) if cfg else tok)[:, None]], dim=1)
    return out

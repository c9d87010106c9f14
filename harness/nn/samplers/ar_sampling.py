"""The one autoregressive sampling loop (AliTok, LlamaGen, RAR-style decoders).

A model drives this loop through four methods (``CachedDecoder``):

- ``reset_cache(batch, dtype)``: make sure a static KV cache for ``batch`` rows exists (allocated
  once; reused while batch and dtype stay the same);
- ``prefill(cond [B, C]) -> logits [B, V]``: run the condition tokens (AliTok, LlamaGen: the class
  token), filling cache positions 0..C-1, and return the logits for the first generated token. A
  model conditioned outside the sequence (RAR's adaLN) keeps what it needs from ``cond`` here;
- ``decode_step(token [B], pos [1], kv_len) -> logits [B, V]``: feed one token at sequence position
  ``pos``, attending over cache slots ``0..kv_len-1`` only (``kv_len > pos``; a bucketed length, so
  a compiled step sees few shapes and never pays for the empty tail of the cache);
- ``forward(tokens [B, L]) -> logits [B, L, V]``: full causal recompute (training; the naive
  reference path the tests compare the cached path with).

Classifier-free guidance runs cond and uncond rows as one doubled batch ``[cond | uncond]``; the
combined logits are ``u + (c - u) * s_t`` with ``s_t`` from ``cfg_scales`` (float32 tensor
arithmetic, as upstream computes it); outside ``cfg_interval`` the conditional logits are used.
Temperature divides them; optional top-k / top-p filters (Hugging Face semantics);
``torch.multinomial(probs, 1, generator=...)`` draws. All randomness comes from the generator
passed in.

Parity with the official AliTok ``generate`` (ali-vilab/alitok ``modeling/ar.py``): 273 steps, the
first feeds only the class token, later steps one token each; doubled-batch CFG with the
power-cosine schedule, t = 0..272 and T = 273; full softmax at temperature 1.0; fp32. The one
random call upstream makes before the first token (the label-dropout mask's ``rand_like`` in
``preprocess_condition``) is the model's to declare (``presample_draws``, see
``harness.nn.models.ar_generator``); tests/test_upstream_fixtures_*.py compare with tokens the official code drew.
"""

from __future__ import annotations

import contextlib
import weakref
from collections.abc import Iterator
from typing import Protocol

import torch

from harness.core import devices
from harness.core.interfaces import ARSampling

KV_BUCKET = 16  # decode steps attend over ceil((pos+1)/16)*16 cache slots


class CachedDecoder(Protocol):
    def reset_cache(self, batch: int, dtype: torch.dtype = torch.float32) -> None: ...
    def prefill(self, cond: torch.Tensor) -> torch.Tensor: ...
    def decode_step(self, token: torch.Tensor, pos: torch.Tensor, kv_len: int) -> torch.Tensor: ...
    def __call__(self, tokens: torch.Tensor) -> torch.Tensor: ...


def cfg_scales(num_steps: int, params: ARSampling, device: torch.device | str = "cpu") -> torch.Tensor:
    """Guidance scale of every step, float32 ``[num_steps]``, computed op for op as upstream does.

    constant: g;  linear: 1 + (g-1) t/T;  power-cosine (MDT, AliTok, RAR):
    1 + (g-1)(1 - cos(pi (t/T)^pow))/2. Upstream (AliTok ``generate``) evaluates the power-cosine
    form per step in float32 tensors: ``(t/T) ** pow_tensor``, ``* pi``, ``cos``, ``(1 - .) * 1/2``,
    ``(g-1) * . + 1``; the loop below repeats exactly those ops so every value is bit-identical.
    """
    g = params.cfg_scale
    if params.cfg_schedule == "constant":
        return torch.full((num_steps,), g, dtype=torch.float32, device=device)
    if params.cfg_schedule not in ("linear", "power-cosine"):
        raise ValueError(f"unknown cfg schedule {params.cfg_schedule!r}")
    power = torch.ones(1, device=device) * params.cfg_power
    out = []
    for t in range(num_steps):
        frac = t / num_steps
        if params.cfg_schedule == "linear":
            out.append((g - 1) * (torch.ones(1, device=device) * frac) + 1)
        else:
            step = (1 - torch.cos((frac**power) * torch.pi)) * 1 / 2
            out.append((g - 1) * step + 1)
    return torch.cat(out)


def cfg_scale_at(t: int, num_steps: int, params: ARSampling) -> float:
    """One step's scale as a Python float (reports, plots); the sampler uses ``cfg_scales``."""
    return float(cfg_scales(num_steps, params)[t])


def uses_cfg(params: ARSampling) -> bool:
    """Guidance needs the doubled batch only when some step's scale differs from 1."""
    return params.cfg_scale != 1.0


def guided_at(t: int, params: ARSampling) -> bool:
    """LlamaGen's ``cfg_interval``: token t is guided while decode step i = t-1 <= cfg_interval."""
    return params.cfg_interval < 0 or t - 1 <= params.cfg_interval


def filter_logits(logits: torch.Tensor, top_k: int = 0, top_p: float = 1.0) -> torch.Tensor:
    """Set logits outside the top-k and outside the top-p nucleus to -inf (0 / 1.0 = off).

    Top-p follows Hugging Face ``TopPLogitsWarper`` as LlamaGen copies it: sort descending, drop
    where the cumulative softmax is ``> top_p``, shifted right by one, so the token that crosses p
    is kept and the first token always survives. Nothing is sorted when both filters are off.
    """
    if top_k and top_k < logits.shape[-1]:
        kth = torch.topk(logits, top_k, dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p < 1.0:
        sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
        cum = torch.softmax(sorted_logits, dim=-1).cumsum(-1)
        drop_sorted = torch.zeros_like(cum, dtype=torch.bool)
        drop_sorted[..., 1:] = cum[..., :-1] > top_p
        drop = drop_sorted.scatter(-1, order, drop_sorted)
        logits = logits.masked_fill(drop, float("-inf"))
    return logits


def sample_next(logits: torch.Tensor, params: ARSampling, generator: torch.Generator) -> torch.Tensor:
    """``logits [B, V]`` -> LongTensor ``[B]`` drawn from the (filtered) softmax at the temperature."""
    logits = logits.float() / params.temperature
    if params.top_k or params.top_p < 1.0:
        logits = filter_logits(logits, params.top_k, params.top_p)
    probs = torch.softmax(logits, dim=-1)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)


def device_generator(generator: torch.Generator, device: torch.device) -> torch.Generator:
    """The generator itself if it lives on ``device``; else the ``device`` stream it stands for.

    A CPU generator still at the state ``manual_seed(s)`` left it stands for upstream's
    ``torch.manual_seed(s)``, which seeds the CUDA generator with the same ``s``: the device generator
    is seeded with ``s`` (official tokens on CUDA: scripts/gpu_upstream_parity.py). Calls that follow
    with the same CPU generator, untouched in between, continue that device stream, as upstream's
    next batch continues its global one. A CPU generator already drawn from gives a device generator
    seeded with one draw from it (a pure function of its state, but no upstream stream).
    """
    device = torch.device(device)
    if generator.device.type == device.type:
        return generator
    state = generator.get_state()
    known = _DEVICE_STREAMS.get(generator)
    if known is not None and known[0].device.type == device.type and torch.equal(known[1], state):
        return known[0]
    seed = generator.initial_seed()
    if not torch.equal(state, torch.Generator().manual_seed(seed).get_state()):
        seed = int(torch.randint(0, 2**62, (1,), generator=generator))
    stream = torch.Generator(device=device).manual_seed(seed)
    _DEVICE_STREAMS[generator] = (stream, generator.get_state())
    return stream


# CPU generator -> (its device stream, the CPU state when the stream was handed out)
_DEVICE_STREAMS: weakref.WeakKeyDictionary[torch.Generator, tuple[torch.Generator, torch.Tensor]] = (
    weakref.WeakKeyDictionary()
)


@contextlib.contextmanager
def precision(device: torch.device, dtype: torch.dtype = torch.float32, tf32: bool | None = None) -> Iterator[None]:
    """fp32 (default), or autocast to ``dtype``; TF32 matmuls switched for the block, then restored.

    Autocast re-casts every weight at every call under ``inference_mode``; the sampler avoids it by
    running a model whose weights already have the sampling dtype (``ARGenerator`` casts once).
    """
    with (
        devices.tf32(tf32),
        torch.autocast(device_type=torch.device(device).type, dtype=dtype, enabled=dtype != torch.float32),
    ):
        yield


def _combine(logits: torch.Tensor, t: int, scales: torch.Tensor, params: ARSampling, cfg: bool) -> torch.Tensor:
    if not cfg:
        return logits
    cond, uncond = logits.float().chunk(2, dim=0)
    if not guided_at(t, params):
        return cond
    return uncond + (cond - uncond) * scales[t : t + 1]


def _check_inputs(cond: torch.Tensor, uncond: torch.Tensor | None, params: ARSampling, num_tokens: int) -> bool:
    if cond.ndim != 2 or cond.dtype != torch.long:
        raise ValueError(f"cond tokens must be a LongTensor [B, C], got {cond.dtype} {tuple(cond.shape)}")
    if num_tokens < 1:
        raise ValueError(f"num_tokens must be >= 1, got {num_tokens}")
    cfg = uses_cfg(params)
    if cfg and (uncond is None or uncond.shape != cond.shape):
        raise ValueError("classifier-free guidance needs uncond tokens of the same shape as cond")
    return cfg


def _weight_dtype(model) -> torch.dtype | None:
    params = getattr(model, "parameters", None)
    p = next(params(), None) if params else None
    return p.dtype if p is not None else None


def kv_length(pos: int, max_len: int, bucket: int = KV_BUCKET) -> int:
    """Cache slots a query at ``pos`` attends over: ``pos+1`` rounded up to the bucket, capped."""
    return min(max_len, -(-(pos + 1) // bucket) * bucket)


@torch.no_grad()
def ar_sample(
    model: CachedDecoder,
    cond: torch.Tensor,
    num_tokens: int,
    params: ARSampling,
    generator: torch.Generator,
    *,
    uncond: torch.Tensor | None = None,
    dtype: torch.dtype | None = None,
    tf32: bool | None = None,
    decode_step=None,
    kv_bucket: int = KV_BUCKET,
) -> torch.Tensor:
    """KV-cached sampling: prefill ``cond``, then one token per step. Returns LongTensor ``[B, num_tokens]``.

    ``dtype=None`` samples in the model's weight dtype (cast the model once for bf16); another
    dtype autocasts (slower: weights are re-cast at every step). ``decode_step`` may replace
    ``model.decode_step`` (e.g. a ``torch.compile``d version).
    """
    cfg = _check_inputs(cond, uncond, params, num_tokens)
    device = cond.device
    weight_dtype = _weight_dtype(model) or torch.float32
    dtype = dtype or weight_dtype
    x = torch.cat([cond, uncond]) if cfg else cond
    batch, n_cond = x.shape
    max_len = n_cond + num_tokens
    step = decode_step or model.decode_step
    scales = cfg_scales(num_tokens, params, device) if cfg else None
    out = torch.empty(cond.shape[0], num_tokens, dtype=torch.long, device=device)
    positions = torch.arange(n_cond, max_len, device=device)
    autocast = dtype if dtype != weight_dtype else torch.float32
    with precision(device, autocast, tf32):
        model.reset_cache(batch, dtype)
        logits = model.prefill(x)  # logits for token 0
        for t in range(num_tokens):
            tok = sample_next(_combine(logits, t, scales, params, cfg), params, generator)
            out[:, t] = tok
            if t + 1 < num_tokens:  # feed token t at sequence position n_cond + t
                pos = n_cond + t
                logits = step(tok.repeat(2) if cfg else tok, positions[t : t + 1], kv_length(pos, max_len, kv_bucket))
    return out


@torch.no_grad()
def ar_sample_naive(
    model: CachedDecoder,
    cond: torch.Tensor,
    num_tokens: int,
    params: ARSampling,
    generator: torch.Generator,
    *,
    uncond: torch.Tensor | None = None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Reference path: recompute the whole causal forward every step (no cache). Same draws."""
    cfg = _check_inputs(cond, uncond, params, num_tokens)
    seq = torch.cat([cond, uncond]) if cfg else cond
    scales = cfg_scales(num_tokens, params, cond.device) if cfg else None
    out = torch.empty(cond.shape[0], num_tokens, dtype=torch.long, device=cond.device)
    with precision(cond.device, dtype):
        for t in range(num_tokens):
            logits = model(seq)[:, -1]
            tok = sample_next(_combine(logits, t, scales, params, cfg), params, generator)
            out[:, t] = tok
            seq = torch.cat([seq, (torch.cat([tok, tok]) if cfg else tok)[:, None]], dim=1)
    return out

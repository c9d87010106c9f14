"""CPU decode-step attention: one query per row over a static KV cache, in a small C kernel.

Why: at one query per (batch, head) row PyTorch's CPU ``scaled_dot_product_attention`` reads the
cache at 12-24 GB/s on the 2-core machine here, and ``index_copy_`` of the new key/value into the
cache costs ~0.1 ms per layer at 32 rows. With CFG at batch 16 the fp32 KV cache of AliTok-B
outgrows its weights (1.3 GB at the last step), so attention was 44 % of a step. The kernel
(``csrc/decode_attention.c``) writes the new key/value at ``pos`` and attends over slots
``0..pos`` in one streaming pass (online softmax, fp32 accumulation); optionally it first applies
the QK-norm and RoPE to the new query and key, which saves ~20 small PyTorch ops per layer and step
(results/speed/ar_optimisation.md).

Kept only where it wins: in ``"auto"`` mode the kernel runs a call only where a short measurement
on this machine (``harness.nn.kernels.kernel_choice``: at first use, per dtype and head geometry, cached by
CPU model, torch version and threads) found it faster than the SDPA path it replaces (QK-norm, RoPE,
``index_copy_`` and SDPA over the bucketed cache); ``"c"`` forces it wherever it applies.

It runs as the ``torch.library`` operator ``torch.ops.alitok_bench.decode_attention``
(``csrc/decode_attention_op.cpp``), which checks every tensor argument (device, dtype, sizes,
contiguity, position) before calling the C code, so a mismatch is an error naming it, not a read past
a buffer. The library is built at first use with the system compilers (``$CC`` / ``$CXX``) and cached by
a digest of its sources and flags under the project cache folder (``harness.nn.kernels.native_build``),
so a later process loads it without compiling; where it cannot be built every call falls back to SDPA
and ``build_error()`` says why. The results agree with SDPA to float rounding (summation order), not bit
for bit.

Which path a model takes is the model's own setting (``harness.nn.layers.attention.set_decode_kernel``;
``ARGenerator(attention=...)``), passed down to ``applies(kernel, ...)``: no process-wide switch.

Scope: CPU, fp32 or bf16 (query, new key/value and cache of one dtype), one query, no autograd,
eager only (a ``torch.compile``d step keeps SDPA, which Inductor can capture).
The caller's mask must be the causal row (every slot ``<= pos`` visible): true of every cached
decoder here (AliTok, LlamaGen, RAR), which all attend through ``harness.nn.layers.attention``.
"""

from __future__ import annotations

import threading
from pathlib import Path

import torch

CSRC = Path(__file__).with_name("csrc")
SOURCES = (CSRC / "decode_attention.c", CSRC / "decode_attention_op.cpp")
KERNELS = ("auto", "c", "sdpa")  # auto: the C kernel where it applies, builds and wins here; c: wherever it applies
DTYPES = (torch.float32, torch.bfloat16)
NAMESPACE = "alitok_bench"

_lock = threading.Lock()
_ops: dict[str, object] = {}  # march -> the loaded operator
_errors: dict[str, str] = {}  # march -> why it could not be built
_chosen: dict[tuple, bool] = {}  # (dtype, heads, head_dim, threads) -> the C kernel won the measurement


def load_op(march: str = "native"):
    """The operator built for ``-march=<march>`` (building or loading the cached library on first call), or
    None where it cannot be built. Builds for other instruction sets register under their own namespace
    (``alitok_bench_x86_64_v3``), so tests can run them beside the native one."""
    from harness.nn.kernels import native_build

    if march in _ops or march in _errors:
        return _ops.get(march)
    with _lock:
        if march not in _ops and march not in _errors:
            ns = NAMESPACE if march == "native" else f"{NAMESPACE}_{march.replace('-', '_')}"
            try:
                native_build.load(f"decode_attention_{march}", SOURCES, march=march, defines=[f"-DOP_NAMESPACE={ns}"])
                _ops[march] = getattr(torch.ops, ns).decode_attention.default
            except (OSError, RuntimeError) as e:  # BuildError, or a library the loader refuses
                _errors[march] = str(e) or type(e).__name__
    return _ops.get(march)


def build_error() -> str | None:
    """Why the native operator cannot be built here (None: it is built and loaded)."""
    load_op()
    return _errors.get("native")


def check_kernel(kernel: str) -> str:
    if kernel not in KERNELS:
        raise ValueError(f"unknown decode attention kernel {kernel!r}; choose from {', '.join(KERNELS)}")
    return kernel


def kernel_name(
    kernel: str = "auto",
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
    heads: int | None = None,
    head_dim: int | None = None,
) -> str:
    """What a decode step on this device and cache dtype runs under the setting ``kernel``: ``c-decode`` or
    ``sdpa``. For ``"auto"`` with the head geometry given, the machine's measured choice (made now if not yet)."""
    ok = check_kernel(kernel) != "sdpa" and torch.device(device).type == "cpu" and dtype in DTYPES
    ok = ok and load_op() is not None
    if ok and kernel == "auto" and heads is not None and head_dim is not None:
        ok = wins_here(dtype, heads, head_dim)
    return "c-decode" if ok else "sdpa"


def applies(kernel: str, q: torch.Tensor, k: torch.Tensor, cache_k: torch.Tensor) -> bool:
    """True where a model set to ``kernel`` takes this call through :func:`attend`: one query, CPU, one dtype,
    no autograd, eager, and (``"auto"``) the kernel won on this machine for this dtype and head geometry."""
    ok = (
        kernel != "sdpa"
        and q.shape[2] == 1
        and q.device.type == "cpu"
        and q.dtype in DTYPES
        and q.dtype == k.dtype == cache_k.dtype
        and not torch.is_grad_enabled()
        and not torch.compiler.is_compiling()
        and 2 <= q.shape[-1] <= 1024
        and q.shape[-1] % 2 == 0
        and load_op() is not None
    )
    return ok and (check_kernel(kernel) == "c" or wins_here(q.dtype, q.shape[1], q.shape[-1]))


def wins_here(dtype: torch.dtype, heads: int, head_dim: int) -> bool:
    """Did the C kernel beat the SDPA path on this machine at this geometry (measured at first use)?"""
    key = (dtype, heads, head_dim, torch.get_num_threads())
    hit = _chosen.get(key)
    if hit is None:
        from harness.nn.kernels import kernel_choice

        shapes = (
            f"{str(dtype).replace('torch.', '')} heads {heads} x {head_dim}, rows {'/'.join(map(str, _ROWS))}, "
            f"cache {_SLOTS} slots"
        )
        hit = kernel_choice.choose("decode-attention", shapes, _workloads(dtype, heads, head_dim)) == "c-decode"
        _chosen[key] = hit
    return hit


_ROWS = (4, 32)  # decode rows of batch 2 and 16 with CFG
_SLOTS = 274  # AliTok's 1 + 273 positions; the workload attends at the middle (the mean over a run)


def _workloads(dtype: torch.dtype, heads: int, head_dim: int) -> dict:
    """The C kernel and the SDPA path it replaces (``harness.nn.layers.attention``: QK-norm, RoPE, cache write,
    SDPA over the 16-slot-bucketed cache under a mask), on the same data, at every row count of ``_ROWS``."""
    import torch.nn.functional as F

    from harness.nn.layers.rope import apply_rope

    g = torch.Generator().manual_seed(0)
    pos = _SLOTS // 2
    kv_len = min(_SLOTS, -(-(pos + 1) // 16) * 16)
    cases = []
    for rows in _ROWS:
        q, k, v = (torch.randn(rows, heads, 1, head_dim, generator=g).to(dtype) for _ in range(3))
        ck, cv = (torch.randn(rows, heads, _SLOTS, head_dim, generator=g).to(dtype) for _ in range(2))
        w = torch.ones(head_dim, dtype=dtype)
        angle = torch.rand(head_dim // 2, generator=g)
        rope = torch.stack([angle.cos(), angle.sin()], -1)
        cases.append((q, k, v, ck, cv, w, rope))
    mask = torch.ones(1, kv_len, dtype=torch.bool)
    at = torch.tensor([pos])

    def c_kernel():
        with torch.no_grad():
            for q, k, v, ck, cv, w, rope in cases:
                attend(q, k, v, ck, cv, pos, q_norm=w, k_norm=w, eps=1e-5, rope=rope)

    def sdpa():
        with torch.no_grad():
            for q, k, v, ck, cv, w, rope in cases:
                qn, kn = F.rms_norm(q, (head_dim,), w, 1e-5), F.rms_norm(k, (head_dim,), w, 1e-5)
                qn, kn = apply_rope(qn, rope[None]), apply_rope(kn, rope[None])
                ck.index_copy_(2, at, kn.contiguous())
                cv.index_copy_(2, at, v.contiguous())
                F.scaled_dot_product_attention(qn, ck[:, :, :kv_len], cv[:, :, :kv_len], attn_mask=mask)

    return {"c-decode": c_kernel, "sdpa": sdpa}


def attend(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    cache_k: torch.Tensor,
    cache_v: torch.Tensor,
    pos: int,
    *,
    q_norm: torch.Tensor | None = None,
    k_norm: torch.Tensor | None = None,
    eps: float = 1e-5,
    rope: torch.Tensor | None = None,
    op=None,
) -> torch.Tensor:
    """Write the new ``k, v [B, H, 1, D]`` at slot ``pos`` of ``cache_k, cache_v [B, H, T, D]`` and
    attend ``q`` over slots ``0..pos`` -> ``[B, H, 1, D]``.

    ``q_norm`` / ``k_norm`` (RMSNorm weights ``[D]``, the cache's dtype) and ``rope`` (this position's
    ``[D/2, 2]`` float32 cos/sin rows) are applied to ``q`` and ``k`` first, as ``harness.nn.layers.attention``
    does, so a caller can pass the unnormalised views of its ``qkv`` output (read in place, no copies).
    ``op``: another build of the operator (``load_op(march)``); default the native one. A tensor that does
    not fit raises ``RuntimeError`` naming it; where the operator cannot be built, ``RuntimeError`` too.
    """
    op = op or load_op()
    if op is None:
        raise RuntimeError(f"the decode attention kernel is not available here: {build_error()}")
    return op(q, k, v, cache_k, cache_v, pos, q_norm, k_norm, eps, rope)

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

It is built at first use with the system C compiler (``$CC``, default ``gcc``; well under a second)
into a temporary folder that is removed once the library is loaded; where that fails (no compiler)
every call falls back to SDPA and ``kernel_name()`` says ``sdpa``. The results agree with SDPA to
float rounding (summation order), not bit for bit.

Scope: CPU, fp32 or bf16 (query, new key/value and cache of one dtype), one query, no autograd,
eager only (a ``torch.compile``d step keeps SDPA, which Inductor can capture).
The caller's mask must be the causal row (every slot ``<= pos`` visible): true of every cached
decoder here (AliTok, LlamaGen, RAR), which all attend through ``harness.nn.layers.attention``.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import torch

SOURCE = Path(__file__).with_name("csrc") / "decode_attention.c"
KERNELS = ("auto", "c", "sdpa")  # auto: the C kernel where it applies, builds and wins here; c: wherever it applies
_FUNCS = {torch.float32: "decode_attention_f32", torch.bfloat16: "decode_attention_bf16"}

_lock = threading.Lock()
_lib: ctypes.CDLL | None = None
_build_error: str | None = None
_mode = "auto"
_chosen: dict[tuple, bool] = {}  # (dtype, heads, head_dim, threads) -> the C kernel won the measurement


def _compile(march: str = "native") -> ctypes.CDLL:
    """Build and load the kernel for ``-march=<march>`` (tests build other instruction sets too)."""
    cc = os.environ.get("CC", "gcc")
    tmp = tempfile.mkdtemp(prefix="alitok-bench-attn-")
    try:
        so = os.path.join(tmp, "decode_attention.so")
        cmd = [cc, "-O3", f"-march={march}", "-fopenmp", "-shared", "-fPIC", str(SOURCE), "-o", so, "-lm"]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        if proc.returncode:
            raise RuntimeError(f"{cc} failed on {SOURCE}: {proc.stderr.strip().splitlines()[-1:]}")
        lib = ctypes.CDLL(so)  # libgomp.so.1 resolves to the copy PyTorch already loaded
    finally:
        shutil.rmtree(tmp, ignore_errors=True)  # the loaded library stays mapped
    ptr, long = ctypes.c_void_p, ctypes.c_long
    for name in _FUNCS.values():
        fn = getattr(lib, name)
        fn.argtypes = (
            [ptr] * 3
            + [long] * 2
            + [ptr] * 2
            + [ctypes.c_float]
            + [ptr] * 4
            + [long] * 5
            + [ctypes.c_float, ctypes.c_int]
        )
        fn.restype = ctypes.c_int
    return lib


def library() -> ctypes.CDLL | None:
    """The built kernel library, building it on first call; None where it cannot be built."""
    global _lib, _build_error
    if _lib is None and _build_error is None:
        with _lock:
            if _lib is None and _build_error is None:
                try:
                    _lib = _compile()
                except (OSError, RuntimeError, subprocess.SubprocessError) as e:
                    _build_error = str(e) or type(e).__name__
    return _lib


def build_error() -> str | None:
    library()
    return _build_error


@contextlib.contextmanager
def use(kernel: str) -> Iterator[None]:
    """``with use("sdpa"):`` turns the kernel off for the block, ``"c"`` forces it on where it applies,
    ``"auto"`` (the default) runs it where it applies and was measured faster on this machine."""
    global _mode
    if kernel not in KERNELS:
        raise ValueError(f"unknown decode attention kernel {kernel!r}; choose from {', '.join(KERNELS)}")
    before, _mode = _mode, kernel
    try:
        yield
    finally:
        _mode = before


def kernel_name(
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
    heads: int | None = None,
    head_dim: int | None = None,
) -> str:
    """What a decode step on this device and cache dtype uses now: ``c-decode`` or ``sdpa``. In
    ``"auto"`` mode with the head geometry given, the machine's measured choice (made now if not yet)."""
    ok = _mode in ("auto", "c") and torch.device(device).type == "cpu" and dtype in _FUNCS and library() is not None
    if ok and _mode == "auto" and heads is not None and head_dim is not None:
        ok = wins_here(dtype, heads, head_dim)
    return "c-decode" if ok else "sdpa"


def applies(q: torch.Tensor, k: torch.Tensor, cache_k: torch.Tensor) -> bool:
    """True where :func:`attend` takes this call: one query, CPU, one dtype, no autograd, eager, and
    (``"auto"``) the kernel won on this machine for this dtype and head geometry."""
    ok = (
        _mode in ("auto", "c")
        and q.shape[2] == 1
        and q.device.type == "cpu"
        and q.dtype in _FUNCS
        and q.dtype == k.dtype == cache_k.dtype
        and not torch.is_grad_enabled()
        and not torch.compiler.is_compiling()
        and 2 <= q.shape[-1] <= 1024
        and q.shape[-1] % 2 == 0
        and library() is not None
    )
    return ok and (_mode == "c" or wins_here(q.dtype, q.shape[1], q.shape[-1]))


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


def _strides(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> tuple[int, int] | None:
    """The shared (batch, head) element strides of three ``[B, H, 1, D]`` views, or None."""
    st = [(x.stride(0), x.stride(1), x.stride(3)) for x in (q, k, v)]  # dim 2 has size 1: any stride
    if st[0][2] != 1 or st[1] != st[0] or st[2] != st[0]:
        return None
    return st[0][0], st[0][1]


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
) -> torch.Tensor:
    """Write the new ``k, v [B, H, 1, D]`` at slot ``pos`` of ``cache_k, cache_v [B, H, T, D]`` and
    attend ``q`` over slots ``0..pos`` -> ``[B, H, 1, D]``.

    ``q_norm`` / ``k_norm`` (RMSNorm weights ``[D]``) and ``rope`` (this position's ``[D/2, 2]``
    cos/sin rows) are applied to ``q`` and ``k`` first, as ``harness.nn.layers.attention`` does, so a caller
    can pass the unnormalised views of its ``qkv`` output (read in place, no copies).
    """
    b, h, t, d = cache_k.shape
    if not (0 <= pos < t):
        raise IndexError(f"decode position {pos} outside the KV cache of {t} slots")
    if not (cache_k.is_contiguous() and cache_v.is_contiguous()):
        raise ValueError("the KV cache must be contiguous")
    if q.shape != (b, h, 1, d):
        raise ValueError(f"query {tuple(q.shape)} does not fit the KV cache {tuple(cache_k.shape)}")
    strides = _strides(q, k, v)
    if strides is None:
        q, k, v = (x.reshape(b, h, 1, d).clone(memory_format=torch.contiguous_format) for x in (q, k, v))
        strides = (h * d, d)
    if (q_norm is None) != (k_norm is None):
        raise ValueError("QK-norm needs both the q and the k weight")
    weights = [w.detach().to(q.dtype).contiguous() if w is not None else None for w in (q_norm, k_norm)]
    if rope is not None:
        rope = rope.detach().to(torch.float32).contiguous()
        if rope.numel() != d:
            raise ValueError(f"RoPE rows {tuple(rope.shape)} do not fit head size {d}")
    out = torch.empty(b, h, d, dtype=q.dtype)
    fn = getattr(library(), _FUNCS[q.dtype])
    ptr = [x.data_ptr() if x is not None else None for x in (*weights, rope)]
    rc = fn(
        q.data_ptr(),
        k.data_ptr(),
        v.data_ptr(),
        strides[0],
        strides[1],
        ptr[0],
        ptr[1],
        eps,
        ptr[2],
        cache_k.data_ptr(),
        cache_v.data_ptr(),
        out.data_ptr(),
        b,
        h,
        t,
        d,
        pos,
        d**-0.5,
        torch.get_num_threads(),
    )
    if rc:
        raise ValueError(f"decode attention kernel refused B={b}, H={h}, T={t}, D={d}, pos={pos}")
    return out.view(b, h, 1, d)

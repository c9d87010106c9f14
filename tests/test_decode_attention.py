"""The C decode-attention kernel against an independent float64 reference and PyTorch's own modules.

Reference: the textbook formulas (RMSNorm, RoPE as in harness.nn.layers.rope's docstring, softmax
attention over slots 0..pos) in float64; for bf16 the PyTorch modules the models use, which round
where the kernel must round.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F
from cli_runs import HANG_GUARD_S

from harness.nn.kernels import decode_attention
from harness.nn.layers.norms import RMSNorm
from harness.nn.layers.rope import apply_rope

pytestmark = pytest.mark.skipif(
    decode_attention.build_error() is not None, reason=f"no C compiler: {decode_attention.build_error()}"
)


def _rms(x, w, eps):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


def _rope(x, table):  # x [..., D], table [D/2, 2] = (cos, sin) per pair (x[2i], x[2i+1])
    a, b = x[..., 0::2], x[..., 1::2]
    c, s = table[:, 0], table[:, 1]
    return torch.stack([a * c - b * s, b * c + a * s], -1).flatten(-2)


def _reference(q, k, v, cache_k, cache_v, pos, qw, kw, eps, rope):
    """float64: the new k/v at ``pos``, then softmax(q.K^T / sqrt(D)) V over slots 0..pos."""
    q, k, v, ck, cv = (x.double() for x in (q, k, v, cache_k, cache_v))
    if qw is not None:
        q, k = _rms(q, qw.double(), eps), _rms(k, kw.double(), eps)
    if rope is not None:
        q, k = _rope(q, rope.double()), _rope(k, rope.double())
    ck, cv = ck.clone(), cv.clone()
    ck[:, :, pos], cv[:, :, pos] = k[:, :, 0], v[:, :, 0]
    s = (q @ ck[:, :, : pos + 1].transpose(-1, -2)) / q.shape[-1] ** 0.5
    return s.softmax(-1) @ cv[:, :, : pos + 1], ck, cv


def _case(d, b=3, h=4, t=70, seed=0, packed=True, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    if packed:  # views of one qkv Linear output [B, 1, 3, H, D], as CausalSelfAttention passes them
        qkv = torch.randn(b, 1, 3, h, d, generator=g).to(dtype)
        q, k, v = (x.transpose(1, 2) for x in qkv.unbind(2))
    else:
        q, k, v = (torch.randn(b, h, 1, d, generator=g).to(dtype) for _ in range(3))
    cache_k, cache_v = (torch.randn(b, h, t, d, generator=g).to(dtype) for _ in range(2))
    qw, kw = (1 + 0.1 * torch.randn(d, generator=g)).to(dtype), (1 + 0.1 * torch.randn(d, generator=g)).to(dtype)
    angle = torch.rand(d // 2, generator=g) * 6.3
    rope = torch.stack([angle.cos(), angle.sin()], -1)
    return q, k, v, cache_k, cache_v, qw, kw, rope


@pytest.mark.parametrize("d", [48, 64, 80, 40])  # 40: the generic (not unrolled) head size
@pytest.mark.parametrize("pos", [0, 1, 15, 16, 17, 40, 69])
@pytest.mark.parametrize("prologue", ["none", "rope", "norm+rope"])
def test_fp32_matches_the_float64_reference(d, pos, prologue):
    q, k, v, ck, cv, qw, kw, rope = _case(d, packed=prologue != "none", seed=pos)
    qw, kw = (qw, kw) if prologue == "norm+rope" else (None, None)
    rope = rope if prologue != "none" else None
    want, want_k, want_v = _reference(q, k, v, ck, cv, pos, qw, kw, 1e-5, rope)
    with torch.no_grad():
        out = decode_attention.attend(q, k, v, ck, cv, pos, q_norm=qw, k_norm=kw, eps=1e-5, rope=rope)
    torch.testing.assert_close(out.double(), want, rtol=0, atol=2e-6)
    torch.testing.assert_close(ck.double(), want_k, rtol=0, atol=2e-6)  # slot pos written, the rest untouched
    assert torch.equal(cv.double(), want_v)


@pytest.mark.parametrize("d", [48, 64, 40])
@pytest.mark.parametrize("pos", [31, 69])
def test_peaked_and_rising_scores_match_the_float64_reference(d, pos):
    """Scores hundreds apart (most weights underflow the vector exp's range) and keys that grow along the
    query, so the running max rises in every block and the partial sums are rescaled each time."""
    q, k, v, ck, cv, _, _, _ = _case(d, packed=False, seed=pos)
    q = 40 * q
    ck += torch.arange(ck.shape[2], dtype=torch.float32)[:, None] * 0.05 * q / q.norm(dim=-1, keepdim=True)
    want, ck_ref, cv_ref = _reference(q, k, v, ck, cv, pos, None, None, 1e-5, None)
    with torch.no_grad():
        sdpa = F.scaled_dot_product_attention(q, ck_ref[:, :, : pos + 1].float(), cv_ref[:, :, : pos + 1].float())
        out = decode_attention.attend(q, k, v, ck, cv, pos)
    # scores near 300 carry fp32 rounding of ~3e-5 into the weights: as accurate as PyTorch's own fp32 SDPA
    sdpa_err = (sdpa.double() - want).abs().max().item()
    assert (out.double() - want).abs().max().item() <= max(2e-6, 1.5 * sdpa_err)


@pytest.mark.parametrize("pos", [0, 33, 69])
def test_bf16_rounds_where_the_pytorch_modules_round(pos):
    q, k, v, ck, cv, qw, kw, rope = _case(48, dtype=torch.bfloat16, seed=pos)
    qn, kn = RMSNorm(48), RMSNorm(48)
    qn.weight.data, kn.weight.data = qw.clone(), kw.clone()
    with torch.no_grad():
        q_ref = apply_rope(qn(q), rope[None])  # RMSNorm then RoPE, in bf16 as the model runs them
        k_ref = apply_rope(kn(k), rope[None])
        ck_ref, cv_ref = ck.clone(), cv.clone()
        ck_ref[:, :, pos], cv_ref[:, :, pos] = k_ref[:, :, 0], v[:, :, 0]
        want = F.scaled_dot_product_attention(
            q_ref.float(), ck_ref[:, :, : pos + 1].float(), cv_ref[:, :, : pos + 1].float()
        )
        out = decode_attention.attend(q, k, v, ck, cv, pos, q_norm=qw, k_norm=kw, eps=1e-5, rope=rope)
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(ck, ck_ref, rtol=1e-2, atol=1e-2)  # at most a bf16 ulp apart
    assert (ck[:, :, pos] != ck_ref[:, :, pos]).float().mean() < 0.05  # the new key: almost all bit-equal
    assert torch.equal(cv, cv_ref)
    torch.testing.assert_close(out.float(), want, rtol=2e-2, atol=1e-2)


def test_the_models_setting_decides_where_the_kernel_applies():
    q, k, _, ck, *_ = _case(48)
    with torch.no_grad():
        assert decode_attention.applies("c", q, k, ck)
        assert not decode_attention.applies("c", torch.randn(3, 4, 2, 48), k, ck)  # two queries: prefill
        assert not decode_attention.applies("c", q, k, ck.to(torch.bfloat16))  # mixed dtypes
        assert not decode_attention.applies("sdpa", q, k, ck)
    assert decode_attention.kernel_name("sdpa") == "sdpa" and decode_attention.kernel_name("c") == "c-decode"
    assert not decode_attention.applies("c", q, k, ck)  # autograd on: the kernel has no backward
    with pytest.raises(ValueError, match="unknown decode attention kernel"):
        decode_attention.kernel_name("flash")


def test_two_models_in_one_process_keep_their_own_setting():
    """No process-wide switch: one model on SDPA, one on the kernel, the same weights, alternating calls."""
    from alitok.plugin import tiny_generator

    a, b = tiny_generator(device="cpu"), tiny_generator(device="cpu")
    a.attention, b.attention = "sdpa", "c"
    used = []
    real = decode_attention.attend
    labels = torch.tensor([0, 4])
    try:
        decode_attention.attend = lambda *x, **kw: used.append(1) or real(*x, **kw)
        a.generate_codes(labels, torch.Generator().manual_seed(1))
        assert not used
        b.generate_codes(labels, torch.Generator().manual_seed(1))
        assert used
        used.clear()
        a.generate_codes(labels, torch.Generator().manual_seed(1))
        assert not used  # b's setting did not leak into a
    finally:
        decode_attention.attend = real


def test_bad_positions_and_shapes_are_refused():
    q, k, v, ck, cv, *_ = _case(48, t=20)
    with torch.no_grad():
        with pytest.raises(RuntimeError, match="position 20 outside the KV cache of 20 slots"):
            decode_attention.attend(q, k, v, ck, cv, 20)
        with pytest.raises(RuntimeError, match="does not fit the KV cache"):
            decode_attention.attend(q[:1], k[:1], v[:1], ck, cv, 3)
        with pytest.raises(RuntimeError, match="needs both"):
            decode_attention.attend(q, k, v, ck, cv, 3, q_norm=torch.ones(48))


def test_wrong_dtypes_layouts_and_sizes_are_errors_not_memory_reads():
    """The operator's checks (csrc/decode_attention_op.cpp): each mismatch is a RuntimeError naming it; the
    cache stays untouched (nothing was written before the checks passed)."""
    q, k, v, ck, cv, qw, kw, rope = _case(48, t=20)
    before = ck.clone()
    bad = {
        "q is Double": dict(q=q.double()),
        "v is BFloat16": dict(v=v.to(torch.bfloat16)),
        "KV cache must be contiguous": dict(ck=ck.transpose(2, 3).contiguous().transpose(2, 3)),
        "v_cache .* differs from k_cache": dict(cv=cv[:, :, :10].contiguous()),
        "q_norm must be \\[48\\]": dict(qw=qw[:40]),
        "k_norm is Double": dict(kw=kw.double()),
        "rope must be a float32": dict(rope=rope.double()),
        "does not fit head size 48": dict(rope=rope[:20]),
        "cache must be float32 or bfloat16": dict(ck=ck.half(), cv=cv.half(), q=q.half(), k=k.half(), v=v.half()),
        "k_cache must be \\[B, H, T, D\\]": dict(ck=ck[0], cv=cv[0]),
        "head size 1026 must be even": dict(
            ck=torch.zeros(1, 1, 2, 1026), cv=torch.zeros(1, 1, 2, 1026), q=torch.zeros(1, 1, 1, 1026)
        ),
    }
    for message, change in bad.items():
        args = {**dict(q=q, k=k, v=v, ck=ck, cv=cv, qw=qw, kw=kw, rope=rope), **change}
        with torch.no_grad(), pytest.raises(RuntimeError, match=message):
            decode_attention.attend(
                args["q"], args["k"], args["v"], args["ck"], args["cv"], 5,
                q_norm=args["qw"], k_norm=args["kw"], eps=1e-5, rope=args["rope"],
            )  # fmt: skip
    assert torch.equal(ck, before)


def _sdpa_error_bound(q, ck, cv, pos):
    """A float32 error bound for one-query attention, from the standard rounding analysis (gamma_n = n u /
    (1 - n u), u = 2^-24): each score s_t = scale * q.k_t is off by at most gamma_D * scale * sum_d |q_d k_td|;
    the weights p_t = exp(s_t - m) / sum exp(. - m) then by a relative 2 max|ds| + gamma_n + 4 u (the shift,
    the sum over n slots, exp within 2 ulp, the division); out = sum_t p_t v_t adds gamma_n relative. Bound:
    sum_t p_t |v_t| (2 max|ds| + 2 gamma_n + 4 u), per output element, in float64."""
    u = 2.0**-24
    d, n = q.shape[-1], pos + 1
    gamma = lambda m: m * u / (1 - m * u)  # noqa: E731
    q, k, v = q.double(), ck[:, :, :n].double(), cv[:, :, :n].double()
    scale = d**-0.5
    ds = gamma(d) * scale * (q.abs() @ k.abs().transpose(-1, -2))  # [B, H, 1, n]
    p = ((q @ k.transpose(-1, -2)) * scale).softmax(-1)
    rel = 2 * ds.amax(-1, keepdim=True) + 2 * gamma(n) + 4 * u
    return (p @ v.abs()) * rel


@pytest.mark.parametrize("pos", [0, 16, 137, 273])
def test_operator_equals_sdpa_within_the_float32_error_bound(pos):
    """AliTok-B's geometry (16 heads x 48) at the CFG rows of batch 2, over a cache of 274 slots: the kernel
    and PyTorch's SDPA each lie within the rounding bound of the exact result, so within the sum of the two."""
    g = torch.Generator().manual_seed(pos)
    q, k, v = (torch.randn(4, 16, 1, 48, generator=g) for _ in range(3))
    ck, cv = (torch.randn(4, 16, 274, 48, generator=g) for _ in range(2))
    with torch.no_grad():
        out = decode_attention.attend(q, k, v, ck, cv, pos)
        sdpa = F.scaled_dot_product_attention(q, ck[:, :, : pos + 1], cv[:, :, : pos + 1])
    bound = _sdpa_error_bound(q, ck, cv, pos)
    assert ((out.double() - sdpa.double()).abs() <= 2 * bound).all()
    assert torch.equal(ck[:, :, pos : pos + 1], k) and torch.equal(cv[:, :, pos : pos + 1], v)


def test_the_build_is_cached_by_source_digest(tmp_path, monkeypatch):
    """A second load of an unchanged source runs no compiler (counted, not timed) and keeps the file
    (mtime); an edited source gets a library of its own."""
    from harness.nn.kernels import native_build

    path = native_build.library_path("decode_attention_native", decode_attention.SOURCES, defines=[
        f"-DOP_NAMESPACE={decode_attention.NAMESPACE}"
    ])  # fmt: skip
    assert path.is_file()  # built by the module's first use in this session
    mtime, runs = path.stat().st_mtime_ns, native_build.compiler_runs()
    code = (
        "from harness.nn.kernels import decode_attention as d, native_build as b;"
        "print(d.build_error(), b.compiler_runs())"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=HANG_GUARD_S)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["None", "0"]  # a fresh process: loaded from the cache, no compiler run
    assert path.stat().st_mtime_ns == mtime and native_build.compiler_runs() == runs
    edited = tmp_path / "decode_attention.c"
    edited.write_text(decode_attention.SOURCES[0].read_text() + "\n/* edited */\n")
    (tmp_path / "decode_attention.h").write_text((decode_attention.CSRC / "decode_attention.h").read_text())
    other = native_build.library_path("decode_attention_native", [edited, decode_attention.SOURCES[1]])
    assert other.parent != path.parent
    assert native_build.digest(decode_attention.SOURCES, defines=["-DX=1"]) != native_build.digest(
        decode_attention.SOURCES
    )  # flags count too


@pytest.mark.skipif(os.uname().machine != "x86_64", reason="x86-64 instruction-set levels")
@pytest.mark.parametrize("march", ["x86-64-v3", "x86-64"])  # AVX2 (e.g. AMD Zen 2/3 hosts), plain SSE2
def test_builds_without_avx512_compute_the_same(march):
    """The vector path is written with GCC vector extensions of 16 floats: on a CPU without AVX-512 the
    compiler splits them into AVX2 or SSE registers. Built for those levels, the kernel must still match."""
    op = decode_attention.load_op(march)
    assert op is not None, decode_attention._errors.get(march)
    for d, pos in ((48, 37), (64, 69), (40, 16)):  # vector path (D % 16 == 0) and the scalar one
        q, k, v, ck, cv, qw, kw, rope = _case(d, seed=pos)
        want, _, _ = _reference(q, k, v, ck, cv, pos, qw, kw, 1e-5, rope)
        with torch.no_grad():
            out = decode_attention.attend(q, k, v, ck, cv, pos, q_norm=qw, k_norm=kw, eps=1e-5, rope=rope, op=op)
        torch.testing.assert_close(out.double(), want, rtol=0, atol=2e-6)
    q, k, v, ck, cv, _, _, _ = _case(48, packed=False, seed=3)
    q = 40 * q  # peaked scores: the vector exp's underflow clamp
    want, ck_ref, cv_ref = _reference(q, k, v, ck, cv, 50, None, None, 1e-5, None)
    with torch.no_grad():
        sdpa = F.scaled_dot_product_attention(q, ck_ref[:, :, :51].float(), cv_ref[:, :, :51].float())
        out = decode_attention.attend(q, k, v, ck, cv, 50, op=op)
    assert (out.double() - want).abs().max().item() <= max(2e-6, 1.5 * (sdpa.double() - want).abs().max().item())


def test_one_openmp_runtime_after_the_build():
    decode_attention.load_op()
    with open("/proc/self/maps") as f:
        gomp = {line.split()[-1] for line in f if os.path.basename(line.split()[-1]).startswith("libgomp.so")}
    # the kernel's libgomp.so.1 is the copy PyTorch loaded (no second thread pool); vendored copies
    # under hashed names (scikit-learn's) are other libraries' own business
    assert len(gomp) == 1, gomp


def test_without_a_compiler_everything_falls_back_to_sdpa():
    code = (
        "import torch; from harness.nn.kernels import decode_attention as d; from alitok.plugin import tiny_generator;"
        "g = tiny_generator(device='cpu'); c = g.generate_codes(torch.tensor([1, 2]), torch.Generator().manual_seed(0));"
        "print(d.kernel_name(), g.attention_kernel(), 'failed' in (d.build_error() or ''), tuple(c.shape))"
    )
    env = {**os.environ, "CC": "false"}  # `false` exits 1: the build fails as without a compiler
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=HANG_GUARD_S)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split()[:3] == ["sdpa", "sdpa", "True"]


def test_generator_tokens_equal_with_the_kernel_and_with_sdpa():
    from alitok.plugin import tiny_generator

    g = tiny_generator(device="cpu")
    g.attention = "c"  # forced: "auto" may keep SDPA where the kernel loses on this machine
    assert g.attention_kernel() == "c-decode"
    labels = torch.tensor([0, 4, 7])
    fused = g.generate_codes(labels, torch.Generator().manual_seed(3))
    g.attention = "sdpa"
    assert g.attention_kernel() == "sdpa"
    assert torch.equal(g.generate_codes(labels, torch.Generator().manual_seed(3)), fused)


def test_inputs_with_different_layouts_are_copied_not_misread():
    q, k, v, ck, cv, *_ = _case(48, packed=False)
    k_other = k.transpose(0, 1).contiguous().transpose(0, 1)  # the same values, head-major memory
    assert k_other.stride()[:2] != q.stride()[:2]
    want, want_k, _ = _reference(q, k, v, ck, cv, 9, None, None, 0.0, None)
    with torch.no_grad():
        out = decode_attention.attend(q, k_other, v, ck, cv, 9)
    torch.testing.assert_close(out.double(), want, rtol=0, atol=2e-6)
    torch.testing.assert_close(ck.double(), want_k, rtol=0, atol=0)

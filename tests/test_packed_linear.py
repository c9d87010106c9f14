"""harness/nn/kernels/packed_linear: oneDNN Linear on packed weights agrees with F.linear and leaves the model as it was."""

import dataclasses

import pytest
import torch
from torch import nn

from harness.nn.kernels import packed_linear
from harness.nn.kernels.packed_linear import PackedLinears
from harness.nn.samplers.ar_sampling import ar_sample, ar_sample_naive

pytestmark = pytest.mark.skipif(
    not packed_linear.available("cpu", torch.float32), reason="this torch build has no oneDNN packed linear"
)


def _net(bias: bool) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(48, 96, bias=bias), nn.GELU(), nn.Linear(96, 24, bias=bias))


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("shape", [(1, 48), (4, 48), (2, 7, 48), (3, 1, 48)])
def test_packed_forward_equals_f_linear(bias, shape):
    net = _net(bias)
    x = torch.randn(*shape)
    ref = net(x)
    with torch.inference_mode(), PackedLinears(net).active():
        out = net(x)
    assert out.shape == ref.shape
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-6)  # summation order differs, nothing else


def test_strided_input_and_bf16():
    net = _net(True)
    x = torch.randn(5, 96)[:, ::2]  # a non-contiguous view
    with torch.inference_mode(), PackedLinears(net).active():
        torch.testing.assert_close(net(x), _net(True)(x), rtol=1e-5, atol=1e-6)
    net16 = _net(True).to(torch.bfloat16)
    x16 = torch.randn(4, 48).bfloat16()
    ref = net16(x16)
    with torch.inference_mode(), PackedLinears(net16).active():
        out = net16(x16)
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out.float(), ref.float(), rtol=2e-2, atol=2e-2)


def test_forward_is_restored_even_after_an_error_and_state_dict_untouched():
    net = _net(True)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    with pytest.raises(RuntimeError, match="boom"), PackedLinears(net).active():
        assert "forward" in vars(net[0])
        raise RuntimeError("boom")
    assert all("forward" not in vars(m) for m in net.modules())
    assert net.state_dict().keys() == before.keys()
    assert all(torch.equal(net.state_dict()[k], v) for k, v in before.items())


def test_a_changed_weight_is_repacked():
    net = _net(False)
    packed = PackedLinears(net)
    x = torch.randn(3, 48)
    with torch.inference_mode(), packed.active():
        first = net(x)
    with torch.no_grad():
        net[2].weight.mul_(2.0)  # in place: same storage, new version
    with torch.inference_mode(), packed.active():
        second = net(x)
    torch.testing.assert_close(second, 2 * first, rtol=1e-5, atol=1e-6)


def test_pack_ahead_and_release():
    net = _net(True)
    packed = PackedLinears(net)
    packed.pack()
    assert len(packed._packed) == 2  # both Linear layers, before any forward
    x = torch.randn(3, 48)
    with torch.inference_mode(), packed.active():
        torch.testing.assert_close(net(x), _net(True)(x), rtol=1e-5, atol=1e-6)
    packed.release()
    assert not packed._packed


def test_onednn_matmul_floor_kernel_computes_the_product():
    # floors.matmul_gflops times linear(a, b^T) as a @ b: check that identity on the same kernel
    a, b = torch.randn(64, 32), torch.randn(32, 40)
    w = torch.ops.mkldnn._reorder_linear_weight(b.t().contiguous(), None)
    torch.testing.assert_close(
        torch.ops.mkldnn._linear_pointwise(a, w, None, "none", [], ""), a @ b, rtol=1e-5, atol=1e-5
    )


def test_packed_cached_sampling_equals_packed_full_recompute():
    from alitok.generator import PRESETS, build
    from harness.core.interfaces import ARSampling

    cfg = dataclasses.replace(PRESETS["alitok-b"].config, depth=2, width=64, num_heads=4)
    model = build(cfg, generator=torch.Generator().manual_seed(0)).eval()
    torch.nn.init.normal_(model.output.weight, std=0.5, generator=torch.Generator().manual_seed(1))
    params = ARSampling(cfg_scale=4.0, cfg_schedule="linear", temperature=1.0)
    cond = cfg.class_ids(torch.tensor([3, 207, 999]))[:, None]
    uncond = torch.full_like(cond, cfg.null_class_id)
    with torch.inference_mode(), PackedLinears(model).active():
        a = ar_sample(model, cond, 40, params, torch.Generator().manual_seed(5), uncond=uncond)
        b = ar_sample_naive(model, cond, 40, params, torch.Generator().manual_seed(5), uncond=uncond)
    assert torch.equal(a, b) and len(torch.unique(a)) > 10


def _small_alitok():
    from alitok.generator import PRESETS, build

    cfg = dataclasses.replace(PRESETS["alitok-b"].config, depth=2, width=64, num_heads=4)
    model = build(cfg, generator=torch.Generator().manual_seed(0)).eval()
    nn.init.normal_(model.output.weight, std=0.5, generator=torch.Generator().manual_seed(1))
    return model


def _decode_logits(model, rows=4, steps=6):
    model.reset_cache(rows)
    out = [model.prefill(4097 + torch.arange(rows)[:, None] % 7)]
    for pos in range(1, steps):
        out.append(model.decode_step(out[-1].argmax(-1), torch.tensor([pos]), 16))
    return torch.stack(out)


def test_fused_gate_up_and_residual_adds_are_bit_equal_to_one_gemm_per_layer(monkeypatch):
    """Packed, a LlamaBlock runs w1 and w3 as one GEMM over [w1; w3] and adds each residual inside the proj and
    w2 GEMMs (oneDNN post-op). Each output column is the same dot product and each add the same fp32 sum,
    so the logits equal those of one packed GEMM per Linear and separate adds, bit for bit."""
    from harness.nn.layers import attention, llama

    model = _small_alitok()
    with torch.inference_mode(), PackedLinears(model).active():
        fused = _decode_logits(model)
    monkeypatch.setattr(PackedLinears, "_gated_pairs", lambda self: [])
    monkeypatch.setattr(llama, "add_linear", lambda r, lin, x: r + lin(x))
    monkeypatch.setattr(attention, "add_linear", lambda r, lin, x: r + lin(x))
    with torch.inference_mode(), PackedLinears(model).active():
        separate = _decode_logits(model)
    assert torch.equal(fused, separate)
    with torch.inference_mode():
        plain = _decode_logits(model)  # aten Linear: another summation order, float rounding apart
    torch.testing.assert_close(fused, plain, rtol=1e-4, atol=1e-4)


def test_a_packed_decode_step_runs_four_gemms_per_block_and_no_separate_residual_add():
    """What the fusion buys, counted (not timed): per block qkv, proj (+ residual), [w1; w3], w2 (+ residual);
    the head makes one more. Before: five GEMMs and two separate adds per block."""
    from torch.profiler import ProfilerActivity, profile

    from harness.nn.kernels import decode_attention
    from harness.nn.layers.attention import set_decode_kernel

    if decode_attention.build_error():
        pytest.skip(f"no C decode-attention kernel here: {decode_attention.build_error()}")
    model = _small_alitok()
    set_decode_kernel(model, "c")  # the attention in one op, so the adds counted are the blocks' own
    with torch.inference_mode(), PackedLinears(model).active():
        model.reset_cache(4)
        model.prefill(torch.full((4, 1), 4097))
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            model.decode_step(torch.zeros(4, dtype=torch.long), torch.tensor([1]), 16)
    counts = {e.key: e.count for e in prof.key_averages()}
    assert counts.get("mkldnn::_linear_pointwise", 0) == 4 * model.cfg.depth + 1
    assert counts.get("aten::add", 0) == 2 * model.cfg.depth + 1  # only the RMSNorms' "+ eps": no residual add
    # a fused layer called alone still gives its own output (the fused GEMM's half)
    mlp = model.blocks[0].mlp
    x = torch.randn(3, 64)
    with torch.inference_mode(), PackedLinears(model).active():
        w1, w3 = mlp.w1(x), mlp.w3(x)
    torch.testing.assert_close(w1, x @ mlp.w1.weight.T, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(w3, x @ mlp.w3.weight.T, rtol=1e-5, atol=1e-5)

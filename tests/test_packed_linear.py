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

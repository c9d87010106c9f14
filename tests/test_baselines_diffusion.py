"""DiT / SiT / LightningDiT / VAE baselines: meta-device parameter counts against closed forms and
published sizes, state-dict key names written from upstream code, strict loading, the plugins.

Upstream files read for the names: facebookresearch/DiT ``models.py`` (DiTBlock, FinalLayer, DiT,
embedders; timm Attention ``qkv/proj``, Mlp ``fc1/fc2``) and ``diffusion/respace.py``; a public copy
of hustvl/LightningDiT ``models/lightningdit.py`` (LightningDiTBlock: ``norm1/norm2`` RMSNorm,
``attn``, ``mlp`` SwiGLUFFN ``w12/w3``, ``adaLN_modulation``; FinalLayer ``norm_final`` RMSNorm);
the VAEs are in tests/test_baselines_vae.py.
"""

import pytest
import torch

from baselines.lightningdit import XL_1
from harness.core.errors import UserError
from harness.core.interfaces import DiffusionSampling
from harness.nn.checkpoints.checkpoint import CheckpointError
from harness.nn.layers.dit_blocks import DiT, named_config


def _count(module) -> int:
    return sum(p.numel() for p in module.parameters())


def _meta(build):
    with torch.device("meta"):
        return build()


# ---------------------------------------------------------------------------------------- counts
def dit_closed_form(depth, d, patch, c_in, grid, classes=1000, learn_sigma=True, swiglu=False, rmsnorm=False):
    out = 2 * c_in if learn_sigma else c_in
    hidden = 4 * d
    mlp = (
        (d * 2 * int(2 / 3 * hidden) + 2 * int(2 / 3 * hidden) + int(2 / 3 * hidden) * d + d)
        if swiglu
        else (d * hidden + hidden + hidden * d + d)
    )
    block = (d * 3 * d + 3 * d) + (d * d + d) + mlp + (d * 6 * d + 6 * d) + (2 * d if rmsnorm else 0)
    head = (d * 2 * d + 2 * d) + (d * patch * patch * out + patch * patch * out) + (d if rmsnorm else 0)
    embed = (c_in * patch * patch * d + d) + (256 * d + d + d * d + d) + (classes + 1) * d + grid * grid * d
    return embed + depth * block + head


def test_dit_xl2_count_is_675m():
    m = _meta(lambda: DiT(named_config("DiT-XL/2")))
    n = _count(m)
    assert n == dit_closed_form(28, 1152, 2, 4, 16)
    assert round(n / 1e6) == 675  # DiT paper: 675M
    trainable = sum(p.numel() for p in m.parameters() if p.requires_grad)  # without the fixed pos_embed
    assert round(trainable / 1e5) / 10 == 674.8


@pytest.mark.parametrize("name, depth, d, patch", [("B/4", 12, 768, 4), ("S/8", 12, 384, 8), ("L/2", 24, 1024, 2)])
def test_smaller_dit_configs_match_closed_form(name, depth, d, patch):
    assert _count(_meta(lambda: DiT(named_config(name)))) == dit_closed_form(depth, d, patch, 4, 32 // patch)


def test_sit_xl2_is_dit_xl2():
    from baselines.sit import SIT_XL_SAMPLING

    assert _count(_meta(lambda: DiT(named_config("XL/2")))) == dit_closed_form(28, 1152, 2, 4, 16)
    assert (
        SIT_XL_SAMPLING.solver == "euler-maruyama" and SIT_XL_SAMPLING.steps == 250 and SIT_XL_SAMPLING.cfg_scale == 1.5
    )


def test_lightningdit_xl1_count():
    n = _count(_meta(lambda: DiT(XL_1)))
    assert n == dit_closed_form(28, 1152, 1, 32, 16, learn_sigma=False, swiglu=True, rmsnorm=True)
    assert round(n / 1e6) == 675  # LightningDiT-XL: 675M (same budget as DiT-XL)


# ---------------------------------------------------------------------------------------- key names
DIT_TOP = [
    "x_embedder.proj.weight",
    "x_embedder.proj.bias",
    "t_embedder.mlp.0.weight",
    "t_embedder.mlp.0.bias",
    "t_embedder.mlp.2.weight",
    "t_embedder.mlp.2.bias",
    "y_embedder.embedding_table.weight",
    "pos_embed",
    "final_layer.linear.weight",
    "final_layer.linear.bias",
    "final_layer.adaLN_modulation.1.weight",
    "final_layer.adaLN_modulation.1.bias",
]
DIT_BLOCK = [
    "attn.qkv.weight",
    "attn.qkv.bias",
    "attn.proj.weight",
    "attn.proj.bias",
    "mlp.fc1.weight",
    "mlp.fc1.bias",
    "mlp.fc2.weight",
    "mlp.fc2.bias",
    "adaLN_modulation.1.weight",
    "adaLN_modulation.1.bias",
]
LDIT_BLOCK = [
    "norm1.weight",
    "norm2.weight",
    "attn.qkv.weight",
    "attn.qkv.bias",
    "attn.proj.weight",
    "attn.proj.bias",
    "mlp.w12.weight",
    "mlp.w12.bias",
    "mlp.w3.weight",
    "mlp.w3.bias",
    "adaLN_modulation.1.weight",
    "adaLN_modulation.1.bias",
]


def test_dit_key_names_equal_upstream():
    sd = _meta(lambda: DiT(named_config("XL/2"))).state_dict()
    expected = DIT_TOP + [f"blocks.{i}.{k}" for i in range(28) for k in DIT_BLOCK]
    assert sorted(sd) == sorted(expected)
    assert sd["y_embedder.embedding_table.weight"].shape == (1001, 1152)
    assert sd["final_layer.linear.weight"].shape == (2 * 2 * 8, 1152)


def test_lightningdit_key_names_equal_upstream():
    sd = _meta(lambda: DiT(XL_1)).state_dict()
    expected = DIT_TOP + ["final_layer.norm_final.weight"] + [f"blocks.{i}.{k}" for i in range(28) for k in LDIT_BLOCK]
    assert sorted(sd) == sorted(expected)
    assert sd["blocks.0.mlp.w12.weight"].shape == (2 * 3072, 1152) and sd["blocks.0.mlp.w3.weight"].shape == (
        1152,
        3072,
    )
    assert sd["x_embedder.proj.weight"].shape == (1152, 32, 1, 1) and sd["final_layer.linear.weight"].shape == (
        32,
        1152,
    )


# ---------------------------------------------------------------------------------------- loading
def _small_dit_file(tmp_path, name="S/8", wrap=None):
    net = DiT(named_config(name)).initialize_weights(torch.Generator().manual_seed(0))
    sd = net.state_dict()
    path = tmp_path / "dit.pt"
    torch.save({wrap: sd} if wrap else sd, path)
    return path, sd


@pytest.mark.parametrize("wrap", [None, "ema"])
def test_dit_factory_loads_strictly(tmp_path, wrap):
    from baselines.dit import dit_xl_2

    path, sd = _small_dit_file(tmp_path, wrap=wrap)
    gen = dit_xl_2(device="cpu", checkpoint=str(path), random_weights=True, config="S/8")
    for k, v in gen.model.state_dict().items():
        assert torch.equal(v, sd[k]), k
    assert gen.info()["checkpoint_sha256"] and gen.default_sampling.cfg_scale == 1.5


def test_dit_factory_rejects_wrong_checkpoint(tmp_path):
    from baselines.dit import dit_xl_2

    path, sd = _small_dit_file(tmp_path)
    sd.pop("pos_embed")
    torch.save(sd, path)
    with pytest.raises(CheckpointError, match="missing"):
        dit_xl_2(device="cpu", checkpoint=str(path), random_weights=True, config="S/8")
    with pytest.raises(UserError, match="DiT-XL-2-256x256.pt"):
        dit_xl_2(device="cpu")


def test_lightningdit_rope_buffers_checked(tmp_path):
    from baselines.lightningdit import _check_rope_buffers

    table = _meta(lambda: DiT(XL_1)).rope_table(torch.device("cpu"))  # the table is built lazily, off meta
    assert table.shape == (256, 36, 2)
    cos, sin = table[..., 0].repeat_interleave(2, -1), table[..., 1].repeat_interleave(2, -1)
    out = _check_rope_buffers(XL_1, {"a": torch.zeros(1), "feat_rope.freqs_cos": cos, "feat_rope.freqs_sin": sin}, "x")
    assert list(out) == ["a"]
    with pytest.raises(CheckpointError, match="freqs_sin"):
        _check_rope_buffers(XL_1, {"feat_rope.freqs_cos": cos, "feat_rope.freqs_sin": sin.flip(0)}, "x")


# ---------------------------------------------------------------------------------------- plugins
@pytest.mark.parametrize("name, kind", [("dit-tiny", "ddpm"), ("flow-tiny", "flow")])
def test_tiny_plugins_same_seed_same_images(name, kind):
    from harness.core.registry import generators, load_plugins

    load_plugins()
    gen = generators.get(name)(device="cpu")
    assert gen.kind == kind and gen.image_size == 32 and 1.0e6 < gen.info()["num_params"] < 1.6e6
    labels = torch.tensor([0, 5, 10])
    params = DiffusionSampling(steps=8, solver="ddim" if kind == "ddpm" else "heun", cfg_scale=2.0)
    a = gen.generate(labels, torch.Generator().manual_seed(3), params)
    b = gen.generate(labels, torch.Generator().manual_seed(3), params)
    c = gen.generate(labels, torch.Generator().manual_seed(4), params)
    assert a.dtype == torch.uint8 and a.shape == (3, 32, 32, 3)
    assert torch.equal(a, b) and not torch.equal(a, c)
    with pytest.raises(ValueError, match="solver"):
        gen.generate(
            labels, torch.Generator(), DiffusionSampling(steps=4, solver="euler" if kind == "ddpm" else "ddpm")
        )


@pytest.mark.slow
@pytest.mark.parametrize(
    "factory", ["baselines.dit:dit_xl_2", "baselines.sit:sit_xl_2", "baselines.lightningdit:lightningdit_xl_1"]
)
def test_full_configs_run_with_random_weights(factory):
    """Speed runs need no file: full XL configs + VAEs, random weights, two sampler steps."""
    import importlib

    mod, attr = factory.split(":")
    gen = getattr(importlib.import_module(mod), attr)(device="cpu", random_weights=True)
    steps = 2 if gen.kind == "flow" else 1
    solver = "euler" if gen.kind == "flow" else "ddim"
    img = gen.generate(
        torch.tensor([1]),
        torch.Generator().manual_seed(0),
        DiffusionSampling(steps=steps, solver=solver, cfg_scale=1.5),
    )
    assert img.shape == (1, 256, 256, 3) and img.dtype == torch.uint8

"""AliTok AR generator: official configs (parameter counts, key names/shapes), causality,
checkpoint loading errors, the Generator plugin and its factories."""

import json

import pytest
import torch

from alitok import plugin
from alitok.generator import META_CONFIG, PRESETS, ARConfig, build, load_model
from harness.core.errors import UserError
from harness.core.interfaces import ARSampling
from harness.nn.checkpoints.checkpoint import CheckpointError, save_safetensors
from harness.nn.models.ar_generator import ARGenerator

# Paper (AliTok, Table of model sizes): exact parameter counts of the released models.
OFFICIAL_PARAMS = {"alitok-b": 177_048_064, "alitok-l": 317_851_648, "alitok-xl": 662_141_696}
OFFICIAL_SHAPES = {"alitok-b": (24, 768, 48, 2048), "alitok-l": (24, 1024, 64, 2816), "alitok-xl": (32, 1280, 80, 3584)}


def _meta(name):
    return build(PRESETS[name].config, device="meta")


@pytest.mark.parametrize("name", list(OFFICIAL_PARAMS))
def test_official_parameter_counts(name):
    model = _meta(name)
    assert sum(p.numel() for p in model.parameters()) == OFFICIAL_PARAMS[name]
    assert PRESETS[name].num_params == OFFICIAL_PARAMS[name]


@pytest.mark.parametrize("name", list(OFFICIAL_SHAPES))
def test_official_state_dict_keys_and_shapes(name):
    depth, d, hd, ffn = OFFICIAL_SHAPES[name]
    expected = {"embeddings.weight": (5098, d), "norm.weight": (d,), "output.weight": (4096, d), "output.bias": (4096,)}
    for i in range(depth):
        b = f"blocks.{i}."
        expected.update(
            {
                b + "norm1.weight": (d,),
                b + "norm2.weight": (d,),
                b + "attn.qkv.weight": (3 * d, d),
                b + "attn.qkv.bias": (3 * d,),
                b + "attn.q_norm.weight": (hd,),
                b + "attn.k_norm.weight": (hd,),
                b + "attn.proj.weight": (d, d),
                b + "attn.proj.bias": (d,),
                b + "mlp.w1.weight": (ffn, d),
                b + "mlp.w3.weight": (ffn, d),
                b + "mlp.w2.weight": (d, ffn),
            }
        )
    got = {k: tuple(v.shape) for k, v in _meta(name).state_dict().items()}
    assert got == expected


def test_official_presets_and_vocabulary():
    got = {
        n: (p.sampling.cfg_scale, p.sampling.cfg_schedule, p.sampling.cfg_power, p.sampling.temperature, p.seed)
        for n, p in PRESETS.items()
    }
    assert got == {
        "alitok-b": (16.0, "power-cosine", 1.8, 1.0, 42),
        "alitok-l": (6.0, "power-cosine", 0.7, 1.0, 42),
        "alitok-xl": (13.0, "power-cosine", 1.4, 1.0, 2),
    }
    cfg = PRESETS["alitok-b"].config
    assert cfg.num_tokens == 273 and cfg.vocab_size == 5098 and cfg.null_class_id == 5097
    assert cfg.class_ids(torch.tensor([0, 999])).tolist() == [4097, 5096]
    model = _meta("alitok-b")  # the ARGenerator protocol: label mapping and geometry
    cond = model.condition_tokens(torch.tensor([0, 999]))
    assert cond.tolist() == [[4097], [5096]] and model.null_condition_tokens(cond).tolist() == [[5097], [5097]]
    assert (model.num_classes, model.num_tokens, model.codebook_size) == (1000, 273, 4096)
    for p in PRESETS.values():
        assert (p.sampling.top_k, p.sampling.top_p) == (0, 1.0)  # full softmax, as the paper samples


def test_alitok_b_full_config_forward_on_cpu():
    torch.manual_seed(0)
    model = build(PRESETS["alitok-b"].config, device="cpu", generator=torch.Generator().manual_seed(0)).eval()
    assert torch.count_nonzero(model.output.weight) == 0  # zero-initialised head
    torch.nn.init.normal_(model.output.weight, std=0.02, generator=torch.Generator().manual_seed(1))
    tokens = torch.tensor([[4097 + 207, 11, 4000, 17]])
    with torch.no_grad():
        logits = model(tokens)
        model.reset_cache(1)
        first = model.prefill(tokens[:, :1])
    assert logits.shape == (1, 4, 4096) and torch.isfinite(logits).all()
    torch.testing.assert_close(first, logits[:, 0], rtol=1e-4, atol=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["alitok-l", "alitok-xl"])
def test_large_full_config_forward_on_cpu(name):
    model = build(PRESETS[name].config, device="cpu", generator=torch.Generator().manual_seed(0)).eval()
    with torch.no_grad():
        logits = model(torch.tensor([[4097, 1, 2]]))
    assert logits.shape == (1, 3, 4096) and torch.isfinite(logits).all()


# -- tiny model behaviour ---------------------------------------------------------------------------
TINY = ARConfig(depth=2, width=64, num_heads=4, codebook_size=512, num_classes=11, num_prefix_tokens=9, grid=8)


@pytest.fixture(scope="module")
def tiny():
    m = build(TINY, generator=torch.Generator().manual_seed(0)).eval()
    torch.nn.init.normal_(m.output.weight, std=0.3, generator=torch.Generator().manual_seed(1))
    return m


def test_forward_is_causal(tiny):
    tokens = torch.cat(
        [
            TINY.class_ids(torch.tensor([3]))[:, None],
            torch.randint(0, 512, (1, 40), generator=torch.Generator().manual_seed(0)),
        ],
        1,
    )
    changed = tokens.clone()
    changed[0, 30] = (changed[0, 30] + 1) % 512
    with torch.no_grad():
        a, b = tiny(tokens), tiny(changed)
    torch.testing.assert_close(a[:, :30], b[:, :30], rtol=0, atol=0)
    assert not torch.allclose(a[:, 30:], b[:, 30:])


def test_class_token_has_zero_query_and_key(tiny):
    attn = tiny.blocks[0].attn
    x = tiny.embeddings(TINY.class_ids(torch.tensor([[2]])))
    seen = {}
    orig = torch.nn.functional.scaled_dot_product_attention

    def spy(q, k, v, **kw):
        seen["q"], seen["k"] = q, k
        return orig(q, k, v, **kw)

    torch.nn.functional.scaled_dot_product_attention = spy
    try:
        with torch.no_grad():
            attn(tiny.blocks[0].norm1(x), tiny.rope_table()[:1])
    finally:
        torch.nn.functional.scaled_dot_product_attention = orig
    assert torch.count_nonzero(seen["q"]) == 0 and torch.count_nonzero(seen["k"]) == 0


# -- checkpoint loading ---------------------------------------------------------------------------
def test_load_roundtrip_and_errors(tiny, tmp_path):
    good = tmp_path / "ar.safetensors"
    save_safetensors(good, tiny.state_dict(), {META_CONFIG: json.dumps(TINY.to_dict())})
    loaded, _ = load_model(good)
    for k, v in tiny.state_dict().items():
        assert torch.equal(loaded.state_dict()[k], v)

    # wrong architecture: an official-size config against tiny weights -> shape/key mismatch, one line
    with pytest.raises(CheckpointError) as e:
        load_model(good, config=PRESETS["alitok-b"].config)
    assert str(good) in str(e.value) and "missing keys" in str(e.value) and "\n" not in str(e.value)

    pth = tmp_path / "alitok_b.bin"
    torch.save(tiny.state_dict(), pth)
    data = pth.read_bytes()
    truncated = tmp_path / "truncated.bin"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        load_model(truncated, config=TINY)

    import fractions

    pickle_path = tmp_path / "object.bin"  # a pickle of an arbitrary object, not tensors
    torch.save({"model": fractions.Fraction(1, 3)}, pickle_path)
    with pytest.raises(CheckpointError, match="weights_only"):
        load_model(pickle_path, config=TINY)

    with pytest.raises(CheckpointError, match="ar_config"):  # our safetensors without its config
        bare = tmp_path / "bare.safetensors"
        save_safetensors(bare, tiny.state_dict(), {})
        load_model(bare)


# -- the Generator plugin ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def random_tokenizer():
    from alitok.train.ar import load_tokenizer

    return load_tokenizer("random-tiny", torch.device("cpu"))


def test_generator_plugin_generates_deterministic_uint8(tiny, random_tokenizer):
    sampling = ARSampling(cfg_scale=3.0, cfg_schedule="power-cosine", cfg_power=1.0)
    gen = ARGenerator(tiny, random_tokenizer, name="alitok-test", sampling=sampling)
    labels = torch.tensor([0, 5, 10])
    state = torch.get_rng_state()
    a = gen.generate(labels, torch.Generator().manual_seed(3))
    assert torch.equal(torch.get_rng_state(), state)
    b = gen.generate(labels, torch.Generator().manual_seed(3))
    assert a.dtype == torch.uint8 and a.shape == (3, 32, 32, 3) and torch.equal(a, b)
    codes = gen.generate_codes(labels, torch.Generator().manual_seed(3))
    assert torch.equal(random_tokenizer.decode(codes), a)  # images are exactly the decoded codes
    assert gen.default_sampling == sampling and gen.quantization == "truncate"
    info = gen.info()
    assert info["num_params"] == sum(p.numel() for p in tiny.parameters()) and info["kv_cache"] == "static"
    with pytest.raises(ValueError, match="labels"):
        gen.generate(torch.tensor([11]), torch.Generator())


def test_generator_rejects_mismatched_tokenizer(random_tokenizer):
    other = build(
        ARConfig(depth=1, width=32, num_heads=2, codebook_size=256, num_classes=11, num_prefix_tokens=9, grid=8)
    )
    with pytest.raises(ValueError, match="codes"):
        ARGenerator(other, random_tokenizer, name="x", sampling=ARSampling())


def test_compile_flag_constructs_without_compiling(tiny, random_tokenizer):
    gen = ARGenerator(tiny, random_tokenizer, name="x", sampling=ARSampling(), compile=True)
    assert gen.info()["compile"] is True and gen._decode is not None


@pytest.mark.parametrize(
    "name,factory", [("alitok-b", plugin.alitok_b), ("alitok-l", plugin.alitok_l), ("alitok-xl", plugin.alitok_xl)]
)
def test_official_factories_need_checkpoints(name, factory, tmp_path):
    with pytest.raises(UserError, match=f"{name} needs the official checkpoint: --set model.checkpoint=") as e:
        factory(device=torch.device("cpu"))
    assert "\n" not in str(e.value)
    with pytest.raises(UserError, match="tokenizer_checkpoint"):
        factory(device=torch.device("cpu"), checkpoint=str(tmp_path / "x.bin"))
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        factory(device=torch.device("cpu"), checkpoint=str(tmp_path / "x.bin"), tokenizer_checkpoint="AliTok.pth")


def test_registry_resolves_generator_names():
    from harness.core.registry import generators, load_plugins

    load_plugins()
    for name, fn in [
        ("alitok-tiny", plugin.tiny_generator),
        ("alitok-b", plugin.alitok_b),
        ("alitok-l", plugin.alitok_l),
        ("alitok-xl", plugin.alitok_xl),
    ]:
        assert generators.get(name) is fn


@pytest.mark.slow
def test_compiled_decode_step_gives_the_same_tokens(tiny, random_tokenizer):
    sampling = ARSampling(cfg_scale=3.0, cfg_schedule="power-cosine", cfg_power=1.0)
    eager = ARGenerator(tiny, random_tokenizer, name="e", sampling=sampling)
    compiled = ARGenerator(tiny, random_tokenizer, name="c", sampling=sampling, compile=True)
    labels = torch.tensor([1, 2])
    a = eager.generate_codes(labels, torch.Generator().manual_seed(0))
    b = compiled.generate_codes(labels, torch.Generator().manual_seed(0))
    assert torch.equal(a, b)


def test_alitok_tiny_plugin_loads_the_committed_weights():
    from alitok.generator import tiny_checkpoint_path
    from harness.core.registry import generators, load_plugins

    load_plugins()
    gen = generators.get("alitok-tiny")(device=torch.device("cpu"))
    info = gen.info()
    assert info["checkpoint"] == str(tiny_checkpoint_path()) and info["tokenizer"]["name"] == "alitok-tiny"
    assert gen.num_classes == 11 and gen.image_size == 32 and gen.model.num_tokens == 73
    assert gen.default_sampling.cfg_schedule == "power-cosine"  # the preset stored in the weights' metadata
    images = gen.generate(torch.tensor([0, 7]), torch.Generator().manual_seed(0))
    assert images.shape == (2, 32, 32, 3) and images.dtype == torch.uint8
    assert torch.equal(images, gen.generate(torch.tensor([0, 7]), torch.Generator().manual_seed(0)))


@pytest.mark.slow
def test_alitok_b_official_sampling_runs_273_steps_with_the_preset():
    from harness.nn.samplers.ar_sampling import ar_sample, ar_sample_naive

    preset = PRESETS["alitok-b"]
    model = build(preset.config, generator=torch.Generator().manual_seed(0)).eval()
    torch.nn.init.normal_(model.output.weight, std=0.02, generator=torch.Generator().manual_seed(1))
    cond = model.condition_tokens(torch.tensor([207]))
    uncond = model.null_condition_tokens(cond)
    assert cond.tolist() == [[4097 + 207]] and uncond.tolist() == [[5097]]
    codes = ar_sample(model, cond, 273, preset.sampling, torch.Generator().manual_seed(preset.seed), uncond=uncond)
    assert codes.shape == (1, 273) and int(codes.max()) < 4096
    # the first 24 steps (prefix -> image boundary at 17) agree with the full recompute path
    a = ar_sample(model, cond, 24, preset.sampling, torch.Generator().manual_seed(42), uncond=uncond)
    b = ar_sample_naive(model, cond, 24, preset.sampling, torch.Generator().manual_seed(42), uncond=uncond)
    assert torch.equal(a, b)

"""Registry, config loader and quantisation rules: the contracts every later piece relies on."""

import dataclasses
import subprocess
import sys

import pytest
import torch

from harness.core import config, interfaces
from harness.core.registry import Registry, RegistryError


def test_registry_decorator_lazy_duplicate_and_suggestions():
    reg = Registry("generator")

    @reg.register("alpha")  # noqa: V102 (the decorator registers it)
    class Alpha:
        pass

    reg.register("lazy", "collections:OrderedDict")
    assert not reg.is_loaded("lazy")
    import collections

    assert reg.get("lazy") is collections.OrderedDict and reg.is_loaded("lazy")
    with pytest.raises(RegistryError, match="already registered"):
        reg.register("alpha", object())
    with pytest.raises(RegistryError, match="did you mean 'alpha'"):
        reg.get("alpah")
    # A decorator firing for the object its lazy placeholder names is not a clash.
    reg.register("od", "collections:OrderedDict")
    reg.register("od", collections.OrderedDict)
    assert reg.get("od") is collections.OrderedDict


def test_list_imports_no_model_code():
    code = (
        "import sys; from harness.cli import main; main(['list']); "
        "bad=[m for m in sys.modules if m.split('.')[0] in ('alitok','baselines','torch_fidelity','timm')]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)


@dataclasses.dataclass(frozen=True)
class _Inner:
    k: int = 3
    mode: str = "a"


@dataclasses.dataclass(frozen=True)
class _Outer:
    name: str
    inner: _Inner = _Inner()
    sizes: tuple[int, ...] = ()
    scale: float = 1.0


def test_config_strict_keys_types_and_overrides():
    spec = config.from_dict(_Outer, {"name": "x", "inner": {"k": 5}, "sizes": [1, 2]})
    assert spec == _Outer("x", _Inner(5), (1, 2))
    with pytest.raises(config.ConfigError, match=r"inner\.kk: unknown key; did you mean 'k'"):
        config.from_dict(_Outer, {"name": "x", "inner": {"kk": 5}})
    with pytest.raises(config.ConfigError, match=r"inner\.k: expected an integer"):
        config.from_dict(_Outer, {"name": "x", "inner": {"k": "five"}})
    with pytest.raises(config.ConfigError, match="name: required key missing"):
        config.from_dict(_Outer, {})
    data = config.apply_overrides({"name": "x"}, ["inner.k=7", "scale=2.5"])
    assert config.from_dict(_Outer, data) == _Outer("x", _Inner(7), (), 2.5)


def test_spec_hash_is_canonical():
    a = config.spec_hash({"b": 1, "a": [1, 2]})
    b = config.spec_hash({"a": (1, 2), "b": 1})
    assert a == b and len(a) == 16
    assert config.spec_hash({"a": 1}) != config.spec_hash({"a": 2})


def test_quantisation_rules_match_official_formulas():
    x01 = torch.tensor([0.0, 0.5 / 255, 1.5 / 255, 0.49999, 0.5, 1.0, 1.2, -0.1]).view(1, 1, 1, 8).expand(1, 3, 1, 8)
    trunc = interfaces.to_uint8(x01, (0, 1), "truncate")[0, 0, :, 0]
    # AliTok: torch.clamp(x, 0, 1) * 255 then .to(uint8)
    assert torch.equal(trunc, (torch.clamp(x01, 0, 1) * 255).to(torch.uint8)[0, 0, 0])
    xpm = x01 * 2 - 1
    half = interfaces.to_uint8(xpm, (-1, 1), "offset_half")[0, 0, :, 0]
    # DiT / LlamaGen: torch.clamp(127.5 * x + 128.0, 0, 255).to(uint8)
    assert torch.equal(half, torch.clamp(127.5 * xpm + 128.0, 0, 255).to(torch.uint8)[0, 0, 0])
    rnd = interfaces.to_uint8(x01, (0, 1), "round")[0, 0, :, 0]
    assert rnd.tolist() == [0, 0, 2, 127, 128, 255, 255, 0]
    imgs = torch.randint(0, 256, (2, 4, 4, 3), dtype=torch.uint8)
    for rng in [(0, 1), (-1, 1)]:
        for rule in interfaces.QUANTIZATION_RULES:
            if rule == "truncate":
                continue  # truncation of an exact k/255 can land one level low by float error
            assert torch.equal(interfaces.to_uint8(interfaces.from_uint8(imgs, rng), rng, rule), imgs)
    with pytest.raises(ValueError, match="unknown quantisation rule"):
        interfaces.to_uint8(x01, (0, 1), "nearest")


def test_sampling_params_validate():
    with pytest.raises(ValueError, match="cfg_schedule"):
        interfaces.ARSampling(cfg_schedule="cosine")
    assert interfaces.ARSampling(cfg_scale=16.0, cfg_schedule="power-cosine", cfg_power=1.8).family == "ar"


EXTERNAL_PLUGINS = {  # noqa: V107 (an entry point below names it)
    "generators": {"outside-gen": ("collections:OrderedDict", "from an outside package")}
}


def test_entry_point_group_registers_outside_plugins(monkeypatch):
    from importlib.metadata import EntryPoint, EntryPoints

    from harness.core import registry

    fresh = {kind: Registry(reg.kind) for kind, reg in registry.REGISTRIES.items()}
    monkeypatch.setattr(registry, "REGISTRIES", fresh)
    monkeypatch.setattr(registry, "_loaded", False)
    eps = EntryPoints(
        [
            EntryPoint("ext", f"{__name__}:EXTERNAL_PLUGINS", registry.ENTRY_POINT_GROUP),
            EntryPoint("other", "json:dumps", "some.other.group"),
        ]
    )
    registry.load_plugins(entry_points=lambda: eps)
    gens = fresh["generators"]
    assert "outside-gen" in gens and gens.help("outside-gen") == "from an outside package"
    assert "real-data" in gens and not gens.is_loaded("real-data")  # built-ins stay lazy
    import collections

    assert gens.get("outside-gen") is collections.OrderedDict
    # a clash with a built-in name is refused, not silently replaced
    monkeypatch.setattr(registry, "_loaded", False)
    clash = {"generators": {"real-data": "collections:OrderedDict"}}
    monkeypatch.setattr(registry, "REGISTRIES", {k: Registry(r.kind) for k, r in fresh.items()})
    globals()["CLASH"] = clash
    with pytest.raises(RegistryError, match="already registered"):
        registry.load_plugins(
            entry_points=lambda: EntryPoints([EntryPoint("bad", f"{__name__}:CLASH", registry.ENTRY_POINT_GROUP)])
        )


@pytest.mark.parametrize(
    "verb, option",
    [
        ("sample", "--num-samples"),
        ("eval", "--ref"),
        ("recon", "--tokenizer"),
        ("train", "--out"),
        ("run", "--out"),
        ("ref-stats", "build"),
    ],
)
def test_each_verb_help_lists_its_own_options(verb, option, capsys):
    from harness.cli import main

    with pytest.raises(SystemExit) as e:
        main([verb, "--help"])
    assert e.value.code == 0 and option in capsys.readouterr().out

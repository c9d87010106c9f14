"""bench --upstream for RAR, LlamaGen, LightningDiT and DiT: the official row runs the sampling function of the
checkout the user names, not a replica. For each family a stand-in checkout is written into tmp_path with the
files, names and call signatures the adapter reads in the real repository (config file, model class, sampling
function); its sampling function logs every call and costs a known time on a fake clock, so the official row of
an interleaved bench run can only show that cost, and the adapter's arguments, if the stand-in ran."""

import json
import textwrap
import types

import pytest
import torch
from torch import nn

from harness.core.interfaces import ARSampling, DiffusionSampling, Generator
from harness.speed import timing
from harness.speed import upstream as up
from harness.speed.bench import BenchSettings, bench_interleaved

STAND_IN_COST = 0.37  # fake seconds per upstream network call
PROJECT_COST = 0.11  # fake seconds per project sampling call
LOG = """
CALLS = []       # what the adapter passed, one entry per sampling call
ON_CALL = None   # set by the test: advances its fake clock
"""
MODEL = """
import torch
from torch import nn


class Net(nn.Module):
    def __init__(self, width, **kwargs):
        super().__init__()
        self.w = nn.Linear(width, width)
        self.built_with = kwargs
"""
FILES = {
    "rar": {
        "1d-tokenizer/configs/training/generator/rar.yaml": json.dumps(
            {"model": {"generator": {"hidden_size": 768, "image_seq_len": 6}, "vq_model": {"codebook_size": 1024}}}
        ),
        "1d-tokenizer/modeling/rar.py": LOG
        + MODEL
        + """
class RAR(Net):
    def __init__(self, config):
        super().__init__(config["model"]["generator"]["hidden_size"])
        self.image_seq_len = config["model"]["generator"]["image_seq_len"]
        self.ratio = None

    def set_random_ratio(self, r):
        self.ratio = r

    def generate(self, condition, guidance_scale, randomize_temperature, guidance_scale_pow, **kw):
        CALLS.append(dict(labels=condition.tolist(), g=guidance_scale, temp=randomize_temperature,
                          pow=guidance_scale_pow, steps=self.image_seq_len, ratio=self.ratio))
        ON_CALL(self.image_seq_len)
        return torch.full((len(condition), self.image_seq_len), 7)
""",
    },
    "llamagen": {
        "LlamaGen/autoregressive/sample/sample_c2i.py": "",
        "LlamaGen/autoregressive/models/gpt.py": MODEL
        + """
class Transformer(Net):
    def __init__(self, **kwargs):
        super().__init__(4, **kwargs)
        self.register_buffer("freqs_cis", torch.arange(3.0))  # computed at build, not in the project's state


GPT_models = {"GPT-B": lambda **kw: Transformer(**kw)}
""",
        "LlamaGen/autoregressive/models/generate.py": LOG
        + """
import torch


def generate(model, cond, max_new_tokens, emb_masks=None, cfg_scale=1.0, cfg_interval=-1, **sampling_kwargs):
    CALLS.append(dict(labels=cond.tolist(), n=max_new_tokens, cfg=cfg_scale, interval=cfg_interval, **sampling_kwargs))
    ON_CALL(max_new_tokens)
    return torch.full((len(cond), max_new_tokens), 5, dtype=torch.int)
""",
    },
    "lightningdit": {
        "LightningDiT/configs/reproductions/lightningdit_xl_vavae_f16d32_800ep_cfg.yaml": textwrap.dedent(
            """
            data: {image_size: 32, num_classes: 10}
            vae: {downsample_ratio: 16}
            model: {model_type: Stand, use_qknorm: false, use_swiglu: true, use_rope: true, use_rmsnorm: true,
                    wo_shift: false, in_chans: 3}
            transport: {path_type: Linear, prediction: velocity, loss_weight: null, train_eps: null,
                        sample_eps: null, use_cosine_loss: true, use_lognorm: true}
            sample: {atol: 1.0e-6, rtol: 0.001, reverse: false}
            """
        ),
        "LightningDiT/models/lightningdit.py": LOG
        + MODEL
        + """
import types


class Stand(Net):
    def __init__(self, input_size, in_channels, **kwargs):
        super().__init__(4, **kwargs)
        self.in_channels = in_channels
        self.x_embedder = types.SimpleNamespace(img_size=(input_size, input_size))
        self.feat_rope = nn.Module()  # RoPE tables upstream computes at build; the project keeps none
        self.feat_rope.register_buffer("freqs_cos", torch.full((2,), 0.5))

    def forward_with_cfg(self, x, t, y, cfg_scale, cfg_interval=None, cfg_interval_start=None):
        CALLS.append(dict(rows=len(x), y=y.tolist(), cfg=cfg_scale, interval=cfg_interval,
                          start=cfg_interval_start))
        ON_CALL(1)
        return torch.zeros_like(x)


LightningDiT_models = {"Stand": Stand}
""",
        "LightningDiT/transport/__init__.py": """
import torch


def create_transport(*args, **kwargs):
    return (args, kwargs)


class Sampler:
    def __init__(self, transport):
        self.transport = transport

    def sample_ode(self, *, sampling_method, num_steps, atol, rtol, reverse, timestep_shift):
        def fn(x, model, **kwargs):
            for t in torch.linspace(0, 1, num_steps)[:-1]:  # fixed-grid euler: one call per interval
                x = x + model(x, torch.full((len(x),), float(t)), **kwargs)
            return torch.stack([torch.full_like(x, 3.0)] * num_steps)
        fn.settings = dict(method=sampling_method, num_steps=num_steps, shift=timestep_shift)
        return fn
""",
    },
    "dit": {
        "DiT/sample.py": "",
        "DiT/models.py": LOG
        + MODEL
        + """
import types


class DiT(Net):
    def __init__(self, input_size, num_classes):
        super().__init__(4)
        self.in_channels = 4
        self.x_embedder = types.SimpleNamespace(img_size=(input_size, input_size))

    def forward_with_cfg(self, x, t, y, cfg_scale):
        CALLS.append(dict(rows=len(x), y=y.tolist(), cfg=cfg_scale))
        ON_CALL(1)
        return torch.zeros_like(x)


DiT_models = {"DiT-XL/2": DiT}
""",
        "DiT/diffusion/__init__.py": """
import torch


class _Diffusion:
    def __init__(self, steps):
        self.steps = steps

    def p_sample_loop(self, model, shape, noise, clip_denoised=True, model_kwargs=None, progress=False, device=None):
        for t in range(self.steps):
            noise = noise + model(noise, torch.full((shape[0],), t), **model_kwargs)
        return torch.full(shape, 2.0)

    def ddim_sample_loop(self, model, shape, noise, eta=0.0, **kw):
        return self.p_sample_loop(model, shape, noise, **kw)


def create_diffusion(timestep_respacing):
    return _Diffusion(int(timestep_respacing))
""",
    },
}
FAMILY = {  # family -> (registry name whose adapter runs, sampling preset, project steps)
    "rar": ("rar-b", ARSampling(cfg_scale=16.0, cfg_schedule="power-cosine", cfg_power=2.75), 6),
    "llamagen": ("llamagen-gpt-b", ARSampling(cfg_scale=4.0, top_k=2000), 6),
    "lightningdit": (
        "lightningdit-xl-1",
        DiffusionSampling(steps=6, solver="euler", cfg_scale=6.7, cfg_interval=(0.125, 1.0), timestep_shift=0.3),
        5,
    ),
    "dit": ("dit-xl-2", DiffusionSampling(steps=5, solver="ddpm", cfg_scale=4.0), 5),
}


def write_stand_in(root, family):
    for rel, text in FILES[family].items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))


class FakeClock:
    now = 0.0

    def perf_counter(self):
        return self.now


class Project(Generator):
    """The project's side: one Linear under the key names the stand-in uses, and the size fields adapters read."""

    def __init__(self, clock, family):
        name, self.sampling, self.steps = FAMILY[family]
        self.clock, self.name = clock, name + "-random"
        self.model = nn.Module()
        self.model.w = nn.Linear(4, 4)
        self.model.cfg = types.SimpleNamespace(
            width=4, depth=1, num_heads=1, mlp_hidden=8, codebook_size=16, vocab_size=16, num_classes=10, num_tokens=6
        )
        self.tokenizer = types.SimpleNamespace(name="fake-tokenizer")
        self.num_classes, self.image_size, self.quantization = 10, 16, "round"
        self.calls = 0

    @property
    def default_sampling(self):
        return self.sampling

    @property
    def device(self):
        return torch.device("cpu")

    def generate_codes(self, labels, generator, params=None):
        self.calls += 1
        self.clock.now += PROJECT_COST
        return torch.zeros(len(labels), 6, dtype=torch.long)

    def decode_codes(self, codes):
        return torch.zeros(codes.shape[0], 8, 8, 3, dtype=torch.uint8)

    def generate(self, labels, generator, params=None):
        return self.decode_codes(self.generate_codes(labels, generator, params))

    def total_steps(self, params=None):
        return self.steps

    def run_steps(self, labels, generator, params, n_steps):
        return self.generate_codes(labels, generator, params)


@pytest.fixture
def clock(monkeypatch):
    clock = FakeClock()
    monkeypatch.setattr(timing, "time", types.SimpleNamespace(perf_counter=clock.perf_counter))
    return clock


def _official(tmp_path, clock, family):
    write_stand_in(tmp_path / "upstream", family)
    project = Project(clock, family)
    off = up.official_generator(project, tmp_path / "upstream", FAMILY[family][0])
    log = off.modules[next(m for m in off.modules if "CALLS" in vars(off.modules[m]))]
    log.ON_CALL = lambda n: setattr(clock, "now", clock.now + STAND_IN_COST * n)
    return project, off, log


@pytest.mark.parametrize("family", sorted(FAMILY))
def test_official_row_times_the_checkouts_function(tmp_path, clock, family):
    project, off, log = _official(tmp_path, clock, family)
    assert up.adapter_for(FAMILY[family][0]) is not None
    assert torch.equal(off.model.w.weight, project.model.w.weight)  # the project's weights, loaded
    for path in off.provenance["files"].values():
        assert path.startswith(str((tmp_path / "upstream").resolve()))  # imported from the checkout named
    res = bench_interleaved([project, off], BenchSettings(batch_size=2, repeats=3), "cpu")
    steps = FAMILY[family][2]
    # warm-up + 3 repeats, each one full run of the stand-in: its cost per call times the calls a run makes
    assert len(log.CALLS) == 4 * (steps if family in ("lightningdit", "dit") else 1)
    assert res[1].summary()["generation_s"]["median"] == pytest.approx(STAND_IN_COST * steps)
    assert res[0].summary()["generation_s"]["median"] == pytest.approx(PROJECT_COST)
    assert res[1].info["upstream"]["function"] == up.adapter_for(FAMILY[family][0]).function


@pytest.mark.parametrize("family", sorted(FAMILY))
def test_the_presets_reach_upstreams_arguments(tmp_path, clock, family):
    project, off, log = _official(tmp_path, clock, family)
    labels = torch.tensor([1, 2])
    full = off.generate_codes(labels, torch.Generator().manual_seed(0))
    call = log.CALLS[0]
    if family == "rar":
        assert call == dict(labels=[1, 2], g=16.0, temp=1.0, pow=2.75, steps=6, ratio=0)
        assert off.model.built_with == {} and torch.equal(full, torch.full((2, 6), 7))
    elif family == "llamagen":
        assert call == dict(labels=[1, 2], n=6, cfg=4.0, interval=-1, temperature=1.0, top_k=2000, top_p=1.0,
                            sample_logits=True)  # fmt: skip
        assert off.model.built_with == dict(
            vocab_size=16, block_size=6, num_classes=10, cls_token_num=1, model_type="c2i"
        )
        assert torch.equal(full, torch.full((2, 6), 5))
    elif family == "lightningdit":
        # CFG doubles the batch with the null class 1000; the interval start and scale are the preset's
        assert call == dict(rows=4, y=[1, 2, 1000, 1000], cfg=6.7, interval=True, start=0.125)
        assert full.shape == (2, 3, 2, 2) and torch.all(full == 3.0)  # the stand-in's last state, first half
    else:
        assert call == dict(rows=4, y=[1, 2, 1000, 1000], cfg=4.0) and full.shape == (2, 4, 2, 2)
        assert torch.all(full == 2.0)
    log.CALLS.clear()
    off.run_steps(labels, torch.Generator().manual_seed(0), None, 2)  # a step-limited run: two network calls
    assert (
        len(log.CALLS) if family in ("lightningdit", "dit") else log.CALLS[0].get("steps", log.CALLS[0].get("n"))
    ) == 2

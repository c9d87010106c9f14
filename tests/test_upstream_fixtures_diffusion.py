"""DiT, SiT, LightningDiT and their VAEs against numbers the official code produced.

The fixtures under tests/fixtures/upstream/{dit,sit,lightningdit,vae} were written by
scripts/upstream_fixtures/make_*.py from the official checkouts (small configurations of the
official classes, seeded weights saved in the released layouts; see each manifest.json). Here they
are loaded through the plugin factories and compared; no upstream code runs.

Tolerance: floats agree within 1e-5 of the reference's largest magnitude. Both sides compute in
fp32 (unit roundoff 6e-8) with different kernels and operation orders (packed oneDNN linears,
fused attention, diffusers' attention against LDM's bmm), each op's rounding ~1e-7 relative,
accumulated over a depth-2 network and at most ten sampler steps: about 1e-6 (measured up to a
few 1e-7 here). 1e-5 leaves a margin of ten, while a wrong formula or constant (the time-shift
direction, a schedule end point, a tolerance of the adaptive solver) moves values by 1e-3 or more.
uint8 images are compared exactly except at values whose float lies within 1e-3 of a rounding
boundary, where an ulp of op-order difference may legitimately flip the byte.

The exception is the adaptive dopri5 solver with the fp32 network: its error estimate is the
difference of two O(1) solutions cancelling to ~atol = 1e-6, so fp32 rounding (6e-8) moves the step
controller by percents and any two correct implementations (or upstream on two machines) agree only
to the solver's tolerance (measured: a 1e-7 relative change of the noise moves the result by 3e-4).
There the network run is held to rtol (relative L2 within 1e-3) and upstream's exact call count,
and the solver call itself is pinned to 1e-10 on a closed-form field in float64, where no
cancellation amplifies rounding.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from upstream_fixture_io import FIXTURE_THREADS

from baselines import vae as vae_mod
from baselines.dit import DIT_XL_SAMPLING, dit_xl_2, read_ema_or_raw
from baselines.lightningdit import SAMPLING as LDIT_SAMPLING
from baselines.lightningdit import XL_1, lightningdit_xl_1
from baselines.sit import SIT_XL_SAMPLING, sit_xl_2
from harness.core.interfaces import DiffusionSampling, to_uint8
from harness.nn.layers.dit_blocks import DiT, named_config
from harness.nn.models.diffusion_generator import guided_fn
from harness.nn.samplers import flow

pytestmark = pytest.mark.torch_threads(FIXTURE_THREADS)

FIX = Path(__file__).resolve().parent / "fixtures" / "upstream"
REL = 1e-5  # see module doc


def fixture(family: str, name: str) -> tuple[dict[str, torch.Tensor], dict]:
    manifest = json.loads((FIX / family / "manifest.json").read_text())
    return load_file(str(FIX / family / f"{name}.safetensors")), manifest[name].get("notes", {})


def assert_close(ours: torch.Tensor, ref: torch.Tensor, what: str, rel: float = REL) -> None:
    err = float((ours.detach().double() - ref.double()).abs().max())
    scale = float(ref.double().abs().max())
    assert err <= rel * scale, f"{what}: max |diff| {err:.3g} > {rel} x max |ref| {scale:.3g}"


def assert_images(ours: torch.Tensor, ref_uint8: torch.Tensor, ref_float: torch.Tensor, exact: bool = False) -> None:
    """uint8 equal, except (unless ``exact``: the same code on both sides) where the reference float
    sits within 1e-3 of a rounding boundary."""
    if exact:
        assert torch.equal(ours, ref_uint8)
        return
    v = (127.5 * ref_float.permute(0, 2, 3, 1) + 128.0).clamp(0, 255)
    near = (v - v.floor() < 1e-3) | (v.ceil() - v < 1e-3)
    diff = (ours.int() - ref_uint8.int()).abs()
    assert int(diff.max()) <= 1 and not bool((diff > 0)[~near].any()), (
        f"{int((diff > 0).sum())} uint8 values differ, {int((diff > 0)[~near].sum())} away from a boundary"
    )


def dit_config(notes: dict) -> dict:
    """The fixture's official-class kwargs -> DiTConfig fields (same names for DiT and SiT)."""
    return dict(notes["config"])


def ldit_config(notes: dict) -> dict:
    c = notes["config"]
    return dict(
        input_size=c["input_size"],
        patch_size=c["patch_size"],
        in_channels=c["in_channels"],
        hidden_size=c["hidden_size"],
        depth=c["depth"],
        num_heads=c["num_heads"],
        num_classes=c["num_classes"],
        learn_sigma=c["learn_sigma"],
        qk_norm=c["use_qknorm"],
        swiglu=c["use_swiglu"],
        rope=c["use_rope"],
        rmsnorm=c["use_rmsnorm"],
    )


def vae_config(family: str, name: str, scaling_factor: float = 1.0) -> dict:
    """The diffusers config of the fixture's LDM ``ddconfig`` through the project's mapping."""
    ldm = json.loads((FIX / family / "manifest.json").read_text())[name]["notes"]["ldm_config"]
    return vae_mod.ldm_vae_config(
        **{k: tuple(v) if isinstance(v, list) else v for k, v in ldm.items()}, scaling_factor=scaling_factor
    )


SD_TINY_DIFFUSERS = FIX / "vae" / "sd-vae-diffusers-tiny"


def sd_tiny_config() -> dict:
    cfg = json.loads((SD_TINY_DIFFUSERS / "config.json").read_text())
    return {k: tuple(v) if isinstance(v, list) else v for k, v in cfg.items() if k in vae_mod.SD_VAE_CONFIG}


def _sd_vae_generator(factory, family: str, weights: str):
    """A DiT-family factory on the released-layout tiny file; the SD VAE the small fixture one (its
    config swapped in for the full-size one only while the factory builds)."""
    _, notes = fixture(family, "network")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(vae_mod, "SD_VAE_CONFIG", sd_tiny_config())
        return factory(
            device="cpu",
            checkpoint=str(FIX / family / weights),
            config=dit_config(notes),
            tokenizer_checkpoint=str(SD_TINY_DIFFUSERS),
        )


@pytest.fixture(scope="module")
def dit_gen():
    return _sd_vae_generator(dit_xl_2, "dit", "DiT-tiny.pt")


@pytest.fixture(scope="module")
def sit_gen():
    return _sd_vae_generator(sit_xl_2, "sit", "SiT-tiny.pt")


@pytest.fixture(scope="module")
def ldit_gen():
    _, notes = fixture("lightningdit", "network")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(vae_mod, "VA_VAE_CONFIG", vae_config("vae", "vavae"))
        return lightningdit_xl_1(
            device="cpu",
            checkpoint=str(FIX / "lightningdit" / "lightningdit-tiny.pt"),
            tokenizer_checkpoint=str(FIX / "vae" / "VA-VAE-tiny.pt"),
            latent_stats=str(FIX / "lightningdit" / "latents_stats.pt"),
            config=ldit_config(notes),
        )


def _meta_state(model: torch.nn.Module) -> dict[str, list[int]]:
    return {k: list(v.shape) for k, v in model.state_dict().items()}


# ---------------------------------------------------------------------------------------------
# full-size key lists and parameter counts
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "family, cfg", [("dit", named_config("XL/2")), ("sit", named_config("XL/2")), ("lightningdit", XL_1)]
)
def test_full_size_keys_shapes_and_parameter_count(family, cfg):
    full = json.loads((FIX / family / "full_size.json").read_text())
    with torch.device("meta"):
        ours = DiT(cfg)
    # LightningDiT's RoPE tables are buffers in its state dict; ours are computed (the loader checks and drops them)
    theirs = {k: v for k, v in full["state_dict"].items() if not k.startswith("feat_rope.")}
    assert _meta_state(ours) == theirs
    assert sum(p.numel() for p in ours.parameters()) == full["num_params"]


@pytest.mark.parametrize("name, ours", [("vavae_f16d32", "VA_VAE_CONFIG"), ("sd_vae_ldm", "SD_VAE_CONFIG")])
def test_full_size_vae_keys_map_onto_the_diffusers_model(name, ours):
    import diffusers

    full = json.loads((FIX / "vae" / "full_size.json").read_text())[name]
    ldm = {k: tuple(v) if isinstance(v, list) else v for k, v in full["config"].items()}
    config = getattr(vae_mod, ours)
    assert vae_mod.ldm_vae_config(**ldm, scaling_factor=config["scaling_factor"]) == config
    with torch.device("meta"):
        model = diffusers.AutoencoderKL(**config)
    mapped = vae_mod.ldm_to_diffusers(
        {k: torch.empty(v, device="meta") for k, v in full["state_dict"].items()}, len(ldm["ch_mult"])
    )
    assert {k: list(v.shape) for k, v in mapped.items()} == _meta_state(model)
    assert sum(p.numel() for p in model.parameters()) == full["num_params"]


# ---------------------------------------------------------------------------------------------
# DiT
# ---------------------------------------------------------------------------------------------
# family -> (the guidance time tau of the step's t, whether upstream's forward returns only the first
# in_channels of the learn_sigma head); DiT: t counts 999 -> 0, SiT: t in [0, 1] returning the velocity half
FORWARD = {"dit": (lambda s: 1.0 - s.float() / 1000, False), "sit": (lambda s: s.float(), True)}


@pytest.mark.parametrize("family", sorted(FORWARD))
def test_forward_and_three_channel_guidance(family, request):
    t, notes = fixture(family, "network")
    m = request.getfixturevalue(f"{family}_gen").model
    tau, velocity_half = FORWARD[family]
    c = m.cfg.in_channels
    out = m(t["x"], t["t"], t["y"])
    assert_close(out[:, :c] if velocity_half else out, t["out"], f"{family} forward")
    fn = guided_fn(
        m,
        t["y"],
        notes["cfg_scale"],
        first3=True,
        interval=(0.0, 1.0),
        tau=tau,
        channels=c,
        keep_channels=c if velocity_half else None,
    )
    assert_close(fn(t["x"], t["t"]), t["cfg_out"][: len(t["y"])], f"{family} forward_with_cfg")


@pytest.mark.parametrize("solver", ["ddpm", "ddim"])
def test_dit_samplers_walk_upstreams_trajectory(dit_gen, solver):
    """Same seed as upstream's global RNG: initial noise and per-step draws of the doubled batch."""
    t, notes = fixture("dit", "samplers")
    params = dataclasses.replace(DIT_XL_SAMPLING, steps=notes["steps"], solver=solver)  # the preset's cfg and eta
    assert (params.cfg_scale, params.eta) == (notes["cfg_scale"], notes["ddim_eta"])
    assert dit_gen.schedule(notes["steps"]).timestep_map == t[f"{solver}_timestep_map"].tolist()
    z = dit_gen.sample_latents(t["labels"], torch.Generator().manual_seed(notes["seed"]), params)
    assert_close(z, t[f"{solver}_trajectory"][-1], f"DiT {solver} latents")


# ---------------------------------------------------------------------------------------------
# SiT
# ---------------------------------------------------------------------------------------------
SIT_SOLVERS = {"euler": "euler", "heun2": "heun", "dopri5": "dopri5", "Euler": "euler-maruyama"}


@pytest.mark.parametrize("run", ["ode_euler", "ode_heun", "ode_dopri5", "sde", "sde_unguided"])
def test_sit_samplers_match_upstream_and_count_its_calls(sit_gen, run):
    """Every solver from the same seed as upstream, at upstream's settings (dopri5: atol 1e-6, rtol
    1e-3; SDE: sigma diffusion, Mean last step 0.04, noise for the doubled batch); the network calls
    counted here and the count reported for the official code agree with the calls upstream made."""
    t, notes = fixture("sit", "samplers")
    opts = notes["runs"][run]
    params = dataclasses.replace(SIT_XL_SAMPLING, steps=opts["num_steps"], solver=SIT_SOLVERS[opts["sampling_method"]])
    if opts["cfg_scale"] == 1.0:  # the unguided run; the others keep the preset's scale
        params = dataclasses.replace(params, cfg_scale=1.0)
    calls = []
    hook = sit_gen.model.register_forward_hook(lambda *_: calls.append(1))
    try:
        z = sit_gen.sample_latents(t["labels"], torch.Generator().manual_seed(notes["seed"]), params)
    finally:
        hook.remove()
    ref = t[f"{run}_trajectory"][-1]
    if opts["sampling_method"] == "dopri5":  # agreement to the solver's tolerance (module doc)
        rel = float((z - ref).norm() / ref.norm())
        assert rel <= opts["rtol"], f"SiT dopri5 latents: relative L2 {rel:.3g} > rtol {opts['rtol']}"
    else:
        assert_close(z, ref, f"SiT {run} latents")
    counts = sit_gen.network_call_counts(params)
    if counts["this_implementation"] is not None:  # fixed-step solvers: known before the run
        assert counts["this_implementation"] == len(calls)
        assert counts["official_code"] == opts["upstream_network_calls"]
    else:  # dopri5: the adaptive solver took upstream's steps
        assert len(calls) == opts["upstream_network_calls"]
    assert counts["rows_per_call"] * len(t["labels"]) == opts["rows_per_call"]


@pytest.mark.parametrize("solver", ["dopri5", "euler"])
def test_sit_ode_solver_call_equals_upstreams_on_a_float64_field(solver):
    """harness.nn.samplers.flow's ODE path against upstream's Sampler.sample_ode on the same closed-form field
    in float64 (no fp32 cancellation in the step control): dopri5 at atol 1e-6 / rtol 1e-3 through
    torchdiffeq, the grid and the time vector as upstream builds them."""
    t, notes = fixture("sit", "ode_field")
    u, v, b = t["field_u"], t["field_v"], t["field_b"]

    def field(x, tt):
        return torch.tanh((x.flatten(1) @ u) @ v + tt[:, None].to(x.dtype) * b).reshape(x.shape)

    ours = flow.sample(field, t["field_x0"], None, steps=notes["num_steps"], solver=solver)
    assert_close(ours, t[f"field_{solver}"], f"{solver} on the float64 field", rel=1e-10)


# ---------------------------------------------------------------------------------------------
# LightningDiT
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("steps, shift", [(250, 0.3), (4, 0.3), (10, 0.3), (250, 0.0)])
def test_lightningdit_time_grids_equal_upstreams(steps, shift):
    """The shifted grid (compute_tm in upstream's ode) to 1e-6; the 250-point one at shift 0.3 is the
    released sampler's."""
    t, _ = fixture("lightningdit", "grids")
    ref = t[f"grid_{steps}_shift{shift}"]
    ours = flow.time_grid(steps, shift=shift)
    assert float((ours - ref).abs().max()) <= 1e-6


def test_lightningdit_unguided_calls_follow_the_shift_closed_form():
    """Euler steps inside the unguided interval t < 0.125 on the 250-point grid at shift 0.3: the
    closed form s t / (1 + (s - 1) t) < c  <=>  t < c / (s + c (1 - s)) counts grid indices i / 249."""
    t, _ = fixture("lightningdit", "grids")
    s, c, n = 0.3, LDIT_SAMPLING.cfg_interval[0], 250
    bound = c / (s + c * (1 - s))
    expected = math.ceil(bound * (n - 1))  # i = 0 .. ceil(bound * 249) - 1
    upstream = int((t["grid_250_shift0.3"][:-1] < c).sum())
    ours = int((flow.time_grid(n, shift=s)[:-1] < c).sum())
    assert ours == upstream == expected


def test_lightningdit_forward_and_cfg_interval(ldit_gen):
    t, notes = fixture("lightningdit", "network")
    m = ldit_gen.model
    assert_close(m(t["x"], t["t"], t["y"]), t["out"], "LightningDiT forward (EMA weights, RoPE)")
    b, c = len(t["y"]), m.cfg.in_channels
    fn = guided_fn(
        m,
        t["y"],
        notes["cfg_scale"],
        first3=True,
        interval=(notes["cfg_interval_start"], 1.0),
        tau=lambda s: s.float(),
        channels=c,
        keep_channels=c,
    )
    for key in ("low", "high"):
        tt = torch.full((b,), notes[f"t_{key}"])
        assert_close(fn(t["x"], tt), t[f"cfg_{key}"][:b], f"LightningDiT forward_with_cfg at t = {notes[f't_{key}']}")


def test_lightningdit_euler_with_shift_and_images_match_upstream(ldit_gen):
    """inference.py's pipeline: Euler ODE with timestep shift 0.3, cfg 6.7 with interval 0.125, then
    latents_stats de-normalisation and the VA-VAE decode, to uint8."""
    t, notes = fixture("lightningdit", "sampler")
    params = dataclasses.replace(LDIT_SAMPLING, steps=notes["sample"]["num_steps"])
    assert (params.timestep_shift, params.cfg_scale, params.cfg_interval[0]) == (
        notes["sample"]["timestep_shift"],
        notes["cfg_scale"],
        notes["cfg_interval_start"],
    )
    z = ldit_gen.sample_latents(t["labels"], torch.Generator().manual_seed(notes["seed"]), params)
    assert_close(z, t["trajectory"][-1], "LightningDiT Euler latents")
    assert ldit_gen.network_calls(params) == notes["upstream_network_calls"]
    images = ldit_gen.decode_codes(t["trajectory"][-1])
    assert_images(images, t["images"], t["decoded"])


@pytest.mark.parametrize("path", ["lightningdit/lightningdit-tiny.pt", "dit/DiT-tiny.pt"])
def test_released_files_are_read_once_memory_mapped(monkeypatch, path):
    """A training checkpoint ({"model", "ema"}) gives its EMA weights and a raw file itself, each from
    one weights-only, memory-mapped read (an XL file read twice held two copies: 5.4 GB)."""
    real, calls = torch.load, []

    def spy(*args, **kwargs):
        calls.append(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(torch, "load", spy)
    sd = read_ema_or_raw(str(FIX / path))
    assert len(calls) == 1 and calls[0].get("mmap") is True and calls[0].get("weights_only") is True
    whole = real(FIX / path, weights_only=True)
    expected = whole.get("ema", whole)
    assert sd.keys() == expected.keys() and all(torch.equal(sd[k], expected[k]) for k in sd)


# ---------------------------------------------------------------------------------------------
# VAEs
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["vavae", "sdvae_ldm", "sdvae_diffusers"])
def test_vae_encode_decode_match_upstream(name):
    t, notes = fixture("vae", name)
    if name == "vavae":
        vae = vae_mod.build_vae(vae_config("vae", name), FIX / "vae" / "VA-VAE-tiny.pt", what="VA-VAE (tiny)")
        decoded = vae_mod.decode(vae, t["z"])
    else:
        path = FIX / "vae" / ("sd-vae-ldm-tiny.ckpt" if name == "sdvae_ldm" else "sd-vae-diffusers-tiny")
        config = vae_config("vae", name, vae_mod.SD_SCALE_FACTOR) if name == "sdvae_ldm" else sd_tiny_config()
        vae = vae_mod.build_vae(config, path, what="SD VAE (tiny)")
        decoded = vae_mod.sd_decode(vae, t["z"])  # DiT's decode(z / 0.18215)
    with torch.no_grad():
        dist = vae.encode(t["images"]).latent_dist
        decoded = decoded.detach()
    assert_close(dist.mean, t["mean"], f"{name} posterior mean")
    assert_close(dist.std, t["std"], f"{name} posterior std")
    assert_close(decoded, t["decoded"], f"{name} decode")
    # diffusers on both sides for the diffusers layout: same operations, bytes equal
    assert_images(
        to_uint8(decoded, (-1.0, 1.0), "offset_half"), t["decoded_uint8"], t["decoded"], exact=name == "sdvae_diffusers"
    )


def test_factory_config_mapping_with_an_unknown_field_is_one_line_user_error():
    from harness.core.errors import UserError

    with pytest.raises(UserError, match="model.options.config.*depthh"):
        dit_xl_2(device="cpu", random_weights=True, config={"depthh": 2})
    with pytest.raises(UserError, match="XL/1 only"):
        lightningdit_xl_1(device="cpu", random_weights=True, config="XL/2")


def test_sampling_presets_are_upstreams_defaults():
    """The presets the fixtures' shortened runs replace only ``steps`` of (SiT sample.py SDE defaults,
    LightningDiT's reproduction config); the solver constants live in harness.nn.samplers.flow."""
    _, sit = fixture("sit", "samplers")
    sde = sit["runs"]["sde"]
    assert (SIT_XL_SAMPLING.solver, flow.SDE_LAST_STEP) == ("euler-maruyama", sde["last_step_size"])
    dopri = sit["runs"]["ode_dopri5"]
    assert (flow.ODE_ATOL, flow.ODE_RTOL) == (dopri["atol"], dopri["rtol"])
    assert isinstance(SIT_XL_SAMPLING, DiffusionSampling)

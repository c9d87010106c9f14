"""The one Generator class for DiT-family samplers: class labels -> latents (DDPM / DDIM or flow
ODE / SDE, CFG by batch doubling) -> decoder -> uint8 pixels.

CFG follows DiT's ``forward_with_cfg``: run [x; x] with [y; null], guide ``uncond + s (cond -
uncond)`` on the first 3 output channels only (``cfg_first3=True``, DiT / SiT / LightningDiT
reference behaviour; off = guide every latent channel) and keep the conditional values elsewhere.
The cfg interval is applied on the device (no host sync): guidance only where the normalised time
tau (0 = noise, 1 = data; flow: t itself, DDPM: 1 - timestep / 1000) lies in [lo, hi].
LightningDiT's "no guidance while t < 0.125" is ``cfg_interval=(0.125, 1.0)``.

Random draws follow upstream's order, so a generator seeded as upstream seeds its global RNG
walks upstream's trajectory: the initial noise, then (DDPM / DDIM, SDE) each step's noise drawn
for the CFG-doubled batch, the first rows kept. The adaptive dopri5 solver integrates upstream's
doubled state (``doubled_guided_fn``), because its step-size control sees both halves.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable
from typing import Any, ClassVar

import torch

from harness.core.interfaces import DiffusionSampling, Generator, to_uint8
from harness.core.io import sha256_if_file
from harness.nn.kernels.packed_linear import PackedLinears
from harness.nn.kernels.packed_linear import available as packed_linear_available
from harness.nn.layers.dit_blocks import DiT
from harness.nn.samplers import flow
from harness.nn.samplers.ar_sampling import device_generator, precision
from harness.nn.samplers.diffusion import GaussianDiffusion

KINDS = ("ddpm", "flow")
DDPM_SOLVERS = ("ddpm", "ddim")


def guided_fn(
    model: DiT,
    y: torch.Tensor,
    scale: float,
    *,
    first3: bool,
    interval: tuple[float, float],
    tau: Callable[[torch.Tensor], torch.Tensor],
    channels: int,
    keep_channels: int | None = None,
):
    """``fn(x, t)`` -> model output with CFG (see module doc); ``keep_channels`` trims the output
    first (SiT / LightningDiT return only the first ``in_channels`` of a learn_sigma head)."""
    keep = keep_channels or model.cfg.out_channels
    if scale == 1.0:
        return lambda x, t: model(x, t, y)[:, :keep]
    null = torch.full_like(y, model.null_class)
    y2 = torch.cat([y, null])
    k = 3 if first3 else channels
    lo, hi = interval

    def fn(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        out = model(torch.cat([x, x]), torch.cat([t, t]), y2)[:, :keep]
        cond, uncond = out.chunk(2)
        g = uncond[:, :k] + scale * (cond[:, :k] - uncond[:, :k])
        s = tau(t)
        inside = ((s >= lo) & (s <= hi)).reshape(-1, *([1] * (x.ndim - 1)))
        return torch.cat([torch.where(inside, g, cond[:, :k]), cond[:, k:]], dim=1)

    return fn


def doubled_guided_fn(
    model: DiT,
    y: torch.Tensor,
    scale: float,
    *,
    first3: bool,
    interval: tuple[float, float],
    channels: int,
    keep_channels: int,
):
    """``fn(x2, t2)`` on the doubled state [x; x'] as upstream's ``forward_with_cfg`` computes it:
    the network sees the first half twice; the guided channels are returned for both halves, the
    others as they came out (conditional rows, then unconditional). Only the first half is kept at
    the end, but an adaptive solver's error norm covers both, so its steps match upstream's."""
    b = len(y)
    y2 = torch.cat([y, torch.full_like(y, model.null_class)])
    k = 3 if first3 else channels
    lo, hi = interval

    def fn(x2: torch.Tensor, t2: torch.Tensor) -> torch.Tensor:
        half = x2[:b]
        out = model(torch.cat([half, half]), t2, y2)[:, :keep_channels]
        cond, uncond = out[:b, :k], out[b:, :k]
        g = uncond + scale * (cond - uncond)
        s = t2[:b].float()
        inside = ((s >= lo) & (s <= hi)).reshape(-1, *([1] * (x2.ndim - 1)))
        g = torch.where(inside, g, cond)
        return torch.cat([torch.cat([g, g]), out[:, k:]], dim=1)

    return fn


class DiffusionGenerator(Generator):
    """``kind="ddpm"`` (DiT: eps + learned variance, solvers ddpm / ddim) or ``"flow"`` (SiT,
    LightningDiT: velocity, solvers euler / heun / euler-maruyama / dopri5). ``decode`` maps sampled latents
    to float images in [-1, 1] (None: the model works in pixel space). ``packed_linear`` (default on
    where it exists: fp32 on CPU) runs the Linear layers through oneDNN on weights packed once
    (``harness.nn.kernels.packed_linear``), as ``ARGenerator`` does, so AR : diffusion speed ratios compare
    the same kernels."""

    sampling_cls: ClassVar[type] = DiffusionSampling
    uniform_step_cost: ClassVar[bool] = True  # every network call has the same shapes (CFG always doubled)

    def __init__(
        self,
        model: DiT,
        *,
        name: str,
        kind: str,
        sampling: DiffusionSampling,
        image_size: int,
        decode: Callable[[torch.Tensor], torch.Tensor] | None = None,
        checkpoint: str | None = None,
        dtype: torch.dtype = torch.float32,
        tf32: bool | None = None,
        extra_info: dict | None = None,
        decoder_modules: tuple[torch.nn.Module, ...] = (),
        clip_denoised: bool = False,
        packed_linear: bool = True,
    ):
        if kind not in KINDS:
            raise ValueError(f"{name}: kind must be one of {KINDS}, got {kind!r}")
        self.model, self.name, self.kind = model.eval(), name, kind
        self.num_classes = model.cfg.num_classes
        self.image_size = image_size
        self.quantization = "offset_half"  # DiT: clamp(127.5 x + 128, 0, 255) -> uint8
        self._sampling, self._decode = sampling, decode
        self._decoder_modules = decoder_modules
        self.checkpoint = checkpoint
        self.dtype, self.tf32 = dtype, tf32
        self.extra_info = dict(extra_info or {})
        self._schedules: dict[int, GaussianDiffusion] = {}
        self.clip_denoised = clip_denoised  # ADM pixel-space models clamp predicted x0 (DDPM kinds)
        self.packed_linear, self._packed = packed_linear, PackedLinears(model)
        self.check_params(sampling)

    @property
    def default_sampling(self) -> DiffusionSampling:
        return self._sampling

    @property
    def device(self) -> torch.device:
        return self.model.pos_embed.device

    def to(self, device: torch.device | str) -> DiffusionGenerator:
        self.model.to(device)
        for m in self._decoder_modules:
            m.to(device)
        return self

    def check_params(self, params: Any) -> DiffusionSampling:
        if not isinstance(params, DiffusionSampling):
            raise ValueError(f"{self.name}: sampling parameters must be DiffusionSampling, got {type(params).__name__}")
        solvers = DDPM_SOLVERS if self.kind == "ddpm" else flow.SOLVERS
        if params.solver not in solvers:
            raise ValueError(f"{self.name}: solver {params.solver!r} not available (known: {', '.join(solvers)})")
        if self.kind == "flow" and params.steps < 2:
            raise ValueError(f"{self.name}: flow sampling needs steps >= 2 (grid points), got {params.steps}")
        return params

    def schedule(self, steps: int) -> GaussianDiffusion:
        if steps not in self._schedules:
            self._schedules[steps] = GaussianDiffusion.respaced(steps, learn_sigma=self.model.cfg.learn_sigma)
        return self._schedules[steps]

    @torch.inference_mode()
    def sample_latents(
        self, labels: torch.Tensor, generator: torch.Generator, params: DiffusionSampling | None = None
    ) -> torch.Tensor:
        p = self.check_params(params or self._sampling)
        dev = self.device
        y = self.check_labels(labels).to(dev)
        g = device_generator(generator, dev)
        c, s = self.model.cfg.in_channels, self.model.cfg.input_size
        noise = torch.randn((len(y), c, s, s), generator=g, device=dev)
        cfg_on = p.cfg_scale != 1.0
        packed = self._packed.active() if self.linear_kernel() == "onednn-packed" else contextlib.nullcontext()
        with precision(dev, self.dtype, self.tf32), packed:
            if self.kind == "ddpm":
                diff = self.schedule(p.steps)
                n = float(diff.num_train_timesteps)
                fn = guided_fn(
                    self.model,
                    y,
                    p.cfg_scale,
                    first3=p.cfg_first3,
                    interval=p.cfg_interval,
                    tau=lambda t: 1.0 - t.float() / n,
                    channels=c,
                )
                # upstream draws each step's noise for the doubled batch under CFG
                x = diff.sample(
                    fn,
                    noise,
                    g,
                    solver=p.solver,
                    eta=p.eta,
                    noise_batch=2 * len(y) if cfg_on else None,
                    clip_denoised=self.clip_denoised,
                )
            elif p.solver in flow.ADAPTIVE_SOLVERS and cfg_on:
                fn = doubled_guided_fn(
                    self.model,
                    y,
                    p.cfg_scale,
                    first3=p.cfg_first3,
                    interval=p.cfg_interval,
                    channels=c,
                    keep_channels=c,
                )
                x = flow.sample(
                    fn, torch.cat([noise, noise]), g, steps=p.steps, solver=p.solver, shift=p.timestep_shift
                )[: len(y)]
            else:
                fn = guided_fn(
                    self.model,
                    y,
                    p.cfg_scale,
                    first3=p.cfg_first3,
                    interval=p.cfg_interval,
                    tau=lambda t: t.float(),
                    channels=c,
                    keep_channels=c,
                )
                # the SDE draws each step's noise for the doubled batch under CFG, as upstream does
                x = flow.sample(
                    fn,
                    noise,
                    g,
                    steps=p.steps,
                    solver=p.solver,
                    shift=p.timestep_shift,
                    noise_rows=2 * len(y) if cfg_on else None,
                )
        return x.float()

    def linear_kernel(self) -> str:
        """``onednn-packed`` for fp32 on CPU with packing on (bf16 here is autocast, which the packed
        op does not follow), else ``aten``."""
        on = self.packed_linear and self.dtype == torch.float32 and packed_linear_available(self.device, self.dtype)
        return "onednn-packed" if on else "aten"

    def prepare(self) -> None:
        """Pack the Linear weights now (where packing is on), so a timed run does not pay for it."""
        if self.linear_kernel() == "onednn-packed":
            self._packed.pack()

    def release(self) -> None:
        """Free what sampling keeps between calls (packed weights); the next call rebuilds it."""
        self._packed.release()

    @torch.inference_mode()
    def generate(
        self, labels: torch.Tensor, generator: torch.Generator, params: DiffusionSampling | None = None
    ) -> torch.Tensor:
        z = self.sample_latents(labels, generator, params)
        images = self._decode(z) if self._decode is not None else z
        return to_uint8(images, (-1.0, 1.0), self.quantization).to(labels.device)

    # -- speed hooks (harness.core.interfaces.PhasedGenerator): sampling and decode timed apart -------------
    def generate_codes(
        self, labels: torch.Tensor, generator: torch.Generator, params: DiffusionSampling | None = None
    ) -> torch.Tensor:
        return self.sample_latents(labels, generator, params)

    @torch.inference_mode()
    def decode_codes(self, z: torch.Tensor) -> torch.Tensor:
        images = self._decode(z) if self._decode is not None else z
        return to_uint8(images, (-1.0, 1.0), self.quantization)

    def network_calls(self, params: DiffusionSampling) -> int | None:
        """Model calls of one sampling run here (each on the doubled batch under CFG): DDPM/DDIM one per step;
        flow Euler one per grid interval, Heun two, Euler-Maruyama one per interval plus the final mean step;
        None for an adaptive solver (dopri5: known only after the run)."""
        if self.kind == "ddpm":
            return params.steps
        if params.solver in flow.ADAPTIVE_SOLVERS:
            return None
        per = 2 if params.solver == "heun" else 1
        return per * (params.steps - 1) + (1 if params.solver == "euler-maruyama" else 0)

    def upstream_network_calls(self, params: DiffusionSampling) -> int | None:
        """Model calls of the same run in the official code: the same, except SiT's SDE, which evaluates the
        network twice per step (drift and score on the same input; here once, same numbers)."""
        ours = self.network_calls(params)
        if params.solver == "euler-maruyama":
            return flow.UPSTREAM_SDE_CALLS_PER_STEP * ours
        return ours

    def network_call_counts(self, params: DiffusionSampling | None = None) -> dict[str, Any]:
        """Network calls per image, saying whose count each is (for speed and run records)."""
        p = self.check_params(params or self._sampling)
        return {
            "this_implementation": self.network_calls(p),
            "official_code": self.upstream_network_calls(p),
            "rows_per_call": 2 if p.cfg_scale != 1.0 else 1,
            "note": "per sampling run (one image's trajectory); each call runs the conditional and the "
            "unconditional row under CFG (rows_per_call 2); official_code: the count of the official "
            "sampler (SiT's SDE evaluates the network twice per step on the same input, this "
            "implementation once); None: adaptive solver, known only after a run",
        }

    def total_steps(self, params: DiffusionSampling | None = None) -> int | None:
        return self.network_calls(self.check_params(params or self._sampling))

    def run_steps(
        self, labels: torch.Tensor, generator: torch.Generator, params: DiffusionSampling | None, n_steps: int
    ) -> torch.Tensor:
        """A shortened schedule with ``n_steps`` model calls of the same shape and cost (latents come back
        at full shape, so ``decode_codes`` times a full decode)."""
        p = self.check_params(params or self._sampling)
        if p.solver in flow.ADAPTIVE_SOLVERS:
            raise ValueError(
                f"{self.name}: {p.solver} is adaptive (its call count is known only after a run): "
                "time it in full, without a step limit"
            )
        if self.kind == "ddpm":
            steps = n_steps
        elif p.solver == "heun":
            steps = max(2, n_steps // 2 + 1)
        elif p.solver == "euler-maruyama":
            steps = max(2, n_steps)
        else:
            steps = n_steps + 1
        return self.sample_latents(labels, generator, dataclasses.replace(p, steps=steps))

    def info(self) -> dict[str, Any]:
        return {
            **super().info(),
            "kind": self.kind,
            "checkpoint": self.checkpoint,
            "checkpoint_sha256": sha256_if_file(self.checkpoint),
            "num_params": sum(p.numel() for p in self.model.parameters()),
            "config": self.model.cfg.to_dict(),
            "default_sampling": self._sampling.to_dict(),
            "dtype": str(self.dtype).replace("torch.", ""),
            "tf32": self.tf32,
            "linear_kernel": self.linear_kernel(),
            "clip_denoised": self.clip_denoised,
            **self.extra_info,
        }

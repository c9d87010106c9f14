"""Upstream's own diffusion samplers: LightningDiT's Euler ODE (shift, CFG interval) and DiT's DDPM / DDIM loops.

- LightningDiT (hustvl/LightningDiT): the checkout's ``configs/reproductions/
  lightningdit_xl_vavae_f16d32_800ep_cfg.yaml`` (read with ``yaml.safe_load``, as ``inference.py``'s
  ``load_config``) decides the model (``LightningDiT_models[model_type]`` with ``inference.py``'s arguments) and
  the transport (``create_transport``); a run is ``inference.py``'s loop body: ``z = randn``, CFG doubles ``z``
  and ``y`` (null class 1000), ``Sampler.sample_ode(sampling_method, num_steps, atol, rtol, reverse,
  timestep_shift)`` applied to ``model.forward_with_cfg`` with ``cfg_interval=True, cfg_interval_start``,
  the last state, the conditional half. Step count, guidance scale and interval start come from the project's
  sampling parameters (the preset equals that config's ``sample`` section).
- DiT (facebookresearch/DiT): ``sample.py``: ``DiT_models[...](input_size=image_size // 8, num_classes=1000)``,
  ``create_diffusion(str(steps))``, ``p_sample_loop`` (solver ddpm) or ``ddim_sample_loop`` (ddim, ``eta``) on
  ``model.forward_with_cfg`` with ``clip_denoised=False``, the conditional half.

A step-limited run (``run_steps(n)``) is upstream's sampler on a schedule with ``n`` network calls (Euler:
``n + 1`` grid points; DDPM / DDIM: ``n`` respaced steps): the same shapes per call as the full run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import yaml

from harness.core.errors import UserError
from harness.core.interfaces import DiffusionSampling
from harness.speed.upstream_load import UpstreamGenerator

NULL_CLASS = 1000  # both scripts: y_null = torch.tensor([1000] * n)


def read_config(checkout: Path, config: str) -> dict[str, Any]:
    with open(checkout / config) as f:
        return yaml.safe_load(f)


def build_lightningdit(modules: dict[str, Any], checkout: Path, project: Any, config: str) -> torch.nn.Module:
    c = read_config(checkout, config)
    m = c["model"]
    latent_size = c["data"]["image_size"] // c["vae"].get("downsample_ratio", 16)
    return modules["models.lightningdit"].LightningDiT_models[m["model_type"]](
        input_size=latent_size,
        num_classes=c["data"]["num_classes"],
        use_qknorm=m["use_qknorm"],
        use_swiglu=m.get("use_swiglu", False),
        use_rope=m.get("use_rope", False),
        use_rmsnorm=m.get("use_rmsnorm", False),
        wo_shift=m.get("wo_shift", False),
        in_channels=m.get("in_chans", 4),
        learn_sigma=m.get("learn_sigma", False),
    )


def build_dit(modules: dict[str, Any], checkout: Path, project: Any, key: str) -> torch.nn.Module:
    return modules["models"].DiT_models[key](input_size=project.image_size // 8, num_classes=project.num_classes)


class UpstreamDiffusion(UpstreamGenerator):
    uniform_step_cost = True  # every network call has the same shapes (CFG always doubled)

    def _noise(self, labels: torch.Tensor) -> torch.Tensor:
        """``torch.randn(n, model.in_channels, latent, latent)`` from the global RNG, as both scripts draw it."""
        size = self.model.x_embedder.img_size  # timm PatchEmbed: (latent, latent)
        return torch.randn(len(labels), self.model.in_channels, *size, device=self.device)

    def _guided(self, z: torch.Tensor, labels: torch.Tensor, p: DiffusionSampling) -> tuple[torch.Tensor, torch.Tensor]:
        if p.cfg_scale <= 1.0:
            return z, labels
        return torch.cat([z, z], 0), torch.cat([labels, torch.full_like(labels, NULL_CLASS)], 0)


class UpstreamLightningDiT(UpstreamDiffusion):
    """``transport.Sampler.sample_ode`` (torchdiffeq's fixed-grid Euler) on ``forward_with_cfg``."""

    def _sample(self, labels: torch.Tensor, p: DiffusionSampling, n_steps: int | None) -> torch.Tensor:
        if p.solver not in ("euler", "dopri5") or not p.cfg_first3 or p.cfg_interval[1] != 1.0:
            raise UserError(
                f"--upstream: LightningDiT's sampler runs euler or dopri5 with guidance on 3 channels below an "
                f"interval start; {self.project.name}'s parameters ({p.to_dict()}) differ"
            )
        c = read_config(Path(self.provenance["checkout"]), self.provenance["config"])
        t, s = c["transport"], c["sample"]
        transport = self.modules["transport"]
        sampler = transport.Sampler(
            transport.create_transport(
                t["path_type"],
                t["prediction"],
                t["loss_weight"],
                t["train_eps"],
                t["sample_eps"],
                use_cosine_loss=t.get("use_cosine_loss", False),
                use_lognorm=t.get("use_lognorm", False),
            )
        )
        sample_fn = sampler.sample_ode(
            sampling_method=p.solver,
            num_steps=p.steps if n_steps is None else n_steps + 1,
            atol=s["atol"],
            rtol=s["rtol"],
            reverse=s["reverse"],
            timestep_shift=p.timestep_shift,
        )
        n = len(labels)
        z, y = self._guided(self._noise(labels), labels, p)
        if p.cfg_scale > 1.0:
            kwargs = dict(y=y, cfg_scale=p.cfg_scale, cfg_interval=True, cfg_interval_start=p.cfg_interval[0])
            out = sample_fn(z, self.model.forward_with_cfg, **kwargs)[-1]
        else:
            out = sample_fn(z, self.model.forward, y=y)[-1]
        return out[:n]


class UpstreamDiT(UpstreamDiffusion):
    """``diffusion.create_diffusion(str(steps))`` and its ``p_sample_loop`` / ``ddim_sample_loop``."""

    def _sample(self, labels: torch.Tensor, p: DiffusionSampling, n_steps: int | None) -> torch.Tensor:
        if p.solver not in ("ddpm", "ddim") or not p.cfg_first3 or p.cfg_interval != (0.0, 1.0):
            raise UserError(
                f"--upstream: DiT's sample.py runs DDPM or DDIM with guidance on 3 channels at every step; "
                f"{self.project.name}'s parameters ({p.to_dict()}) differ"
            )
        diffusion = self.modules["diffusion"].create_diffusion(str(p.steps if n_steps is None else n_steps))
        n = len(labels)
        z, y = self._guided(self._noise(labels), labels, p)
        guided = p.cfg_scale > 1.0
        kwargs = dict(y=y, cfg_scale=p.cfg_scale) if guided else dict(y=y)
        fn = self.model.forward_with_cfg if guided else self.model.forward
        loop = diffusion.p_sample_loop if p.solver == "ddpm" else diffusion.ddim_sample_loop
        extra = {} if p.solver == "ddpm" else {"eta": p.eta}
        out = loop(
            fn, z.shape, z, clip_denoised=False, model_kwargs=kwargs, progress=False, device=self.device, **extra
        )
        return out[:n]

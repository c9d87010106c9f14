"""The contracts every plugin meets (DESIGN.md "Interfaces").

- Images cross every boundary as ``uint8`` tensors ``[B, H, W, 3]`` (NHWC, RGB).
- Each plugin converts to its own float range inside, with one named quantisation rule back to
  uint8; the rule is recorded with every run.
- Randomness comes only from the ``torch.Generator`` passed in, never from the global RNG, so a
  chunk of samples is a pure function of (model, sampling params, labels, seed).
"""

from __future__ import annotations

import abc
import dataclasses
from typing import Any, ClassVar

import torch

from harness.core.errors import UserError

# ----------------------------------------------------------------------------------------------
# Pixel quantisation rules
# ----------------------------------------------------------------------------------------------
# truncate:    clamp to range, scale to [0,255], cast (truncates)  -- AliTok, TiTok: (x*255).to(uint8)
# offset_half: scale, add 0.5, clamp, cast (rounds half up)         -- DiT, LlamaGen: 127.5*x+128
# round:       scale, round half to even, clamp                      -- nearest value, no bias (ADM evaluator users' fix)
QUANTIZATION_RULES = ("truncate", "round", "offset_half")
VALUE_RANGES = {(0.0, 1.0), (-1.0, 1.0)}


def _check_range(value_range: tuple[float, float]) -> tuple[float, float]:
    lo, hi = float(value_range[0]), float(value_range[1])
    if (lo, hi) not in VALUE_RANGES:
        raise ValueError(f"value range {value_range} not supported (use (0,1) or (-1,1))")
    return lo, hi


def to_uint8(x: torch.Tensor, value_range: tuple[float, float], rule: str) -> torch.Tensor:
    """Float NCHW in ``value_range`` -> uint8 NHWC, by the named rule.

    The arithmetic follows each official code base op for op, so a paper number reproduces
    bit-exactly: AliTok ``clamp(x,0,1)*255 -> uint8``; DiT ``clamp(127.5*x+128, 0, 255) -> uint8``.
    """
    if rule not in QUANTIZATION_RULES:
        raise ValueError(f"unknown quantisation rule {rule!r} (known: {', '.join(QUANTIZATION_RULES)})")
    if x.ndim != 4 or x.shape[1] != 3:
        raise ValueError(f"expected float images [B,3,H,W], got shape {tuple(x.shape)}")
    lo, hi = _check_range(value_range)
    x = x.detach().float()
    if rule == "truncate":
        v = torch.clamp(x, lo, hi)
        v = v * 255.0 if lo == 0.0 else (v + 1.0) * 127.5
    elif rule == "offset_half":
        v = x * 255.0 + 0.5 if lo == 0.0 else x * 127.5 + 128.0
        v = torch.clamp(v, 0.0, 255.0)
    else:
        v = x * 255.0 if lo == 0.0 else (x + 1.0) * 127.5
        v = torch.clamp(torch.round(v), 0.0, 255.0)
    return v.to(torch.uint8).permute(0, 2, 3, 1).contiguous()


def from_uint8(images: torch.Tensor, value_range: tuple[float, float]) -> torch.Tensor:
    """uint8 NHWC -> float32 NCHW in ``value_range`` (exact inverse of the scale, no rounding)."""
    check_images(images)
    lo, _ = _check_range(value_range)
    x = images.permute(0, 3, 1, 2).float() / 255.0
    return x if lo == 0.0 else x * 2.0 - 1.0


class ImageFormatError(UserError, ValueError):
    """Images that break the boundary format (uint8 NHWC RGB of the expected size)."""


def check_images(images: Any, size: int | None = None, name: str = "images") -> torch.Tensor:
    """Validate the boundary format; return the tensor. One-line ``ImageFormatError`` otherwise."""
    if not isinstance(images, torch.Tensor):
        raise ImageFormatError(f"{name}: expected a torch.Tensor, got {type(images).__name__}")
    if images.dtype != torch.uint8:
        raise ImageFormatError(f"{name}: expected dtype uint8, got {images.dtype}")
    if images.ndim != 4 or images.shape[-1] != 3:
        raise ImageFormatError(f"{name}: expected shape [B,H,W,3], got {tuple(images.shape)}")
    if size is not None and tuple(images.shape[1:3]) != (size, size):
        raise ImageFormatError(f"{name}: expected {size}x{size} images, got {images.shape[1]}x{images.shape[2]}")
    return images


# ----------------------------------------------------------------------------------------------
# Sampling parameters: one typed dataclass per family
# ----------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class SamplingParams:
    """Base class; ``family`` names the dataclass in records and configs."""

    family: ClassVar[str] = "none"

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class NoSampling(SamplingParams):
    """For generators with nothing to tune (the real-data floor)."""

    family: ClassVar[str] = "none"


CFG_SCHEDULES = ("constant", "linear", "power-cosine")


@dataclasses.dataclass(frozen=True)
class ARSampling(SamplingParams):
    """Autoregressive token sampling (AliTok, LlamaGen, RAR).

    ``cfg_schedule="power-cosine"``: s_t = 1 + (g-1) (1 - cos(pi (t/T)^pow)) / 2 (AliTok, RAR, MDT),
    computed in float32 tensor arithmetic as upstream does.
    ``cfg_interval`` (LlamaGen ``generate.py``): -1 guides every token; n >= 0 guides tokens
    t = 0..n+1 (the prefill token and decode steps i <= n) and uses the conditional logits after.
    ``top_k=0`` and ``top_p=1.0`` mean the full softmax; top-p keeps the token that crosses p
    (Hugging Face ``TopPLogitsWarper`` / LlamaGen ``top_k_top_p_filtering``).
    """

    family: ClassVar[str] = "ar"
    cfg_scale: float = 1.0
    cfg_schedule: str = "constant"
    cfg_power: float = 1.0
    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0
    cfg_interval: int = -1

    def __post_init__(self) -> None:
        if self.cfg_schedule not in CFG_SCHEDULES:
            raise ValueError(f"cfg_schedule {self.cfg_schedule!r} unknown (known: {', '.join(CFG_SCHEDULES)})")
        if self.temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {self.temperature}")
        if self.top_k < 0 or not 0.0 < self.top_p <= 1.0:
            raise ValueError(f"need top_k >= 0 and 0 < top_p <= 1, got {self.top_k}, {self.top_p}")
        if self.cfg_interval < -1:
            raise ValueError(f"cfg_interval must be -1 (always) or >= 0, got {self.cfg_interval}")


@dataclasses.dataclass(frozen=True)
class DiffusionSampling(SamplingParams):
    """Diffusion / flow sampling (DiT, SiT, LightningDiT); see ``harness.nn.models.diffusion_generator``.

    ``solver``: ddpm | ddim (DDPM schedules, ``steps`` = respaced steps, ``eta`` for DDIM) or
    euler | heun | euler-maruyama | dopri5 (flow, ``steps`` = time-grid points as upstream; dopri5 is
    SiT's adaptive default through torchdiffeq, atol 1e-6, rtol 1e-3).
    ``cfg_interval``: guide only where normalised time (0 noise, 1 data) is in [lo, hi].
    ``cfg_first3``: guide only output channels 0-2 (DiT / SiT / LightningDiT reference behaviour).
    ``timestep_shift``: LightningDiT's ODE grid shift ``s t / (1 + (s - 1) t)`` (0 = none).
    """

    family: ClassVar[str] = "diffusion"
    steps: int = 250
    solver: str = "ddpm"
    cfg_scale: float = 1.0
    cfg_interval: tuple[float, float] = (0.0, 1.0)
    eta: float = 0.0
    cfg_first3: bool = True
    timestep_shift: float = 0.0

    def __post_init__(self) -> None:
        if self.steps < 1:
            raise ValueError(f"steps must be >= 1, got {self.steps}")
        if self.solver not in ("ddpm", "ddim", "euler", "heun", "euler-maruyama", "dopri5"):
            raise ValueError(f"solver {self.solver!r} unknown (known: ddpm, ddim, euler, heun, euler-maruyama, dopri5)")
        lo, hi = self.cfg_interval
        if not 0.0 <= lo <= hi <= 1.0:
            raise ValueError(f"cfg_interval must satisfy 0 <= lo <= hi <= 1, got {self.cfg_interval}")
        if self.eta < 0 or self.timestep_shift < 0:
            raise ValueError(f"eta and timestep_shift must be >= 0, got {self.eta}, {self.timestep_shift}")


# ----------------------------------------------------------------------------------------------
# Plugin contracts
# ----------------------------------------------------------------------------------------------
class _Plugin(abc.ABC):
    name: str = ""
    image_size: int
    quantization: str  # the QUANTIZATION_RULES entry this plugin uses back to uint8

    def info(self) -> dict[str, Any]:
        """Provenance for run records: checkpoint path/sha256, parameter count, rule, config."""
        return {"name": self.name, "image_size": self.image_size, "quantization": self.quantization}

    def to(self, device: torch.device | str) -> _Plugin:  # noqa: D401 - torch idiom
        """Move weights; plugins without weights return self."""
        return self


class Tokenizer(_Plugin):
    """Images <-> discrete codes."""

    num_tokens: int
    codebook_size: int

    @abc.abstractmethod
    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 ``[B,H,W,3]`` -> LongTensor ``[B, num_tokens]``."""

    @abc.abstractmethod
    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """LongTensor ``[B, num_tokens]`` -> uint8 ``[B,H,W,3]``."""

    def reconstruct(self, images: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(images))


class Generator(_Plugin):
    """Class-conditional image generator."""

    num_classes: int
    sampling_cls: ClassVar[type[SamplingParams]] = NoSampling

    @property
    def default_sampling(self) -> SamplingParams:
        """The official preset for this model (e.g. AliTok-B: cfg 16.0, power-cosine, pow 1.8)."""
        return self.sampling_cls()

    @abc.abstractmethod
    def generate(
        self, labels: torch.Tensor, generator: torch.Generator, params: SamplingParams | None = None
    ) -> torch.Tensor:
        """LongTensor ``[B]`` of class ids -> uint8 ``[B,H,W,3]``; all randomness from ``generator``."""

    def check_labels(self, labels: torch.Tensor) -> torch.Tensor:
        if labels.ndim != 1 or labels.dtype not in (torch.int64, torch.int32):
            raise ValueError(
                f"{self.name}: labels must be an integer tensor [B], got {labels.dtype} {tuple(labels.shape)}"
            )
        if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= self.num_classes):
            raise ValueError(
                f"{self.name}: labels must lie in [0, {self.num_classes}), got {labels.min()}..{labels.max()}"
            )
        return labels.long()


# ----------------------------------------------------------------------------------------------
# Optional speed hooks (alitok-bench bench): generation and decode timed apart, step extrapolation
# ----------------------------------------------------------------------------------------------
from typing import Protocol, runtime_checkable  # noqa: E402  (kept with its only user, at the file's end)


@runtime_checkable
class PhasedGenerator(Protocol):
    """A Generator that exposes its two phases; ``generate`` must equal ``decode_codes(generate_codes(...))``.

    - ``generate_codes(labels, generator, params)``: codes / latents on the model device (no decode);
    - ``decode_codes(x)``: those -> uint8 ``[B,H,W,3]`` (tokenizer or VAE decode + quantisation);
    - ``total_steps(params)``: network calls of one full ``generate_codes`` (AR: 273 for AliTok;
      diffusion: ``params.steps``, one call per step, CFG as a doubled batch);
    - ``run_steps(labels, generator, params, n_steps)``: the first ``n_steps`` of those calls with
      the same batch, cache and CFG doubling (output unused), so a CPU can time a few steps and
      scale by ``total_steps`` (AR: sample ``n_steps`` tokens; diffusion: a truncated schedule).

    Optional class attribute ``uniform_step_cost``: True where every network call costs the same
    (diffusion: same shapes each step), False where later calls cost more (KV-cached AR: the cache
    grows). Bench records it with an extrapolated figure and says when the scaling is only indicative.
    """

    def generate_codes(
        self, labels: torch.Tensor, generator: torch.Generator, params: SamplingParams | None = None
    ) -> torch.Tensor: ...
    def decode_codes(self, codes: torch.Tensor) -> torch.Tensor: ...
    def total_steps(self, params: SamplingParams | None = None) -> int: ...
    def run_steps(
        self, labels: torch.Tensor, generator: torch.Generator, params: SamplingParams | None, n_steps: int
    ) -> Any: ...

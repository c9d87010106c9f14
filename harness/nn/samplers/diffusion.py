"""DDPM toolkit (DiT's ``diffusion/``): linear betas, respacing, posterior, learned-range variance,
ancestral DDPM and DDIM(eta) steps, and the MSE + VLB training loss.

Follows facebookresearch/DiT ``diffusion/gaussian_diffusion.py`` and ``respace.py`` formula for
formula (schedule terms in float64 numpy, read out per step as float32, as upstream's
``_extract_into_tensor`` does). Unlike upstream, every noise draw takes a ``torch.Generator``; the
draw order is upstream's (initial noise, then one ``randn`` of the sample's shape per step, the
last step included), so a run seeded like upstream's global RNG walks the same trajectory.
All schedule terms are computed once at construction; the loop needs no host sync.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch

NUM_TRAIN_TIMESTEPS = 1000


def linear_betas(num_timesteps: int = NUM_TRAIN_TIMESTEPS) -> np.ndarray:
    """DiT's "linear" schedule: 1e-4 .. 0.02, scaled by 1000/T (float64)."""
    scale = 1000.0 / num_timesteps
    return np.linspace(scale * 0.0001, scale * 0.02, num_timesteps, dtype=np.float64)


def respaced_timesteps(num_timesteps: int, steps: int | str) -> list[int]:
    """The kept subsequence of ``range(num_timesteps)``, ascending (DiT's ``space_timesteps``).

    ``steps`` is an int (one section: ``steps`` points at a fractional stride (T-1)/(steps-1),
    rounded half to even as Python's ``round``), a "a,b,c" string (equal sections, the first
    ``T % len`` one longer), or "ddimN" (the integer stride that gives exactly N points).
    """
    if isinstance(steps, str) and steps.startswith("ddim"):
        want = int(steps[4:])
        for stride in range(1, num_timesteps):
            kept = list(range(0, num_timesteps, stride))
            if len(kept) == want:
                return kept
        raise ValueError(f"cannot make {want} evenly strided steps out of {num_timesteps}")
    counts = [int(s) for s in steps.split(",")] if isinstance(steps, str) else [int(steps)]
    base, extra = divmod(num_timesteps, len(counts))
    kept: list[int] = []
    start = 0
    for i, count in enumerate(counts):
        size = base + (1 if i < extra else 0)
        if count > size or count < 1:
            raise ValueError(f"cannot take {count} steps out of a section of {size}")
        stride = 1 if count == 1 else (size - 1) / (count - 1)
        pos = 0.0
        for _ in range(count):  # accumulate the float stride as upstream does (rounding matches)
            kept.append(start + round(pos))
            pos += stride
        start += size
    return sorted(set(kept))


def _normal_kl(mean1, logvar1, mean2, logvar2):
    return 0.5 * (-1.0 + logvar2 - logvar1 + torch.exp(logvar1 - logvar2) + (mean1 - mean2) ** 2 * torch.exp(-logvar2))


def _approx_std_normal_cdf(x):
    return 0.5 * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x**3)))


def _discretized_gaussian_log_likelihood(x, means, log_scales):
    """Log-likelihood of 8-bit data in [-1, 1] under a discretised Gaussian (ADM/DiT decoder NLL)."""
    centered = x - means
    inv_stdv = torch.exp(-log_scales)
    cdf_plus = _approx_std_normal_cdf(inv_stdv * (centered + 1.0 / 255.0))
    cdf_min = _approx_std_normal_cdf(inv_stdv * (centered - 1.0 / 255.0))
    log_cdf_plus = torch.log(cdf_plus.clamp(min=1e-12))
    log_one_minus_cdf_min = torch.log((1.0 - cdf_min).clamp(min=1e-12))
    cdf_delta = cdf_plus - cdf_min
    return torch.where(
        x < -0.999, log_cdf_plus, torch.where(x > 0.999, log_one_minus_cdf_min, torch.log(cdf_delta.clamp(min=1e-12)))
    )


class GaussianDiffusion:
    """One (possibly respaced) DDPM schedule. ``timestep_map[i]`` is the original timestep of step i,
    the value the network is called with (DiT: ``rescale_timesteps=False``)."""

    def __init__(
        self,
        betas: np.ndarray,
        *,
        learn_sigma: bool = True,
        timestep_map: list[int] | None = None,
        num_train_timesteps: int | None = None,
    ):
        betas = np.asarray(betas, dtype=np.float64)
        self.betas, self.learn_sigma = betas, learn_sigma
        self.num_timesteps = len(betas)
        self.num_train_timesteps = num_train_timesteps or self.num_timesteps
        self.timestep_map = list(timestep_map) if timestep_map is not None else list(range(self.num_timesteps))
        # the per-step terms are read by name through extract() (hence vulture's V101 silenced below)
        alphas = 1.0 - betas
        ac = np.cumprod(alphas)
        ac_prev = np.append(1.0, ac[:-1])
        self.alphas_cumprod, self.alphas_cumprod_prev = ac, ac_prev  # noqa: V101
        self.sqrt_alphas_cumprod = np.sqrt(ac)  # noqa: V101
        self.sqrt_one_minus_alphas_cumprod = np.sqrt(1.0 - ac)  # noqa: V101
        self.sqrt_recip_alphas_cumprod = np.sqrt(1.0 / ac)  # noqa: V101
        self.sqrt_recipm1_alphas_cumprod = np.sqrt(1.0 / ac - 1)  # noqa: V101
        self.posterior_variance = betas * (1.0 - ac_prev) / (1.0 - ac)
        # the t=0 posterior variance is 0: log-clip to the t=1 value (upstream)
        var = self.posterior_variance
        self.posterior_log_variance_clipped = np.log(np.append(var[1], var[1:])) if len(var) > 1 else np.array([0.0])
        # ADM "fixedlarge": beta_t, the t=0 entry replaced by the t=1 posterior variance
        self.log_fixed_large_variance = np.log(np.append(var[1], betas[1:])) if len(var) > 1 else np.log(betas)  # noqa: V101
        self.posterior_mean_coef1 = betas * np.sqrt(ac_prev) / (1.0 - ac)  # noqa: V101
        self.posterior_mean_coef2 = (1.0 - ac_prev) * np.sqrt(alphas) / (1.0 - ac)  # noqa: V101
        self._cache: dict[tuple[str, torch.device], torch.Tensor] = {}

    @classmethod
    def respaced(
        cls, steps: int | str, *, learn_sigma: bool = True, base_betas: np.ndarray | None = None
    ) -> GaussianDiffusion:
        """DiT's ``SpacedDiffusion``: new betas 1 - abar_t/abar_prev over the kept timesteps."""
        base = cls(linear_betas() if base_betas is None else base_betas, learn_sigma=learn_sigma)
        keep = set(respaced_timesteps(base.num_timesteps, steps))
        new_betas, mapping, last = [], [], 1.0
        for i, abar in enumerate(base.alphas_cumprod):
            if i in keep:
                new_betas.append(1.0 - abar / last)
                last = abar
                mapping.append(i)
        return cls(
            np.array(new_betas), learn_sigma=learn_sigma, timestep_map=mapping, num_train_timesteps=base.num_timesteps
        )

    # -- per-step terms (float64 arrays -> float32 on the device, once) --------------------------
    def _term(self, name: str, device: torch.device) -> torch.Tensor:
        key = (name, torch.device(device))
        if key not in self._cache:
            self._cache[key] = torch.from_numpy(getattr(self, name)).to(device)
        return self._cache[key]

    def extract(self, name: str, t: torch.Tensor, ndim: int) -> torch.Tensor:
        """``arr[t]`` as float32, broadcastable to an ``ndim`` tensor (upstream's ``_extract_into_tensor``)."""
        out = self._term(name, t.device)[t].float()
        return out.reshape(-1, *([1] * (ndim - 1)))

    def model_timesteps(self, t: torch.Tensor) -> torch.Tensor:
        """Step indices -> the original timesteps the network sees."""
        return self._term("_timestep_map_arr", t.device)[t]

    @property  # noqa: V106 (read by name, like the terms)
    def _timestep_map_arr(self) -> np.ndarray:
        return np.asarray(self.timestep_map, dtype=np.int64)

    # -- forward process and posterior -----------------------------------------------------------
    def q_sample(self, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        return (
            self.extract("sqrt_alphas_cumprod", t, x0.ndim) * x0
            + self.extract("sqrt_one_minus_alphas_cumprod", t, x0.ndim) * noise
        )

    def q_posterior(self, x0: torch.Tensor, xt: torch.Tensor, t: torch.Tensor):
        """Mean, variance and clipped log-variance of q(x_{t-1} | x_t, x_0)."""
        n = xt.ndim
        mean = self.extract("posterior_mean_coef1", t, n) * x0 + self.extract("posterior_mean_coef2", t, n) * xt
        return mean, self.extract("posterior_variance", t, n), self.extract("posterior_log_variance_clipped", t, n)

    def p_mean_variance(self, model_out: torch.Tensor, xt: torch.Tensor, t: torch.Tensor, clip: bool = False):
        """Model mean, log-variance and predicted x0 from the network output (eps [+ v] channels).

        ``clip`` clamps the predicted x0 to [-1, 1] (ADM's ``clip_denoised``: on for pixel-space
        models, off in DiT's latent space)."""
        c, n = xt.shape[1], xt.ndim
        if self.learn_sigma:
            eps, var_values = model_out[:, :c], model_out[:, c : 2 * c]
            min_log = self.extract("posterior_log_variance_clipped", t, n)
            max_log = torch.log(self.extract("betas", t, n))
            frac = (var_values + 1) / 2  # learned range: [-1, 1] -> [posterior var, beta]
            log_var = frac * max_log + (1 - frac) * min_log
        else:  # fixed-large variance (ADM "fixedlarge")
            eps = model_out[:, :c]
            log_var = self.extract("log_fixed_large_variance", t, n)  # on the device once, like every term
        x0 = (
            self.extract("sqrt_recip_alphas_cumprod", t, n) * xt
            - self.extract("sqrt_recipm1_alphas_cumprod", t, n) * eps
        )
        if clip:
            x0 = x0.clamp(-1, 1)
        mean, _, _ = self.q_posterior(x0, xt, t)
        return mean, log_var, x0, eps

    # -- sampler steps ---------------------------------------------------------------------------
    def ddpm_step(self, model_out, xt, t, noise, clip: bool = False):
        """Ancestral step x_t -> x_{t-1}; no noise at t = 0."""
        mean, log_var, _, _ = self.p_mean_variance(model_out, xt, t, clip)
        nonzero = (t != 0).float().reshape(-1, *([1] * (xt.ndim - 1)))
        return mean + nonzero * torch.exp(0.5 * log_var) * noise

    def ddim_step(self, model_out, xt, t, noise, eta: float = 0.0, clip: bool = False):
        """DDIM step (Song et al. eq. 12): eta = 0 is deterministic, eta = 1 ancestral-like."""
        _, _, x0, _ = self.p_mean_variance(model_out, xt, t, clip)
        n = xt.ndim
        eps = (self.extract("sqrt_recip_alphas_cumprod", t, n) * xt - x0) / self.extract(
            "sqrt_recipm1_alphas_cumprod", t, n
        )
        abar = self.extract("alphas_cumprod", t, n)
        abar_prev = self.extract("alphas_cumprod_prev", t, n)
        sigma = eta * torch.sqrt((1 - abar_prev) / (1 - abar)) * torch.sqrt(1 - abar / abar_prev)
        mean = x0 * torch.sqrt(abar_prev) + torch.sqrt(1 - abar_prev - sigma**2) * eps
        nonzero = (t != 0).float().reshape(-1, *([1] * (n - 1)))
        return mean + nonzero * sigma * noise

    def sample(
        self,
        model_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
        noise: torch.Tensor,
        generator: torch.Generator,
        *,
        solver: str = "ddpm",
        eta: float = 0.0,
        noise_batch: int | None = None,
        clip_denoised: bool = False,
    ) -> torch.Tensor:
        """Run all steps from ``noise`` (x_T). ``model_fn(x, model_timesteps)`` returns the network output.

        ``noise_batch``: draw each step's noise for this many rows and use the first ones
        (DiT's CFG loop draws for the doubled batch; pass 2B there to walk upstream's stream).
        """
        if solver not in ("ddpm", "ddim"):
            raise ValueError(f"solver {solver!r} unknown for DDPM schedules (use ddpm or ddim)")
        x = noise
        b = x.shape[0]
        rows = noise_batch or b
        steps = torch.arange(self.num_timesteps, device=x.device)
        for i in reversed(range(self.num_timesteps)):
            t = steps[i].expand(b)
            out = model_fn(x, self.model_timesteps(t))
            z = torch.randn((rows, *x.shape[1:]), generator=generator, device=x.device, dtype=x.dtype)[:b]
            x = (
                self.ddpm_step(out, x, t, z, clip_denoised)
                if solver == "ddpm"
                else self.ddim_step(out, x, t, z, eta, clip_denoised)
            )
        return x

    # -- training --------------------------------------------------------------------------------
    def training_losses(
        self, model_out: torch.Tensor, x0: torch.Tensor, xt: torch.Tensor, t: torch.Tensor, noise: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """DiT's loss: MSE on eps, plus (learn_sigma) the VLB term with a frozen mean (``vb``),
        scaled by T/1000; per sample, averaged over the batch."""
        c = x0.shape[1]
        mse = ((noise - model_out[:, :c]) ** 2).mean(dim=list(range(1, x0.ndim)))
        out = {"mse": mse.mean()}
        loss = mse
        if self.learn_sigma:
            frozen = torch.cat([model_out[:, :c].detach(), model_out[:, c:]], dim=1)
            true_mean, _, true_log_var = self.q_posterior(x0, xt, t)
            mean, log_var, _, _ = self.p_mean_variance(frozen, xt, t)
            dims = list(range(1, x0.ndim))
            kl = _normal_kl(true_mean, true_log_var, mean, log_var).mean(dim=dims) / math.log(2.0)
            nll = -_discretized_gaussian_log_likelihood(x0, mean, 0.5 * log_var).mean(dim=dims) / math.log(2.0)
            vb = torch.where(t == 0, nll, kl) * (self.num_timesteps / 1000.0)
            out["vb"] = vb.mean()
            loss = loss + vb
        out["loss"] = loss.mean()
        return out

"""Flow toolkit (SiT ``transport/``, LightningDiT ``transport/integrators.py``): the linear
interpolant with velocity prediction, Euler / Heun / dopri5 ODE and Euler-Maruyama SDE samplers.

Conventions (SiT): ``x_t = t * x1 + (1 - t) * x0`` with x1 data and x0 noise, integration from
t = 0 (noise) to t = 1 (data), velocity target ``x1 - x0``; the network sees ``t`` in [0, 1].

- ``steps`` is upstream's ``num_sampling_steps``: the number of points of the time grid
  ``linspace(t0, t1, steps)``, so Euler makes ``steps - 1`` model calls, Heun (torchdiffeq's
  ``heun2``) ``2 (steps - 1)``, and the SDE ``steps - 1`` Euler-Maruyama steps plus the final
  "Mean" step of size ``last_step_size`` (SiT: t1 = 1 - 0.04, diffusion form "sigma", norm 1).
  Upstream evaluates the network twice per SDE step (drift and score); the two calls see the same
  input, so one call here gives the same numbers (``UPSTREAM_SDE_CALLS_PER_STEP`` for records).
- ``dopri5`` is SiT's default ODE solver, run through torchdiffeq as upstream runs it
  (``ODE_ATOL`` / ``ODE_RTOL``: SiT ``train_utils.py`` defaults); adaptive, so its call count is
  known only after a run, and ``steps`` only sets the output grid (the end point is what is kept).
- ``timestep_shift`` s > 0 remaps the ODE grid as LightningDiT's ``compute_tm`` does:
  ``s t / (1 + (s - 1) t)`` (0 = no shift; LightningDiT-XL uses 0.3, which puts more grid points
  near the noise end t = 0: 81 of 249 Euler steps of the 250-point grid lie below t = 0.125).
- Noise only from the passed generator; the grid is built once on the host (float32, as
  upstream's ``th.linspace``), so no step needs a host sync. ``noise_rows`` draws each SDE step's
  noise for that many rows and keeps the first ones (upstream draws for the CFG-doubled batch).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

SOLVERS = ("euler", "heun", "euler-maruyama", "dopri5")
ADAPTIVE_SOLVERS = ("dopri5",)
SDE_LAST_STEP = 0.04  # SiT's default last_step_size (last_step "Mean")
ODE_ATOL, ODE_RTOL = 1e-6, 1e-3  # SiT train_utils.py parse_ode_args defaults
UPSTREAM_SDE_CALLS_PER_STEP = 2  # SiT/LightningDiT sde_drift: drift(x, t) + diffusion * score(x, t)


def interpolate(x0: torch.Tensor, x1: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(x_t, v_target)`` for noise x0, data x1, times t [B]."""
    tt = t.reshape(-1, *([1] * (x1.ndim - 1)))
    return tt * x1 + (1 - tt) * x0, x1 - x0


def shift_times(t: torch.Tensor, shift: float) -> torch.Tensor:
    """LightningDiT's grid shift ``s t / (1 + (s - 1) t)`` in upstream's operation order (float32,
    bit-equal to its per-point ``compute_tm``); ``shift <= 0`` leaves t unchanged."""
    return t if shift <= 0 else (shift * t) / (1 + (shift - 1) * t)


def time_grid(steps: int, *, t0: float = 0.0, t1: float = 1.0, shift: float = 0.0) -> torch.Tensor:
    if steps < 2:
        raise ValueError(f"flow samplers need steps >= 2 grid points, got {steps}")
    return shift_times(torch.linspace(t0, t1, steps), shift)


def score_from_velocity(v: torch.Tensor, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """SiT's ``get_score_from_velocity`` for the linear path: (t v - x) / (1 - t)."""
    tt = t.reshape(-1, *([1] * (x.ndim - 1)))
    return (tt * v - x) / (1 - tt)


def sample(
    velocity_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    noise: torch.Tensor,
    generator: torch.Generator | None,
    *,
    steps: int,
    solver: str = "euler",
    shift: float = 0.0,
    last_step_size: float = SDE_LAST_STEP,
    noise_rows: int | None = None,
) -> torch.Tensor:
    """Integrate from ``noise`` at t = 0 to data at t = 1. ``velocity_fn(x, t[B]) -> v``."""
    if solver not in SOLVERS:
        raise ValueError(f"flow solver {solver!r} unknown (known: {', '.join(SOLVERS)})")
    x = noise
    b, dev = x.shape[0], x.device
    if solver == "euler-maruyama":
        return _sde(velocity_fn, x, generator, steps, last_step_size, noise_rows or b)
    if solver == "dopri5":
        return _odeint(velocity_fn, x, time_grid(steps, shift=shift).to(dev), solver)
    grid = time_grid(steps, shift=shift).to(dev)
    ts = [grid[i].expand(b) for i in range(steps)]
    for i in range(steps - 1):
        dt = grid[i + 1] - grid[i]
        v = velocity_fn(x, ts[i])
        if solver == "euler":
            x = x + dt * v
        else:  # heun2: Euler predictor, trapezoidal corrector
            x_pred = x + dt * v
            x = x + dt * 0.5 * (v + velocity_fn(x_pred, ts[i + 1]))
    return x


def _odeint(velocity_fn, x, grid, method):
    """torchdiffeq's ``odeint`` called as SiT's ``ode.sample`` calls it (t as a [B] vector of ones
    times the solver's time, tolerances as one-element lists); the end point."""
    from torchdiffeq import odeint

    def fn(t, x):
        return velocity_fn(x, torch.ones(x.size(0)).to(x.device) * t)

    return odeint(fn, x, grid, method=method, atol=[ODE_ATOL], rtol=[ODE_RTOL])[-1]


def _sde(velocity_fn, x, generator, steps, last_step_size, rows):
    """SiT's Euler-Maruyama with diffusion ``D(t) = 1 - t`` ("sigma" form) and a final Mean step,
    in upstream's operation order; each step's noise drawn for ``rows`` rows, the first kept."""
    if generator is None:
        raise ValueError("the SDE sampler needs a torch.Generator for its noise")
    b, dev = x.shape[0], x.device
    t1 = 1.0 - last_step_size
    grid = torch.linspace(0.0, t1, steps).to(dev)
    dt = grid[1] - grid[0]

    def drift(x, t):
        v = velocity_fn(x, t)
        d = (1 - t).reshape(-1, *([1] * (x.ndim - 1)))
        return v + d * score_from_velocity(v, x, t), d

    for i in range(steps - 1):
        t = grid[i].expand(b)
        w = torch.randn((rows, *x.shape[1:]), generator=generator, device=dev, dtype=x.dtype)[:b]
        f, d = drift(x, t)
        x = (x + f * dt) + torch.sqrt(2 * d) * (w * torch.sqrt(dt))
    f, _ = drift(x, torch.full((b,), t1, device=dev))
    return x + f * last_step_size

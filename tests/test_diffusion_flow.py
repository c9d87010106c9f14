"""Flow toolkit on a toy with a known answer: a 1-D two-component Gaussian mixture whose exact
velocity field E[x1 - x0 | x_t] is available in closed form; the samplers must reproduce the
mixture's moments and mode weights."""

import math

import pytest
import torch

from harness.nn.samplers import flow

PI, MU, SIGMA = torch.tensor([0.3, 0.7]), torch.tensor([-2.0, 1.5]), torch.tensor([0.5, 0.3])


def exact_velocity(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """E[x1 - x0 | x_t = x] for x_t = t x1 + (1-t) x0, x0 ~ N(0,1), x1 ~ sum_k pi_k N(mu_k, s_k^2)."""
    x, t = x.double().reshape(-1, 1), t.double().reshape(-1, 1)
    var = t**2 * SIGMA.double() ** 2 + (1 - t) ** 2  # Var(x_t | k)
    resid = x - t * MU.double()
    logw = torch.log(PI.double()) - 0.5 * torch.log(2 * math.pi * var) - 0.5 * resid**2 / var
    w = torch.softmax(logw, dim=1)
    e_x1 = MU.double() + t * SIGMA.double() ** 2 / var * resid  # E[x1 | x_t, k]
    e_x0 = (1 - t) / var * resid  # E[x0 | x_t, k]
    return (w * (e_x1 - e_x0)).sum(1).float().reshape(-1, 1)


def _moments():
    mean = float((PI * MU).sum())
    second = float((PI * (SIGMA**2 + MU**2)).sum())
    return mean, second - mean**2, float(PI[1])  # P(x > 0) ~ weight of the right mode


@pytest.mark.parametrize(
    "solver, steps, shift",
    [("euler", 201, 0.0), ("heun", 51, 0.0), ("euler", 201, 0.3), ("euler-maruyama", 251, 0.0), ("dopri5", 2, 0.0)],
)
def test_flow_samplers_reproduce_mixture_moments(solver, steps, shift):
    n = 20000
    g = torch.Generator().manual_seed(0)
    noise = torch.randn(n, 1, generator=g)
    x = flow.sample(lambda x, t: exact_velocity(x, t), noise, g, steps=steps, solver=solver, shift=shift)
    mean, var, right = _moments()
    se = math.sqrt(var / n)
    assert abs(float(x.mean()) - mean) < 5 * se + 0.02
    assert float(x.var()) == pytest.approx(var, rel=0.05)
    assert float((x > 0).float().mean()) == pytest.approx(right, abs=0.015)


def test_too_few_euler_steps_do_not_converge():
    """The moment check above can fail: 2 grid points (one Euler step) miss the variance."""
    g = torch.Generator().manual_seed(0)
    x = flow.sample(lambda x, t: exact_velocity(x, t), torch.randn(20000, 1, generator=g), g, steps=2)
    _, var, _ = _moments()
    assert abs(float(x.var()) - var) / var > 0.1


def test_interpolant_and_score():
    g = torch.Generator().manual_seed(0)
    x0, x1, t = torch.randn(5, 3, generator=g), torch.randn(5, 3, generator=g), torch.rand(5, generator=g)
    xt, v = flow.interpolate(x0, x1, t)
    torch.testing.assert_close(xt, t[:, None] * x1 + (1 - t[:, None]) * x0)
    torch.testing.assert_close(v, x1 - x0)
    # for a point-mass data x1 the exact velocity is (x1 - x_t) / (1 - t) and the score -x0 / (1 - t)
    vel = (x1 - xt) / (1 - t[:, None])
    torch.testing.assert_close(flow.score_from_velocity(vel, xt, t), -x0 / (1 - t[:, None]), rtol=1e-4, atol=1e-4)


def test_sde_noise_only_from_generator():
    fn = lambda x, t: exact_velocity(x, t)  # noqa: E731
    noise = torch.randn(100, 1, generator=torch.Generator().manual_seed(0))
    torch.manual_seed(1)
    a = flow.sample(fn, noise, torch.Generator().manual_seed(7), steps=20, solver="euler-maruyama")
    torch.manual_seed(2)
    b = flow.sample(fn, noise, torch.Generator().manual_seed(7), steps=20, solver="euler-maruyama")
    c = flow.sample(fn, noise, torch.Generator().manual_seed(8), steps=20, solver="euler-maruyama")
    assert torch.equal(a, b) and not torch.equal(a, c)

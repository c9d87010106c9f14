"""DDPM toolkit against independent references: DiT's space_timesteps (ported below from
facebookresearch/DiT diffusion/respace.py), Bayes-rule posteriors, exact-score DDIM, CFG channels."""

import math

import numpy as np
import pytest
import torch

from harness.nn.layers.dit_blocks import DiT, DiTConfig
from harness.nn.models.diffusion_generator import guided_fn
from harness.nn.samplers.diffusion import GaussianDiffusion, linear_betas, respaced_timesteps


def upstream_space_timesteps(num_timesteps, section_counts):
    """Port of DiT ``diffusion/respace.py::space_timesteps`` (commit 29e4fa6), kept verbatim in logic."""
    if isinstance(section_counts, str):
        if section_counts.startswith("ddim"):
            desired_count = int(section_counts[len("ddim") :])
            for i in range(1, num_timesteps):
                if len(range(0, num_timesteps, i)) == desired_count:
                    return set(range(0, num_timesteps, i))
            raise ValueError("no stride")
        section_counts = [int(x) for x in section_counts.split(",")]
    size_per = num_timesteps // len(section_counts)
    extra = num_timesteps % len(section_counts)
    start_idx = 0
    all_steps = []
    for i, section_count in enumerate(section_counts):
        size = size_per + (1 if i < extra else 0)
        frac_stride = 1 if section_count <= 1 else (size - 1) / (section_count - 1)
        cur_idx = 0.0
        taken_steps = []
        for _ in range(section_count):
            taken_steps.append(start_idx + round(cur_idx))
            cur_idx += frac_stride
        all_steps += taken_steps
        start_idx += size
    return set(all_steps)


@pytest.mark.parametrize("steps", [250, 50, "250", "ddim50", "10,15,20", 1000, 1])
def test_respaced_subsequence_equals_dit(steps):
    ours = respaced_timesteps(1000, steps)
    assert ours == sorted(upstream_space_timesteps(1000, steps if isinstance(steps, str) else str(steps)))
    d = GaussianDiffusion.respaced(steps)
    assert d.timestep_map == ours and d.num_timesteps == len(ours)
    # respaced betas keep the base alpha-bar at every kept timestep (SpacedDiffusion's invariant)
    base = np.cumprod(1 - linear_betas())
    np.testing.assert_allclose(d.alphas_cumprod, base[ours], rtol=1e-12)


def test_linear_betas_endpoints():
    b = linear_betas()
    assert b.dtype == np.float64 and len(b) == 1000 and b[0] == 1e-4 and abs(b[-1] - 0.02) < 1e-15


@pytest.mark.parametrize("steps", [1000, 250])
def test_posterior_equals_bayes_closed_form(steps):
    """q(x_{t-1} | x_t, x_0) from the product of N(x_t; sqrt(a_t) x_{t-1}, b_t) and
    N(x_{t-1}; sqrt(abar_{t-1}) x_0, 1 - abar_{t-1}): precision-weighted mean and variance."""
    d = GaussianDiffusion.respaced(steps)
    g = torch.Generator().manual_seed(0)
    t = torch.tensor([1, 2, steps // 2, steps - 1])
    x0, xt = torch.randn(4, 3, 2, 2, generator=g), torch.randn(4, 3, 2, 2, generator=g)
    mean, var, logvar = d.q_posterior(x0.double(), xt.double(), t)
    abar = np.cumprod(1 - d.betas)
    for i, ti in enumerate(t.tolist()):
        beta, alpha, abar_prev = d.betas[ti], 1 - d.betas[ti], abar[ti - 1]
        precision = alpha / beta + 1 / (1 - abar_prev)
        exp_var = 1 / precision
        exp_mean = exp_var * (
            math.sqrt(alpha) / beta * xt[i].double() + math.sqrt(abar_prev) / (1 - abar_prev) * x0[i].double()
        )
        assert float(var[i]) == pytest.approx(exp_var, rel=1e-6)
        assert float(logvar[i]) == pytest.approx(math.log(exp_var), rel=1e-6)
        torch.testing.assert_close(mean[i], exp_mean, rtol=1e-5, atol=1e-6)


def _exact_eps_point_mass(d: GaussianDiffusion, c: torch.Tensor):
    """eps-prediction of the exact denoiser when the data is the single point c."""

    def fn(x, model_t):
        step = torch.tensor([d.timestep_map.index(int(v)) for v in model_t])
        ab = torch.from_numpy(d.alphas_cumprod)[step].float().reshape(-1, 1, 1, 1)
        eps = (x - ab.sqrt() * c) / (1 - ab).sqrt()
        return torch.cat([eps, torch.zeros_like(eps)], dim=1)  # learned-range value 0: mid variance

    return fn


def test_ddim_eta0_is_deterministic_and_exact():
    d = GaussianDiffusion.respaced(50)
    c = torch.full((2, 3, 4, 4), 0.3)
    noise = torch.randn(2, 3, 4, 4, generator=torch.Generator().manual_seed(1))
    fn = _exact_eps_point_mass(d, c)
    a = d.sample(fn, noise, torch.Generator().manual_seed(2), solver="ddim", eta=0.0)
    b = d.sample(fn, noise, torch.Generator().manual_seed(3), solver="ddim", eta=0.0)
    assert torch.equal(a, b)  # the step noise stream is irrelevant at eta = 0
    torch.testing.assert_close(a, c, atol=1e-4, rtol=0)  # exact score -> exact data point
    s1 = d.sample(fn, noise, torch.Generator().manual_seed(2), solver="ddim", eta=1.0)
    s2 = d.sample(fn, noise, torch.Generator().manual_seed(3), solver="ddim", eta=1.0)
    assert not torch.equal(s1, s2)
    s3 = d.sample(fn, noise, torch.Generator().manual_seed(2), solver="ddim", eta=1.0)
    assert torch.equal(s1, s3)  # ... and a pure function of the generator


def test_ddpm_ancestral_point_mass_and_generator_only():
    d = GaussianDiffusion.respaced(100)
    c = torch.full((3, 3, 2, 2), -0.5)
    noise = torch.randn(3, 3, 2, 2, generator=torch.Generator().manual_seed(1))
    fn = _exact_eps_point_mass(d, c)
    torch.manual_seed(0)
    a = d.sample(fn, noise, torch.Generator().manual_seed(5), solver="ddpm")
    torch.manual_seed(99)  # the global RNG must not matter
    b = d.sample(fn, noise, torch.Generator().manual_seed(5), solver="ddpm")
    assert torch.equal(a, b)
    # the last step uses the t=0 posterior mean with x0 = c and adds no noise: lands on c
    torch.testing.assert_close(a, c, atol=1e-3, rtol=0)


def test_training_loss_terms():
    d = GaussianDiffusion.respaced(1000)
    g = torch.Generator().manual_seed(0)
    x0 = torch.rand(6, 3, 4, 4, generator=g) * 2 - 1
    noise = torch.randn(x0.shape, generator=g)
    t = torch.tensor([0, 1, 10, 500, 998, 999])
    xt = d.q_sample(x0, t, noise)
    out = torch.randn(6, 6, 4, 4, generator=g)
    losses = d.training_losses(out, x0, xt, t, noise)
    assert float(losses["mse"]) == pytest.approx(float(((noise - out[:, :3]) ** 2).mean()), rel=1e-6)
    assert float(losses["vb"]) >= 0 and torch.isfinite(losses["loss"])
    # perfect eps with the true posterior variance: the KL term vanishes for t > 0
    frac = torch.zeros(6)
    for i, ti in enumerate(t.tolist()):  # learned range value giving exactly the posterior log-variance
        lo, hi = d.posterior_log_variance_clipped[ti], math.log(d.betas[ti])
        frac[i] = 2 * (math.log(max(d.posterior_variance[ti], 1e-40)) - lo) / (hi - lo) - 1 if ti > 0 else -1
    perfect = torch.cat([noise, frac.reshape(-1, 1, 1, 1).expand(6, 3, 4, 4)], dim=1)
    kl_free = d.training_losses(perfect[1:], x0[1:], xt[1:], t[1:], noise[1:])
    assert float(kl_free["mse"]) == 0.0 and float(kl_free["vb"]) < 1e-5


class _TwoFaced(torch.nn.Module):
    """Conditional rows output +1 on every channel, null-class rows -1; records its inputs."""

    def __init__(self, out_channels):
        super().__init__()
        self.cfg = DiTConfig(
            input_size=4,
            patch_size=1,
            in_channels=4,
            hidden_size=8,
            depth=1,
            num_heads=1,
            num_classes=10,
            learn_sigma=out_channels == 8,
        )
        self.null_class = 10

    def forward(self, x, t, y):
        sign = torch.where(y == self.null_class, -1.0, 1.0).reshape(-1, 1, 1, 1)
        return sign * torch.ones(x.shape[0], self.cfg.out_channels, *x.shape[2:])


@pytest.mark.parametrize("first3, guided", [(True, 3), (False, 4)])
def test_cfg_first3_flag_changes_exactly_those_channels(first3, guided):
    model = _TwoFaced(8)
    x, t, y = torch.zeros(2, 4, 4, 4), torch.full((2,), 0.5), torch.tensor([1, 2])
    fn = guided_fn(model, y, 4.0, first3=first3, interval=(0.0, 1.0), tau=lambda s: s, channels=4)
    out = fn(x, t)
    assert out.shape == (2, 8, 4, 4)
    # guided channels: uncond + 4 (cond - uncond) = -1 + 4*2 = 7; the rest keep the conditional +1
    assert torch.all(out[:, :guided] == 7.0) and torch.all(out[:, guided:] == 1.0)


def test_cfg_interval_turns_guidance_off_outside():
    model = _TwoFaced(4)
    x, y = torch.zeros(3, 4, 4, 4), torch.tensor([1, 2, 3])
    fn = guided_fn(model, y, 4.0, first3=False, interval=(0.125, 1.0), tau=lambda s: s, channels=4)
    out = fn(x, torch.tensor([0.1, 0.125, 0.9]))
    assert torch.all(out[0] == 1.0) and torch.all(out[1:] == 7.0)


def test_dit_network_cfg_matches_upstream_forward_with_cfg():
    """Our guided_fn on a real (random) DiT equals DiT's forward_with_cfg arithmetic on [x; x]."""
    cfg = DiTConfig(input_size=8, patch_size=2, in_channels=4, hidden_size=32, depth=2, num_heads=2, num_classes=10)
    net = DiT(cfg).initialize_weights(torch.Generator().manual_seed(0))
    with torch.no_grad():  # break the zero init so outputs depend on class and input
        for p in net.parameters():
            p.add_(torch.randn(p.shape, generator=torch.Generator().manual_seed(p.numel())) * 0.05)
    x = torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(1))
    t, y = torch.tensor([10, 500]), torch.tensor([3, 7])
    ours = guided_fn(net, y, 1.5, first3=True, interval=(0.0, 1.0), tau=lambda s: 1 - s / 1000, channels=4)(x, t)
    out = net(torch.cat([x, x]), torch.cat([t, t]), torch.tensor([3, 7, 10, 10]))
    eps, rest = out[:, :3], out[:, 3:]
    cond, uncond = eps.split(2)
    ref = torch.cat([uncond + 1.5 * (cond - uncond), rest[:2]], dim=1)
    torch.testing.assert_close(ours, ref, rtol=0, atol=1e-6)


def test_clip_denoised_clamps_predicted_x0_only():
    d = GaussianDiffusion.respaced(50)
    xt = torch.full((2, 3, 2, 2), 3.0)
    t = torch.tensor([10, 40])
    out = torch.cat([torch.full_like(xt, -2.0), torch.zeros_like(xt)], dim=1)
    _, _, x0, _ = d.p_mean_variance(out, xt, t)
    _, _, x0c, _ = d.p_mean_variance(out, xt, t, clip=True)
    assert float(x0.min()) > 1.0 and torch.all(x0c == 1.0)
    c = torch.full((2, 3, 4, 4), 0.3)  # an in-range data point is still recovered exactly with clipping on
    noise = torch.randn(2, 3, 4, 4, generator=torch.Generator().manual_seed(1))
    a = d.sample(_exact_eps_point_mass(d, c), noise, torch.Generator(), solver="ddim", clip_denoised=True)
    torch.testing.assert_close(a, c, atol=1e-4, rtol=0)


@pytest.mark.parametrize("steps", [1000, 25])
def test_fixed_large_log_variance_is_adm_fixedlarge(steps):
    # ADM (learn_sigma=False, FIXED_LARGE): variance beta_t, with t=0 set to the t=1 posterior variance
    diff = GaussianDiffusion.respaced(steps, learn_sigma=False)
    betas, ac = diff.betas, np.cumprod(1.0 - diff.betas)
    post1 = betas[1] * (1.0 - ac[0]) / (1.0 - ac[1])
    want = np.log(np.append(post1, betas[1:]))
    t = torch.tensor([0, 1, steps // 2, steps - 1])
    xt = torch.zeros(4, 3, 2, 2)
    _, log_var, _ = diff.p_mean_variance(torch.zeros(4, 3, 2, 2), xt, t)[:3]
    torch.testing.assert_close(log_var.flatten(), torch.from_numpy(want[t.numpy()]).float(), rtol=1e-6, atol=0)

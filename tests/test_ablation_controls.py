"""Positive controls of the ablation suite: the plan runs them through the same jobs (A's stage 1, their
own AR or A's, A's evaluation with noise), the noise and shuffle transforms do what their closed
forms say, and the report calls a control detected exactly when its paired t interval excludes 0 on
the expected side (scipy's one-sample t interval as the reference)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from scipy import stats

from harness.core.config import ConfigError
from harness.suites import ablation
from harness.suites.ablation.evaluation import add_pixel_noise, blur_images, scale_error
from harness.suites.ablation.summary import control_results

SUITE = Path(__file__).resolve().parents[1] / "alitok" / "configs" / "ablation.yaml"


def test_controls_reuse_row_a_and_change_one_thing():
    suite = ablation.load_suite(SUITE, "tiny")
    by = {(j.seed, j.row, j.stage): j for j in ablation.plan(suite, "/o")}
    s = suite.seeds[0]
    a_s1 = str(by[(s, "A", "stage1")].out / "last.safetensors")
    for row in ("ctrl_shuffle", "ctrl_noise", "ctrl_half_ar", "ctrl_blur", "ctrl_half_error"):
        assert (s, row, "stage1") not in by and (s, row, "stage2") not in by  # A's tokenizer
        assert (
            by[(s, row, "eval")].config["tokenizer_checkpoint"] == by[(s, "A", "eval")].config["tokenizer_checkpoint"]
        )
    a_ar = by[(s, "A", "ar")].config
    for row, changed in (("ctrl_shuffle", {"data"}), ("ctrl_half_ar", {"steps"})):
        ar = by[(s, row, "ar")].config
        assert ar["tokenizer"] == a_s1 and ar["seed"] == s
        assert {k for k in a_ar if a_ar[k] != ar[k]} == changed
    assert by[(s, "ctrl_shuffle", "ar")].config["data"]["shuffle_tokens"] is True
    assert by[(s, "ctrl_half_ar", "ar")].config["steps"] * 2 == a_ar["steps"]
    noise = by[(s, "ctrl_noise", "eval")].config
    assert noise["ar_checkpoint"] == by[(s, "A", "eval")].config["ar_checkpoint"] and noise["decoder_noise_std"] > 0
    assert by[(s, "A", "eval")].config["decoder_noise_std"] == 0.0
    blur = by[(s, "ctrl_blur", "eval")].config
    assert (
        blur["decoder_blur_sigma"] > 0
        and blur["decoder_noise_std"] == 0.0 == by[(s, "A", "eval")].config["decoder_blur_sigma"]
    )
    assert (s, "ctrl_blur", "ar") not in by and blur["ar_checkpoint"] == by[(s, "A", "eval")].config["ar_checkpoint"]
    half = by[(s, "ctrl_half_error", "eval")].config
    assert (s, "ctrl_half_error", "ar") not in by and half["ar_checkpoint"] == blur["ar_checkpoint"]
    assert (half["decoder_error_scale"], by[(s, "A", "eval")].config["decoder_error_scale"]) == (0.5, 1.0)
    assert half["decoder_noise_std"] == half["decoder_blur_sigma"] == 0.0
    # rows.presets: the shuffle (codes in memory) is not a row of the imagenet preset; the others are
    imagenet = [r.name for r in ablation.load_suite(SUITE, "imagenet").rows]
    assert "ctrl_shuffle" not in imagenet and {"ctrl_noise", "ctrl_half_ar"} <= set(imagenet)
    # half the steps is a fraction of the preset's AR steps, so it holds at every preset
    small = {(j.row, j.stage): j for j in ablation.plan(ablation.load_suite(SUITE, "small", seeds=[0]), "/o")}
    assert small[("ctrl_half_ar", "ar")].config["steps"] * 2 == small[("A", "ar")].config["steps"] != a_ar["steps"]


@pytest.mark.parametrize(
    "edit, match",
    [
        (lambda d: d["rows"]["B"].update(control={"ar_acc": "down"}), "rows.B.control: needs from"),
        (lambda d: d["rows"]["ctrl_noise"].update(control={"colour": "up"}), "control.colour: not a table metric"),
        (lambda d: d["rows"]["ctrl_noise"].update(control={"psnr": "sideways"}), "ctrl_noise.control"),
        (lambda d: d["rows"]["ctrl_noise"].update(decoder_noise_std=0.0), "would repeat row A"),
        (lambda d: d.update(reference_effects={"colour": 1.0}), "reference_effects.colour"),
        (lambda d: d["rows"]["B"].update(ar_steps_scale=0.5), "rows.B.ar_steps_scale: needs from"),
        (lambda d: d["rows"]["ctrl_half_error"].update(decoder_error_scale=1.0), "would repeat row A"),
        (lambda d: d["rows"]["ctrl_half_error"].update(decoder_error_scale=-0.5), "decoder_error_scale: must be >= 0"),
    ],
)
def test_bad_control_rows_are_config_errors(tmp_path, edit, match):
    data = yaml.safe_load(SUITE.read_text())
    edit(data)
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError, match=match):
        ablation.load_suite(path, "tiny")


def test_pixel_noise_adds_its_variance_in_closed_form():
    rng = np.random.default_rng(0)
    clean = np.full((50, 32, 32, 3), 128, np.uint8)  # mid-grey: no clipping at std 10
    noisy = add_pixel_noise(clean, 10.0, rng)
    mse = np.mean((noisy.astype(np.float64) - clean) ** 2)
    # rounded Gaussian: E = std^2 + 1/12; the mean of 153600 squared N(0, 100) draws has sd
    # sqrt(2) * 100 / sqrt(153600) = 0.36, so 4 sd = 1.5
    assert abs(mse - (100.0 + 1 / 12)) < 1.5
    # PSNR of a decoder with MSE m falls to 10 log10(255^2 / (m + std^2 + 1/12))
    assert 10 * np.log10(255**2 / mse) == pytest.approx(10 * np.log10(255**2 / (100 + 1 / 12)), abs=0.07)
    assert noisy.dtype == np.uint8 and add_pixel_noise(np.zeros((1, 2, 2, 3), np.uint8), 50.0, rng).min() == 0


def test_a_scaled_error_raises_psnr_by_its_closed_form():
    rng = np.random.default_rng(0)
    real = rng.integers(0, 256, (40, 32, 32, 3)).astype(np.uint8)
    decoded = np.clip(np.rint(real + rng.normal(0.0, 20.0, real.shape)), 0, 255).astype(np.uint8)

    def mse(x):
        return np.mean((x.astype(np.float64) - real) ** 2)

    # halving an integer error e leaves e / 2 rounded: the squared error is e^2 / 4 plus 1/4 on odd e (at most
    # +0.25 on ~90, 0.012 dB) plus a cross term of either sign that averages out over 122880 values
    gain = 10 * np.log10(mse(decoded) / mse(scale_error(decoded, real, 0.5)))
    assert gain == pytest.approx(20 * np.log10(2), abs=0.02)
    assert np.array_equal(scale_error(decoded, real, 0.0), real)  # no error left: the held-out images themselves
    assert np.array_equal(scale_error(decoded, real, 1.0), decoded)
    assert scale_error(decoded, real, 0.5).dtype == np.uint8


def test_blur_keeps_the_gaussian_transfer_function_of_a_sinusoid():
    # 128 + 60 sin(2 pi f x), f = 1/8 cycle per pixel: a Gaussian of sd s keeps exp(-2 pi^2 s^2 f^2) of the
    # amplitude (0.735 at s = 1). Read on the columns away from the reflected edges (4 sd = the kernel
    # radius), by projection on the sinusoid; rounding to uint8 moves each pixel by <= 0.5, the amplitude by less.
    x = np.arange(64)
    wave = np.sin(2 * np.pi * x / 8)
    img = np.broadcast_to(np.rint(128 + 60 * wave)[None, None, :, None], (2, 16, 64, 3)).astype(np.uint8)
    for sigma in (0.5, 1.0, 2.0):
        out = blur_images(img, sigma).astype(np.float64)
        mid = slice(16, 48)
        amp = 2 * np.mean((out[:, :, mid, :] - 128) * wave[None, None, mid, None])
        assert amp == pytest.approx(60 * np.exp(-2 * np.pi**2 * sigma**2 / 64), abs=0.6), sigma
    flat = np.full((1, 8, 8, 3), 77, np.uint8)
    assert np.array_equal(blur_images(flat, 1.5), flat) and blur_images(img, 1.0).dtype == np.uint8


def test_shuffled_codes_keep_each_images_tokens_in_another_order():
    from alitok.train.ar import shuffle_token_order

    codes = torch.arange(6 * 2 * 20).view(6, 2, 20)  # 6 images, 2 views, 20 tokens
    out = shuffle_token_order(codes, torch.Generator().manual_seed(0))
    assert torch.equal(out.sort(dim=-1).values, codes.sort(dim=-1).values)  # same tokens per sequence
    assert not torch.equal(out, codes)
    # both views of an image share the permutation (view 1 = view 0 + 20 here)
    assert torch.equal(out[:, 1] - out[:, 0], torch.full((6, 20), 20))
    perms = {tuple((out[i, 0] - 40 * i).tolist()) for i in range(6)}
    assert len(perms) == 6  # each image its own order


def test_a_control_is_detected_when_its_t_interval_excludes_zero_on_the_expected_side():
    suite = ablation.load_suite(SUITE, "tiny", rows=["ctrl_shuffle"], seeds=[0, 1, 2])
    a = [0.60, 0.55, 0.65]
    cases = {"clear fall": [0.30, 0.26, 0.33], "noise": [0.62, 0.50, 0.66], "rise": [0.70, 0.66, 0.74]}
    for name, shuffled in cases.items():
        per_seed = {
            "A": {s: {"ar_acc": a[s], "ar_ce": 1.0} for s in range(3)},
            "ctrl_shuffle": {s: {"ar_acc": shuffled[s], "ar_ce": 1.5 + 0.01 * s} for s in range(3)},
        }
        res = {c["metric"]: c for c in control_results(per_seed, suite)}
        d = np.array(shuffled) - np.array(a)
        ci = stats.ttest_1samp(d, 0.0).confidence_interval(0.95)
        assert res["ar_acc"]["interval95"] == pytest.approx([ci.low, ci.high], rel=1e-9)
        assert res["ar_acc"]["detected"] == (ci.high < 0), name  # expected: down
        assert res["ar_acc"]["opposite"] == (ci.low > 0), name
        assert res["ar_ce"]["detected"] is True  # rises by 0.50, 0.51, 0.52: interval [0.485, 0.535]


def test_a_difference_panel_fits_the_rows_and_cuts_only_a_far_control():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from harness.suites.ablation.summary import _fit_rows_not_controls

    means = [0.0, 18.0, -257.0, 3.0, -5.0, 12.0]  # A, a near control, a far control, three rows
    sds = [0.0, 25.0, 13.0, 5.0, 2.0, 4.0]
    is_control = [False, True, True, False, False, False]
    fig, ax = plt.subplots()
    ax.bar(range(6), means)
    _fit_rows_not_controls(ax, means, sds, is_control)
    lo, hi = ax.get_ylim()
    # rows span [-7, 16]; the near control's 18 + 25 = 43 is within twice that span beyond them and stays whole
    assert lo < -7 and hi > 43 and lo > -257
    assert [t.get_text() for t in ax.texts] == ["-257"]
    fig2, ax2 = plt.subplots()  # no far control: the axes keep matplotlib's own limits
    ax2.bar(range(4), [0.0, 18.0, 3.0, -5.0])
    before = ax2.get_ylim()
    _fit_rows_not_controls(ax2, [0.0, 18.0, 3.0, -5.0], [0.0, 25.0, 5.0, 2.0], [False, True, False, False])
    assert ax2.get_ylim() == before and not ax2.texts
    plt.close(fig)
    plt.close(fig2)

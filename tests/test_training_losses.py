"""Every training loss the project computes, against an independent value.

Upstream-produced values: tests/fixtures/upstream/losses/ was written by
scripts/upstream_fixtures/make_losses_{diffusion,ar}.py, which ran the official training-loss code
(DiT ``GaussianDiffusion.training_losses``, SiT ``Transport.training_losses``, AliTok
``train_tokenizer/`` quantizer (with its clustering update) and ``MSE_LPIPS_GAN``, AliTok ``ARLoss``,
LlamaGen ``vq_model.py`` quantizer, ``VQLoss`` and GPT ``forward(targets=...)``, TiTok's quantizer and
``ReconstructionLoss_Single_Stage``) on fixed inputs; see its manifest.json. Terms of upstream's that
need downloaded nets (LPIPS-VGG, ConvNeXt-S) were stubbed to 0 there and are absent here.
No upstream code runs here. Where no official loss exists (the EffNet stand-in perceptual term) or
the project's term has no upstream counterpart, the reference is a closed form written below from
the definition, with explicit loops, not through the project's function.

Measured: DiT's terms, the LlamaGen and TiTok quantizers and the GPT logits are bit-identical; the
rest agree within 2e-7 relative. Tolerance, unless a test says otherwise: 1e-5 relative. Both sides compute in float32 (unit
roundoff 6e-8) over at most a few hundred elements per mean and a handful of elementwise ops
(logs, exps, tanh in the DDPM decoder NLL), so the rounding difference of two operation orders is
~1e-6 relative at most; every constant of these losses (a beta of 0.25, a weight 10 K / G^2, a
1/ln 2, a mean against a sum) moves them by 1e-2 or more.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from upstream_fixture_io import FIXTURE_THREADS

pytestmark = pytest.mark.torch_threads(FIXTURE_THREADS)

FIX = Path(__file__).parent / "fixtures" / "upstream" / "losses"
RTOL = 1e-5


def fixture(name: str) -> dict[str, torch.Tensor]:
    return load_file(str(FIX / f"{name}.safetensors"))


def close(actual: torch.Tensor, expected: torch.Tensor, rtol: float = RTOL) -> None:
    a, e = torch.as_tensor(actual).detach().double(), torch.as_tensor(expected).detach().double()
    assert a.shape == e.shape, (a.shape, e.shape)
    err = float((a - e).abs().max())
    assert err <= rtol * max(float(e.abs().max()), 1e-12), f"max |diff| {err:.3e} vs scale {float(e.abs().max()):.3e}"


class FixedNet:
    """A "network" that returns a fixed output and records what it was called with."""

    def __init__(self, out: torch.Tensor):
        self.out, self.seen = out, {}

    def __call__(self, x, t, y=None):
        self.seen.update(x=x.clone(), t=t.clone())
        return self.out


# ----------------------------------------------------------------------------------------------
# Diffusion (baselines/train_diffusion.py loss_at, harness/nn/samplers/diffusion.py training_losses)
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("variance", ["learned", "fixed"])
def test_ddpm_loss_matches_dit_training_losses(variance):
    """DiT's ``training_losses`` (create_diffusion(""), loss type MSE) at fixed x0, t, noise and
    network output, t = 0 included (the decoder-NLL branch of vb): x_t, mse, vb and the total."""
    from baselines.train_diffusion import loss_at
    from harness.nn.samplers.diffusion import GaussianDiffusion

    f = fixture("dit_training_losses")
    learned = variance == "learned"
    ddpm = GaussianDiffusion.respaced(1000, learn_sigma=learned)
    net = FixedNet(f[f"model_out_{variance}"])
    y = torch.zeros(len(f["t"]), dtype=torch.long)
    out = loss_at("ddpm", net, f["x_start"], y, f["t"], f["noise"], ddpm)
    close(net.seen["x"], f[f"{variance}_x_t"])
    assert torch.equal(net.seen["t"], f["t"])
    # upstream returns per-sample terms; the trainer averages over the batch
    close(out["mse"], f[f"{variance}_mse"].mean())
    close(out["loss"], f[f"{variance}_loss"].mean())
    if learned:
        close(out["vb"], f["learned_vb"].mean())
        assert float(f["learned_vb"][0]) > 10 * float(f["learned_vb"][1:].max())  # the NLL row is in play
    else:
        assert "vb" not in out


def test_flow_loss_matches_sit_training_losses():
    """SiT's ``training_losses`` (Linear path, velocity model) with upstream's own draws of x0 and t
    (recorded by the fixture script from the seeded global RNG): x_t and the velocity MSE."""
    from baselines.train_diffusion import loss_at

    f = fixture("sit_training_losses")
    net = FixedNet(f["model_out"])
    y = torch.zeros(len(f["t"]), dtype=torch.long)
    out = loss_at("flow", net, f["x1"], y, f["t"], f["x0"], ddpm=None)
    close(net.seen["x"], f["x_t"])
    close(net.seen["t"], f["t"])
    close(out["loss"], f["loss"].mean())


def test_diffusion_loss_draws_noise_then_t_from_the_generator():
    """``diffusion_loss`` is ``loss_at`` at (noise, t) drawn in that order from the passed generator
    (the order of the committed runs): the same numbers as drawing them by hand."""
    from baselines.train_diffusion import diffusion_loss, loss_at
    from harness.nn.samplers.diffusion import GaussianDiffusion

    f = fixture("dit_training_losses")
    ddpm = GaussianDiffusion.respaced(1000, learn_sigma=True)
    x, y = f["x_start"], torch.zeros(4, dtype=torch.long)
    for kind in ("ddpm", "flow"):
        out_shape = f["model_out_learned"] if kind == "ddpm" else f["model_out_fixed"]
        g = torch.Generator().manual_seed(5)
        noise = torch.randn(x.shape, generator=g)
        t = torch.randint(0, 1000, (4,), generator=g) if kind == "ddpm" else torch.rand((4,), generator=g)
        want = loss_at(kind, FixedNet(out_shape), x, y, t, noise, ddpm)["loss"]
        got = diffusion_loss(kind, FixedNet(out_shape), x, y, torch.Generator().manual_seed(5), ddpm)["loss"]
        assert torch.equal(got, want)


# ----------------------------------------------------------------------------------------------
# Vector quantisers (harness/nn/layers/vq.py for AliTok, baselines/llamagen.py, baselines/titok.py)
# ----------------------------------------------------------------------------------------------
def test_alitok_quantizer_matches_official_stage1_quantizer():
    """AliTok ``train_tokenizer/model/vae_stage1.py`` VectorQuantizer (commitment 0.25, means of the
    per-element terms): codes, straight-through value, commitment, codebook and total, with the
    quantiser AliTok builds from the default ``TokenizerConfig`` (its ``vq_beta``)."""
    from alitok.tokenizer import TokenizerConfig, build

    f = fixture("alitok_vq")
    cfg = TokenizerConfig(
        image_size=32,
        patch_size=8,
        codebook_size=16,
        token_dim=4,
        encoder_width=32,
        encoder_layers=1,
        encoder_heads=2,
        decoder_width=32,
        decoder_layers=1,
        decoder_heads=2,
        buffer_tokens=3,
    )
    vq = build(cfg, "stage2", generator=torch.Generator().manual_seed(0)).quantize.eval()
    with torch.no_grad():
        vq.embedding.weight.copy_(f["codebook"])
    b, d, _, t = f["z"].shape
    z = f["z"].permute(0, 2, 3, 1).reshape(b, t, d)  # the encoder's [B, D, 1, T] as [B, T, D]
    zq, codes, losses = vq(z)
    assert torch.equal(codes.reshape(-1), f["codes"])
    close(zq, f["z_quantized"].permute(0, 2, 3, 1).reshape(b, t, d))
    close(losses["commitment_loss"], f["commitment_loss"])
    close(losses["codebook_loss"], f["codebook_loss"])
    close(losses["vq_loss"], f["quantizer_loss"])


def test_alitok_clustering_update_matches_official_stage1_quantizer():
    """The stage-1 online clustering codebook update (CVQ-VAE, ``vae_stage1.py`` with
    ``clustering_vq``): usage EMA (decay 0.99) and the pull of each code toward its nearest batch
    feature, over two consecutive batches from an all-zero usage; the loss computed before the update.
    Codebook values pass through exp(-p N 10 / (1 - decay)) and a blend, each a few roundings:
    1e-5 relative holds."""
    from harness.nn.layers.vq import VectorQuantizer

    f = fixture("alitok_vq_clustering")
    vq = VectorQuantizer(16, 4, beta=0.25, clustering=True).train()
    with torch.no_grad():
        vq.embedding.weight.copy_(f["codebook_init"])
    for i in range(2):
        b, d, _, t = f[f"z{i}"].shape
        _, codes, losses = vq(f[f"z{i}"].permute(0, 2, 3, 1).reshape(b, t, d))
        assert torch.equal(codes.reshape(-1), f[f"codes{i}"])
        close(losses["vq_loss"], f[f"quantizer_loss{i}"])
        close(vq.embed_prob, f[f"embed_prob_after{i}"])
        close(vq.embedding.weight, f[f"codebook_after{i}"])


def test_llamagen_quantizer_matches_official_vq_model():
    """LlamaGen ``vq_model.py`` VectorQuantizer (l2-normalised, beta 0.25) in training mode: codes,
    value, codebook ("vq_loss" upstream) and commitment terms. Upstream's entropy term is weighted by
    ``entropy_loss_ratio``, 0 in its VQ configs: the fixture's entropy at ratio 0 is 0, so leaving it out
    is exact (at ratio 0.1 it would be nonzero, so the term itself is not degenerate on these inputs)."""
    from baselines.llamagen import L2VectorQuantizer, VQConfig

    f = fixture("llamagen_vq")
    vq = L2VectorQuantizer(VQConfig(codebook_size=16, codebook_dim=4)).train()
    with torch.no_grad():
        vq.embedding.weight.copy_(f["codebook"])
    zq, codes, losses = vq(f["z"])
    assert torch.equal(codes.reshape(-1), f["codes"])
    close(zq, f["z_quantized"])
    close(losses["codebook_loss"], f["codebook_loss"])
    close(losses["commitment_loss"], f["commit_loss"])
    assert float(f["entropy_loss"]) == 0.0 and abs(float(f["entropy_loss_ratio_01"])) > 1e-2


def test_baseline_tokenizer_loss_matches_llamagen_vqloss():
    """LlamaGen ``vq_loss.py`` VQLoss, generator step before ``disc_start`` (l2 reconstruction weight 1,
    the three codebook terms; LPIPS was stubbed to 0 by the fixture script, since the project's
    trainer has no perceptual term): ``tokenizer_loss`` with the trainer's default ``vq_weight``."""
    from baselines.llamagen import L2VectorQuantizer, VQConfig
    from baselines.train_tiny import TokenizerTrainConfig, tokenizer_loss

    f = fixture("llamagen_vq")
    vq = L2VectorQuantizer(VQConfig(codebook_size=16, codebook_dim=4)).train()
    with torch.no_grad():
        vq.embedding.weight.copy_(f["codebook"])
    vq_weight = TokenizerTrainConfig.__dataclass_fields__["vq_weight"].default
    total, mse = tokenizer_loss(f["recon"], f["x"], vq(f["z"])[2]["vq_loss"], vq_weight)
    close(total, f["vq_loss_total"])


@pytest.mark.parametrize("l2", ["plain", "l2"])
def test_titok_quantizer_matches_official_quantizer(l2):
    """TiTok ``modeling/quantizer/quantizer.py`` VectorQuantizer (commitment 0.25; with and without the
    l2 normalisation), through ``TiTok.quantise`` of a tiny non-legacy model."""
    from baselines import titok

    f = fixture("titok_vq")
    cfg = titok.TiTokConfig(
        image_size=32,
        patch_size=8,
        enc_width=32,
        enc_depth=1,
        enc_heads=2,
        dec_width=32,
        dec_depth=1,
        dec_heads=2,
        num_latent_tokens=5,
        token_size=4,
        codebook_size=16,
        use_l2_norm=l2 == "l2",
        is_legacy=False,
    )
    model = titok.build(cfg, generator=torch.Generator().manual_seed(0)).eval()
    with torch.no_grad():
        model.quantize.embedding.weight.copy_(f[f"{l2}_codebook"])
    zq, codes, losses = model.quantise(f[f"{l2}_z"])
    assert torch.equal(codes.reshape(-1), f[f"{l2}_codes"].reshape(-1))
    close(zq, f[f"{l2}_z_quantized"])
    close(losses["commitment_loss"], f[f"{l2}_commitment_loss"])
    close(losses["codebook_loss"], f[f"{l2}_codebook_loss"])
    close(losses["vq_loss"], f[f"{l2}_quantizer_loss"])


def test_baseline_tokenizer_loss_matches_titok_single_stage_loss():
    """TiTok ``ReconstructionLoss_Single_Stage`` (TA-TiTok VQ config: l2 reconstruction weight 1,
    quantizer weight 1; perceptual stubbed to 0 by the fixture script, before discriminator_start),
    given the l2 quantizer's loss: ``tokenizer_loss`` with the trainer's default ``vq_weight``."""
    from baselines.train_tiny import TokenizerTrainConfig, tokenizer_loss

    f = fixture("titok_vq")
    vq_weight = TokenizerTrainConfig.__dataclass_fields__["vq_weight"].default
    total, mse = tokenizer_loss(f["recon"], f["x"], f["l2_quantizer_loss"], vq_weight)
    close(mse, f["single_stage_reconstruction"])
    close(total, f["single_stage_total"])


# ----------------------------------------------------------------------------------------------
# AliTok tokenizer stages (alitok/train/tokenizer_stage{1,2}.py, tokenizer_gan.py)
# ----------------------------------------------------------------------------------------------
def test_stage1_loss_matches_official_mse_lpips_gan():
    """AliTok ``loss/mse_lpips_gan.py`` MSE_LPIPS_GAN (``config.py`` weights), generator step: the
    reconstruction MSE, the prefix-token aux MSE against [patch(0,0) | first patch row] at weight
    10 * 17 / 256 (the default ``aux_weight`` at K = 17, G = 16), the quantizer term, and their sum
    (upstream's LPIPS / ConvNeXt terms are 0 on both sides: stubbed there, off here)."""
    from alitok.train.tokenizer_stage1 import Stage1Loss, aux_weight, stage1_loss

    f = fixture("alitok_tokenizer_losses")
    loss = Stage1Loss()
    w_aux = aux_weight(loss, prefix_tokens=17, grid=16)
    out = {"recon": f["recon"], "aux": f["x_aux"], "vq_loss": f["quantizer_loss_in"]}
    total, logs = stage1_loss(out, f["x"], loss, w_aux, patch=16)
    close(loss.mse_weight * logs["mse"], f["reconstruction"])
    # the aux part: upstream's reconstruction with aux minus without (float32 values ~3e-2 and 9e-3:
    # the difference carries ~1e-9 absolute rounding, far inside 1e-5 of it)
    close(w_aux * logs["aux_mse"], f["reconstruction_with_aux"] - f["reconstruction"])
    close(loss.vq_weight * logs["vq_loss"], f["quantizer_term"])
    close(total, f["reconstruction_with_aux"] + f["quantizer_term"])


def test_stage1_loss_without_aux_head_has_no_aux_term():
    """K = 0 (no aux head, ``out["aux"] is None``) or weight 0 (ablation row C): MSE + VQ only, as
    upstream's ``x_aux = None`` path."""
    from alitok.train.tokenizer_stage1 import Stage1Loss, stage1_loss

    f = fixture("alitok_tokenizer_losses")
    for aux, w in ((None, 1.0), (f["x_aux"], 0.0)):
        total, logs = stage1_loss(
            {"recon": f["recon"], "aux": aux, "vq_loss": f["quantizer_loss_in"]}, f["x"], Stage1Loss(), w, patch=16
        )
        assert "aux_mse" not in logs
        close(total, f["reconstruction"] + f["quantizer_term"])


def test_stage2_loss_is_official_reconstruction_term():
    """Stage 2 (upstream ``train_tokenizer.py``: loss = mse + lpips + gan, no quantizer term): the MSE
    part equals MSE_LPIPS_GAN's reconstruction without aux."""
    from alitok.train.tokenizer_stage2 import Stage2Loss, stage2_loss

    f = fixture("alitok_tokenizer_losses")
    total, logs = stage2_loss(f["recon"], f["x"], Stage2Loss())
    close(total, f["reconstruction"])
    close(logs["mse"], f["reconstruction"])


def test_gan_terms_match_official_generator_and_discriminator_losses():
    """MSE_LPIPS_GAN after ``disc_start``: generator term discriminator_weight (0.05) x
    discriminator_factor (0.1) x -mean D(x_hat); discriminator loss factor (0.1) x hinge
    0.5 (mean relu(1 - D(x)) + mean relu(1 + D(x_hat))); the project's ``GanConfig`` defaults."""
    from alitok.train.tokenizer_common import GanConfig
    from alitok.train.tokenizer_gan import generator_adv_loss, hinge_d_loss

    f = fixture("alitok_tokenizer_losses")
    gan = GanConfig()
    close(gan.generator_weight * generator_adv_loss(f["fake_logits"]), f["generator_term"])
    close(gan.discriminator_weight * hinge_d_loss(f["real_logits"], f["fake_logits"]), f["discriminator_loss"])
    # closed form of the hinge from its definition, element by element
    real, fake = f["real_logits"].double().flatten().tolist(), f["fake_logits"].double().flatten().tolist()
    hinge = 0.5 * (sum(max(0.0, 1 - r) for r in real) / len(real) + sum(max(0.0, 1 + q) for q in fake) / len(fake))
    close(hinge_d_loss(f["real_logits"], f["fake_logits"]), torch.tensor(hinge, dtype=torch.float64))


# ----------------------------------------------------------------------------------------------
# AR losses (alitok/train/ar.py ar_loss, baselines/train_tiny.py next_token_loss)
# ----------------------------------------------------------------------------------------------
def ce_by_loops(logits: torch.Tensor, targets: torch.Tensor) -> float:
    """Mean over positions of -log softmax(logits)[target], each row's log-sum-exp in float64."""
    rows, ts = logits.double().reshape(-1, logits.shape[-1]).tolist(), targets.reshape(-1).tolist()
    total = 0.0
    for row, t in zip(rows, ts):
        m = max(row)
        total += m + math.log(sum(math.exp(v - m) for v in row)) - row[t]
    return total / len(ts)


def test_ar_loss_matches_official_arloss():
    """AliTok ``modeling/modules/losses.py`` ARLoss (CE over [B, V, L] after dropping the last
    position's logits, mean): ``ar_loss`` on a model that returns those L positions, and the CE by
    explicit loops."""
    from alitok.train.ar import ar_loss

    f = fixture("alitok_ar_loss")

    class Logits:
        def training_inputs(self, codes, class_ids):
            return torch.cat([class_ids[:, None], codes[:, :-1]], 1)

        def __call__(self, inputs):
            assert inputs.shape == f["labels"].shape
            return f["logits"][:, :-1]

    got = ar_loss(Logits(), f["labels"], torch.zeros(len(f["labels"]), dtype=torch.long))
    close(got, f["loss"])
    close(got, torch.tensor(ce_by_loops(f["logits"][:, :-1], f["labels"]), dtype=torch.float64))


def test_heldout_ce_by_position_group_matches_official_arloss():
    """``ar_eval.evaluate`` (the AR trainer's held-out CE, in batches of 2 over 3 sequences): the
    "overall" group equals upstream's ARLoss on the same logits, and each group (prefix 0..K-1,
    first row, rest) the explicit-loop CE over its positions."""
    from types import SimpleNamespace

    from alitok.train.ar_eval import evaluate

    f = fixture("alitok_ar_loss")
    logits = f["logits"][:, :-1]  # the L positions the project's model returns

    class Rows(torch.nn.Module):  # class id = row index, so each batch gets its own rows' logits
        cfg = SimpleNamespace(num_prefix_tokens=3, grid=2, class_ids=lambda labels: labels)

        def training_inputs(self, codes, class_ids):
            return torch.cat([class_ids[:, None], codes[:, :-1]], 1)

        def forward(self, inputs):
            return logits[inputs[:, 0]]

    got = evaluate(Rows(), f["labels"], torch.arange(len(logits)), batch=2)
    close(torch.tensor(got["overall"]["ce"]), f["loss"])
    for name, sl in {"prefix": slice(0, 3), "first_row": slice(3, 5), "rest": slice(5, 7)}.items():
        want = ce_by_loops(logits[:, sl], f["labels"][:, sl])
        close(torch.tensor(got[name]["ce"], dtype=torch.float64), torch.tensor(want, dtype=torch.float64))


def test_tiny_gpt_loss_matches_official_llamagen_forward():
    """LlamaGen ``gpt.py`` Transformer.forward(idx=codes[:, :-1], cond_idx=labels, targets=codes), as
    ``train_c2i.py`` calls it, with the fixture's seeded official weights loaded strictly into the
    project's GPT: the teacher-forcing inputs (``gpt_inputs``), the logits and ``next_token_loss``."""
    from baselines import llamagen as lg
    from baselines.train_tiny import gpt_inputs, next_token_loss

    f = fixture("llamagen_gpt_loss")
    cfg = lg.GPTConfig(
        depth=1,
        width=64,
        num_heads=4,
        vocab_size=32,
        num_classes=5,
        num_tokens=16,
        rope="2d",
        multiple_of=32,
        token_dropout=0.0,
        resid_dropout=0.0,
        ffn_dropout=0.0,
        class_dropout=0.0,
    )
    model = lg.build_gpt(cfg)
    model.load_state_dict({k[len("weight.") :]: v for k, v in f.items() if k.startswith("weight.")}, strict=True)
    model.eval()
    inputs = gpt_inputs(f["codes"], f["labels"], None, cfg.null_class_id)
    with torch.no_grad():
        close(model(inputs), f["logits"])
        loss = next_token_loss(model, inputs, f["codes"])
    close(loss, f["loss"])
    close(loss, torch.tensor(ce_by_loops(f["logits"], f["codes"]), dtype=torch.float64))


def test_gpt_inputs_put_the_null_class_where_dropped():
    from baselines.train_tiny import gpt_inputs

    codes, labels = torch.tensor([[5, 6, 7], [8, 9, 10]]), torch.tensor([1, 2])
    got = gpt_inputs(codes, labels, torch.tensor([False, True]), null_class_id=11)
    assert got.tolist() == [[1, 5, 6], [11, 8, 9]]


# ----------------------------------------------------------------------------------------------
# The EffNet stand-in perceptual term (alitok/train/perceptual.py): no official counterpart
# ----------------------------------------------------------------------------------------------
def test_effnet_perceptual_distance_is_its_closed_form():
    """Upstream's LPIPS-VGG / ConvNeXt-S terms cannot run here, so the stand-in is checked against its
    definition, written out with loops: for each chosen stage, every position's channel vector unit-
    normalised (eps 1e-10), squared differences summed over channels and averaged over batch and
    positions; then the mean over stages. The feature net is replaced by seeded 1x1 convs (the
    pretrained weights are a separate test's concern), so the test needs no weight package."""
    from alitok.train.perceptual import EffNetPerceptual

    g = torch.Generator().manual_seed(0)
    convs = [torch.nn.Conv2d(3, 3, 1) for _ in range(5)]
    with torch.no_grad():
        for c in convs:
            c.weight.copy_(torch.randn(c.weight.shape, generator=g))
            c.bias.copy_(torch.randn(c.bias.shape, generator=g))
    net = torch.nn.Module()
    net.conv_stem, net.bn1, net.blocks = torch.nn.Identity(), torch.nn.Identity(), torch.nn.ModuleList(convs)
    perc = EffNetPerceptual.__new__(EffNetPerceptual)
    torch.nn.Module.__init__(perc)
    perc.net, perc.size, perc.stages = net, 6, (1, 2, 3, 4)
    a, b = torch.rand(2, 3, 9, 9, generator=g), torch.rand(2, 3, 9, 9, generator=g)

    def stage_features(x):
        h = (torch.nn.functional.interpolate(x, size=(6, 6), mode="bilinear", align_corners=False) - 0.5) / 0.5
        out = []
        for i, conv in enumerate(convs):
            h = conv(h)
            if i in (1, 2, 3, 4):
                out.append(h.double().tolist())
        return out

    per_stage = []
    for fa, fb in zip(stage_features(a), stage_features(b)):
        acc, n = 0.0, 0
        for ia, ib in zip(fa, fb):  # images
            for y in range(6):
                for x in range(6):
                    va, vb = [ch[y][x] for ch in ia], [ch[y][x] for ch in ib]
                    na, nb = math.sqrt(sum(v * v for v in va)) + 1e-10, math.sqrt(sum(v * v for v in vb)) + 1e-10
                    acc += sum((p / na - q / nb) ** 2 for p, q in zip(va, vb))
                    n += 1
        per_stage.append(acc / n)
    with torch.no_grad():
        close(perc(a, b), torch.tensor(sum(per_stage) / len(per_stage), dtype=torch.float64))


def test_perceptual_term_enters_stage_losses_at_its_weight():
    """``effnet_weight`` x the term, added to MSE (+ VQ, + aux in stage 1)."""
    from alitok.train.tokenizer_common import PerceptualConfig
    from alitok.train.tokenizer_stage1 import Stage1Loss, stage1_loss
    from alitok.train.tokenizer_stage2 import Stage2Loss, stage2_loss

    f = fixture("alitok_tokenizer_losses")
    fixed = lambda recon, x: torch.tensor(0.5)  # noqa: E731
    pc = PerceptualConfig(effnet_weight=0.1)
    out = {"recon": f["recon"], "aux": None, "vq_loss": f["quantizer_loss_in"]}
    total1, logs1 = stage1_loss(out, f["x"], Stage1Loss(perceptual=pc), 0.0, 16, fixed)
    close(total1, f["reconstruction"] + f["quantizer_term"] + 0.1 * 0.5)
    total2, _ = stage2_loss(f["recon"], f["x"], Stage2Loss(perceptual=pc), fixed)
    close(total2, f["reconstruction"] + 0.1 * 0.5)
    assert float(logs1["effnet"]) == 0.5

"""Training-loss fixtures from the official AR-side code: fixed inputs and each loss term.

- AliTok (ali-vilab/alitok ``train_tokenizer/``): the stage-1 ``VectorQuantizer`` (commitment 0.25,
  codebook term; eval mode, so no clustering update) of ``model/vae_stage1.py``; the generator and
  discriminator losses of ``loss/mse_lpips_gan.py`` ``MSE_LPIPS_GAN`` with the weights of
  ``config.py`` (reconstruction, the prefix-token aux term 10 * 17 / 256, quantizer, GAN generator
  0.05 x 0.1, discriminator 0.1 x hinge). Its LPIPS-VGG / ConvNeXt-S nets need downloaded weights,
  so they are replaced by stubs returning 0 (the project cannot run them either), and its
  discriminator by a stub returning fixed logits (the loss, not the net, is what is checked).
  ``config.py`` needs ``easydict``; a two-line stand-in is put in ``sys.modules`` when it is missing.
  The AR ``ARLoss`` (``modeling/modules/losses.py``) on fixed logits.
- LlamaGen (FoundationVision/LlamaGen): ``tokenizer/tokenizer_image/vq_model.py`` ``VectorQuantizer``
  (l2-normalised codes, beta 0.25, entropy ratio 0) in training mode; ``vq_loss.py`` ``VQLoss``
  (l2 reconstruction; LPIPS stubbed to 0; before ``disc_start``, so no adversarial term) on fixed
  images; a tiny c2i GPT of ``autoregressive/models/gpt.py`` with seeded weights (saved) and its
  ``forward(idx, cond_idx, targets=...)`` loss, as ``autoregressive/train/train_c2i.py`` calls it.
- TiTok (bytedance/1d-tokenizer): ``modeling/quantizer/quantizer.py`` ``VectorQuantizer``, and the
  single-stage generator loss ``modeling/modules/losses.py`` ``ReconstructionLoss_Single_Stage`` with
  the TA-TiTok VQ config's weights (perceptual net stubbed to 0, before ``discriminator_start``).

    python -m scripts.upstream_fixtures.make_losses_ar --upstream /path/to/checkouts
"""

from __future__ import annotations

import subprocess
import sys
import types
from types import SimpleNamespace

import torch

from scripts.upstream_fixtures.common import FIXTURES, import_upstream, parse_args, seed_weights_, write_fixture

SCRIPT = "scripts/upstream_fixtures/make_losses_ar.py"
CHECKOUTS = {"--only-alitok": "alitok", "--only-llamagen": "LlamaGen", "--only-titok": "1d-tokenizer"}
GPT_TINY = dict(
    dim=64,
    n_layer=1,
    n_head=4,
    multiple_of=32,
    vocab_size=32,
    num_classes=5,
    block_size=16,
    cls_token_num=1,
    class_dropout_prob=0.0,
    token_dropout_p=0.0,
    resid_dropout_p=0.0,
    ffn_dropout_p=0.0,
)


def _stub(value_fn):
    """An nn.Module whose forward is ``value_fn`` (stands in for nets needing downloaded weights)."""
    m = torch.nn.Module()
    m.forward = value_fn
    return m


def alitok(args) -> None:
    commit = import_upstream(args.checkout)
    sys.path.insert(0, str(args.checkout / "train_tokenizer"))
    if "easydict" not in sys.modules:
        try:
            import easydict  # noqa: F401
        except ImportError:

            class EasyDict(dict):
                __getattr__, __setattr__ = dict.__getitem__, dict.__setitem__

            sys.modules["easydict"] = types.SimpleNamespace(EasyDict=EasyDict)
    from config import cfg
    from loss import mse_lpips_gan
    from model.vae_stage1 import VectorQuantizer
    from modeling.modules.losses import ARLoss

    meta = dict(upstream="ali-vilab/alitok", commit=commit, script=SCRIPT)
    g = torch.Generator().manual_seed(0)
    # quantizer: z as the encoder hands it, [B, D, 1, T]
    vq = VectorQuantizer(codebook_size=16, token_size=4, commitment_cost=0.25).eval()
    seed_weights_(vq, seed=1, std=1.0)
    z = torch.randn(2, 4, 1, 6, generator=g)
    zq, res = vq(z)
    write_fixture(
        args.out,
        "alitok_vq",
        dict(
            codebook=vq.embedding.weight,
            z=z,
            z_quantized=zq,
            codes=res["min_encoding_indices"],
            quantizer_loss=res["quantizer_loss"].mean(),
            commitment_loss=res["commitment_loss"].mean(),
            codebook_loss=res["codebook_loss"].mean(),
        ),
        **meta,
        notes={
            "module": "train_tokenizer/model/vae_stage1.py VectorQuantizer(16, 4, 0.25), eval mode",
            "reduction": "VAutoencoder.forward takes .mean() of the per-element terms",
        },
    )

    # the online clustering update (stage 1, training mode): two batches, codebook and usage after each
    cvq = VectorQuantizer(codebook_size=16, token_size=4, commitment_cost=0.25, clustering_vq=True).train()
    seed_weights_(cvq, seed=1, std=1.0)
    cvq.embed_prob.zero_()  # as built (seed_weights_ drew it as a float buffer)
    cz = [torch.randn(2, 4, 1, 6, generator=g) for _ in range(2)]
    cluster = {"codebook_init": cvq.embedding.weight.detach().clone()}
    for i, zi in enumerate(cz):
        _, res = cvq(zi)
        cluster.update(
            {
                f"z{i}": zi,
                f"codes{i}": res["min_encoding_indices"],
                f"quantizer_loss{i}": res["quantizer_loss"].mean(),
                f"codebook_after{i}": cvq.embedding.weight.detach().clone(),
                f"embed_prob_after{i}": cvq.embed_prob.clone(),
            }
        )
    write_fixture(
        args.out,
        "alitok_vq_clustering",
        cluster,
        **meta,
        notes={
            "module": "train_tokenizer/model/vae_stage1.py VectorQuantizer(16, 4, 0.25, clustering_vq=True), "
            "train mode, one process (all_gather is the identity)"
        },
    )

    # generator / discriminator losses; images [B, 3, 32, 32], aux strip [B, 3, 16, 16 + 32]
    x = torch.rand(2, 3, 32, 32, generator=g)
    recon = (x + 0.1 * torch.randn(x.shape, generator=g)).clamp(0, 1)
    x_aux = (torch.cat([x[:, :, :16, :16], x[:, :, :16, :]], -1) + 0.2 * torch.randn(2, 3, 16, 48, generator=g)).clamp(
        0, 1
    )
    real_logits, fake_logits = torch.randn(2, 1, 4, 4, generator=g), torch.randn(2, 1, 4, 4, generator=g) + 0.5
    quantizer_loss = torch.tensor(0.37)
    mse_lpips_gan.LPIPS = lambda: _stub(lambda a, b: torch.zeros(a.shape[0], 1, 1, 1))
    mse_lpips_gan.PerceptualLoss = lambda name: _stub(lambda a, b: torch.zeros(()))
    mse_lpips_gan.NLayerDiscriminator = lambda: _stub(lambda im: real_logits if torch.equal(im, x) else fake_logits)
    crit = mse_lpips_gan.MSE_LPIPS_GAN(cfg)
    step = cfg.disc_start  # the GAN terms are on from disc_start
    rec_aux, perc, quant, gen = crit(x, recon, x_aux, {"quantizer_loss": quantizer_loss}, step, "generator")
    rec_only = crit(x, recon, None, {"quantizer_loss": quantizer_loss}, step, "generator")[0]
    d_loss = crit(x, recon, x_aux, {}, step, "discriminator")[0]
    write_fixture(
        args.out,
        "alitok_tokenizer_losses",
        dict(
            x=x,
            recon=recon,
            x_aux=x_aux,
            real_logits=real_logits,
            fake_logits=fake_logits,
            quantizer_loss_in=quantizer_loss,
            reconstruction_with_aux=rec_aux,
            reconstruction=rec_only,
            quantizer_term=quant,
            generator_term=gen,
            discriminator_loss=d_loss,
        ),
        **meta,
        notes={
            "module": "train_tokenizer/loss/mse_lpips_gan.py MSE_LPIPS_GAN(config.cfg)",
            "weights": {
                k: cfg[k]
                for k in (
                    "reconstruction_weight",
                    "quantizer_weight",
                    "discriminator_factor",
                    "discriminator_weight",
                    "disc_start",
                )
            },
            "stubs": "LPIPS / ConvNeXt perceptual -> 0 (weights not downloadable); discriminator -> fixed logits",
        },
    )

    # AR cross entropy: logits [B, L + 1, V] as ARModel returns them, labels [B, L]
    b, n, v = 3, 7, 11
    logits = torch.randn(b, n + 1, v, generator=g) * 2
    labels = torch.randint(0, v, (b, n), generator=g)
    loss, _ = ARLoss(SimpleNamespace(model=SimpleNamespace(vq_model=SimpleNamespace(codebook_size=v))))(logits, labels)
    write_fixture(
        args.out,
        "alitok_ar_loss",
        dict(logits=logits, labels=labels, loss=loss),
        **meta,
        notes={"module": "modeling/modules/losses.py ARLoss (drops the last position's logits)"},
    )


def llamagen(args) -> None:
    commit = import_upstream(args.checkout)
    from autoregressive.models.gpt import ModelArgs, Transformer
    from tokenizer.tokenizer_image import vq_loss as vql
    from tokenizer.tokenizer_image.vq_model import VectorQuantizer

    meta = dict(upstream="FoundationVision/LlamaGen", commit=commit, script=SCRIPT)
    g = torch.Generator().manual_seed(0)
    vq = VectorQuantizer(n_e=16, e_dim=4, beta=0.25, entropy_loss_ratio=0.0, l2_norm=True, show_usage=False).train()
    seed_weights_(vq, seed=2, std=1.0)
    z = torch.randn(2, 4, 3, 3, generator=g)
    zq, (codebook_loss, commit_loss, entropy_loss, _), (_, _, codes) = vq(z)
    vq_entropy = VectorQuantizer(
        n_e=16, e_dim=4, beta=0.25, entropy_loss_ratio=0.1, l2_norm=True, show_usage=False
    ).train()
    vq_entropy.load_state_dict(vq.state_dict())
    entropy_at_01 = vq_entropy(z)[1][2]
    # VQLoss, generator side, before disc_start: l2 reconstruction + (stubbed 0) LPIPS + codebook terms
    vql.LPIPS = lambda: _stub(lambda a, b: torch.zeros(a.shape[0], 1, 1, 1))
    crit = vql.VQLoss(disc_start=10, disc_dim=8)
    x = torch.rand(2, 3, 32, 32, generator=g) * 2 - 1
    recon = x + 0.1 * torch.randn(x.shape, generator=g)
    gen_total = crit(
        (codebook_loss, commit_loss, entropy_loss, 0),
        x,
        recon,
        optimizer_idx=0,
        global_step=1,
        last_layer=None,
        logger=SimpleNamespace(info=lambda msg: None),
        log_every=10**9,
    )
    write_fixture(
        args.out,
        "llamagen_vq",
        dict(
            codebook=vq.embedding.weight,
            z=z,
            z_quantized=zq,
            codes=codes,
            codebook_loss=codebook_loss,
            commit_loss=commit_loss,
            entropy_loss=entropy_loss,
            entropy_loss_ratio_01=entropy_at_01,
            x=x,
            recon=recon,
            vq_loss_total=gen_total,
        ),
        **meta,
        notes={
            "quantizer": "vq_model.py VectorQuantizer(16, 4, beta=0.25, entropy_loss_ratio=0.0, l2_norm=True), train",
            "vq_loss": "vq_loss.py VQLoss(disc_start=10), optimizer_idx 0 at step 1 (a step that logs nothing); LPIPS stubbed to 0",
        },
    )

    # c2i GPT loss as train_c2i.py computes it: model(cond_idx=c, idx=z[:, :-1], targets=z)
    gpt = Transformer(ModelArgs(**GPT_TINY))
    seed_weights_(gpt, seed=3, std=0.2).train()  # the training path (all dropout rates are 0)
    codes = torch.randint(0, GPT_TINY["vocab_size"], (3, GPT_TINY["block_size"]), generator=g)
    labels = torch.tensor([0, 4, 2])
    with torch.no_grad():
        logits, loss = gpt(idx=codes[:, :-1], cond_idx=labels, targets=codes)
    weights = {f"weight.{k}": v for k, v in gpt.state_dict().items() if k != "freqs_cis"}
    write_fixture(
        args.out,
        "llamagen_gpt_loss",
        dict(codes=codes, labels=labels, logits=logits, loss=loss, **weights),
        **meta,
        notes={
            "model": GPT_TINY,
            "weights": "weight.<official key>, seeded N(0, 0.2)",
            "call": "Transformer.forward(idx=codes[:, :-1], cond_idx=labels, targets=codes)",
        },
    )


def titok(args) -> None:
    commit = import_upstream(args.checkout)
    from modeling.quantizer.quantizer import VectorQuantizer

    g = torch.Generator().manual_seed(0)
    out = {}
    for l2 in (False, True):
        vq = VectorQuantizer(codebook_size=16, token_size=4, commitment_cost=0.25, use_l2_norm=l2).eval()
        seed_weights_(vq, seed=4, std=1.0)
        z = torch.randn(2, 4, 1, 5, generator=g)
        zq, res = vq(z)
        tag = "l2" if l2 else "plain"
        out.update(
            {
                f"{tag}_codebook": vq.embedding.weight,
                f"{tag}_z": z,
                f"{tag}_z_quantized": zq,
                f"{tag}_codes": res["min_encoding_indices"],
                f"{tag}_quantizer_loss": res["quantizer_loss"],
                f"{tag}_commitment_loss": res["commitment_loss"],
                f"{tag}_codebook_loss": res["codebook_loss"],
            }
        )
    # the single-stage generator loss (TA-TiTok VQ config: l2 reconstruction weight 1, quantizer weight
    # 1), before discriminator_start; the perceptual net (LPIPS + ConvNeXt weights) stubbed to 0
    from modeling.modules import losses as tl
    from omegaconf import OmegaConf

    config = OmegaConf.load(args.checkout / "configs/training/TA-TiTok/tatitok_bl64_vq.yaml")
    tl.PerceptualLoss = lambda name: _stub(lambda a, b: torch.zeros(a.shape[0], 1, 1, 1))
    tl.NLayerDiscriminator = lambda: _stub(lambda im: torch.zeros(im.shape[0], 1, 4, 4))
    crit = tl.ReconstructionLoss_Single_Stage(config)
    x = torch.rand(2, 3, 16, 16, generator=g)
    recon = (x + 0.1 * torch.randn(x.shape, generator=g)).clamp(0, 1)
    total, logs = crit(
        x, recon, {k: out[f"l2_{k}"] for k in ("quantizer_loss", "commitment_loss", "codebook_loss")}, 0, "generator"
    )
    out.update(
        x=x,
        recon=recon,
        single_stage_total=total,
        single_stage_reconstruction=logs["reconstruction_loss"],
        single_stage_quantizer=logs["quantizer_loss"],
    )
    write_fixture(
        args.out,
        "titok_vq",
        out,
        upstream="bytedance/1d-tokenizer",
        commit=commit,
        script=SCRIPT,
        notes={
            "module": "modeling/quantizer/quantizer.py VectorQuantizer(16, 4, 0.25, use_l2_norm), eval",
            "loss": "modeling/modules/losses.py ReconstructionLoss_Single_Stage(tatitok_bl64_vq.yaml), "
            "generator at step 0; perceptual stubbed to 0; quantizer_loss = l2_quantizer_loss",
        },
    )


def main() -> None:
    # one process per checkout: alitok and 1d-tokenizer both have a top-level `modeling` package
    if len(sys.argv) > 1 and sys.argv[1] in CHECKOUTS:
        which = sys.argv.pop(1)
        from harness.core._tv_shim import install

        install()  # timm / torchvision.models on the CPU wheel (harness/core/_tv_shim.py)
        args = parse_args("losses", CHECKOUTS[which])
        {"--only-alitok": alitok, "--only-llamagen": llamagen, "--only-titok": titok}[which](args)
        return
    args = parse_args("losses", "alitok")
    for flag in CHECKOUTS:
        cmd = [
            sys.executable,
            "-m",
            "scripts.upstream_fixtures.make_losses_ar",
            flag,
            "--upstream",
            str(args.upstream),
            "--out",
            str(args.out),
        ]
        subprocess.run(cmd, check=True, cwd=FIXTURES.parents[2])


if __name__ == "__main__":
    main()

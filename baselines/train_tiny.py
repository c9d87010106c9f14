"""Trainers for the tiny AR baselines on the embedded natural patches (32 px, 11 classes).

- ``baselines-tokenizer``: a LlamaGen-style VQGAN (``family: vq``) or a TiTok-style 1D tokenizer
  (``family: titok``, the non-legacy single-stage pixel head) with MSE + VQ loss. The perceptual and
  GAN terms of upstream are left out (their pretrained weights cannot be loaded here). As in the tiny
  AliTok, the first ``vq_warmup_steps`` train without quantisation (the decoder reads the
  L2-normalised encoder output) and the codebook is then seeded with random encoder features; a
  minutes-long run otherwise collapses onto a few codes.
- ``baselines-ar``: the LlamaGen GPT (``harness``-shared blocks; ``rope: 2d`` for the VQ grid, ``1d``
  for TiTok's 1D tokens) on codes of a tiny baseline tokenizer, label dropout for CFG, AdamW with
  warm-up + cosine; held-out next-token CE / accuracy.

Both run on ``harness.runs.training`` and write only under ``--out``: the resumable ``TrainLoop`` files,
``model.safetensors`` (the inference export, config in its metadata), ``train_record.json`` and a
grid (``recon_grid.png`` / ``samples_grid.png``). ``--publish`` copies the export to the config's
``export:`` path (the committed ``baselines/weights/``). Paths in the YAML resolve against its
folder; the tokenizer checkpoint and the publish destination are checked before the first step.

Data order and losses are those of the runs that made the committed weights: batches from
``loop.generator``, the LR of ``harness.runs.training.lr_at`` (cosine) set on every group. Dropout masks
(the GPT's token/residual/FFN dropout) now come from a global seed set per step inside
``torch.random.fork_rng``, so a rerun or a resumed run repeats them; the committed AR runs drew them
from the unseeded global RNG (torch seeds it per process), so no code reproduces those bit for bit.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F

import harness.runs.training as training
from harness.core.config import ConfigError, from_dict, to_dict
from harness.core.interfaces import ARSampling

META_FAMILY, META_CONFIG, META_SAMPLING, META_TOKENIZER = "family", "config", "sampling", "tokenizer"
LOSSES = "MSE + VQ (no perceptual / GAN: their pretrained weights are unavailable here)"
# registry names of the systems (harness/core/plugins.py), by tokenizer family
AR_NAMES = {"vq": "llamagen-tiny", "titok": "titok-ar-tiny"}
NOT_COMPARABLE = "not paper-comparable: tiny model, embedded natural patches, not ImageNet"


@dataclasses.dataclass(frozen=True)
class OptimConfig(training.OptimConfig):
    """The engine's optimizer section with these trainers' defaults (warm-up, then cosine)."""

    lr: float = 1e-3
    betas: tuple[float, float] = (0.9, 0.95)
    warmup_steps: int = 100
    schedule: Literal["constant", "cosine"] = "cosine"
    end_lr: float = 1e-5
    grad_clip: float | None = 1.0


@dataclasses.dataclass(frozen=True)
class Data:
    image_size: int = 32
    per_class_train: int = 512
    per_class_val: int = 64
    seed: int = 0
    hflip: bool = True


@dataclasses.dataclass(frozen=True, kw_only=True)
class TokenizerTrainConfig(training.RunConfig):
    """``harness.runs.training.RunConfig`` (steps, batch_size, seed, log/ckpt cadence, export) plus:"""

    family: Literal["vq", "titok"]
    model: dict[str, Any] = dataclasses.field(default_factory=dict)
    vq_warmup_steps: int = 0
    vq_weight: float = 1.0
    data: Data = Data()
    optim: OptimConfig = OptimConfig()
    log_every: int = 25
    ckpt_every: int = 250
    grid: bool = True  # out/recon_grid.png: 12 held-out images over their reconstructions


@dataclasses.dataclass(frozen=True, kw_only=True)
class ARTrainConfig(training.RunConfig):
    """``harness.runs.training.RunConfig`` plus the tokenizer (a ``baselines-tokenizer`` export) and:"""

    tokenizer: str
    model: dict[str, Any] = dataclasses.field(default_factory=dict)
    label_dropout: float = 0.1
    data: Data = Data()
    optim: OptimConfig = OptimConfig()
    sampling: dict[str, Any] = dataclasses.field(default_factory=dict)
    log_every: int = 25
    ckpt_every: int = 250
    grid: bool = True  # out/samples_grid.png: 8 samples per class, one row per class


# ----------------------------------------------------------------------------------------------
# shared helpers
# ----------------------------------------------------------------------------------------------
def _optimizer(model: torch.nn.Module, o: OptimConfig) -> torch.optim.Optimizer:
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2 and "embed" not in n and "latent" not in n]
    ids = {id(p) for p in decay}
    rest = [p for p in model.parameters() if id(p) not in ids]
    return training.make_optimizer(
        [{"params": decay, "weight_decay": o.weight_decay}, {"params": rest, "weight_decay": 0.0}], o
    )


def _step(loop: training.TrainLoop, loss: torch.Tensor, o: OptimConfig, params) -> float:
    # the scheduled LR itself on every group (not set_lr's base_lr * factor: bit-identical to the
    # runs that made the committed weights)
    for group in loop.optimizer.param_groups:
        group["lr"] = training.lr_at(loop.step, loop.total_steps, o)
    loop.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    loop.parallel.average_gradients(params)
    return float(torch.nn.utils.clip_grad_norm_(params, o.grad_clip if o.grad_clip is not None else float("inf")))


@contextlib.contextmanager
def _step_rng(seed: int, step: int, device: torch.device):
    """Dropout masks as a function of seed and step (the caller's global RNG is left as it was)."""
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed * 1_000_003 + step)
        yield


def _images(split: str, d: Data, per_class: int) -> tuple[torch.Tensor, torch.Tensor]:
    from harness.data.embedded import natural_patches

    x, y = natural_patches(split, image_size=d.image_size, per_class=per_class, seed=d.seed)
    return torch.from_numpy(x), torch.from_numpy(y)


def _run_config(c) -> dict[str, Any]:
    """The run's config.json: the publish destination does not change training (publish later)."""
    return {k: v for k, v in to_dict(c).items() if k != "export"}


# ----------------------------------------------------------------------------------------------
# tokenizers
# ----------------------------------------------------------------------------------------------
def build_tokenizer_model(
    family: str, model: dict[str, Any], generator: torch.Generator | None = None, device: str = "cpu"
):
    from baselines import llamagen as lg
    from baselines import titok

    if family == "vq":
        cfg = from_dict(lg.VQConfig, model, "model")
        m = lg.build_vq(cfg, device)
        if device != "meta":
            lg._init_default(m, generator)
        return m
    if family == "titok":
        return titok.build(from_dict(titok.TiTokConfig, model, "model"), device, generator)
    raise ConfigError(f"family: {family!r} unknown (vq, titok)")


def tokenizer_plugin(model, family: str, name: str, checkpoint: str | None = None):
    from baselines import llamagen as lg
    from baselines import titok

    if family == "vq":
        return lg.LlamaGenTokenizer(model, name=name, checkpoint=checkpoint)
    return titok.TiTokTokenizer(model, name=name, checkpoint=checkpoint)


def load_tiny_tokenizer(path: str | os.PathLike, name: str, device="cpu"):
    """A tokenizer file written by ``baselines-tokenizer`` (family + config in its metadata)."""
    from harness.nn.checkpoints.checkpoint import CheckpointError, load_state_dict, load_strict, read_metadata

    sd, meta = load_state_dict(path), read_metadata(path)
    if META_FAMILY not in meta or META_CONFIG not in meta:
        raise CheckpointError(f"{path}: not a tiny baseline tokenizer (no '{META_FAMILY}'/'{META_CONFIG}' metadata)")
    family, model_cfg = meta[META_FAMILY], json.loads(meta[META_CONFIG])
    model = load_strict(
        lambda: build_tokenizer_model(family, model_cfg, device="meta"), sd, path, f"tiny {family} tokenizer", device
    )
    return tokenizer_plugin(model, family, name, str(path))


def _forward_tokenizer(model, family: str, x: torch.Tensor, quantize: bool):
    """-> (reconstruction, vq loss or 0, codes or None, encoder output)."""
    if family == "vq":
        h = model.quant_conv(model.encoder(x))
        if quantize:
            zq, codes, losses = model.quantize(h)
            return model.decode(zq), losses["vq_loss"], codes, h
        return model.decode(F.normalize(h, dim=1)), x.new_zeros(()), None, h
    z = model.encoder(x, model.latent_tokens)
    if quantize:
        zq, codes, losses = model.quantise(z)
        return model.decode(zq), losses["vq_loss"], codes, z
    return model.decode(F.normalize(z, dim=1)), x.new_zeros(()), None, z


@torch.no_grad()
def _seed_codebook(model, family: str, features: torch.Tensor, generator: torch.Generator) -> None:
    flat = F.normalize(features.float().transpose(0, 1).flatten(1).t(), dim=-1)  # [N, D]
    emb = model.quantize.embedding.weight
    pick = torch.randint(len(flat), (emb.shape[0],), generator=generator)
    emb.copy_(flat[pick] + 0.01 * torch.randn(emb.shape, generator=generator))


def tokenizer_loss(
    rec: torch.Tensor, x: torch.Tensor, vq_loss: torch.Tensor, vq_weight: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """(MSE + vq_weight * VQ loss, MSE): LlamaGen's ``VQLoss`` with l2 reconstruction and no
    perceptual / adversarial term; TiTok's reconstruction MSE + quantizer loss."""
    mse = F.mse_loss(rec, x)
    return mse + vq_weight * vq_loss, mse


def train_tokenizer(
    cfg_dict: dict[str, Any], out_dir: Path, device: torch.device, publish: bool = False
) -> dict[str, Any]:
    """The ``baselines-tokenizer`` trainer (see module doc); returns the summary the CLI prints."""
    c = from_dict(TokenizerTrainConfig, cfg_dict)
    training.check_publish(c.export, publish)
    parallel = training.init_parallel(device)
    device = parallel.device
    gen = torch.Generator().manual_seed(c.seed)
    model = build_tokenizer_model(c.family, c.model, gen).to(device).train()
    lo = -1.0 if c.family == "vq" else 0.0  # LlamaGen works in [-1, 1], TiTok in [0, 1]
    train_x, _ = _images("train", c.data, c.data.per_class_train)
    opt = _optimizer(model, c.optim)
    params = [p for p in model.parameters()]
    loop = training.TrainLoop(
        out_dir,
        model,
        opt,
        c.steps,
        c.seed,
        _run_config(c),
        ckpt_every=c.ckpt_every,
        log_every=c.log_every,
        parallel=parallel,
        metadata={META_FAMILY: c.family, META_CONFIG: json.dumps(model.cfg.to_dict())},
    )

    def step_fn(step: int) -> dict[str, float]:
        idx = torch.randint(len(train_x), (c.batch_size,), generator=loop.generator)
        x = train_x[idx].permute(0, 3, 1, 2).float() / 255.0
        if c.data.hflip:
            flip = torch.rand(c.batch_size, generator=loop.generator) < 0.5
            x = torch.where(flip[:, None, None, None], x.flip(3), x)
        x = (x * 2 - 1 if lo < 0 else x).to(device)
        quantize = step >= c.vq_warmup_steps
        if quantize and step == c.vq_warmup_steps > 0:
            # seeded from the global batch with a fixed generator: every rank gets the same codebook
            with torch.no_grad():
                feats = _forward_tokenizer(model, c.family, x, False)[3]
            _seed_codebook(model, c.family, feats, torch.Generator().manual_seed(c.seed + step))
        x = parallel.shard(x)
        with _step_rng(c.seed, step, device):
            rec, vq_loss, codes, _ = _forward_tokenizer(model, c.family, x, quantize)
            total, mse = tokenizer_loss(rec, x, vq_loss, c.vq_weight)
            gnorm = _step(loop, total, c.optim, params)
        loop.optimizer.step()
        logs = {"mse": mse.item(), "vq_loss": float(vq_loss.detach()), "grad_norm": gnorm}
        if codes is not None:
            logs["codes_used"] = float(codes.unique().numel())  # of this rank's slice
        return logs

    loop.run(step_fn, progress=False)
    if not parallel.is_main:
        return {}
    first, final = loop.first_and_last("mse")
    summary: dict[str, Any] = {
        "steps": loop.step,
        "first_logged_mse": first,
        "final_logged_mse": final,
        "checkpoint": str(loop.model_path),
    }
    val, grid = _evaluate_tokenizer(c, model, loop.out)
    summary.update({"val_psnr_db": round(val["psnr_db"], 2), "codebook_usage": round(val["codebook_usage"], 3)})
    tok = tokenizer_plugin(model, c.family, f"{c.family}-tiny")
    model_info = {
        "name": f"{c.family}-tiny",
        "family": c.family,
        "num_params": sum(p.numel() for p in model.parameters()),
        "num_tokens": tok.num_tokens,
        "codebook_size": tok.codebook_size,
        "config": model.cfg.to_dict(),
    }
    metrics = {
        "val_psnr_db": val["psnr_db"],
        "val_ssim": val["ssim"],
        "codebook_usage": val["codebook_usage"],
        "code_perplexity": val["code_perplexity"],
        "first_logged_mse": first,
        "final_logged_mse": final,
    }
    return training.finish_run(
        loop,
        summary,
        model.state_dict(),
        export_to=c.export,
        publish=publish,
        trainer="baselines-tokenizer",
        model=model_info,
        metrics=metrics,
        device=device,
        export_metadata={"steps": str(c.steps), "seed": str(c.seed)},
        extra={"losses": LOSSES},
        samples={"grid": grid} if grid else {},
        metric_provenance={
            "val": {
                "images": val["images"],
                "split": "embedded natural patches, val",
                "psnr": "mean per-image PSNR of uint8 images",
                "ssim": "skimage structural_similarity, win 7, per image, mean",
            }
        },
        notes=[NOT_COMPARABLE],
    )


# resolved against the config file's folder
train_tokenizer.path_keys = ("export",)


def _grid_png(rows: list[np.ndarray], path: Path) -> None:
    """Rows of uint8 [n,H,W,3] -> one PNG with 2 px white gaps (atomic write)."""
    from PIL import Image

    from harness.core.io import atomic_path

    n, h, w, _ = rows[0].shape
    canvas = np.full((len(rows) * (h + 2), n * (w + 2), 3), 255, np.uint8)
    for r, row in enumerate(rows):
        for i, img in enumerate(row):
            canvas[r * (h + 2) : r * (h + 2) + h, i * (w + 2) : i * (w + 2) + w] = img
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        Image.fromarray(canvas).save(tmp, format="PNG")


def _mean_psnr(real: np.ndarray, fake: np.ndarray) -> float:
    """Mean per-image PSNR (dB) of uint8 images, the formula of harness.metrics.recon.psnr (floor 2)."""
    mse = ((real.astype(np.float64) - fake.astype(np.float64)) ** 2).reshape(len(real), -1).mean(1)
    return float(np.mean(10.0 * np.log10(255.0**2 / mse)))


@torch.no_grad()
def _evaluate_tokenizer(c: TokenizerTrainConfig, model, out: Path) -> tuple[dict[str, Any], str | None]:
    """Held-out PSNR / SSIM / codebook usage and perplexity; ``out/recon_grid.png`` when ``grid``."""
    from skimage.metrics import structural_similarity

    model.eval()
    tok = tokenizer_plugin(model, c.family, f"tiny-{c.family}")
    val_x, val_y = _images("val", c.data, c.data.per_class_val)
    codes = torch.cat([tok.encode(val_x[i : i + 128]) for i in range(0, len(val_x), 128)])
    rec = torch.cat([tok.decode(codes[i : i + 128]) for i in range(0, len(codes), 128)])
    real, fake = val_x.numpy(), rec.numpy()
    counts = np.bincount(codes.flatten().cpu().numpy(), minlength=tok.codebook_size)
    p = counts / counts.sum()
    val = {
        "images": len(real),
        "psnr_db": _mean_psnr(real, fake),
        "ssim": float(
            np.mean(
                [structural_similarity(a, b, channel_axis=-1, data_range=255, win_size=7) for a, b in zip(real, fake)]
            )
        ),
        "codebook_usage": float((counts > 0).mean()),
        "code_perplexity": float(np.exp(-(p[p > 0] * np.log(p[p > 0])).sum())),
    }
    grid = None
    if c.grid:
        order = np.argsort(val_y.numpy(), kind="stable")[:: max(1, len(real) // 12)][:12]
        grid = str(out / "recon_grid.png")
        _grid_png([real[order], fake[order]], Path(grid))
    return val, grid


# ----------------------------------------------------------------------------------------------
# AR on codes
# ----------------------------------------------------------------------------------------------
def _codes(tok, x: torch.Tensor) -> torch.Tensor:
    return torch.cat([tok.encode(x[i : i + 256]) for i in range(0, len(x), 256)])


def load_tiny_gpt(path: str | os.PathLike, device="cpu"):
    """A GPT file written by ``baselines-ar`` -> (model, ARSampling preset, tokenizer path)."""
    from baselines import llamagen as lg
    from harness.nn.checkpoints.checkpoint import CheckpointError, load_state_dict, load_strict, read_metadata

    sd, meta = load_state_dict(path), read_metadata(path)
    if META_CONFIG not in meta or META_SAMPLING not in meta:
        raise CheckpointError(f"{path}: not a tiny baseline AR model (no '{META_CONFIG}'/'{META_SAMPLING}' metadata)")
    try:
        cfg = from_dict(lg.GPTConfig, json.loads(meta[META_CONFIG]), "config")
        sampling = ARSampling(**json.loads(meta[META_SAMPLING]))
    except (ValueError, TypeError) as e:
        raise CheckpointError(f"{path}: bad metadata ({e})") from None
    model = load_strict(
        lambda: lg.build_gpt(cfg, "meta"), sd, path, f"tiny LlamaGen GPT ({cfg.num_tokens} tokens)", device
    )
    return model, sampling, meta.get(META_TOKENIZER)


def gpt_inputs(
    codes: torch.Tensor, labels: torch.Tensor, drop: torch.Tensor | None, null_class_id: int
) -> torch.Tensor:
    """Teacher forcing: ``[class (null where dropped) | codes[:, :-1]]`` for targets ``codes``."""
    cls = labels.clone()
    if drop is not None:
        cls[drop] = null_class_id
    return torch.cat([cls[:, None], codes[:, :-1]], 1)


def next_token_loss(model, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean next-token cross entropy over every position (LlamaGen ``train_c2i.py``)."""
    logits = model(inputs)
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))


def train_ar(cfg_dict: dict[str, Any], out_dir: Path, device: torch.device, publish: bool = False) -> dict[str, Any]:
    """The ``baselines-ar`` trainer (see module doc); returns the summary the CLI prints."""
    from baselines import llamagen as lg
    from harness.data.embedded import NUM_CLASSES
    from harness.nn.checkpoints.checkpoint import read_metadata

    c = from_dict(ARTrainConfig, cfg_dict)
    training.check_file("tokenizer", c.tokenizer, "tokenizer checkpoint")
    training.check_publish(c.export, publish)
    sampling = ARSampling(**c.sampling)
    parallel = training.init_parallel(device)
    device = parallel.device
    tok = load_tiny_tokenizer(c.tokenizer, "tiny-tokenizer", device)
    gcfg = from_dict(lg.GPTConfig, {"class_dropout": c.label_dropout, **c.model}, "model")
    if gcfg.num_tokens != tok.num_tokens or gcfg.vocab_size != tok.codebook_size or gcfg.num_classes != NUM_CLASSES:
        raise ConfigError(
            f"model: {gcfg.num_tokens} tokens / {gcfg.vocab_size} codes / {gcfg.num_classes} classes do not "
            f"match the tokenizer's {tok.num_tokens} / {tok.codebook_size} and the {NUM_CLASSES} classes"
        )
    train_x, train_y = _images("train", c.data, c.data.per_class_train)
    val_x, val_y = _images("val", c.data, c.data.per_class_val)
    train_codes, val_codes = _codes(tok, train_x).cpu(), _codes(tok, val_x).cpu()
    # horizontal flips double the distinct training sequences (as the ten-crop pretokenisation upstream)
    if c.data.hflip:
        train_codes = torch.stack([train_codes, _codes(tok, train_x.flip(2)).cpu()], 1)
    else:
        train_codes = train_codes[:, None]
    model = lg.build_gpt(gcfg, device, torch.Generator().manual_seed(c.seed)).train()
    opt = _optimizer(model, c.optim)
    params = list(model.parameters())
    tok_info = tok.info()
    tok_family = read_metadata(c.tokenizer).get(META_FAMILY)
    meta = {
        META_CONFIG: json.dumps(gcfg.to_dict()),
        META_SAMPLING: json.dumps(sampling.to_dict()),
        META_TOKENIZER: c.tokenizer,
        "tokenizer_sha256": str(tok_info.get("checkpoint_sha256")),
    }
    loop = training.TrainLoop(
        out_dir,
        model,
        opt,
        c.steps,
        c.seed,
        _run_config(c),
        ckpt_every=c.ckpt_every,
        log_every=c.log_every,
        metadata=meta,
        parallel=parallel,
    )

    def batch_inputs(codes: torch.Tensor, labels: torch.Tensor, drop: torch.Tensor | None) -> torch.Tensor:
        return gpt_inputs(codes, labels, drop, gcfg.null_class_id).to(device)

    def step_fn(step: int) -> dict[str, float]:
        # the global batch from the shared stream, then this rank's slice
        idx = torch.randint(len(train_codes), (c.batch_size,), generator=loop.generator)
        view = torch.randint(train_codes.shape[1], (c.batch_size,), generator=loop.generator)
        codes = train_codes[idx, view]
        drop = torch.rand(c.batch_size, generator=loop.generator) < c.label_dropout
        inputs = parallel.shard(batch_inputs(codes, train_y[idx], drop))
        targets = parallel.shard(codes.to(device))
        with _step_rng(c.seed, step, device):
            loss = next_token_loss(model, inputs, targets)
            gnorm = _step(loop, loss, c.optim, params)
        loop.optimizer.step()
        return {"ce": loss.item(), "grad_norm": gnorm}

    loop.run(step_fn, progress=False)
    if not parallel.is_main:
        return {}
    model.eval()
    with torch.no_grad():
        logits = torch.cat(
            [
                model(batch_inputs(val_codes[i : i + 256], val_y[i : i + 256], None)).cpu()
                for i in range(0, len(val_codes), 256)
            ]
        )
        val_ce = float(F.cross_entropy(logits.reshape(-1, logits.shape[-1]), val_codes.reshape(-1)))
        val_acc = float((logits.argmax(-1) == val_codes).float().mean())
    counts = np.bincount(train_codes.flatten().numpy(), minlength=tok.codebook_size)
    p = counts / counts.sum()
    unigram_ce = float(-(p[p > 0] * np.log(p[p > 0])).sum())
    first, final = loop.first_and_last("ce")
    summary: dict[str, Any] = {
        "steps": loop.step,
        "first_logged_ce": first,
        "final_logged_ce": final,
        "val_ce": round(val_ce, 4),
        "val_acc": round(val_acc, 4),
        "unigram_ce": round(unigram_ce, 4),
        "checkpoint": str(loop.model_path),
    }
    samples: dict[str, Any] = {}
    if c.grid:
        from harness.nn.models.ar_generator import ARGenerator

        gen = ARGenerator(model, tok, name="tiny", sampling=sampling)
        rows = [gen.generate(torch.full((8,), k), torch.Generator().manual_seed(k)).numpy() for k in range(NUM_CLASSES)]
        samples = {
            "grid": str(loop.out / "samples_grid.png"),
            "per_class": 8,
            "seeds": "class k: manual_seed(k)",
            "sampling": sampling.to_dict(),
        }
        _grid_png(rows, Path(samples["grid"]))
    model_info = {
        "name": AR_NAMES.get(tok_family, "tiny-gpt"),
        "num_params": sum(p_.numel() for p_ in model.parameters()),
        "config": gcfg.to_dict(),
        "sampling": sampling.to_dict(),
        "tokenizer": tok_info,
    }
    metrics = {
        "val_ce": val_ce,
        "val_acc": val_acc,
        "unigram_ce": unigram_ce,
        "first_logged_ce": first,
        "final_logged_ce": final,
    }
    return training.finish_run(
        loop,
        summary,
        model.state_dict(),
        export_to=c.export,
        publish=publish,
        trainer="baselines-ar",
        model=model_info,
        metrics=metrics,
        device=device,
        export_metadata={"steps": str(c.steps)},
        extra={
            "train_sequences": int(train_codes.shape[0] * train_codes.shape[1]),
            "val_sequences": len(val_codes),
        },
        samples=samples,
        metric_provenance={
            "val": {
                "sequences": len(val_codes),
                "next_token": "teacher-forced, class token given",
                "unigram_ce": "entropy (nats) of the train-code frequencies: the CE of a unigram model",
            }
        },
        notes=[NOT_COMPARABLE],
    )


# resolved against the config file's folder
train_ar.path_keys = ("tokenizer", "export")

"""Trainers for the tiny AR baselines on the embedded natural patches (32 px, 11 classes).

- ``baselines-tokenizer``: a LlamaGen-style VQGAN (``family: vq``) or a TiTok-style 1D tokenizer
  (``family: titok``, the non-legacy single-stage pixel head) with MSE + VQ loss. The perceptual and
  GAN terms of upstream are left out (their pretrained weights cannot be loaded here). As in the tiny
  AliTok, the first ``vq_warmup_steps`` train without quantisation (the decoder reads the
  L2-normalised encoder output) and the codebook is then seeded with random encoder features; a
  minutes-long run otherwise collapses onto a few codes.
- ``baselines-ar``: the LlamaGen GPT (``harness``-shared blocks; ``rope: 2d`` for the VQ grid, ``1d``
  for TiTok's 1D tokens) on codes of a committed tiny tokenizer, label dropout for CFG, AdamW with
  warm-up + cosine; held-out next-token CE / accuracy.

Both write ``last.safetensors`` + ``log.jsonl`` under ``--out`` (``harness.nn.training.TrainLoop``:
resumable) and, with ``export``, the committed weights (config in the metadata) and a JSON record.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import subprocess
import time
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F

from harness.config import ConfigError, from_dict, to_dict
from harness.interfaces import ARSampling
from harness.io import write_json_atomic  # floor 1 (COMMON.md); see tests/test_import_rules.py
from harness.nn.checkpoint import save_safetensors
from harness.nn.training import TrainLoop

META_FAMILY, META_CONFIG, META_SAMPLING, META_TOKENIZER = "family", "config", "sampling", "tokenizer"


@dataclasses.dataclass(frozen=True)
class Optim:
    lr: float = 1e-3
    warmup_steps: int = 100
    end_lr: float = 1e-5
    weight_decay: float = 0.01
    betas: tuple[float, float] = (0.9, 0.95)
    grad_clip: float = 1.0


@dataclasses.dataclass(frozen=True)
class Data:
    image_size: int = 32
    per_class_train: int = 512
    per_class_val: int = 64
    seed: int = 0
    hflip: bool = True


@dataclasses.dataclass(frozen=True)
class Export:
    weights: str | None = None
    record: str | None = None
    grid: str | None = None


@dataclasses.dataclass(frozen=True)
class TokenizerTrainConfig:
    family: Literal["vq", "titok"]
    steps: int
    batch_size: int
    model: dict[str, Any] = dataclasses.field(default_factory=dict)
    vq_warmup_steps: int = 0
    vq_weight: float = 1.0
    seed: int = 0
    data: Data = Data()
    optim: Optim = Optim()
    log_every: int = 25
    ckpt_every: int = 250
    export: Export = Export()


@dataclasses.dataclass(frozen=True)
class ARTrainConfig:
    tokenizer: str
    steps: int
    batch_size: int
    model: dict[str, Any] = dataclasses.field(default_factory=dict)
    label_dropout: float = 0.1
    seed: int = 0
    data: Data = Data()
    optim: Optim = Optim()
    sampling: dict[str, Any] = dataclasses.field(default_factory=dict)
    log_every: int = 25
    ckpt_every: int = 250
    export: Export = Export()


# ----------------------------------------------------------------------------------------------
# shared helpers
# ----------------------------------------------------------------------------------------------
def lr_at(step: int, total: int, o: Optim) -> float:
    if step < o.warmup_steps:
        return o.lr * (step + 1) / o.warmup_steps
    frac = (step - o.warmup_steps) / max(1, total - o.warmup_steps)
    return o.end_lr + 0.5 * (o.lr - o.end_lr) * (1 + math.cos(math.pi * min(1.0, frac)))


def _optimizer(model: torch.nn.Module, o: Optim) -> torch.optim.Optimizer:
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2 and "embed" not in n and "latent" not in n]
    ids = {id(p) for p in decay}
    rest = [p for p in model.parameters() if id(p) not in ids]
    return torch.optim.AdamW([{"params": decay, "weight_decay": o.weight_decay}, {"params": rest, "weight_decay": 0.0}],
                             lr=o.lr, betas=tuple(o.betas))


def _step(loop: TrainLoop, loss: torch.Tensor, o: Optim, params) -> float:
    for group in loop.optimizer.param_groups:
        group["lr"] = lr_at(loop.step, loop.total_steps, o)
    loop.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    return float(torch.nn.utils.clip_grad_norm_(params, o.grad_clip))


def _git_sha() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10,
                              cwd=Path(__file__).parent).stdout.strip() or "unknown"
    except OSError:
        return "unknown"


def _images(split: str, d: Data, per_class: int) -> tuple[torch.Tensor, torch.Tensor]:
    from harness.data.embedded import natural_patches

    x, y = natural_patches(split, image_size=d.image_size, per_class=per_class, seed=d.seed)
    return torch.from_numpy(x), torch.from_numpy(y)


def _environment() -> dict[str, Any]:
    return {"torch": torch.__version__, "threads": torch.get_num_threads(),
            "omp_num_threads": os.environ.get("OMP_NUM_THREADS"), "git_sha": _git_sha()}


# ----------------------------------------------------------------------------------------------
# tokenizers
# ----------------------------------------------------------------------------------------------
def build_tokenizer_model(family: str, model: dict[str, Any], generator: torch.Generator | None = None,
                          device: str = "cpu"):
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
    from harness.nn.checkpoint import CheckpointError, load_state_dict, load_strict, read_metadata

    sd, meta = load_state_dict(path), read_metadata(path)
    if META_FAMILY not in meta or META_CONFIG not in meta:
        raise CheckpointError(f"{path}: not a tiny baseline tokenizer (no '{META_FAMILY}'/'{META_CONFIG}' metadata)")
    family, model_cfg = meta[META_FAMILY], json.loads(meta[META_CONFIG])
    model = load_strict(lambda: build_tokenizer_model(family, model_cfg, device="meta"), sd, path,
                        f"tiny {family} tokenizer", device)
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


def train_tokenizer(cfg_dict: dict[str, Any], out_dir: Path, device: torch.device) -> dict[str, Any]:
    c = from_dict(TokenizerTrainConfig, cfg_dict)
    gen = torch.Generator().manual_seed(c.seed)
    model = build_tokenizer_model(c.family, c.model, gen).to(device).train()
    lo = -1.0 if c.family == "vq" else 0.0  # LlamaGen works in [-1, 1], TiTok in [0, 1]
    train_x, _ = _images("train", c.data, c.data.per_class_train)
    opt = _optimizer(model, c.optim)
    params = [p for p in model.parameters()]
    loop = TrainLoop(out_dir, model, opt, c.steps, c.seed, to_dict(c), ckpt_every=c.ckpt_every,
                     log_every=c.log_every, metadata={META_FAMILY: c.family, META_CONFIG: json.dumps(model.cfg.to_dict())})

    def step_fn(step: int) -> dict[str, float]:
        idx = torch.randint(len(train_x), (c.batch_size,), generator=loop.generator)
        x = train_x[idx].permute(0, 3, 1, 2).float() / 255.0
        if c.data.hflip:
            flip = torch.rand(c.batch_size, generator=loop.generator) < 0.5
            x = torch.where(flip[:, None, None, None], x.flip(3), x)
        x = (x * 2 - 1 if lo < 0 else x).to(device)
        quantize = step >= c.vq_warmup_steps
        if quantize and step == c.vq_warmup_steps > 0:
            with torch.no_grad():
                feats = _forward_tokenizer(model, c.family, x, False)[3]
            _seed_codebook(model, c.family, feats, torch.Generator().manual_seed(c.seed + step))
        rec, vq_loss, codes, _ = _forward_tokenizer(model, c.family, x, quantize)
        mse = F.mse_loss(rec, x)
        gnorm = _step(loop, mse + c.vq_weight * vq_loss, c.optim, params)
        loop.optimizer.step()
        logs = {"mse": mse.item(), "vq_loss": float(vq_loss.detach()), "grad_norm": gnorm}
        if codes is not None:
            logs["codes_used"] = float(codes.unique().numel())
        return logs

    t0 = time.perf_counter()
    logs = loop.run(step_fn, progress=False)
    seconds = time.perf_counter() - t0
    summary = {"steps": loop.step, "train_seconds_this_run": round(seconds, 1), "final": logs[-1] if logs else None}
    if c.export.weights:
        summary.update(_export_tokenizer(c, model, out_dir, seconds))
    return summary


def _grid_png(rows: list[np.ndarray], path: Path) -> None:
    """Rows of uint8 [n,H,W,3] -> one PNG with 2 px white gaps (atomic write)."""
    from PIL import Image

    from harness.io import atomic_path

    n, h, w, _ = rows[0].shape
    canvas = np.full((len(rows) * (h + 2), n * (w + 2), 3), 255, np.uint8)
    for r, row in enumerate(rows):
        for i, img in enumerate(row):
            canvas[r * (h + 2):r * (h + 2) + h, i * (w + 2):i * (w + 2) + w] = img
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        Image.fromarray(canvas).save(tmp, format="PNG")


def _mean_psnr(real: np.ndarray, fake: np.ndarray) -> float:
    """Mean per-image PSNR (dB) of uint8 images, the formula of harness.metrics.recon.psnr (floor 2)."""
    mse = ((real.astype(np.float64) - fake.astype(np.float64)) ** 2).reshape(len(real), -1).mean(1)
    return float(np.mean(10.0 * np.log10(255.0 ** 2 / mse)))


@torch.no_grad()
def _export_tokenizer(c: TokenizerTrainConfig, model, out_dir: Path, seconds: float) -> dict[str, Any]:
    from skimage.metrics import structural_similarity

    model.eval()
    tok = tokenizer_plugin(model, c.family, f"tiny-{c.family}")
    val_x, val_y = _images("val", c.data, c.data.per_class_val)
    codes = torch.cat([tok.encode(val_x[i:i + 128]) for i in range(0, len(val_x), 128)])
    rec = torch.cat([tok.decode(codes[i:i + 128]) for i in range(0, len(codes), 128)])
    real, fake = val_x.numpy(), rec.numpy()
    counts = np.bincount(codes.flatten().numpy(), minlength=tok.codebook_size)
    p = counts / counts.sum()
    meta = {META_FAMILY: c.family, META_CONFIG: json.dumps(model.cfg.to_dict()), "steps": str(c.steps),
            "seed": str(c.seed), "git_sha": _git_sha()}
    save_safetensors(c.export.weights, model.state_dict(), meta)
    record = {
        "kind": "train", "trainer": "baselines-tokenizer", "family": c.family, "config": to_dict(c),
        "num_params": sum(p_.numel() for p_ in model.parameters()), "num_tokens": tok.num_tokens,
        "codebook_size": tok.codebook_size, "train_seconds": round(seconds, 1), "environment": _environment(),
        "losses": "MSE + VQ (no perceptual / GAN: their pretrained weights are unavailable here)",
        "val": {"images": len(real), "psnr_db": _mean_psnr(real, fake),
                "ssim": float(np.mean([structural_similarity(a, b, channel_axis=-1, data_range=255, win_size=7)
                                       for a, b in zip(real, fake)])),
                "codebook_usage": float((counts > 0).mean()),
                "code_perplexity": float(np.exp(-(p[p > 0] * np.log(p[p > 0])).sum()))},
        "weights": c.export.weights,
    }
    if c.export.record:
        write_json_atomic(c.export.record, record)
    if c.export.grid:
        order = np.argsort(val_y.numpy(), kind="stable")[:: max(1, len(real) // 12)][:12]
        _grid_png([real[order], fake[order]], Path(c.export.grid))
    return {"val_psnr_db": round(record["val"]["psnr_db"], 2), "codebook_usage": round(record["val"]["codebook_usage"], 3)}


# ----------------------------------------------------------------------------------------------
# AR on codes
# ----------------------------------------------------------------------------------------------
def _codes(tok, x: torch.Tensor) -> torch.Tensor:
    return torch.cat([tok.encode(x[i:i + 256]) for i in range(0, len(x), 256)])


def load_tiny_gpt(path: str | os.PathLike, device="cpu"):
    """A GPT file written by ``baselines-ar`` -> (model, ARSampling preset, tokenizer path)."""
    from baselines import llamagen as lg
    from harness.nn.checkpoint import CheckpointError, load_state_dict, load_strict, read_metadata

    sd, meta = load_state_dict(path), read_metadata(path)
    if META_CONFIG not in meta or META_SAMPLING not in meta:
        raise CheckpointError(f"{path}: not a tiny baseline AR model (no '{META_CONFIG}'/'{META_SAMPLING}' metadata)")
    try:
        cfg = from_dict(lg.GPTConfig, json.loads(meta[META_CONFIG]), "config")
        sampling = ARSampling(**json.loads(meta[META_SAMPLING]))
    except (ValueError, TypeError) as e:
        raise CheckpointError(f"{path}: bad metadata ({e})") from None
    model = load_strict(lambda: lg.build_gpt(cfg, "meta"), sd, path, f"tiny LlamaGen GPT ({cfg.num_tokens} tokens)", device)
    return model, sampling, meta.get(META_TOKENIZER)


def train_ar(cfg_dict: dict[str, Any], out_dir: Path, device: torch.device) -> dict[str, Any]:
    from baselines import llamagen as lg
    from harness.data.embedded import NUM_CLASSES

    c = from_dict(ARTrainConfig, cfg_dict)
    sampling = ARSampling(**c.sampling)
    tok = load_tiny_tokenizer(c.tokenizer, "tiny-tokenizer", device)
    gcfg = from_dict(lg.GPTConfig, {"class_dropout": c.label_dropout, **c.model}, "model")
    if gcfg.num_tokens != tok.num_tokens or gcfg.vocab_size != tok.codebook_size or gcfg.num_classes != NUM_CLASSES:
        raise ConfigError(f"model: {gcfg.num_tokens} tokens / {gcfg.vocab_size} codes / {gcfg.num_classes} classes do not "
                          f"match the tokenizer's {tok.num_tokens} / {tok.codebook_size} and the {NUM_CLASSES} classes")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    train_x, train_y = _images("train", c.data, c.data.per_class_train)
    val_x, val_y = _images("val", c.data, c.data.per_class_val)
    train_codes, val_codes = _codes(tok, train_x), _codes(tok, val_x)
    # horizontal flips double the distinct training sequences (as the ten-crop pretokenisation upstream)
    if c.data.hflip:
        train_codes = torch.stack([train_codes, _codes(tok, train_x.flip(2))], 1)
    else:
        train_codes = train_codes[:, None]
    model = lg.build_gpt(gcfg, device, torch.Generator().manual_seed(c.seed)).train()
    opt = _optimizer(model, c.optim)
    params = list(model.parameters())
    meta = {META_CONFIG: json.dumps(gcfg.to_dict()), META_SAMPLING: json.dumps(sampling.to_dict()),
            META_TOKENIZER: c.tokenizer}
    loop = TrainLoop(out, model, opt, c.steps, c.seed, to_dict(c), ckpt_every=c.ckpt_every, log_every=c.log_every,
                     metadata=meta)

    def batch_inputs(codes: torch.Tensor, labels: torch.Tensor, drop: torch.Tensor | None) -> torch.Tensor:
        cls = labels.clone()
        if drop is not None:
            cls[drop] = gcfg.null_class_id
        return torch.cat([cls[:, None], codes[:, :-1]], 1).to(device)

    def step_fn(step: int) -> dict[str, float]:
        idx = torch.randint(len(train_codes), (c.batch_size,), generator=loop.generator)
        view = torch.randint(train_codes.shape[1], (c.batch_size,), generator=loop.generator)
        codes = train_codes[idx, view]
        drop = torch.rand(c.batch_size, generator=loop.generator) < c.label_dropout
        logits = model(batch_inputs(codes, train_y[idx], drop))
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), codes.to(device).reshape(-1))
        gnorm = _step(loop, loss, c.optim, params)
        loop.optimizer.step()
        return {"ce": loss.item(), "grad_norm": gnorm}

    t0 = time.perf_counter()
    logs = loop.run(step_fn, progress=False)
    seconds = time.perf_counter() - t0
    model.eval()
    with torch.no_grad():
        logits = torch.cat([model(batch_inputs(val_codes[i:i + 256], val_y[i:i + 256], None))
                            for i in range(0, len(val_codes), 256)])
        val_ce = float(F.cross_entropy(logits.reshape(-1, logits.shape[-1]), val_codes.reshape(-1)))
        val_acc = float((logits.argmax(-1) == val_codes).float().mean())
    summary = {"steps": loop.step, "train_seconds_this_run": round(seconds, 1), "val_ce": round(val_ce, 4),
               "val_acc": round(val_acc, 4)}
    if c.export.weights:
        save_safetensors(c.export.weights, model.state_dict(), {**meta, "steps": str(c.steps), "git_sha": _git_sha()})
        counts = np.bincount(train_codes.flatten().numpy(), minlength=tok.codebook_size)
        p = counts / counts.sum()
        record = {"kind": "train", "trainer": "baselines-ar", "config": to_dict(c), "model": gcfg.to_dict(),
                  "num_params": sum(p_.numel() for p_ in model.parameters()), "train_seconds": round(seconds, 1),
                  "environment": _environment(), "tokenizer": tok.info(),
                  "val": {"sequences": len(val_codes), "next_token_ce": val_ce, "next_token_acc": val_acc,
                          "unigram_ce": float(-(p[p > 0] * np.log(p[p > 0])).sum())},
                  "final_train": logs[-1] if logs else None, "weights": c.export.weights, "sampling": sampling.to_dict()}
        if c.export.record:
            write_json_atomic(c.export.record, record)
        if c.export.grid:
            from harness.nn.ar_generator import ARGenerator

            gen = ARGenerator(model, tok, name="tiny", sampling=sampling)
            rows = [gen.generate(torch.full((8,), k), torch.Generator().manual_seed(k)).numpy() for k in range(NUM_CLASSES)]
            _grid_png(rows, Path(c.export.grid))
    return summary

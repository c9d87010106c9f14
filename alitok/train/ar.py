"""Trainer ``alitok-ar``: the AliTok AR generator on pre-tokenised codes.

Steps: pretokenise the train/val splits through the ``Tokenizer`` interface (embedded natural
patches, train optionally ten-crop, see ``ten_crop_32``; or an ImageNet folder, ADM centre crops
with upstream's ten-crop, in chunks shared out over the ranks: ``alitok.train.ar_data``), then teacher-forced next-token
cross-entropy over all T targets (prefix included) with label dropout to the null class, AdamW
with the official betas / weight-decay split, warmup + cosine LR, grad clip; logs and resumable
checkpoints via ``harness.runs.training.TrainLoop``. At the end: held-out next-token accuracy and CE
beside unigram code-frequency baselines (``alitok.train.ar_eval``), the weight export with the
config in the safetensors metadata, ``train_record.json`` and ``samples_grid.png``, all under
``--out``; ``--publish`` copies the weights to ``export:``. Every input (tokenizers, the decode
tokenizer's code check, the publish destination) is checked before the first step.

Reproducibility: data draws and label dropout come from ``loop.generator``; dropout masks from a
global seed set per step inside ``torch.random.fork_rng`` (so a resumed run continues exactly and
the caller's global RNG is left as it was).
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F

import harness.runs.training as training
from alitok.generator import META_CONFIG, ARConfig, ARModel, build
from alitok.train.ar_data import pretokenize
from harness.core.config import ConfigError, from_dict, spec_hash
from harness.core.interfaces import ARSampling, Tokenizer
from harness.nn.checkpoints.checkpoint import save_safetensors


@dataclasses.dataclass(frozen=True)
class DataConfig:
    # embedded: natural patches (train / val regions); imagenet: root/<train_split> and root/<val_split>
    # class folders, ADM centre crops (train: ten-crop), pretokenised once into out/codes-KEY/ chunks
    source: Literal["embedded", "imagenet"] = "embedded"
    image_size: int = 32
    per_class_train: int | None = 256  # imagenet: null = every image (else the first N per class)
    per_class_val: int | None = 64
    seed: int = 0
    ten_crop: bool = True  # paper: ADM center crop to 1.1x, TenCrop (5 crops + their flips)
    root: str | None = None
    train_split: str = "train"
    val_split: str = "val"
    workers: int = 4  # imagenet: decoding threads during pretokenisation
    encode_batch: int = 256  # images per tokenizer call during pretokenisation
    # positive control (the ablation suite's): every image's code sequence, train and held-out, in its
    # own random order, so the AR model cannot use the positions and its held-out accuracy must fall
    shuffle_tokens: bool = False

    def __post_init__(self) -> None:
        if self.shuffle_tokens and self.source != "embedded":
            raise ValueError("data.shuffle_tokens: only for source embedded (codes held in memory)")
        if self.source == "imagenet" and not self.root:
            raise ValueError("data.root: required for source imagenet (the folder holding train/ and val/)")
        for key in ("per_class_train", "per_class_val"):
            v = getattr(self, key)
            if (v is None and self.source == "embedded") or (v is not None and v < 1):
                raise ValueError(
                    f"data.{key} must be >= 1{'' if self.source == 'imagenet' else ' (null only for imagenet)'}, got {v}"
                )
        if self.workers < 0 or self.encode_batch < 1:
            raise ValueError(
                f"data.workers must be >= 0 and data.encode_batch >= 1, got {self.workers}, {self.encode_batch}"
            )


@dataclasses.dataclass(frozen=True)
class OptimConfig(training.OptimConfig):
    """The engine's optimizer section with the official AR defaults (warm-up, then cosine)."""

    lr: float = 4e-4
    betas: tuple[float, float] = (0.9, 0.96)
    weight_decay: float = 0.03
    warmup_steps: int = 100
    schedule: Literal["constant", "cosine"] = "cosine"
    end_lr: float = 1e-5
    grad_clip: float | None = 1.0


@dataclasses.dataclass(frozen=True)
class GridConfig:
    """The sample grid written to ``out/samples_grid.png`` (samples_per_class 0: no grid)."""

    samples_per_class: int = 0
    real_per_class: int = 4
    seed: int = 0


@dataclasses.dataclass(frozen=True, kw_only=True)
class ARTrainConfig(training.RunConfig):
    """``harness.runs.training.RunConfig`` (steps, batch_size, seed, log/ckpt cadence, export) plus:"""

    model: ARConfig
    # "tiny" = the committed alitok/weights/tiny_tokenizer.safetensors; "random-tiny" = a randomly
    # initialised tiny tokenizer (tests, before a trained one exists); otherwise a checkpoint path.
    tokenizer: str = "tiny"
    tokenizer_seed: int = 0
    data: DataConfig = DataConfig()
    optim: OptimConfig = OptimConfig()
    steps: int = 1000
    batch_size: int = 64
    label_dropout: float = 0.1
    eval_every: int = 0  # 0: evaluate at the end only
    ckpt_every: int = 200
    sampling: ARSampling = ARSampling(cfg_scale=3.0, cfg_schedule="power-cosine", cfg_power=1.0)
    grid: GridConfig = GridConfig()
    # Tokenizer that decodes the grid (default: the training one). AliTok trains the AR on stage-1
    # codes and decodes with the stage-2 tokenizer; both share the frozen encoder and codebook, which
    # is checked before training (identical held-out codes) and recorded.
    decode_tokenizer: str | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0.0 <= self.label_dropout < 1.0:
            raise ValueError(f"label_dropout must be in [0, 1), got {self.label_dropout}")
        if self.eval_every and self.eval_every % self.log_every:
            raise ValueError(f"eval_every ({self.eval_every}) must be a multiple of log_every ({self.log_every})")


# ----------------------------------------------------------------------------------------------
# Data
# ----------------------------------------------------------------------------------------------
def ten_crop_32(images: np.ndarray) -> np.ndarray:
    """[N,S,S,3] -> [N,10,S,S,3]: the paper's pretokenisation at small scale.

    Upstream: ADM center crop to int(1.1*256) then TenCrop(256). Our crops are already S px, so
    we upsample each to int(1.1*S) (Pillow bicubic) and take torchvision's TenCrop layout: the
    four corners and the center, then the same five of the horizontally flipped image.
    """
    from PIL import Image

    n, s = images.shape[0], images.shape[1]
    big = int(1.1 * s)
    out = np.empty((n, 10, s, s, 3), dtype=np.uint8)
    offsets = [(0, 0), (0, big - s), (big - s, 0), (big - s, big - s), ((big - s) // 2, (big - s) // 2)]
    for i in range(n):
        up = np.asarray(Image.fromarray(images[i]).resize((big, big), Image.BICUBIC))
        for flip in (0, 1):
            src = up[:, ::-1] if flip else up
            for j, (top, left) in enumerate(offsets):
                out[i, 5 * flip + j] = src[top : top + s, left : left + s]
    return out


def shuffle_token_order(codes: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """``codes`` [N, ..., T] with each image's T tokens permuted by its own random permutation (the
    views of one image share it): the code multiset of every image is kept, its order destroyed."""
    n, t = codes.shape[0], codes.shape[-1]
    perm = torch.argsort(torch.rand(n, t, generator=generator), dim=1)
    return torch.gather(codes, -1, perm.view(n, *([1] * (codes.ndim - 2)), t).expand_as(codes))


def load_tokenizer(spec: str, device: torch.device, seed: int = 0) -> Tokenizer:
    from alitok import tokenizer as tk

    if spec == "tiny":
        path = tk.tiny_checkpoint_path()
        if not path.is_file():
            raise ConfigError(
                f"tokenizer: the committed tiny tokenizer {path} does not exist yet; "
                "train it first or use tokenizer: random-tiny"
            )
        return tk.AliTokTokenizer.from_checkpoint(path, device, name="alitok-tiny")
    if spec == "random-tiny":
        from harness.core.config import load_yaml

        cfg = tk.config_from_dict(load_yaml(Path(tk.__file__).parent / "configs" / "tiny_tokenizer.yaml"))
        model = tk.build(cfg, device=device, generator=torch.Generator().manual_seed(seed))
        return tk.AliTokTokenizer(model.eval(), name="alitok-tiny-random")
    if not Path(spec).is_file():
        raise ConfigError(f"tokenizer: {spec}: no such checkpoint (use 'tiny', 'random-tiny' or a path)")
    return tk.AliTokTokenizer.from_checkpoint(spec, device, name="alitok")


def tokenizer_identity(tokenizer: Tokenizer) -> dict[str, Any]:
    info = tokenizer.info()
    return {
        "name": tokenizer.name,
        "checkpoint": info.get("checkpoint"),
        "sha256": info.get("checkpoint_sha256"),
        "stage": info.get("stage"),
        "num_tokens": tokenizer.num_tokens,
        "codebook_size": tokenizer.codebook_size,
        "num_params": info.get("num_params"),
    }


def load_codes(
    cfg: ARTrainConfig,
    tokenizer: Tokenizer,
    out: Path,
    write_cache: bool = True,
    parallel: training.Parallel | None = None,
) -> dict[str, Any]:
    """Pretokenised train ([N,10,T] or [N,1,T]) and val ([M,T]) codes with their labels.

    embedded: cached in ``out/codes.safetensors``; imagenet: ``alitok.train.ar_data`` (chunked,
    memory-mapped train codes, the chunks shared out over the ranks)."""
    if cfg.data.source == "imagenet":
        from alitok.train.ar_data import imagenet_codes

        return imagenet_codes(
            cfg.data, tokenizer, out, tokenizer_identity(tokenizer), cfg.tokenizer_seed, parallel or training.Parallel()
        )
    from harness.data.embedded import natural_patches
    from harness.nn.checkpoints.checkpoint import load_state_dict, read_metadata

    key = spec_hash({"data": cfg.data, "tokenizer": tokenizer_identity(tokenizer), "seed": cfg.tokenizer_seed})
    cache = out / "codes.safetensors"
    if cache.is_file() and read_metadata(cache).get("key") == key:
        return load_state_dict(cache)
    d = cfg.data
    train_x, train_y = natural_patches("train", d.image_size, d.per_class_train, d.seed)
    val_x, val_y = natural_patches("val", d.image_size, d.per_class_val, d.seed)
    train_views = ten_crop_32(train_x) if d.ten_crop else train_x[:, None]
    codes = {
        "train_codes": pretokenize(tokenizer, train_views),
        "train_labels": torch.from_numpy(train_y),
        "val_codes": pretokenize(tokenizer, val_x),
        "val_labels": torch.from_numpy(val_y),
    }
    if write_cache:
        save_safetensors(cache, codes, {"key": key})
    return codes


# ----------------------------------------------------------------------------------------------
# Optimisation
# ----------------------------------------------------------------------------------------------
NO_DECAY_NAME_PARTS = ("ln", "bias", "norm", "embed", "latent_tokens", "gamma")


def param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Official split: no weight decay on 1-D parameters or names containing ln/bias/norm/embed/..."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (no_decay if p.ndim < 2 or any(part in name for part in NO_DECAY_NAME_PARTS) else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def conditioning(model: ARModel, labels: torch.Tensor, drop_p: float, generator: torch.Generator) -> torch.Tensor:
    """Class ids, each replaced by the null class with probability ``drop_p`` (label dropout for CFG)."""
    ids = model.cfg.class_ids(labels)
    if drop_p > 0:
        drop = torch.rand(labels.shape, generator=generator) < drop_p
        ids = torch.where(drop.to(ids.device), torch.full_like(ids, model.cfg.null_class_id), ids)
    return ids


def ar_loss(model: ARModel, codes: torch.Tensor, class_ids: torch.Tensor) -> torch.Tensor:
    logits = model(model.training_inputs(codes, class_ids))
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), codes.reshape(-1))


# ----------------------------------------------------------------------------------------------
# The trainer
# ----------------------------------------------------------------------------------------------
def _check_geometry(cfg: ARTrainConfig, tokenizer: Tokenizer, num_classes: int) -> None:
    m = cfg.model
    if m.num_tokens != tokenizer.num_tokens or m.codebook_size != tokenizer.codebook_size:
        raise ConfigError(
            f"model: {m.num_tokens} tokens / {m.codebook_size} codes (num_prefix_tokens + grid^2, "
            f"codebook_size) do not match the tokenizer's {tokenizer.num_tokens} / {tokenizer.codebook_size}"
        )
    if m.num_classes != num_classes:
        raise ConfigError(
            f"model.num_classes: {m.num_classes}, but the {cfg.data.source} training data has {num_classes} classes"
        )


def _load_decoder(
    cfg: ARTrainConfig, tokenizer: Tokenizer, val_codes: torch.Tensor, device: torch.device
) -> tuple[Tokenizer, dict[str, Any] | None]:
    """The grid's decode tokenizer, checked before training: it must encode the held-out images to
    the training tokenizer's codes, or it cannot decode this AR model's samples."""
    if not cfg.decode_tokenizer:
        return tokenizer, None
    decoder = load_tokenizer(cfg.decode_tokenizer, device)
    if cfg.data.source == "imagenet":
        from alitok.train.ar_data import first_val_images

        val_x = first_val_images(cfg.data, 64)  # a probe: the first held-out images
        val_codes = val_codes[: len(val_x)]
    else:
        from harness.data.embedded import natural_patches

        val_x, _ = natural_patches("val", cfg.data.image_size, cfg.data.per_class_val, cfg.data.seed)
    if not torch.equal(pretokenize(decoder, val_x), val_codes.cpu()):
        raise ConfigError(
            f"decode_tokenizer: {cfg.decode_tokenizer} encodes the held-out images to other codes "
            "than the training tokenizer; it cannot decode this AR model's samples"
        )
    return decoder, {**tokenizer_identity(decoder), "heldout_codes_identical": True}


def train_ar(cfg_dict: dict[str, Any], out_dir: Path, device: torch.device, publish: bool = False) -> dict[str, Any]:
    """The ``alitok-ar`` trainer (see module doc); returns the summary the CLI prints."""
    from alitok.train import ar_eval
    from harness.data.embedded import NUM_CLASSES

    cfg = from_dict(ARTrainConfig, cfg_dict)
    training.check_publish(cfg.export, publish)
    imagenet = cfg.data.source == "imagenet"
    if imagenet and cfg.grid.samples_per_class:
        raise ConfigError(
            "grid.samples_per_class: the sample grid shows embedded val images; set it to 0 for source imagenet"
        )
    parallel = training.init_parallel(device)
    device = parallel.device
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = load_tokenizer(cfg.tokenizer, device, cfg.tokenizer_seed)
    if imagenet:
        from alitok.train.ar_data import imagenet_num_classes

        num_classes = imagenet_num_classes(cfg.data)
    else:
        num_classes = NUM_CLASSES
    _check_geometry(cfg, tokenizer, num_classes)
    codes = load_codes(cfg, tokenizer, out, write_cache=parallel.is_main, parallel=parallel)
    decoder, decoder_identity = _load_decoder(cfg, tokenizer, codes["val_codes"], device)
    if cfg.data.shuffle_tokens:
        gen = torch.Generator().manual_seed(cfg.data.seed + 104_729)  # the same orders for every row and seed
        for key in ("train_codes", "val_codes"):
            codes[key] = shuffle_token_order(codes[key], gen)
    train_labels = codes["train_labels"].to(device)
    val_codes, val_labels = codes["val_codes"].to(device), codes["val_labels"].to(device)
    if imagenet:  # memory-mapped chunks: gather the batch on the CPU, then move it
        store = codes["train_store"]

        def take(idx: torch.Tensor, view: torch.Tensor) -> torch.Tensor:
            return store.take(idx.cpu(), view.cpu()).to(device)

        n_train, n_views = store.shape[:2]
    else:
        train_codes = codes["train_codes"].to(device)

        def take(idx: torch.Tensor, view: torch.Tensor) -> torch.Tensor:
            return train_codes[idx, view]

        n_train, n_views = train_codes.shape[:2]

    model = build(cfg.model, device=device, generator=torch.Generator().manual_seed(cfg.seed))
    optimizer = training.make_optimizer(param_groups(model, cfg.optim.weight_decay), cfg.optim)
    config_json = json.loads(json.dumps(dataclasses.asdict(cfg)))
    # the publish destination does not change training: a finished run can be published later
    run_config = {k: v for k, v in config_json.items() if k != "export"}
    metadata = {
        META_CONFIG: json.dumps(cfg.model.to_dict(), sort_keys=True),
        "sampling": json.dumps(cfg.sampling.to_dict(), sort_keys=True),
        "tokenizer": json.dumps(tokenizer_identity(tokenizer), sort_keys=True),
        "seed": str(cfg.seed),
        "git_sha": training.git_sha(),
    }
    loop = training.TrainLoop(
        out,
        model,
        optimizer,
        cfg.steps,
        cfg.seed,
        run_config,
        ckpt_every=cfg.ckpt_every,
        log_every=cfg.log_every,
        metadata=metadata,
        parallel=parallel,
    )
    fork_devices = [device] if device.type == "cuda" else []

    def step_fn(step: int) -> dict[str, float]:
        model.train()
        lr = training.set_lr(optimizer, step, cfg.steps, cfg.optim)
        # the global batch from the shared stream, then this rank's slice: the order ignores the world size
        idx = torch.randint(0, n_train, (cfg.batch_size,), generator=loop.generator).to(device)
        view = torch.randint(0, n_views, (cfg.batch_size,), generator=loop.generator).to(device)
        cls = parallel.shard(conditioning(model, train_labels[idx], cfg.label_dropout, loop.generator))
        batch = parallel.shard(take(idx, view))
        optimizer.zero_grad(set_to_none=True)
        loss = torch.zeros(())
        with torch.random.fork_rng(devices=fork_devices):
            torch.manual_seed(cfg.seed * 1_000_003 + step)  # dropout masks: a function of the step
            for sl in training.micro_batches(len(batch), cfg.grad_accum):  # grad_accum 1: the whole batch
                with training.autocast(device, cfg.precision):
                    micro = ar_loss(model, batch[sl], cls[sl]) / cfg.grad_accum
                micro.backward()
                loss = loss + micro.detach().float().cpu()
        parallel.average_gradients(model.parameters())
        grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.optim.grad_clip or float("inf"))
        optimizer.step()
        values = {"loss": loss.item(), "grad_norm": float(grad_norm), "lr": lr}
        if cfg.eval_every and (step + 1) % cfg.eval_every == 0:
            ev = ar_eval.evaluate(model, val_codes, val_labels)
            values.update({"val_ce": ev["overall"]["ce"], "val_acc": ev["overall"]["acc"]})
        return values

    loop.run(step_fn, progress=os.environ.get("ALITOK_PROGRESS", "1") != "0")
    if not parallel.is_main:
        return {}
    ev = ar_eval.evaluate(model, val_codes, val_labels)
    train_chunks = (
        codes["train_store"].chunks() if imagenet else [codes["train_codes"].reshape(-1, tokenizer.num_tokens)]
    )
    counts = ar_eval.code_counts(train_chunks, cfg.model.codebook_size, tokenizer.num_tokens)
    baselines = ar_eval.baselines_from_counts(
        *counts,
        codes["val_codes"],
        cfg.model.codebook_size,
        groups=ar_eval.position_groups(cfg.model.num_prefix_tokens, cfg.model.grid),
    )
    first, final = loop.first_and_last("loss")
    summary = {
        "steps": loop.step,
        "first_logged_loss": first,
        "final_logged_loss": final,
        "val_ce": round(ev["overall"]["ce"], 4),
        "val_acc": round(ev["overall"]["acc"], 4),
        "unigram_val_ce": round(baselines["unigram"]["ce"], 4),
        "unigram_val_acc": round(baselines["unigram"]["acc"], 4),
        "checkpoint": str(loop.model_path),
    }
    samples: dict[str, Any] = {}
    if cfg.grid.samples_per_class:
        from alitok.train.ar_grid import class_consistency, sample_grid

        grid_path = out / "samples_grid.png"
        images, labels = sample_grid(
            model,
            decoder,
            cfg.sampling,
            NUM_CLASSES,
            cfg.grid.samples_per_class,
            cfg.grid.real_per_class,
            cfg.data,
            cfg.grid.seed,
            str(grid_path),
        )
        samples = {
            "grid": str(grid_path),
            "sampling": cfg.sampling.to_dict(),
            "seed": cfg.grid.seed,
            **class_consistency(images, labels, cfg.data),
        }
        summary["class_consistency"] = samples["generated_1nn_acc"]
    model_info = {
        "name": "alitok-ar",
        "num_params": sum(p.numel() for p in model.parameters()),
        "config": cfg.model.to_dict(),
        "tokenizer": tokenizer_identity(tokenizer),
        "decode_tokenizer": decoder_identity,
    }
    metrics = {
        "val_ce": ev["overall"]["ce"],
        "val_acc": ev["overall"]["acc"],
        "unigram_val_ce": baselines["unigram"]["ce"],
        "unigram_val_acc": baselines["unigram"]["acc"],
        "first_logged_loss": first,
        "final_logged_loss": final,
    }
    if samples:
        metrics["class_consistency"] = samples["generated_1nn_acc"]
    return training.finish_run(
        loop,
        summary,
        model.state_dict(),
        export_to=cfg.export,
        publish=publish,
        trainer="alitok-ar",
        model=model_info,
        metrics=metrics,
        device=device,
        export_metadata={"heldout_acc": str(ev["overall"]["acc"])},
        extra={
            "train_sequences": int(n_train * n_views),
            "val_sequences": int(len(val_codes)),
            "data": codes.get("describe")
            or {
                "source": "embedded",
                "train_images": int(n_train),
                "val_images": int(len(val_codes)),
                "classes": num_classes,
            },
        },
        samples=samples,
        metric_provenance={
            "heldout": ev,
            "baselines": baselines,
            "code_stats": ar_eval.stats_from_counts(counts[0]),
        },
        notes=[
            f"ImageNet folder {cfg.data.root}: held-out = {cfg.data.val_split} split"
            if imagenet
            else "not paper-comparable: tiny model, embedded natural patches, not ImageNet"
        ],
    )


# resolved against the config file's folder; "tiny" and "random-tiny" name built-in tokenizers
train_ar.path_keys = ("tokenizer", "decode_tokenizer", "export", "data.root")
train_ar.path_keep = ("tiny", "random-tiny")


def check_config(cfg_dict: dict[str, Any]) -> list[str]:
    """Problems of a config found without running it (the ablation driver's --plan)."""
    try:
        from_dict(ARTrainConfig, {k: v for k, v in cfg_dict.items() if k != "trainer"})
    except (ConfigError, ValueError, TypeError) as e:
        return [str(e)]
    return []


train_ar.check_config = check_config
train_ar.data_sources = ("embedded", "imagenet")  # the ablation driver's --plan reports other sources as missing

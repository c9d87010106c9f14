"""AliTok's AR generator: a LlamaGen-style decoder over [class token | K prefix + G*G image codes].

Facts (ali-vilab/alitok ``modeling/ar.py`` and ``configs/alitok_{b,l,xl}.yaml``):
- vocabulary = codes + 1 unused + classes + 1 null: code i -> i, class c -> codebook_size + 1 + c,
  the CFG null class -> the last id (official: 4096 codes, 5098 rows, class c -> 4097 + c, null 5097);
- the head predicts codes only (``output`` Linear(d -> codebook_size, bias), zero-initialised weight);
- the logits at positions 0..T-1 of ``[class | codes[:-1]]`` predict codes 0..T-1 (prefix included);
- RoPE: zero row for the class token, 1D for the prefix, 2D (K..K+G-1) for the image
  (``harness.nn.layers.rope.cond_prefix_grid_rope_table``);
- state-dict names ``embeddings``, ``blocks.i.{norm1,attn.{qkv,q_norm,k_norm,proj},norm2,mlp.{w1,w2,w3}}``,
  ``norm``, ``output``, exactly the released ``alitok_{b,l,xl}.bin``.

Assumption (not stated in the notes): the QK-norm RMSNorm uses the same eps (1e-5) as the block norms.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from harness.core.interfaces import ARSampling
from harness.nn.layers.attention import KVCache
from harness.nn.layers.llama import LlamaBlock, swiglu_hidden
from harness.nn.layers.norms import RMSNorm
from harness.nn.layers.rope import cond_prefix_grid_rope_table


@dataclasses.dataclass(frozen=True)
class ARConfig:
    """Architecture; defaults are AliTok-B with the official tokenizer's geometry."""

    depth: int = 24
    width: int = 768
    num_heads: int = 16
    codebook_size: int = 4096
    num_classes: int = 1000
    num_prefix_tokens: int = 17
    grid: int = 16
    norm_eps: float = 1e-5
    qk_norm: bool = True
    qkv_bias: bool = True
    resid_dropout: float = 0.1  # attention proj and FFN outputs
    attn_dropout: float = 0.1
    token_dropout: float = 0.1  # on the input embeddings
    rope_base: float = 10000.0
    init_std: float = 0.02

    def __post_init__(self) -> None:
        for name in ("depth", "width", "num_heads", "codebook_size", "num_classes", "grid"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.num_prefix_tokens < 0:
            raise ValueError(f"num_prefix_tokens must be >= 0, got {self.num_prefix_tokens}")
        if self.width % self.num_heads or (self.width // self.num_heads) % 4:
            raise ValueError(f"width {self.width} / {self.num_heads} heads must give a head_dim divisible by 4")

    @property
    def head_dim(self) -> int:
        return self.width // self.num_heads

    @property
    def num_tokens(self) -> int:
        """Generated tokens T = K + G*G (official 273)."""
        return self.num_prefix_tokens + self.grid * self.grid

    @property
    def vocab_size(self) -> int:
        return self.codebook_size + 1 + self.num_classes + 1

    @property
    def null_class_id(self) -> int:
        return self.vocab_size - 1

    def class_ids(self, labels: torch.Tensor) -> torch.Tensor:
        return labels.long() + (self.codebook_size + 1)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def config_from_dict(data: dict[str, Any], path: str = "model") -> ARConfig:
    from harness.core.config import from_dict

    return from_dict(ARConfig, data, path)


class ARModel(nn.Module):
    """Decoder-only transformer; implements ``harness.nn.models.ar_generator.ARModelProtocol``."""

    def __init__(self, cfg: ARConfig):
        super().__init__()
        self.cfg = cfg
        self.embeddings = nn.Embedding(cfg.vocab_size, cfg.width)
        self.token_dropout = nn.Dropout(cfg.token_dropout)
        hidden = swiglu_hidden(cfg.width)
        self.blocks = nn.ModuleList(
            LlamaBlock(
                cfg.width,
                cfg.num_heads,
                ffn_hidden=hidden,
                norm_eps=cfg.norm_eps,
                qkv_bias=cfg.qkv_bias,
                qk_norm=cfg.qk_norm,
                attn_dropout=cfg.attn_dropout,
                resid_dropout=cfg.resid_dropout,
                ffn_dropout=cfg.resid_dropout,
            )
            for _ in range(cfg.depth)
        )
        self.norm = RMSNorm(cfg.width, eps=cfg.norm_eps)
        self.output = nn.Linear(cfg.width, cfg.codebook_size, bias=True)
        # Built lazily per device, kept as a plain attribute rather than a buffer: out of the state
        # dict (as upstream's freqs_cis), fp32 even when the module is cast to bf16, and never on meta.
        self._rope: torch.Tensor | None = None
        self._mask: torch.Tensor | None = None
        if self.embeddings.weight.device.type != "meta":
            self.reset_parameters()

    @property
    def max_len(self) -> int:
        return 1 + self.cfg.num_tokens

    # -- the ARGenerator protocol: geometry, label mapping, official RNG draws ---------------------
    @property
    def num_classes(self) -> int:
        return self.cfg.num_classes

    @property
    def num_tokens(self) -> int:
        return self.cfg.num_tokens

    @property
    def codebook_size(self) -> int:
        return self.cfg.codebook_size

    def condition_tokens(self, labels: torch.Tensor) -> torch.Tensor:
        """``[B]`` labels -> ``[B, 1]`` class token ids (class c -> codebook_size + 1 + c)."""
        return self.cfg.class_ids(labels)[:, None]

    def null_condition_tokens(self, cond: torch.Tensor) -> torch.Tensor:
        return torch.full_like(cond, self.cfg.null_class_id)

    def presample_draws(self, labels: torch.Tensor, generator: torch.Generator) -> None:
        """Upstream ``generate`` first calls ``preprocess_condition(condition, cond_drop_prob=0.0)``,
        whose label-dropout mask ``torch.rand_like(condition, dtype=torch.float)`` draws B float32
        uniforms from the sampling RNG before the first ``torch.multinomial``; draw (and discard) them."""
        torch.rand(labels.shape, dtype=torch.float32, device=labels.device, generator=generator)

    def config_dict(self) -> dict[str, Any]:
        return self.cfg.to_dict()

    def reset_parameters(self, generator: torch.Generator | None = None) -> ARModel:
        """N(0, init_std) for Linear / Embedding weights, zero biases, unit norms, zero head weight."""
        for m in self.modules():
            if isinstance(m, (nn.Linear, nn.Embedding)):
                nn.init.normal_(m.weight, std=self.cfg.init_std, generator=generator)
                if getattr(m, "bias", None) is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, RMSNorm):
                nn.init.ones_(m.weight)
        nn.init.zeros_(self.output.weight)
        return self

    def rope_table(self, device: torch.device | str = "cpu") -> torch.Tensor:
        """``[1 + T, head_dim/2, 2]``: zero row (class), 1D prefix rows, 2D image rows."""
        device = torch.device(device)
        if self._rope is None or self._rope.device != device:
            cfg = self.cfg
            self._rope = cond_prefix_grid_rope_table(
                cfg.head_dim, cfg.num_prefix_tokens, cfg.grid, num_cond=1, base=cfg.rope_base
            ).to(device)
        return self._rope

    def _rope_rows(self, index: torch.Tensor | slice, device: torch.device) -> torch.Tensor:
        return self.rope_table(device)[index]

    # -- training / full recompute ---------------------------------------------------------------
    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """``tokens [B, L]`` = [class id | first L-1 codes] -> code logits ``[B, L, codebook_size]``."""
        if tokens.ndim != 2 or not 1 <= tokens.shape[1] <= self.max_len:
            raise ValueError(f"tokens must be [B, L] with 1 <= L <= {self.max_len}, got {tuple(tokens.shape)}")
        h = self.token_dropout(self.embeddings(tokens))
        rope = self._rope_rows(slice(0, tokens.shape[1]), h.device)
        for block in self.blocks:
            h = block(h, rope)
        return self.output(self.norm(h)).float()

    def training_inputs(self, codes: torch.Tensor, class_ids: torch.Tensor) -> torch.Tensor:
        """Teacher-forcing input ``[class id | codes[:, :-1]]`` for targets ``codes``."""
        return torch.cat([class_ids[:, None], codes[:, :-1]], dim=1)

    # -- cached sampling (CachedDecoder protocol) ------------------------------------------------
    def reset_cache(self, batch: int, dtype: torch.dtype = torch.float32) -> None:
        """Allocate each layer's static KV cache once; reused while batch/dtype/device stay the same.

        Stale entries need no clearing: the mask never lets a query see a position not yet written.
        """
        device = self.embeddings.weight.device
        cfg = self.cfg
        shape = (batch, cfg.num_heads, self.max_len, cfg.head_dim)
        for block in self.blocks:
            cache = block.attn.kv_cache
            if cache is None or cache.shape != shape or cache.k.dtype != dtype or cache.k.device != device:
                block.attn.kv_cache = KVCache(batch, cfg.num_heads, self.max_len, cfg.head_dim, dtype, device)
        if self._mask is None or self._mask.device != device:
            self._mask = torch.tril(torch.ones(self.max_len, self.max_len, dtype=torch.bool, device=device))

    def free_cache(self) -> None:
        for block in self.blocks:
            block.attn.kv_cache = None
        self._mask = None

    def _cached(self, tokens: torch.Tensor, pos: torch.Tensor, kv_len: int) -> torch.Tensor:
        h = self.token_dropout(self.embeddings(tokens))
        rope, mask = self._rope_rows(pos, h.device), self._mask[pos, :kv_len]
        for block in self.blocks:
            h = block(h, rope, pos, mask, kv_len)
        return self.output(self.norm(h[:, -1])).float()  # head on the last position only

    def prefill(self, cond: torch.Tensor) -> torch.Tensor:
        """Condition tokens ``[B, C]`` at positions 0..C-1 -> logits ``[B, codebook]`` of the first code."""
        return self._cached(cond, torch.arange(cond.shape[1], device=cond.device), cond.shape[1])

    def decode_step(self, token: torch.Tensor, pos: torch.Tensor, kv_len: int | None = None) -> torch.Tensor:
        """One token ``[B]`` at sequence position ``pos`` (LongTensor [1]), attending over cache slots
        ``0..kv_len-1`` (default all) -> next-code logits ``[B, codebook]``."""
        return self._cached(token[:, None], pos, kv_len or self.max_len)


# ----------------------------------------------------------------------------------------------
# Official models and their sampling presets (ali-vilab/alitok configs/ and README.md)
# ----------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Preset:
    config: ARConfig
    sampling: ARSampling
    seed: int  # the official sampling seed (sample_imagenet.py: seed + rank)
    checkpoint_name: str
    num_params: int  # the paper's count; tests check the model against it


def _official(depth: int, width: int, g: float, power: float, seed: int, name: str, params: int) -> Preset:
    return Preset(
        ARConfig(depth=depth, width=width, num_heads=16),
        ARSampling(cfg_scale=g, cfg_schedule="power-cosine", cfg_power=power, temperature=1.0),
        seed,
        name,
        params,
    )


PRESETS: dict[str, Preset] = {
    "alitok-b": _official(24, 768, 16.0, 1.8, 42, "alitok_b.bin", 177_048_064),
    "alitok-l": _official(24, 1024, 6.0, 0.7, 42, "alitok_l.bin", 317_851_648),
    "alitok-xl": _official(32, 1280, 13.0, 1.4, 2, "alitok_xl.bin", 662_141_696),
}


def build(cfg: ARConfig, device: torch.device | str = "cpu", generator: torch.Generator | None = None) -> ARModel:
    """A randomly initialised model (``device="meta"``: shapes only, no memory, no init)."""
    with torch.device("meta"):
        model = ARModel(cfg)
    if torch.device(device).type != "meta":
        model = model.to_empty(device=device).reset_parameters(generator)
    return model


META_CONFIG = "ar_config"


def load_model(
    path: str | os.PathLike, device: torch.device | str = "cpu", config: ARConfig | None = None
) -> tuple[ARModel, dict[str, str]]:
    """Strictly load an AR checkpoint: our safetensors carry the config in metadata ``ar_config``;
    an official ``.bin`` needs ``config``. Wrong architecture / truncated / non-state-dict -> CheckpointError."""
    from harness.nn.checkpoints.checkpoint import CheckpointError, load_state_dict, load_strict, read_metadata

    sd = load_state_dict(path)
    meta = read_metadata(path)
    if config is None:
        if META_CONFIG not in meta:
            raise CheckpointError(f"{path}: no '{META_CONFIG}' in the metadata; pass the model config")
        try:
            config = config_from_dict(json.loads(meta[META_CONFIG]))
        except (ValueError, TypeError) as e:
            raise CheckpointError(f"{path}: bad AR config in metadata ({e})") from None
    model = load_strict(
        lambda: build(config, device="meta"),
        sd,
        path,
        f"AliTok AR ({config.depth} layers, width {config.width})",
        device,
    )
    return model, meta


def tiny_checkpoint_path() -> Path:
    return Path(__file__).resolve().parent / "weights" / "tiny_ar.safetensors"

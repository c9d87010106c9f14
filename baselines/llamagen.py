"""LlamaGen: the VQGAN tokenizer (VQ-16 / VQ-8) and the class-conditional GPT (B ... 3B).

Facts from FoundationVision/LlamaGen ``tokenizer/tokenizer_image/vq_model.py``,
``autoregressive/models/gpt.py``, ``autoregressive/models/generate.py`` and
``autoregressive/sample/sample_c2i_ddp.py``:

Tokenizer
- taming-style CNN, GroupNorm(32, eps 1e-6), swish; attention only at the lowest level and in the
  mid block; downsample = 3x3 stride-2 conv after a (0,1,0,1) zero pad; upsample = nearest x2 + 3x3;
  the decoder has ``num_res_blocks + 1`` blocks per level and lists its levels lowest-res first.
- quantiser: z and the 16384 x 8 codebook are both L2-normalised, argmin of squared distance; the
  ``codebook_used`` buffer (65536 floats) is in the state dict. Works in [-1, 1]; pixels back to
  uint8 with ``clamp(127.5 x + 128, 0, 255)`` (the ``offset_half`` rule). Weights under ``"model"``.

GPT
- ``cls_embedding.embedding_table`` (1000 + 1 rows, the last one the CFG null class),
  ``tok_embeddings``, ``layers.i.{attention_norm, attention.{wqkv, wo}, ffn_norm,
  feed_forward.{w1, w2, w3}}``, ``norm``, ``output`` (no bias); no attention / FFN biases, no QK-norm.
  Built from the shared ``LlamaBlock`` with an upstream key map (``harness.nn.checkpoints.key_map``).
- 2D RoPE over the G x G grid with a zero row for the class token (``precompute_freqs_cis_2d``), the
  table AliTok uses for its grid, started at 0. ``rope="1d"`` (not upstream) gives 1D positions,
  for AR on 1D tokenizers (TiTok).
- sampling: prefill the class token, then one token per step; CFG ``u + s (c - u)`` with a constant
  s (only when s > 1), optional ``cfg_interval``: after decode step ``i > cfg_interval`` the
  conditional logits are used alone; temperature, top-k, top-p. The ``_384`` checkpoints sample a
  24 x 24 grid at 384 px, bicubically resized to 256 before quantisation (``--image-size-eval``).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from harness.core.interfaces import ARSampling, check_images, from_uint8
from harness.nn.checkpoints.key_map import install_key_map
from harness.nn.layers.attention import KVCache
from harness.nn.layers.llama import LlamaBlock, swiglu_hidden
from harness.nn.layers.norms import RMSNorm
from harness.nn.layers.rope import rope_table_1d, rope_table_2d
from harness.nn.models.model_tokenizer import ModelTokenizer


# ==============================================================================================
# VQGAN tokenizer
# ==============================================================================================
@dataclasses.dataclass(frozen=True)
class VQConfig:
    """Defaults are VQ-16 (``ModelArgs`` + ``VQ_16``)."""

    ch: int = 128
    ch_mult: tuple[int, ...] = (1, 1, 2, 2, 4)
    num_res_blocks: int = 2
    z_channels: int = 256
    codebook_size: int = 16384
    codebook_dim: int = 8
    codebook_l2_norm: bool = True
    beta: float = 0.25
    usage_buffer: int = 65536  # ``codebook_used`` length (upstream fixed size)
    image_size: int = 256
    dropout: float = 0.0

    def __post_init__(self) -> None:
        if self.ch % 32:
            raise ValueError(f"ch must be a multiple of 32 (GroupNorm(32)), got {self.ch}")
        if self.image_size % self.downsample:
            raise ValueError(f"image_size {self.image_size} is not divisible by the downsampling {self.downsample}")

    @property
    def downsample(self) -> int:
        return 2 ** (len(self.ch_mult) - 1)

    @property
    def grid(self) -> int:
        return self.image_size // self.downsample

    @property
    def num_tokens(self) -> int:
        return self.grid * self.grid

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


VQ_CONFIGS = {"VQ-16": VQConfig(), "VQ-8": VQConfig(ch_mult=(1, 2, 2, 4))}


def _norm(c: int) -> nn.GroupNorm:
    return nn.GroupNorm(32, c, eps=1e-6, affine=True)


def _swish(x: torch.Tensor) -> torch.Tensor:
    """Upstream's ``nonlinearity``: ``x * sigmoid(x)``, two rounded ops; ``F.silu`` rounds once and moves
    some decoded pixels across a uint8 boundary (tests/test_upstream_fixtures_llamagen.py)."""
    return x * torch.sigmoid(x)


class ResnetBlock(nn.Module):
    def __init__(self, cin: int, cout: int, dropout: float = 0.0):
        super().__init__()
        self.norm1, self.conv1 = _norm(cin), nn.Conv2d(cin, cout, 3, padding=1)
        self.norm2, self.conv2 = _norm(cout), nn.Conv2d(cout, cout, 3, padding=1)
        self.dropout = nn.Dropout(dropout)
        self.nin_shortcut = nn.Conv2d(cin, cout, 1) if cin != cout else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(_swish(self.norm1(x)))
        h = self.conv2(self.dropout(_swish(self.norm2(h))))
        return (x if self.nin_shortcut is None else self.nin_shortcut(x)) + h


class AttnBlock(nn.Module):
    """Single-head spatial self-attention with 1x1 q, k, v, proj_out (scale c^-1/2), computed as upstream
    does (``bmm``, scale, ``softmax``, ``bmm``): a fused kernel sums in another order and changes pixels."""

    def __init__(self, c: int):
        super().__init__()
        self.norm = _norm(c)
        self.q, self.k, self.v, self.proj_out = (nn.Conv2d(c, c, 1) for _ in range(4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        y = self.norm(x)
        q = self.q(y).reshape(b, c, h * w).permute(0, 2, 1)  # b, hw, c
        k, v = self.k(y).reshape(b, c, h * w), self.v(y).reshape(b, c, h * w)
        attn = torch.softmax(torch.bmm(q, k) * (int(c) ** -0.5), dim=2)  # b, hw (queries), hw (keys)
        out = torch.bmm(v, attn.permute(0, 2, 1)).reshape(b, c, h, w)
        return x + self.proj_out(out)


class Downsample(nn.Module):
    def __init__(self, c: int):
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, stride=2, padding=0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.pad(x, (0, 1, 0, 1)))  # taming's asymmetric pad


class Upsample(nn.Module):
    def __init__(self, c: int):
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


def _level(res: list[nn.Module], attn: list[nn.Module], resample: nn.Module | None) -> nn.Module:
    block = nn.Module()
    block.res, block.attn = nn.ModuleList(res), nn.ModuleList(attn)
    if resample is not None:
        setattr(block, "downsample" if isinstance(resample, Downsample) else "upsample", resample)
    return block


class VQEncoder(nn.Module):
    def __init__(self, cfg: VQConfig):
        super().__init__()
        ch, mult, n = cfg.ch, cfg.ch_mult, cfg.num_res_blocks
        self.conv_in = nn.Conv2d(3, ch, 3, padding=1)
        self.conv_blocks = nn.ModuleList()
        cin = ch
        for i, m in enumerate(mult):
            last = i == len(mult) - 1
            res, attn = [], []
            for _ in range(n):
                res.append(ResnetBlock(cin, ch * m, cfg.dropout))
                cin = ch * m
                if last:
                    attn.append(AttnBlock(cin))
            self.conv_blocks.append(_level(res, attn, None if last else Downsample(cin)))
        self.mid = nn.ModuleList(
            [ResnetBlock(cin, cin, cfg.dropout), AttnBlock(cin), ResnetBlock(cin, cin, cfg.dropout)]
        )
        self.norm_out = _norm(cin)
        self.conv_out = nn.Conv2d(cin, cfg.z_channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv_in(x)
        for block in self.conv_blocks:
            for i, res in enumerate(block.res):
                h = res(h)
                if len(block.attn):
                    h = block.attn[i](h)
            if hasattr(block, "downsample"):
                h = block.downsample(h)
        for m in self.mid:
            h = m(h)
        return self.conv_out(_swish(self.norm_out(h)))


class VQDecoder(nn.Module):
    def __init__(self, cfg: VQConfig):
        super().__init__()
        ch, mult, n = cfg.ch, cfg.ch_mult, cfg.num_res_blocks
        cin = ch * mult[-1]
        self.conv_in = nn.Conv2d(cfg.z_channels, cin, 3, padding=1)
        self.mid = nn.ModuleList(
            [ResnetBlock(cin, cin, cfg.dropout), AttnBlock(cin), ResnetBlock(cin, cin, cfg.dropout)]
        )
        self.conv_blocks = nn.ModuleList()
        for i in reversed(range(len(mult))):
            res, attn = [], []
            for _ in range(n + 1):
                res.append(ResnetBlock(cin, ch * mult[i], cfg.dropout))
                cin = ch * mult[i]
                if i == len(mult) - 1:
                    attn.append(AttnBlock(cin))
            self.conv_blocks.append(_level(res, attn, Upsample(cin) if i != 0 else None))
        self.norm_out = _norm(cin)
        self.conv_out = nn.Conv2d(cin, 3, 3, padding=1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.conv_in(z)
        for m in self.mid:
            h = m(h)
        for block in self.conv_blocks:
            for i, res in enumerate(block.res):
                h = res(h)
                if len(block.attn):
                    h = block.attn[i](h)
            if hasattr(block, "upsample"):
                h = block.upsample(h)
        return self.conv_out(_swish(self.norm_out(h)))


class L2VectorQuantizer(nn.Module):
    """LlamaGen's quantiser: nearest code after L2-normalising both sides (when ``l2_norm``)."""

    def __init__(self, cfg: VQConfig):
        super().__init__()
        self.codebook_size, self.dim, self.beta, self.l2_norm = (
            cfg.codebook_size,
            cfg.codebook_dim,
            cfg.beta,
            cfg.codebook_l2_norm,
        )
        self.embedding = nn.Embedding(cfg.codebook_size, cfg.codebook_dim)
        # a rolling window of recently used ids (training diagnostics); persistent, as upstream
        self.register_buffer("codebook_used", torch.zeros(cfg.usage_buffer))

    def codebook(self) -> torch.Tensor:
        w = self.embedding.weight.float()
        return F.normalize(w, p=2, dim=-1) if self.l2_norm else w

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        """``z [B, D, h, w]`` -> (straight-through zq [B, D, h, w], codes [B, h*w], losses)."""
        b, d, h, w = z.shape
        zf = z.float().permute(0, 2, 3, 1).reshape(-1, d)
        if self.l2_norm:
            zf = F.normalize(zf, p=2, dim=-1)
        emb = self.codebook()
        dist = zf.pow(2).sum(1, keepdim=True) + emb.pow(2).sum(1) - 2 * zf @ emb.t()
        codes = torch.argmin(dist, dim=1)
        zq = emb[codes]
        losses = {
            "codebook_loss": F.mse_loss(zq, zf.detach()),
            "commitment_loss": self.beta * F.mse_loss(zq.detach(), zf),
        }
        losses["vq_loss"] = losses["codebook_loss"] + losses["commitment_loss"]
        if self.training:
            n = codes.numel()
            if n < self.codebook_used.numel():
                self.codebook_used[:-n] = self.codebook_used[n:].clone()
                self.codebook_used[-n:] = codes.to(self.codebook_used.dtype)
        zq = zf + (zq - zf).detach()
        return zq.view(b, h, w, d).permute(0, 3, 1, 2), codes.view(b, h * w), losses

    def lookup(self, codes: torch.Tensor, grid: int) -> torch.Tensor:
        """Codes ``[B, grid*grid]`` (raster order) -> ``[B, D, grid, grid]``."""
        if codes.numel() and (int(codes.min()) < 0 or int(codes.max()) >= self.codebook_size):
            raise ValueError(f"codes must lie in [0, {self.codebook_size}), got {int(codes.min())}..{int(codes.max())}")
        # contiguous, as upstream's get_codebook_entry: the convolution that follows sums in memory order
        return self.codebook()[codes.long()].view(codes.shape[0], grid, grid, self.dim).permute(0, 3, 1, 2).contiguous()


class VQModel(nn.Module):
    def __init__(self, cfg: VQConfig):
        super().__init__()
        self.cfg = cfg
        self.encoder = VQEncoder(cfg)
        self.decoder = VQDecoder(cfg)
        self.quantize = L2VectorQuantizer(cfg)
        self.quant_conv = nn.Conv2d(cfg.z_channels, cfg.codebook_dim, 1)
        self.post_quant_conv = nn.Conv2d(cfg.codebook_dim, cfg.z_channels, 1)

    def encode(self, x: torch.Tensor):
        """[-1, 1] images -> (zq, codes [B, h*w], losses)."""
        return self.quantize(self.quant_conv(self.encoder(x)))

    def decode(self, zq: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.post_quant_conv(zq))

    def decode_codes(self, codes: torch.Tensor, grid: int | None = None) -> torch.Tensor:
        grid = grid or math.isqrt(codes.shape[1])
        return self.decode(self.quantize.lookup(codes, grid))

    def forward(self, x: torch.Tensor):
        zq, codes, losses = self.encode(x)
        return self.decode(zq), codes, losses


def build_vq(cfg: VQConfig, device: torch.device | str = "cpu") -> VQModel:
    with torch.device("meta"):
        model = VQModel(cfg)
    if torch.device(device).type != "meta":
        model = model.to_empty(device=device)
        _init_default(model)
    return model


def _init_default(model: nn.Module, generator: torch.Generator | None = None) -> None:
    """Fresh-model init after ``to_empty``: torch defaults for convs / norms, upstream's codebook init."""
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.kaiming_uniform_(m.weight, a=math.sqrt(5), generator=generator)
            if m.bias is not None:
                bound = 1 / math.sqrt(max(1, m.weight[0].numel()))
                nn.init.uniform_(m.bias, -bound, bound, generator=generator)
        elif isinstance(m, (nn.GroupNorm, nn.LayerNorm)) and m.weight is not None:
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, L2VectorQuantizer):
            n = m.codebook_size
            nn.init.uniform_(m.embedding.weight, -1.0 / n, 1.0 / n, generator=generator)
            if m.l2_norm:
                m.embedding.weight.data = F.normalize(m.embedding.weight.data, p=2, dim=-1)
            m.codebook_used.zero_()


def load_vq(path, cfg: VQConfig, device: torch.device | str = "cpu") -> VQModel:
    from harness.nn.checkpoints.checkpoint import load_state_dict, load_strict

    sd = load_state_dict(path)  # unwraps {"model": ...}
    return load_strict(
        lambda: build_vq(cfg, "meta"),
        sd,
        path,
        f"LlamaGen VQGAN (f{cfg.downsample}, codebook {cfg.codebook_size})",
        device,
    )


class LlamaGenTokenizer(ModelTokenizer):
    """uint8 NHWC <-> raster codes ``[B, grid*grid]``; the model works in [-1, 1]."""

    quantization = "offset_half"  # sample_c2i_ddp: clamp(127.5 x + 128, 0, 255) -> uint8
    value_range = (-1.0, 1.0)

    def __init__(
        self, model: VQModel, name: str = "vq-16", checkpoint: str | None = None, eval_size: int | None = None
    ):
        """``eval_size``: decode at the model's resolution, then resize bicubically to ``eval_size``
        before quantisation (the ``*_384`` protocol: ``--image-size 384 --image-size-eval 256``).
        ``encode`` still takes ``cfg.image_size`` images."""
        super().__init__(model, name, checkpoint)
        self.eval_size = eval_size if eval_size not in (None, model.cfg.image_size) else None
        self.image_size = self.eval_size or model.cfg.image_size

    @property
    def device(self) -> torch.device:
        return self.model.quant_conv.weight.device

    @torch.inference_mode()
    def encode(self, images: torch.Tensor) -> torch.Tensor:
        check_images(images, self.cfg.image_size)
        return self.model.encode(from_uint8(images.to(self.device), (-1.0, 1.0)))[1].to(images.device)

    @torch.inference_mode()
    def decode_float(self, codes: torch.Tensor) -> torch.Tensor:
        """Codes -> float images in [-1, 1] (unclamped) on the model device, resized to ``eval_size``."""
        x = self.model.decode_codes(codes.to(self.device))
        if self.eval_size:
            x = F.interpolate(x, size=(self.eval_size, self.eval_size), mode="bicubic")
        return x

    def info(self) -> dict[str, Any]:
        return {
            **super().info(),
            "decode_size": self.cfg.image_size,
            "eval_resize": "bicubic" if self.eval_size else None,
        }


# ==============================================================================================
# c2i GPT
# ==============================================================================================
@dataclasses.dataclass(frozen=True)
class GPTConfig:
    """Defaults are GPT-B at 256 px (``ModelArgs`` + ``GPT_B``, ``block_size=256``)."""

    depth: int = 12
    width: int = 768
    num_heads: int = 12
    vocab_size: int = 16384
    num_classes: int = 1000
    num_tokens: int = 256  # block_size: grid * grid for "2d"
    rope: str = "2d"  # "2d" (upstream) or "1d" (1D tokenizers)
    rope_base: float = 10000.0
    norm_eps: float = 1e-5
    multiple_of: int = 256
    token_dropout: float = 0.1
    attn_dropout: float = 0.0
    resid_dropout: float = 0.1
    ffn_dropout: float = 0.1
    class_dropout: float = 0.1  # > 0 adds the null-class row (upstream ``use_cfg_embedding``)
    init_std: float = 0.02

    def __post_init__(self) -> None:
        if self.rope not in ("1d", "2d"):
            raise ValueError(f"rope must be '1d' or '2d', got {self.rope!r}")
        if self.width % self.num_heads:
            raise ValueError(f"width {self.width} is not divisible by {self.num_heads} heads")
        if self.rope == "2d" and (math.isqrt(self.num_tokens) ** 2 != self.num_tokens or self.head_dim % 4):
            raise ValueError(
                f"2D RoPE needs a square token count and head_dim % 4 == 0, got {self.num_tokens}, {self.head_dim}"
            )

    @property
    def head_dim(self) -> int:
        return self.width // self.num_heads

    @property
    def grid(self) -> int:
        return math.isqrt(self.num_tokens)

    @property
    def null_class_id(self) -> int:
        return self.num_classes

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


GPT_SIZES = {"B": (12, 768, 12), "L": (24, 1024, 16), "XL": (36, 1280, 20), "XXL": (48, 1536, 24), "3B": (24, 3200, 32)}
# cfg scales of the published evaluations (GETTING_STARTED.md): 2.0 for B/L, 1.75 XL/XXL, 1.65 3B
GPT_CFG = {"B": 2.0, "L": 2.0, "XL": 1.75, "XXL": 1.75, "3B": 1.65}


def gpt_config(size: str, image_size: int = 256, **overrides) -> GPTConfig:
    depth, width, heads = GPT_SIZES[size]
    grid = image_size // 16
    return GPTConfig(depth=depth, width=width, num_heads=heads, num_tokens=grid * grid, **overrides)


# shared LlamaBlock names -> LlamaGen's
GPT_KEY_MAP = (
    (".norm1.", ".attention_norm."),
    (".norm2.", ".ffn_norm."),
    (".attn.qkv.", ".attention.wqkv."),
    (".attn.proj.", ".attention.wo."),
    (".mlp.", ".feed_forward."),
)


def gpt_rope_table(cfg: GPTConfig) -> torch.Tensor:
    """``[1 + num_tokens, head_dim/2, 2]``: zero row for the class token, then the 2D (or 1D) table."""
    zeros = torch.zeros(1, cfg.head_dim // 2, 2)  # cos = sin = 0: the class token's q, k become 0 (upstream)
    if cfg.rope == "2d":
        coords = torch.arange(cfg.grid)
        rows, cols = coords.repeat_interleave(cfg.grid), coords.repeat(cfg.grid)  # raster order
        return torch.cat([zeros, rope_table_2d(rows, cols, cfg.head_dim, cfg.rope_base)])
    return torch.cat([zeros, rope_table_1d(torch.arange(cfg.num_tokens), cfg.head_dim, cfg.rope_base)])


class LabelEmbedder(nn.Module):
    def __init__(self, num_classes: int, width: int, dropout: float):
        super().__init__()
        self.embedding_table = nn.Embedding(num_classes + int(dropout > 0), width)


class LlamaGenGPT(nn.Module):
    """Decoder over ``[class id | codes]``; the model protocol of ``harness.nn.models.ar_generator``.

    The class id is a label 0..num_classes-1 or the null class ``num_classes``; the logits at
    position i predict code i.
    """

    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.cfg = cfg
        self.num_classes, self.num_tokens, self.codebook_size = cfg.num_classes, cfg.num_tokens, cfg.vocab_size
        self.cls_embedding = LabelEmbedder(cfg.num_classes, cfg.width, cfg.class_dropout)
        self.tok_embeddings = nn.Embedding(cfg.vocab_size, cfg.width)
        self.tok_dropout = nn.Dropout(cfg.token_dropout)
        hidden = swiglu_hidden(cfg.width, cfg.multiple_of)
        self.layers = nn.ModuleList(
            LlamaBlock(
                cfg.width,
                cfg.num_heads,
                ffn_hidden=hidden,
                norm_eps=cfg.norm_eps,
                qkv_bias=False,
                proj_bias=False,
                qk_norm=False,
                attn_dropout=cfg.attn_dropout,
                resid_dropout=cfg.resid_dropout,
                ffn_dropout=cfg.ffn_dropout,
            )
            for _ in range(cfg.depth)
        )
        self.norm = RMSNorm(cfg.width, eps=cfg.norm_eps)
        self.output = nn.Linear(cfg.width, cfg.vocab_size, bias=False)
        install_key_map(self, GPT_KEY_MAP)
        self._rope: torch.Tensor | None = None  # not a buffer: out of the state dict, as upstream
        self._mask: torch.Tensor | None = None
        if self.output.weight.device.type != "meta":
            self.reset_parameters()

    @property
    def max_len(self) -> int:
        return 1 + self.cfg.num_tokens

    @property
    def device(self) -> torch.device:
        return self.tok_embeddings.weight.device

    def reset_parameters(self, generator: torch.Generator | None = None) -> LlamaGenGPT:
        """Upstream init: N(0, 0.02) for Linear / Embedding weights, unit norms, zero output head."""
        for m in self.modules():
            if isinstance(m, (nn.Linear, nn.Embedding)):
                nn.init.normal_(m.weight, std=self.cfg.init_std, generator=generator)
            elif isinstance(m, RMSNorm):
                nn.init.ones_(m.weight)
        nn.init.zeros_(self.output.weight)
        return self

    def rope_table(self, device) -> torch.Tensor:
        device = torch.device(device)
        if self._rope is None or self._rope.device != device:
            self._rope = gpt_rope_table(self.cfg).to(device)
        return self._rope

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """``tokens [B, L]`` = [class id | first L-1 codes] -> logits ``[B, L, vocab]`` (full recompute)."""
        if tokens.ndim != 2 or not 1 <= tokens.shape[1] <= self.max_len:
            raise ValueError(f"tokens must be [B, L] with 1 <= L <= {self.max_len}, got {tuple(tokens.shape)}")
        h = self.cls_embedding.embedding_table(tokens[:, :1])
        if tokens.shape[1] > 1:
            h = torch.cat([h, self.tok_embeddings(tokens[:, 1:])], dim=1)
        h = self.tok_dropout(h)
        rope = self.rope_table(h.device)[: tokens.shape[1]]
        for layer in self.layers:
            h = layer(h, rope)
        return self.output(self.norm(h)).float()

    # -- the AR generator protocol ----------------------------------------------------------------
    def condition_tokens(self, labels: torch.Tensor) -> torch.Tensor:
        return labels.long()[:, None]

    def null_condition_tokens(self, cond: torch.Tensor) -> torch.Tensor:
        return torch.full_like(cond, self.cfg.null_class_id)

    def config_dict(self) -> dict[str, Any]:
        return self.cfg.to_dict()

    def reset_cache(self, batch: int, dtype: torch.dtype = torch.float32) -> None:
        cfg, device = self.cfg, self.device
        shape = (batch, cfg.num_heads, self.max_len, cfg.head_dim)
        for layer in self.layers:
            cache = layer.attn.kv_cache
            if cache is None or cache.shape != shape or cache.k.dtype != dtype or cache.k.device != device:
                layer.attn.kv_cache = KVCache(batch, cfg.num_heads, self.max_len, cfg.head_dim, dtype, device)
        if self._mask is None or self._mask.device != device:
            self._mask = torch.tril(torch.ones(self.max_len, self.max_len, dtype=torch.bool, device=device))

    def free_cache(self) -> None:
        for layer in self.layers:
            layer.attn.kv_cache = None
        self._mask = None

    def _cached(self, h: torch.Tensor, pos: torch.Tensor, kv_len: int | None = None) -> torch.Tensor:
        h = self.tok_dropout(h)
        kv_len = kv_len or self.max_len
        rope, mask = self.rope_table(h.device)[pos], self._mask[pos, :kv_len]
        for layer in self.layers:
            h = layer(h, rope, pos, mask, kv_len)
        return self.output(self.norm(h[:, -1])).float()

    def prefill(self, cond: torch.Tensor) -> torch.Tensor:
        """Class ids ``[B, 1]`` -> logits of code 0."""
        if cond.shape[1] != 1:
            raise ValueError(f"LlamaGen c2i takes one class token, got {cond.shape[1]}")
        return self._cached(self.cls_embedding.embedding_table(cond), torch.arange(1, device=cond.device))

    def decode_step(self, token: torch.Tensor, pos: torch.Tensor, kv_len: int | None = None) -> torch.Tensor:
        """One code ``[B]`` at sequence position ``pos [1]``, attending over cache slots ``< kv_len``."""
        return self._cached(self.tok_embeddings(token[:, None]), pos, kv_len)


def build_gpt(
    cfg: GPTConfig, device: torch.device | str = "cpu", generator: torch.Generator | None = None
) -> LlamaGenGPT:
    with torch.device("meta"):
        model = LlamaGenGPT(cfg)
    if torch.device(device).type != "meta":
        model = model.to_empty(device=device).reset_parameters(generator)
    return model


def load_gpt(path, cfg: GPTConfig, device: torch.device | str = "cpu") -> LlamaGenGPT:
    """Load as ``sample_c2i.py`` does: ``model`` / ``module`` / ``state_dict`` wrappers (FSDP XXL / 3B files
    are flat), and non-strictly: keys the model lacks are skipped and listed in
    ``checkpoint_unexpected_keys`` (the run's record); a missing key or a wrong shape is still an error."""
    from harness.nn.checkpoints.checkpoint import load_state_dict, load_strict

    sd = load_state_dict(path)
    return load_strict(
        lambda: build_gpt(cfg, "meta"),
        sd,
        path,
        f"LlamaGen GPT ({cfg.depth} layers, width {cfg.width}, {cfg.num_tokens} tokens)",
        device,
        allow_unexpected=True,
    )


# ----------------------------------------------------------------------------------------------
# Official checkpoints and their evaluation presets
# ----------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class GPTPreset:
    size: str
    image_size: int  # sampling resolution (384 for the *_384 files)
    checkpoint_name: str
    sampling: ARSampling
    eval_size: int = 256  # bicubic resize before quantisation when != image_size

    @property
    def config(self) -> GPTConfig:
        return gpt_config(self.size, self.image_size)


def _preset(size: str, image_size: int) -> GPTPreset:
    return GPTPreset(
        size,
        image_size,
        f"c2i_{size}_{image_size}.pt",
        ARSampling(cfg_scale=GPT_CFG[size], cfg_schedule="constant", temperature=1.0, top_k=0, top_p=1.0),
    )


GPT_PRESETS: dict[str, GPTPreset] = {
    **{f"llamagen-gpt-{s.lower()}": _preset(s, 256) for s in ("B", "L")},
    **{f"llamagen-gpt-{s.lower()}-384": _preset(s, 384) for s in ("B", "L", "XL", "XXL", "3B")},
}

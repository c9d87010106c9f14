"""The glue every tokenizer wrapper repeats: an ``nn.Module`` with ``cfg``, a checkpoint path, decode to
uint8 by the family's quantisation rule, and ``info()``. A family supplies ``device``, ``encode`` and
``decode_float`` (float NCHW images in ``value_range``)."""

from __future__ import annotations

from typing import Any

import torch

from harness.core.interfaces import Tokenizer, to_uint8
from harness.core.io import sha256_if_file  # memoised on (path, size, mtime): no cached copy needed here


class ModelTokenizer(Tokenizer):
    value_range: tuple[float, float] = (0.0, 1.0)

    def __init__(self, model: torch.nn.Module, name: str, checkpoint: str | None = None):
        self.model, self.name, self.cfg = model.eval(), name, model.cfg
        self.image_size, self.num_tokens = model.cfg.image_size, model.cfg.num_tokens
        self.codebook_size = model.cfg.codebook_size
        self.checkpoint = checkpoint

    def to(self, device) -> ModelTokenizer:
        self.model.to(device)
        return self

    def decode_float(self, codes: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    @torch.inference_mode()
    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        return to_uint8(self.decode_float(codes), self.value_range, self.quantization).to(codes.device)

    def info(self) -> dict[str, Any]:
        return {
            **super().info(),
            "checkpoint": self.checkpoint,
            "checkpoint_sha256": sha256_if_file(self.checkpoint),
            "num_tokens": self.num_tokens,
            "codebook_size": self.codebook_size,
            "value_range": list(self.value_range),
            "num_params": sum(p.numel() for p in self.model.parameters()),
            "config": self.cfg.to_dict(),
        }

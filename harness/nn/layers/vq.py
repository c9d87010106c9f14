"""Plain vector quantiser (TiTok / AliTok style) with an optional online clustering update.

- Codebook ``embedding`` [N, D]; nearest code by squared L2 (``use_l2_norm=False`` upstream).
- Straight-through estimator: the forward value is the code, the gradient flows to ``z``.
- Loss = beta * ||sg(zq) - z||^2 (commitment) + ||zq - sg(z)||^2 (codebook), means over elements.
- Everything runs in fp32, also under autocast (upstream forces fp32 here).
- ``clustering=True`` (AliTok stage 1, from CVQ-VAE): an EMA of each code's batch usage
  ``embed_prob`` (decay 0.99) and, in training mode, every code is pulled toward the batch feature
  closest to it with weight ``exp(-(p * N * 10) / (1 - decay) - 1e-3)``: codes in use (p ~ 1/N)
  stay put, dead codes (p -> 0) are re-seeded at live features. ``embed_prob`` is a buffer, so it
  appears in the state dict only when clustering is on (the stage-1 key list).
"""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn


class VectorQuantizer(nn.Module):
    def __init__(self, codebook_size: int, dim: int, beta: float = 0.25, clustering: bool = False, decay: float = 0.99):
        super().__init__()
        self.codebook_size, self.dim, self.beta = codebook_size, dim, beta
        self.clustering, self.decay = clustering, decay
        self.embedding = nn.Embedding(codebook_size, dim)
        if clustering:
            self.register_buffer("embed_prob", torch.zeros(codebook_size))

    def codes(self, z: torch.Tensor) -> torch.Tensor:
        """Nearest code ids for ``z`` [..., D] (squared L2, fp32)."""
        return self._nearest(z.reshape(-1, self.dim).float()).view(z.shape[:-1])

    def _nearest(self, flat: torch.Tensor) -> torch.Tensor:
        return torch.argmin(self._distances(flat), dim=1)

    def _distances(self, flat: torch.Tensor) -> torch.Tensor:
        w = self.embedding.weight.float()
        return flat.pow(2).sum(1, keepdim=True) + w.pow(2).sum(1) - 2.0 * flat @ w.t()

    def lookup(self, codes: torch.Tensor) -> torch.Tensor:
        """Code ids [...] -> vectors [..., D] (fp32)."""
        if codes.dtype not in (torch.int64, torch.int32):
            raise ValueError(f"codes must be integers, got {codes.dtype}")
        if codes.numel() and (int(codes.min()) < 0 or int(codes.max()) >= self.codebook_size):
            raise ValueError(f"codes must lie in [0, {self.codebook_size}), got {int(codes.min())}..{int(codes.max())}")
        return F.embedding(codes.long(), self.embedding.weight.float())

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        """``z`` [..., D] -> (straight-through zq [..., D] fp32, codes [...], losses)."""
        with torch.autocast(device_type=z.device.type, enabled=False):
            z = z.float()
            flat = z.reshape(-1, self.dim)
            with torch.no_grad():
                dist_ = self._distances(flat.detach())
                codes = torch.argmin(dist_, dim=1)
            zq = F.embedding(codes, self.embedding.weight.float()).view_as(z)
            commitment = self.beta * F.mse_loss(z, zq.detach())
            codebook = F.mse_loss(zq, z.detach())
            zq_st = z + (zq - z).detach()
            if self.clustering and self.training and torch.is_grad_enabled():
                self._cluster_update(flat.detach(), codes, dist_)
        losses = {"vq_loss": commitment + codebook, "commitment_loss": commitment, "codebook_loss": codebook}
        return zq_st, codes.view(z.shape[:-1]), losses

    @torch.no_grad()
    def init_from_features(self, z: torch.Tensor, generator: torch.Generator | None = None) -> None:
        """Data-dependent codebook init: each code becomes a random feature of ``z`` [..., D]
        (drawn without replacement while there are enough). Used after a continuous warm-up."""
        flat = z.detach().reshape(-1, self.dim).float()
        n = self.codebook_size
        if flat.shape[0] >= n:
            pick = torch.randperm(flat.shape[0], generator=generator)[:n]
        else:
            pick = torch.randint(flat.shape[0], (n,), generator=generator)
        self.embedding.weight.copy_(flat[pick.to(flat.device)].to(self.embedding.weight.dtype))
        if self.clustering:
            self.embed_prob.fill_(1.0 / n)

    @torch.no_grad()
    def _cluster_update(self, flat: torch.Tensor, codes: torch.Tensor, dists: torch.Tensor) -> None:
        usage = torch.bincount(codes, minlength=self.codebook_size).float()
        count = torch.tensor(float(codes.numel()), device=flat.device)
        if dist.is_available() and dist.is_initialized():  # usage and features over all ranks
            dist.all_reduce(usage)
            dist.all_reduce(count)
            gathered = [torch.empty_like(flat) for _ in range(dist.get_world_size())]
            dist.all_gather(gathered, flat)
            flat = torch.cat(gathered)
            dists = self._distances(flat)
        self.embed_prob.mul_(self.decay).add_(usage / count, alpha=1 - self.decay)
        closest = flat[torch.argmin(dists, dim=0)]  # for each code, the batch feature nearest to it
        w = torch.exp(-(self.embed_prob * self.codebook_size * 10) / (1 - self.decay) - 1e-3).unsqueeze(1)
        weight = self.embedding.weight
        weight.data.copy_((weight.data.float() * (1 - w) + closest * w).to(weight.dtype))

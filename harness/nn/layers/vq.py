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
- ``l2_norm=True`` (LlamaGen ``tokenizer/tokenizer_image/vq_model.py``, ``codebook_l2_norm``): ``z`` and
  the codebook are l2-normalised before the lookup, so the nearest code is the cosine nearest
  neighbour and ``zq`` is a unit vector; the losses are taken between the normalised vectors.
- ``reinit_every=K`` (training only): codes no batch chose during the last K training forwards are
  re-seeded at random rows of the current batch's encoder outputs (dead-code re-initialisation, a
  remedy for codebook collapse). Its counters are non-persistent buffers: the state dict keeps the
  key list of the checkpoints above.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn


class VectorQuantizer(nn.Module):
    def __init__(
        self,
        codebook_size: int,
        dim: int,
        beta: float = 0.25,
        clustering: bool = False,
        decay: float = 0.99,
        l2_norm: bool = False,
    ):
        super().__init__()
        self.codebook_size, self.dim, self.beta = codebook_size, dim, beta
        self.clustering, self.decay, self.l2_norm = clustering, decay, l2_norm
        self.embedding = nn.Embedding(codebook_size, dim)
        if clustering:
            self.register_buffer("embed_prob", torch.zeros(codebook_size))
        self.reinit_every, self.reinit_seed = 0, 0  # set by a trainer (dead-code re-initialisation)
        self.register_buffer("usage_since", torch.zeros(codebook_size), persistent=False)
        self.register_buffer("forwards", torch.zeros((), dtype=torch.long), persistent=False)
        self.revived = 0  # codes re-seeded by the last re-initialisation
        self.revived_total = 0  # ... by every re-initialisation of this process (logged: a log step rarely is one)

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` [..., D] as the lookup sees it (l2-normalised when ``l2_norm``)."""
        return F.normalize(x, p=2, dim=-1) if self.l2_norm else x

    def weight(self) -> torch.Tensor:
        """The codebook the lookup uses (fp32; unit rows when ``l2_norm``)."""
        w = self.embedding.weight.float()
        # a copy when normalising: the in-place codebook updates below must not change what backward saved
        return F.normalize(w.clone(), p=2, dim=-1) if self.l2_norm else w

    def codes(self, z: torch.Tensor) -> torch.Tensor:
        """Nearest code ids for ``z`` [..., D] (squared L2, fp32)."""
        return self._nearest(self.normalize(z.reshape(-1, self.dim).float())).view(z.shape[:-1])

    def _nearest(self, flat: torch.Tensor) -> torch.Tensor:
        return torch.argmin(self._distances(flat), dim=1)

    def _distances(self, flat: torch.Tensor) -> torch.Tensor:
        w = self.weight()
        return flat.pow(2).sum(1, keepdim=True) + w.pow(2).sum(1) - 2.0 * flat @ w.t()

    def lookup(self, codes: torch.Tensor) -> torch.Tensor:
        """Code ids [...] -> vectors [..., D] (fp32)."""
        if codes.dtype not in (torch.int64, torch.int32):
            raise ValueError(f"codes must be integers, got {codes.dtype}")
        if codes.numel() and (int(codes.min()) < 0 or int(codes.max()) >= self.codebook_size):
            raise ValueError(f"codes must lie in [0, {self.codebook_size}), got {int(codes.min())}..{int(codes.max())}")
        return F.embedding(codes.long(), self.weight())

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        """``z`` [..., D] -> (straight-through zq [..., D] fp32, codes [...], losses)."""
        with torch.autocast(device_type=z.device.type, enabled=False):
            z = self.normalize(z.float())
            flat = z.reshape(-1, self.dim)
            revive = self.reinit_every and self.training and torch.is_grad_enabled()
            if revive:  # before the lookup, so this batch already sees the re-seeded codes
                self._maybe_revive(flat.detach())
            with torch.no_grad():
                dist_ = self._distances(flat.detach())
                codes = torch.argmin(dist_, dim=1)
            zq = F.embedding(codes, self.weight()).view_as(z)
            commitment = self.beta * F.mse_loss(z, zq.detach())
            codebook = F.mse_loss(zq, z.detach())
            zq_st = z + (zq - z).detach()
            if self.clustering and self.training and torch.is_grad_enabled():
                self._cluster_update(flat.detach(), codes, dist_)
            if revive:
                self._track(codes)
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

    def _gathered(self, flat: torch.Tensor) -> torch.Tensor:
        if dist.is_available() and dist.is_initialized():  # every rank re-seeds the same codes alike
            gathered = [torch.empty_like(flat) for _ in range(dist.get_world_size())]
            dist.all_gather(gathered, flat)
            return torch.cat(gathered)
        return flat

    @torch.no_grad()
    def _track(self, codes: torch.Tensor) -> None:
        usage = torch.bincount(codes, minlength=self.codebook_size).float()
        if dist.is_available() and dist.is_initialized():
            dist.all_reduce(usage)
        self.usage_since.add_(usage)
        self.forwards.add_(1)

    @torch.no_grad()
    def _maybe_revive(self, flat: torch.Tensor) -> None:
        """Every ``reinit_every`` training forwards, re-seed the codes unused since the last time."""
        self.revived = 0
        if int(self.forwards) and int(self.forwards) % self.reinit_every == 0:
            gen = torch.Generator().manual_seed(self.reinit_seed * 1_000_003 + int(self.forwards))
            self.revived = self.revive_dead_codes(self._gathered(flat), gen)
            self.revived_total += self.revived

    @torch.no_grad()
    def revive_dead_codes(self, flat: torch.Tensor, generator: torch.Generator | None = None) -> int:
        """Codes with zero use since the last call become random rows of ``flat`` [M, D] (encoder
        outputs); returns how many. Resets the use counter."""
        dead = self.usage_since == 0
        n = int(dead.sum())
        if n:
            pick = torch.randint(flat.shape[0], (n,), generator=generator).to(flat.device)
            self.embedding.weight.data[dead] = flat[pick].to(self.embedding.weight.dtype)
            if self.clustering:  # a re-seeded code starts as a live one, not pulled again at once
                self.embed_prob[dead] = 1.0 / self.codebook_size
        self.usage_since.zero_()
        return n

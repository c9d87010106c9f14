"""Which sample index gets which label, which chunk, and which random stream.

``chunk`` scheme (default): label(i) = i % C; chunk k = indices [k*cs, (k+1)*cs) (last may be
short); chunk k draws from its own ``torch.Generator`` seeded with sha256(seed, seed hash, k)
(``harness.runs.specs.seed_hash``: the identity without the loaded files and the numerics version),
so results do not depend on how many processes ran or in what order.

``legacy_rank`` scheme, the official AliTok / 1d-tokenizer sampling script: labels
``list(range(C)) * (N // C)``; virtual rank r of W takes the contiguous slice
``[r*N/W, (r+1)*N/W)``, walks it in batches of n, one RNG seeded ``seed + r`` consumed in order;
sample j of batch t on rank r lands at output index ``t*W*n + j*W + r``. A legacy chunk is one
(rank, batch) pair, numbered ``k = r*T + t`` with T = N/(W*n) batches per rank; the chunks of one
rank must run in order because the RNG state carries over.
"""

from __future__ import annotations

import dataclasses
import hashlib

import numpy as np

from harness.core.errors import UserError
from harness.runs.specs import ProtocolSpec

TORCH_SEED_MAX = 2**64 - 1  # torch.Generator.manual_seed accepts 0..2**64-1 (uint64)


@dataclasses.dataclass(frozen=True)
class Chunk:
    index: int  # k, names shards/chunk_{k:05d}.npz
    indices: np.ndarray  # global sample indices (int64), in generation order
    labels: np.ndarray  # class ids (int64), aligned with indices
    stream: int  # legacy: virtual rank r (RNG stream); chunk scheme: k
    step: int  # legacy: batch t within the rank; chunk scheme: 0


def chunk_seed(base_seed: int, identity_hash: str, k: int) -> int:
    digest = hashlib.sha256(f"alitok-bench:chunk:{base_seed}:{identity_hash}:{k}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & (2**63 - 1)


class SamplingPlan:
    def __init__(self, protocol: ProtocolSpec, identity_hash: str, seed_hash: str | None = None):
        """``seed_hash`` (default: ``identity_hash``) names the chunk seeds: ``harness.runs.specs.seed_hash``."""
        self.protocol = protocol
        self.identity_hash = identity_hash
        self.seed_hash = seed_hash or identity_hash
        p = protocol
        self.num_samples = p.num_samples
        self.legacy = p.seed_scheme == "legacy_rank"
        if self.legacy:
            top = p.seed + p.legacy_world_size - 1  # rank r seeds torch with seed + r
            if top > TORCH_SEED_MAX:
                raise UserError(
                    f"protocol.seed {p.seed}: legacy_rank seeds {p.seed}..{top} exceed torch's generator "
                    f"range 0..{TORCH_SEED_MAX}; use a seed <= {TORCH_SEED_MAX - p.legacy_world_size + 1}"
                )
            self.world = p.legacy_world_size
            self.batch = p.legacy_batch_size
            self.per_rank = p.num_samples // self.world
            self.steps = self.per_rank // self.batch  # T
            self.num_chunks = self.world * self.steps
        else:
            self.num_chunks = -(-p.num_samples // p.chunk_size)

    # -- labels -------------------------------------------------------------------------------
    def labels(self) -> np.ndarray:
        """Label of every output index 0..N-1."""
        out = np.empty(self.num_samples, dtype=np.int64)
        for k in range(self.num_chunks):
            c = self.chunk(k)
            out[c.indices] = c.labels
        return out

    # -- chunks -------------------------------------------------------------------------------
    def chunk(self, k: int) -> Chunk:
        if not 0 <= k < self.num_chunks:
            raise IndexError(f"chunk {k} out of range [0, {self.num_chunks})")
        p = self.protocol
        if not self.legacy:
            idx = np.arange(k * p.chunk_size, min((k + 1) * p.chunk_size, p.num_samples), dtype=np.int64)
            return Chunk(k, idx, idx % p.num_classes, stream=k, step=0)
        r, t = divmod(k, self.steps)
        W, n = self.world, self.batch
        # position in all_classes = list(range(C)) * (N // C)
        pos = r * self.per_rank + t * n + np.arange(n, dtype=np.int64)
        labels = pos % p.num_classes
        idx = t * W * n + np.arange(n, dtype=np.int64) * W + r
        return Chunk(k, idx, labels, stream=r, step=t)

    def seed_for(self, chunk: Chunk) -> int:
        """Seed of the generator a chunk starts from (legacy: only for step 0; later steps continue)."""
        if self.legacy:
            return self.protocol.seed + chunk.stream
        return chunk_seed(self.protocol.seed, self.seed_hash, chunk.index)

    def previous(self, chunk: Chunk) -> int | None:
        """Legacy: the chunk whose end RNG state this chunk starts from."""
        return chunk.index - 1 if self.legacy and chunk.step > 0 else None

    # -- who does what ------------------------------------------------------------------------
    def chunks_for_rank(self, rank: int, world_size: int) -> list[int]:
        """Chunk scheme: round-robin over chunks. Legacy: round-robin over virtual ranks, each
        virtual rank's chunks in order (its RNG stream must be consumed sequentially)."""
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} not in [0, {world_size})")
        if not self.legacy:
            return list(range(rank, self.num_chunks, world_size))
        return [r * self.steps + t for r in range(rank, self.world, world_size) for t in range(self.steps)]

    def gather_groups(self) -> list[list[int]]:
        """Groups of chunks whose indices together fill one contiguous range, in index order."""
        if not self.legacy:
            return [[k] for k in range(self.num_chunks)]
        return [[r * self.steps + t for r in range(self.world)] for t in range(self.steps)]

    def describe(self) -> dict:
        p = self.protocol
        d = {
            "seed_scheme": p.seed_scheme,
            "num_samples": p.num_samples,
            "num_classes": p.num_classes,
            "num_chunks": self.num_chunks,
        }
        if self.legacy:
            d.update(
                virtual_world_size=self.world,
                batch_per_rank=self.batch,
                steps_per_rank=self.steps,
                rank_seeds=[p.seed + r for r in range(self.world)],
            )
        else:
            d.update(chunk_size=p.chunk_size)
        return d

"""CPU inference: every ``nn.Linear`` of a model through oneDNN with its weight packed once.

Why: at the row counts of KV-cached decoding (2-64 rows) PyTorch's CPU ``F.linear`` goes to MKL
sgemm, which on the 2-core AVX-512 machine here reads a streamed weight at ~12 GB/s (4 rows) and
reaches ~120 GFLOP/s (32 rows). oneDNN with the weight reordered once into its blocked layout
(``mkldnn::_reorder_linear_weight``, the packing Inductor's ``freezing`` does) reads at ~37 GB/s
and reaches ~300 GFLOP/s on the same weights (results/speed/ar_optimisation.md). The results agree
with ``F.linear`` to float rounding (different summation order), not bit for bit.

That ratio was measured on one CPU; ``prefers_packed(model, dtype)`` measures both paths on this
machine at the model's Linear shapes (``harness.nn.kernels.kernel_choice``: at first use, cached by CPU model,
torch version and threads) and ``ARGenerator`` packs only where oneDNN wins.

``PackedLinears(model)`` keeps one packed copy per Linear weight (extra memory: one copy of the
Linear weights, until ``release()``) and repacks a weight whose tensor changed (``_version`` /
storage). ``pack()`` packs every weight ahead of time (a benchmark does it outside the timed region);
``with packed.active():`` routes each Linear's ``forward`` through the packed weight and restores
the module's own ``forward`` on exit; the state dict and the parameters are never touched.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn

PACKED_DTYPES = (torch.float32, torch.bfloat16)


def available(device: torch.device | str, dtype: torch.dtype) -> bool:
    """True where the oneDNN packed linear exists for this device and dtype (CPU builds with mkldnn)."""
    return (
        torch.device(device).type == "cpu"
        and dtype in PACKED_DTYPES
        and torch.backends.mkldnn.is_available()
        and hasattr(torch.ops.mkldnn, "_linear_pointwise")
    )


ROWS = (4, 32)  # decode rows of batch 2 and 16 with CFG


def prefers_packed(model: nn.Module, dtype: torch.dtype) -> bool:
    """Is oneDNN on packed weights faster than ``F.linear`` on this machine for ``model``'s Linear shapes
    (each distinct ``in x out`` once, at every row count of ``ROWS``)? False where packing is unavailable."""
    if not available("cpu", dtype):
        return False
    from harness.nn.kernels import kernel_choice

    shapes = sorted({(m.in_features, m.out_features) for m in model.modules() if type(m) is nn.Linear})
    if not shapes:
        return False
    label = (
        f"{str(dtype).replace('torch.', '')} {' '.join(f'{i}x{o}' for i, o in shapes)}, rows {'/'.join(map(str, ROWS))}"
    )
    cases = []  # built at the first measurement only: a cached choice (every call after the first) builds none

    def workloads() -> list:
        if not cases:
            g = torch.Generator().manual_seed(0)
            for i, o in shapes:
                w = (0.02 * torch.randn(o, i, generator=g)).to(dtype)
                b = torch.zeros(o, dtype=dtype)
                xs = [torch.randn(r, 1, i, generator=g).to(dtype) for r in ROWS]
                cases.append((w, torch.ops.mkldnn._reorder_linear_weight(w, None), b, xs))
        return cases

    def packed():
        with torch.no_grad():
            for _, pw, b, xs in workloads():
                for x in xs:
                    torch.ops.mkldnn._linear_pointwise(x, pw, b, "none", [], "")

    def aten():
        with torch.no_grad():
            for w, _, b, xs in workloads():
                for x in xs:
                    torch.nn.functional.linear(x, w, b)

    return kernel_choice.choose("linear", label, {"onednn-packed": packed, "aten": aten}) == "onednn-packed"


def _key(weight: torch.Tensor) -> tuple:
    return weight.untyped_storage().data_ptr(), weight._version, weight.dtype, weight.shape


class PackedLinears:
    """Packed oneDNN copies of a model's Linear weights, installed only inside ``active()``."""

    def __init__(self, model: nn.Module):
        self.model = model
        self._packed: dict[nn.Linear, tuple[tuple, torch.Tensor]] = {}

    def _weight(self, m: nn.Linear) -> torch.Tensor:
        key = _key(m.weight)
        hit = self._packed.get(m)
        if hit is None or hit[0] != key:
            with torch.no_grad():
                hit = (key, torch.ops.mkldnn._reorder_linear_weight(m.weight.detach(), None))
            self._packed[m] = hit
        return hit[1]

    def _fused(self, w1: nn.Linear, w3: nn.Linear) -> torch.Tensor:
        key = (_key(w1.weight), _key(w3.weight))
        hit = self._packed.get((w1, w3))
        if hit is None or hit[0] != key:
            with torch.no_grad():
                both = torch.cat([w1.weight.detach(), w3.weight.detach()])
                hit = (key, torch.ops.mkldnn._reorder_linear_weight(both, None))
            self._packed[(w1, w3)] = hit
        return hit[1]

    def _gated_pairs(self) -> list[tuple[nn.Linear, nn.Linear]]:
        """``(w1, w3)`` of every module holding both as bias-free Linear layers of one shape (a SwiGLU's gate and
        up projections of the same input): packed as one ``[w1; w3]`` weight, so a step runs one GEMM for both."""
        pairs = []
        for m in self.model.modules():
            w1, w3 = getattr(m, "w1", None), getattr(m, "w3", None)
            if type(w1) is nn.Linear and type(w3) is nn.Linear and w1.bias is None and w3.bias is None:
                if w1.weight.shape == w3.weight.shape:
                    pairs.append((w1, w3))
        return pairs

    def _linears(self) -> list[nn.Linear]:
        paired = {m for pair in self._gated_pairs() for m in pair}
        return [m for m in self.model.modules() if type(m) is nn.Linear and m not in paired]  # subclasses may
        # change forward

    def pack(self) -> None:
        for m in self._linears():
            self._weight(m)
        for w1, w3 in self._gated_pairs():
            self._fused(w1, w3)

    def release(self) -> None:
        """Drop the packed copies (the next ``active()`` packs again)."""
        self._packed.clear()

    @contextlib.contextmanager
    def active(self) -> Iterator[None]:
        linears, pairs = self._linears(), self._gated_pairs()
        for m in linears:
            m.forward = _packed_forward(self._weight(m), m.bias)
        for w1, w3 in pairs:
            both = self._fused(w1, w3)
            w1.forward, w3.forward = _half_forward(both, w3, 0), _half_forward(both, w3, 1)
        try:
            yield
        finally:
            for m in [*linears, *(m for pair in pairs for m in pair)]:
                del m.forward  # back to nn.Linear.forward


def _packed_forward(weight: torch.Tensor, bias: torch.Tensor | None):
    def forward(x: torch.Tensor) -> torch.Tensor:
        return torch.ops.mkldnn._linear_pointwise(x, weight, bias, "none", [], "")

    forward.packed = (weight, bias)  # for add_linear: the residual add as the GEMM's post-op
    return forward


def _half_forward(both: torch.Tensor, w3: nn.Linear, half: int):
    """One of a fused ``[w1; w3]`` pair called alone: the fused GEMM, then its half (correct, not the fast way)."""

    def forward(x: torch.Tensor) -> torch.Tensor:
        return torch.ops.mkldnn._linear_pointwise(x, both, None, "none", [], "").chunk(2, -1)[half]

    forward.fused = (w3, both)  # for gated_up
    return forward


def add_linear(residual: torch.Tensor, linear: nn.Linear, x: torch.Tensor) -> torch.Tensor:
    """``residual + linear(x)``; where ``linear`` runs packed (inside ``PackedLinears.active()``), one oneDNN
    call with the add as the GEMM's post-op: the same fp32 sum of the same two values, so bit-equal, one
    small op and one pass over the activations fewer per call."""
    packed = getattr(linear.forward, "packed", None)
    if packed is None or residual.shape[:-1] != x.shape[:-1] or residual.dtype != x.dtype:
        return residual + linear(x)
    return torch.ops.mkldnn._linear_pointwise.binary(x, residual, packed[0], packed[1], "add")


def gated_up(w1: nn.Linear, w3: nn.Linear, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(w1(x), w3(x))``; one GEMM over the fused ``[w1; w3]`` weight where ``PackedLinears`` packed them
    together (each output column is the same dot product as alone: bit-equal)."""
    fused = getattr(w1.forward, "fused", None)
    if fused is None or fused[0] is not w3:
        return w1(x), w3(x)
    return torch.ops.mkldnn._linear_pointwise(x, fused[1], None, "none", [], "").chunk(2, -1)

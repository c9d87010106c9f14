"""The one class-conditional AR ``Generator`` plugin: model + tokenizer + sampling preset.

Every AR family (AliTok, LlamaGen, RAR, toy models in tests) builds its plugin from
``ARGenerator`` and keeps only its model, config, presets and label mapping. The generator does
labels -> cond/uncond tokens, the model's declared pre-sampling RNG draws, the device
``torch.Generator``, the one-time cast for bf16, optional ``torch.compile`` of the decode step,
the shared KV-cached loop (``harness.nn.samplers.ar_sampling.ar_sample``), tokenizer decode and ``info()``.

Model protocol (``ARModelProtocol``; an ``nn.Module``):

- the ``CachedDecoder`` methods of ``harness.nn.samplers.ar_sampling``: ``reset_cache(batch, dtype)``,
  ``prefill(cond [B, C]) -> logits [B, V]``, ``decode_step(token [B], pos [1], kv_len) -> logits``,
  ``forward(tokens)`` (full recompute) and ``free_cache()``;
- ``num_classes`` (labels lie in ``[0, num_classes)``), ``num_tokens`` (tokens generated per
  image), ``codebook_size`` (the logits' width; must match the tokenizer);
- ``condition_tokens(labels [B]) -> LongTensor [B, C]``: the prefix fed to ``prefill``
  (AliTok: ``[[4097 + c]]``; LlamaGen: ``[[c]]`` into its class table; RAR: its class token id,
  whose embedding its ``prefill`` also keeps as the adaLN condition for the decode steps);
- ``null_condition_tokens(cond [B, C]) -> LongTensor [B, C]``: the CFG null condition (AliTok: 5097;
  LlamaGen: ``num_classes``; RAR: its own null class id);
- optional ``presample_draws(labels [B], generator) -> None``: the random calls upstream's
  ``generate`` makes before its first ``torch.multinomial`` (AliTok and RAR: the label-dropout
  mask ``torch.rand_like(labels, dtype=float)`` in ``preprocess_condition``), made here from the
  same generator so a seeded stream reproduces the official tokens batch after batch;
- optional ``config_dict() -> dict``: the architecture for ``info()``.

Positions: ``decode_step``'s ``pos`` and ``kv_len`` count the tokens the loop fed (cond tokens
first, then generated ones). A model that prepends hidden tokens of its own (RAR's learned
``cls_token`` before its condition token; upstream 1d-tokenizer ``modeling/rar.py``) shifts both by
their number inside its methods. RAR's ``generate`` draws like AliTok's (``preprocess_condition``'s
``rand_like``, then one ``multinomial`` per step, the same float32 power-cosine schedule), so it
declares the same ``presample_draws``.
"""

from __future__ import annotations

import contextlib
from typing import Any, ClassVar, Protocol

import torch

from harness.core.interfaces import ARSampling, Generator, Tokenizer
from harness.core.io import sha256_if_file
from harness.nn.kernels import decode_attention
from harness.nn.kernels.packed_linear import PackedLinears, prefers_packed
from harness.nn.kernels.packed_linear import available as packed_linear_available
from harness.nn.layers.attention import set_decode_kernel
from harness.nn.samplers.ar_sampling import CachedDecoder, ar_sample, ar_sample_naive, device_generator, precision


class ARModelProtocol(CachedDecoder, Protocol):
    num_classes: int
    num_tokens: int
    codebook_size: int

    def free_cache(self) -> None: ...
    def condition_tokens(self, labels: torch.Tensor) -> torch.Tensor: ...
    def null_condition_tokens(self, cond: torch.Tensor) -> torch.Tensor: ...


class ARGenerator(Generator):
    """Class labels -> tokens (KV-cached AR sampling) -> uint8 images via the tokenizer.

    ``dtype=torch.bfloat16`` casts the model's weights once here (LlamaGen samples the same way),
    so no step re-casts them; ``compile=True`` compiles ``decode_step`` lazily on first use.
    ``packed_linear="auto"`` (default) samples through oneDNN Linear layers with weights packed once
    (``harness.nn.kernels.packed_linear``) where that exists (eager CPU) and a measurement on this machine found
    it faster than ``F.linear`` at this model's shapes; ``True`` packs wherever it exists, ``False`` never.
    ``attention="auto"`` runs each eager CPU decode step's QK-norm, RoPE, cache write and attention
    in one C kernel (``harness.nn.kernels.decode_attention``) where it was measured faster here; ``"c"``
    wherever it applies; ``"sdpa"`` keeps PyTorch's SDPA. ``kv_cache=False`` recomputes the whole causal forward at every
    step (the reference path; the same tokens, for speed comparisons only).
    """

    sampling_cls: ClassVar[type] = ARSampling
    uniform_step_cost: ClassVar[bool] = False  # a cached step attends over a longer cache the later it comes

    def __init__(
        self,
        model: ARModelProtocol,
        tokenizer: Tokenizer,
        *,
        name: str,
        sampling: ARSampling,
        seed: int | None = None,
        checkpoint: str | None = None,
        dtype: torch.dtype = torch.float32,
        tf32: bool | None = None,
        compile: bool = False,
        packed_linear: bool | str = "auto",
        kv_cache: bool = True,
        attention: str = "auto",
    ):
        if tokenizer.num_tokens != model.num_tokens or tokenizer.codebook_size != model.codebook_size:
            raise ValueError(
                f"{name}: tokenizer {tokenizer.name!r} has {tokenizer.num_tokens} tokens / "
                f"{tokenizer.codebook_size} codes; the AR model expects {model.num_tokens} / "
                f"{model.codebook_size}"
            )
        if not isinstance(sampling, ARSampling):
            raise ValueError(f"{name}: sampling preset must be ARSampling, got {type(sampling).__name__}")
        self.model, self.tokenizer, self.name = model.eval(), tokenizer, name
        self.num_classes = model.num_classes
        self.image_size = tokenizer.image_size
        self.quantization = tokenizer.quantization
        self._sampling, self.seed = sampling, seed
        self.checkpoint = checkpoint
        self.dtype, self.tf32 = dtype, tf32
        if dtype != torch.float32:
            model.to(dtype)  # cast once; autocast would re-cast every weight at every step
        self.compiled = compile
        self.packed_linear = packed_linear
        self.kv_cache = kv_cache
        self.attention = attention  # the model's own setting (set_decode_kernel): no process-wide switch
        self._packed = PackedLinears(model)
        # Few shapes in decode_step (static cache, bucketed kv_len, [1] position tensor) make it
        # capturable; "reduce-overhead" adds CUDA graphs on GPU. Compiled lazily on first call.
        self._decode = torch.compile(model.decode_step, mode="reduce-overhead", fullgraph=True) if compile else None

    @property
    def attention(self) -> str:
        """The decode-attention setting of this generator's model: ``auto``, ``c`` or ``sdpa``."""
        return self._attention

    @attention.setter
    def attention(self, kernel: str) -> None:
        if kernel not in decode_attention.KERNELS:
            raise ValueError(f"{self.name}: attention {kernel!r}: use one of {', '.join(decode_attention.KERNELS)}")
        set_decode_kernel(self.model, kernel)
        self._attention = kernel

    @property
    def default_sampling(self) -> ARSampling:
        return self._sampling

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def to(self, device: torch.device | str) -> ARGenerator:
        self.model.free_cache()
        self.model.to(device)
        self.tokenizer.to(device)
        return self

    @torch.inference_mode()
    def generate_codes(
        self, labels: torch.Tensor, generator: torch.Generator, params: ARSampling | None = None
    ) -> torch.Tensor:
        """LongTensor ``[B]`` -> codes ``[B, num_tokens]`` on the model device (token generation only)."""
        return self._sample(labels, generator, params, self.model.num_tokens)

    def _sample(
        self, labels: torch.Tensor, generator: torch.Generator, params: ARSampling | None, num_tokens: int
    ) -> torch.Tensor:
        labels = self.check_labels(labels).to(self.device)
        params = params or self._sampling
        if not isinstance(params, ARSampling):
            raise ValueError(f"{self.name}: sampling parameters must be ARSampling, got {type(params).__name__}")
        gen = device_generator(generator, self.device)
        draws = getattr(self.model, "presample_draws", None)
        if draws is not None:
            draws(labels, gen)
        cond = self.model.condition_tokens(labels)
        uncond = self.model.null_condition_tokens(cond)
        packed = self._packed.active() if self.linear_kernel() == "onednn-packed" else contextlib.nullcontext()
        with packed:
            if not self.kv_cache:
                with precision(self.device, torch.float32, self.tf32):  # the TF32 switch only
                    return ar_sample_naive(self.model, cond, num_tokens, params, gen, uncond=uncond)
            return ar_sample(
                self.model, cond, num_tokens, params, gen, uncond=uncond, tf32=self.tf32, decode_step=self._decode
            )

    def linear_kernel(self) -> str:
        """``onednn-packed`` where packing is on, exists (eager CPU) and (``"auto"``) wins on this machine,
        else ``aten`` (F.linear). The first ``"auto"`` query measures (harness.nn.kernels.kernel_choice)."""
        packed = self.packed_linear and not self.compiled and packed_linear_available(self.device, self.dtype)
        if packed and self.packed_linear == "auto":
            packed = prefers_packed(self.model, self.dtype)
        return "onednn-packed" if packed else "aten"

    def attention_kernel(self) -> str:
        """``c-decode`` where the C decode-attention kernel runs the cached steps, else ``sdpa``."""
        if self.compiled or self.attention == "sdpa" or not self.kv_cache:
            return "sdpa"
        heads, head_dim = _attention_geometry(self.model)  # builds the kernel (and "auto": measures) on first call
        return decode_attention.kernel_name(self.attention, self.device, self.dtype, heads, head_dim)

    def prepare(self) -> None:
        """Choose the kernels, pack the Linear weights and build the attention kernel now, so a timed run
        pays for none of them."""
        if self.linear_kernel() == "onednn-packed":
            self._packed.pack()
        self.attention_kernel()

    def release(self) -> None:
        """Free what sampling keeps between calls (packed weights, KV cache); the next call rebuilds it."""
        self.model.free_cache()
        self._packed.release()

    @torch.inference_mode()
    def generate(
        self, labels: torch.Tensor, generator: torch.Generator, params: ARSampling | None = None
    ) -> torch.Tensor:
        codes = self.generate_codes(labels, generator, params)
        return self.tokenizer.decode(codes).to(labels.device)

    # -- speed hooks (harness.core.interfaces.PhasedGenerator): generation and decode timed apart ----------
    def decode_codes(self, codes: torch.Tensor) -> torch.Tensor:
        return self.tokenizer.decode(codes)

    def total_steps(self, params: ARSampling | None = None) -> int:
        return self.model.num_tokens  # prefill + (num_tokens - 1) cached steps

    @torch.inference_mode()
    def run_steps(
        self, labels: torch.Tensor, generator: torch.Generator, params: ARSampling | None, n_steps: int
    ) -> torch.Tensor:
        """The first ``n_steps`` network calls of ``generate_codes`` (same batch, CFG doubling, cache), codes
        padded with 0 to ``[B, num_tokens]`` so ``decode_codes`` times a full decode. Scaling them up
        misjudges the AR loop both ways: early steps attend over a shorter cache (flattering; more so at
        batch 16 with CFG, where the KV cache outgrows the weights), and a run's fixed costs (the KV cache
        allocation: 0.5 s for RAR-XXL at batch 2 on the CPU here) land on the few steps (overstating;
        results/bench/README.md). Hence ``uniform_step_cost = False``: time AR models in full for ratios."""
        codes = self._sample(labels, generator, params, n_steps)
        return torch.nn.functional.pad(codes, (0, self.model.num_tokens - n_steps))

    def info(self) -> dict[str, Any]:
        config = self.model.config_dict() if hasattr(self.model, "config_dict") else None
        return {
            **super().info(),
            "checkpoint": self.checkpoint,
            "checkpoint_sha256": sha256_if_file(self.checkpoint),
            "num_params": sum(p.numel() for p in self.model.parameters()),
            "config": config,
            "default_sampling": self._sampling.to_dict(),
            "official_seed": self.seed,
            "dtype": str(self.dtype).replace("torch.", ""),
            "tf32": self.tf32,
            "kv_cache": "static" if self.kv_cache else "off",
            "compile": self.compiled,
            "linear_kernel": self.linear_kernel(),
            "attention_kernel": self.attention_kernel(),
            "num_tokens": self.model.num_tokens,
            "presample_draws": hasattr(self.model, "presample_draws"),
            "tokenizer": self.tokenizer.info(),
            # keys of the file that the model lacks, skipped as the official loader skips them
            **(
                {"checkpoint_unexpected_keys": unexpected}
                if (unexpected := getattr(self.model, "checkpoint_unexpected_keys", None))
                else {}
            ),
        }


def _attention_geometry(model: torch.nn.Module) -> tuple[int | None, int | None]:
    """``(heads, head_dim)`` of the model's first KV-cached attention (None, None where it has none)."""
    for m in model.modules():
        if hasattr(m, "kv_cache") and hasattr(m, "num_heads") and hasattr(m, "head_dim"):
            return int(m.num_heads), int(m.head_dim)
    return None, None

"""Upstream's own AR samplers: AliTok's and RAR's ``generate`` methods, LlamaGen's ``generate`` function.

- AliTok (ali-vilab/alitok): ``demo_util.get_config`` reads the checkout's ``configs/alitok_{b,l,xl}.yaml``,
  ``modeling.ar.ARModel(config)``; a run is ``ARModel.generate`` called as ``demo_util.sample_fn`` calls it
  (``condition``, ``guidance_scale``, ``guidance_scale_pow``, ``randomize_temperature``).
- RAR (bytedance/1d-tokenizer): ``OmegaConf.load`` (what ``demo_util.get_config`` does; ``demo_util`` itself
  imports MaskGen's ``transformers`` dependency) reads ``configs/training/generator/rar.yaml`` (RAR-B),
  the generator sizes set to the project model's as README_RAR.md's commands override them for L / XL / XXL,
  ``modeling.rar.RAR(config)`` with ``set_random_ratio(0)`` as ``demo_util.get_rar_generator``; a run is
  ``RAR.generate`` with the same four arguments.
- LlamaGen (FoundationVision/LlamaGen): ``GPT_models["GPT-<size>"]`` built as
  ``autoregressive/sample/sample_c2i.py`` builds it (vocab, ``block_size = grid**2``, 1000 classes, one class
  token, ``c2i``); a run is ``autoregressive.models.generate.generate(model, labels, grid**2, cfg_scale,
  cfg_interval, temperature, top_k, top_p, sample_logits=True)`` as that script calls it.

A step-limited run (``run_steps(n)``) is upstream's own loop over ``n`` tokens: ``image_seq_len`` set to ``n``
for the call (AliTok, RAR: their CFG schedule then spans ``n`` steps; costs per step are unchanged) or
``max_new_tokens=n`` (LlamaGen); codes come back padded to full length.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from harness.core.errors import UserError
from harness.core.interfaces import ARSampling
from harness.speed.upstream_load import UpstreamGenerator


def build_alitok(modules: dict[str, Any], checkout: Path, project: Any, config: str) -> torch.nn.Module:
    return modules["modeling.ar"].ARModel(modules["demo_util"].get_config(str(checkout / config)))


def build_rar(modules: dict[str, Any], checkout: Path, project: Any, config: str) -> torch.nn.Module:
    from omegaconf import OmegaConf  # demo_util.get_config is OmegaConf.load (demo_util imports transformers)

    conf = OmegaConf.load(str(checkout / config))
    cfg = project.model.cfg  # README_RAR.md: the size is set by overriding model.generator.* on rar.yaml
    sizes = {
        "hidden_size": cfg.width,
        "num_hidden_layers": cfg.depth,
        "num_attention_heads": cfg.num_heads,
        "intermediate_size": cfg.mlp_hidden,
    }
    for key, value in sizes.items():
        conf["model"]["generator"][key] = value
    conf["model"]["vq_model"]["codebook_size"] = cfg.codebook_size
    model = modules["modeling.rar"].RAR(conf)
    model.set_random_ratio(0)  # demo_util.get_rar_generator: raster order at sampling
    return model


def build_llamagen(modules: dict[str, Any], checkout: Path, project: Any, size: str) -> torch.nn.Module:
    cfg = project.model.cfg  # sample_c2i.py's arguments; --image-size and --codebook-size from the project's model
    return modules["autoregressive.models.gpt"].GPT_models[f"GPT-{size}"](
        vocab_size=cfg.vocab_size,
        block_size=cfg.num_tokens,
        num_classes=cfg.num_classes,
        cls_token_num=1,
        model_type="c2i",
    )


class UpstreamGenerateMethod(UpstreamGenerator):
    """AliTok's and RAR's ``model.generate(condition, guidance_scale, randomize_temperature, guidance_scale_pow)``."""

    uniform_step_cost = False  # upstream's concatenating KV cache grows every step

    def _kwargs(self, params: ARSampling) -> dict[str, Any]:
        if params.cfg_schedule != "power-cosine" or params.top_k or params.top_p != 1.0 or params.cfg_interval != -1:
            raise UserError(
                f"--upstream: upstream's generate samples with the power-cosine CFG schedule and no "
                f"top-k/top-p; {self.project.name}'s parameters ({params.to_dict()}) differ"
            )
        # guidance_scale 0 is upstream's no-CFG path (one batch); 1.0 would still double it
        return {
            "guidance_scale": params.cfg_scale if params.cfg_scale != 1.0 else 0.0,
            "randomize_temperature": params.temperature,
            "guidance_scale_pow": params.cfg_power,
        }

    def _sample(self, labels: torch.Tensor, params: ARSampling, n_steps: int | None) -> torch.Tensor:
        full = int(self.model.image_seq_len)
        self.model.image_seq_len = n_steps or full
        try:
            codes = self.model.generate(condition=labels, **self._kwargs(params))
        finally:
            self.model.image_seq_len = full
        return torch.nn.functional.pad(codes, (0, full - codes.shape[1]))

    def total_steps(self, params: ARSampling | None = None) -> int:
        return int(self.model.image_seq_len)

    def release(self) -> None:
        if hasattr(self.model, "disable_kv_cache"):  # upstream's generate does it too; after an interrupted run
            self.model.disable_kv_cache()

    def attention_kernel(self) -> str:
        return "upstream (SDPA, concatenating cache)"

    def info(self) -> dict[str, Any]:
        return {**super().info(), "kv_cache": "upstream (torch.cat per step)"}


class UpstreamLlamaGen(UpstreamGenerator):
    """LlamaGen's ``generate`` function (static KV cache set up per call, as upstream)."""

    uniform_step_cost = False  # attention reads a longer prefix each step

    def _sample(self, labels: torch.Tensor, params: ARSampling, n_steps: int | None) -> torch.Tensor:
        if params.cfg_schedule != "constant" or params.cfg_power != 1.0:
            raise UserError(
                f"--upstream: LlamaGen's generate guides with a constant scale; {self.project.name}'s parameters "
                f"({params.to_dict()}) differ"
            )
        full = int(self.project.model.cfg.num_tokens)
        codes = self.modules["autoregressive.models.generate"].generate(
            self.model,
            labels,
            n_steps or full,
            cfg_scale=params.cfg_scale,
            cfg_interval=params.cfg_interval,
            temperature=params.temperature,
            top_k=params.top_k,
            top_p=params.top_p,
            sample_logits=True,
        )
        return torch.nn.functional.pad(codes.long(), (0, full - codes.shape[1]))

    def attention_kernel(self) -> str:
        return "upstream (SDPA over a static cache)"

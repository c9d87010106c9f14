"""Upstream's own samplers, imported at run time from a folder of official checkouts the user names
(``bench --upstream DIR``, ``ar_floor_report --upstream DIR``), given the weights of the project's model,
so both are timed in one process, interleaved, on the same weights.

Which registered model maps onto which checkout, model class and sampling function: ``ADAPTERS``. The
import and the weight loading are harness.speed.upstream_load's; the sampling calls are
harness.speed.upstream_ar's (AliTok, RAR, LlamaGen) and harness.speed.upstream_diffusion's (LightningDiT,
DiT). Nothing is labelled official unless the checkout's own function ran: a model without an adapter is
named in the output (``NOT_WIRED`` for compared families not driven yet) rather than replaced by a replica.
"""

from __future__ import annotations

import functools
from pathlib import Path

from harness.core.interfaces import Generator
from harness.speed import upstream_ar as ar
from harness.speed import upstream_diffusion as diffusion
from harness.speed.upstream_load import Adapter, UpstreamGenerator, git_commit

__all__ = ["ADAPTERS", "Adapter", "adapter_for", "git_commit", "official_generator"]

LIGHTNINGDIT_CONFIG = "configs/reproductions/lightningdit_xl_vavae_f16d32_800ep_cfg.yaml"
RAR_CONFIG = "configs/training/generator/rar.yaml"


def _alitok(size: str) -> Adapter:
    config = f"configs/alitok_{size}.yaml"
    return Adapter(
        "alitok",
        config,
        ("demo_util", "modeling.ar"),
        functools.partial(ar.build_alitok, config=config),
        ar.UpstreamGenerateMethod,
        "modeling.ar.ARModel.generate",
    )


def _rar() -> Adapter:
    return Adapter(
        "1d-tokenizer",
        RAR_CONFIG,
        ("modeling.rar",),
        functools.partial(ar.build_rar, config=RAR_CONFIG),
        ar.UpstreamGenerateMethod,
        "modeling.rar.RAR.generate",
    )


def _llamagen(size: str) -> Adapter:
    return Adapter(
        "LlamaGen",
        "autoregressive/sample/sample_c2i.py",
        ("autoregressive.models.gpt", "autoregressive.models.generate"),
        functools.partial(ar.build_llamagen, size=size),
        ar.UpstreamLlamaGen,
        "autoregressive.models.generate.generate",
        kept_as_built=("freqs_cis",),  # the RoPE table, a buffer upstream computes (sample_c2i.py loads strict=False)
    )


LIGHTNINGDIT = Adapter(
    "LightningDiT",
    LIGHTNINGDIT_CONFIG,
    ("models.lightningdit", "transport"),
    functools.partial(diffusion.build_lightningdit, config=LIGHTNINGDIT_CONFIG),
    diffusion.UpstreamLightningDiT,
    "transport.Sampler.sample_ode (euler) on models.lightningdit.LightningDiT.forward_with_cfg",
    kept_as_built=("feat_rope.",),  # EVA RoPE cos / sin tables, buffers upstream computes
)
DIT = Adapter(
    "DiT",
    "sample.py",
    ("models", "diffusion"),
    functools.partial(diffusion.build_dit, key="DiT-XL/2"),
    diffusion.UpstreamDiT,
    "diffusion.create_diffusion(...).p_sample_loop / ddim_sample_loop on models.DiT.forward_with_cfg",
)

# registry name (with or without the -random suffix) -> upstream
ADAPTERS: dict[str, Adapter] = {
    **{f"alitok-{s}": _alitok(s) for s in ("b", "l", "xl")},
    **{f"rar-{s}": _rar() for s in ("b", "l", "xl", "xxl")},
    **{f"llamagen-gpt-{s}": _llamagen(s.upper()) for s in ("b", "l")},
    **{f"llamagen-gpt-{s}-384": _llamagen(s.upper()) for s in ("b", "l", "xl", "xxl", "3b")},
    "lightningdit-xl-1": LIGHTNINGDIT,
    "dit-xl-2": DIT,
}


def adapter_for(name: str) -> Adapter | None:
    return ADAPTERS.get(name.removesuffix("-random"))


def official_generator(project: Generator, upstream: Path, name: str | None = None) -> UpstreamGenerator:
    """The official sampler for ``project`` (registry ``name``, default its own) from ``upstream``."""
    from harness.core.errors import UserError

    name = name or project.name
    adapter = adapter_for(name)
    if adapter is None:
        raise UserError(f"--upstream: no upstream adapter for {name} (wired: {', '.join(ADAPTERS)})")
    return adapter.sampler(project, upstream, name, adapter)

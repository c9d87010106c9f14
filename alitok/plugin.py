"""Registry factories for AliTok (targets named in harness/core/plugins.py).

Import-light: model modules are imported inside each function, so listing plugins stays fast.
Signature of every factory: ``factory(*, device, checkpoint=None, tokenizer_checkpoint=None, **options)``.
Tokenizer factories are at the top (Engineer T); generator factories follow (Engineer G).
"""

from __future__ import annotations

from harness.core.errors import UserError
from harness.core.registry import released_ar_factory


def _no_options(name: str, options: dict) -> None:
    if options:
        raise UserError(
            f"{name}: unknown option(s) {', '.join(sorted(options))} (this tokenizer takes only a checkpoint)"
        )


def _scaled(name: str, config, architecture):
    """The official config with ``architecture`` fields replaced: scaled-down files of the official
    layout (tests/fixtures/upstream, written by the official code); ``None`` keeps the release's."""
    from harness.core.config import replace_fields

    return replace_fields(config, architecture, f"{name}: architecture")


def alitok_tokenizer(*, device, checkpoint=None, tokenizer_checkpoint=None, architecture=None, **options):
    """The official AliTok tokenizer (AliTok.pth, 273 tokens, strict load); ``architecture``: config
    overrides for a scaled-down file of the same layout."""
    _no_options("alitok", options)
    path = checkpoint or tokenizer_checkpoint
    if not path:
        # only `recon` builds tokenizers by name; its flag is --checkpoint
        raise UserError("alitok needs the official checkpoint: pass --checkpoint /path/AliTok.pth")
    from alitok.tokenizer import OFFICIAL, AliTokTokenizer

    return AliTokTokenizer.from_checkpoint(
        path, device=device, name="alitok", config=_scaled("alitok", OFFICIAL, architecture)
    )


def tiny_tokenizer(*, device, checkpoint=None, tokenizer_checkpoint=None, **options):
    """The committed tiny tokenizer (alitok/weights/tiny_tokenizer.safetensors) or another file of ours."""
    _no_options("alitok-tiny", options)
    from alitok.tokenizer import AliTokTokenizer, tiny_checkpoint_path

    path = checkpoint or tokenizer_checkpoint or tiny_checkpoint_path()
    return AliTokTokenizer.from_checkpoint(path, device=device, name="alitok-tiny")


# ----------------------------------------------------------------------------------------------
# Generators (Engineer G): AR model + tokenizer for decoding
# ----------------------------------------------------------------------------------------------
def _check_quantization(name: str, quantization):
    from harness.core.interfaces import QUANTIZATION_RULES

    if quantization is not None and quantization not in QUANTIZATION_RULES:
        raise ValueError(f"{name}: unknown quantization {quantization!r} (known: {', '.join(QUANTIZATION_RULES)})")


def _official_generator(
    name,
    *,
    device,
    checkpoint,
    tokenizer_checkpoint,
    dtype,
    quantization,
    compile,
    tf32,
    random_weights=False,
    architecture=None,
    tokenizer_architecture=None,
):
    from alitok.generator import PRESETS

    preset = PRESETS[name]
    _check_quantization(name, quantization)
    if random_weights:
        if checkpoint or tokenizer_checkpoint:
            raise UserError(f"{name}: random_weights=true takes no checkpoints")
    elif not checkpoint:
        raise UserError(
            f"{name} needs the official checkpoint: --set model.checkpoint=/path/{preset.checkpoint_name} "
            "(and model.tokenizer_checkpoint=/path/AliTok.pth), or model.random_weights=true for speed runs"
        )
    elif not tokenizer_checkpoint:
        raise UserError(f"{name} needs the official tokenizer too: --set model.tokenizer_checkpoint=/path/AliTok.pth")
    import torch

    from alitok.generator import build, load_model
    from harness.nn.models.ar_generator import ARGenerator

    if random_weights:  # the official architecture with N(0, 0.02) weights (head included): speed only
        from alitok import tokenizer as tk

        model = build(preset.config, device=device, generator=torch.Generator().manual_seed(0))
        torch.nn.init.normal_(model.output.weight, std=preset.config.init_std)
        tok_model = tk.build(tk.OFFICIAL, device=device, generator=torch.Generator().manual_seed(0))
        tokenizer = tk.AliTokTokenizer(tok_model.eval(), name="alitok-random")
    else:
        model, _ = load_model(checkpoint, device=device, config=_scaled(name, preset.config, architecture))
        tokenizer = alitok_tokenizer(
            device=device, checkpoint=tokenizer_checkpoint, architecture=tokenizer_architecture
        )
    if quantization:
        tokenizer.quantization = quantization
    return ARGenerator(
        model,
        tokenizer,
        name=name + ("-random" if random_weights else ""),
        sampling=preset.sampling,
        seed=preset.seed,
        checkpoint=str(checkpoint) if checkpoint else None,
        dtype=dtype or torch.float32,
        tf32=tf32,
        compile=compile,
    )


def _official_factory(name: str, doc: str):
    return released_ar_factory(
        _official_generator,
        name,
        name.replace("-", "_"),
        doc + " ``random_weights=True``: the same architecture with random weights (speed runs). "
        "``architecture`` / ``tokenizer_architecture``: config overrides for scaled-down files "
        "of the official layout (the fixtures the official code wrote).",
    )


alitok_b = _official_factory(
    "alitok-b", "AliTok-B (177M): official alitok_b.bin + AliTok.pth; preset cfg 16.0, power-cosine pow 1.8, seed 42."
)
alitok_l = _official_factory(
    "alitok-l", "AliTok-L (318M): official alitok_l.bin + AliTok.pth; preset cfg 6.0, power-cosine pow 0.7, seed 42."
)
alitok_xl = _official_factory(
    "alitok-xl", "AliTok-XL (662M): official alitok_xl.bin + AliTok.pth; preset cfg 13.0, power-cosine pow 1.4, seed 2."
)


def tiny_generator(
    *, device, checkpoint=None, tokenizer_checkpoint=None, dtype=None, quantization=None, compile=False, tf32=None
):
    """The committed tiny AR (alitok/weights/tiny_ar.safetensors) + tiny tokenizer; sampling preset from its metadata."""
    _check_quantization("alitok-tiny", quantization)
    import json

    import torch

    from alitok.generator import load_model, tiny_checkpoint_path
    from harness.core.interfaces import ARSampling
    from harness.nn.checkpoints.checkpoint import CheckpointError
    from harness.nn.models.ar_generator import ARGenerator

    path = checkpoint or tiny_checkpoint_path()
    model, meta = load_model(path, device=device)
    try:
        sampling = ARSampling(**json.loads(meta["sampling"])) if "sampling" in meta else ARSampling()
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"{path}: bad sampling preset in metadata ({e})") from None
    tokenizer = tiny_tokenizer(device=device, checkpoint=tokenizer_checkpoint)
    if quantization:
        tokenizer.quantization = quantization
    return ARGenerator(
        model,
        tokenizer,
        name="alitok-tiny",
        sampling=sampling,
        seed=0,
        checkpoint=str(path),
        dtype=dtype or torch.float32,
        tf32=tf32,
        compile=compile,
    )

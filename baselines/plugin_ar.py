"""Registry factories for the AR baselines (LlamaGen, RAR, TiTok, MaskGIT-VQGAN); targets in harness/core/plugins.py.

Every factory: ``factory(*, device, checkpoint=None, tokenizer_checkpoint=None, **options)``.
Generators are ``harness.nn.models.ar_generator.ARGenerator`` around a family model, so every AR
baseline samples through the one shared loop. Model modules are imported inside the functions so
listing plugins stays fast. Official files are never downloaded: the user passes the paths.
"""

from __future__ import annotations

from harness.core.errors import UserError
from harness.core.registry import released_ar_factory


def _need(name: str, path, hint: str) -> str:
    if not path:
        raise UserError(f"{name} needs {hint}")
    return str(path)


def _no_options(name: str, options: dict) -> None:
    if options:
        raise UserError(
            f"{name}: unknown option(s) {', '.join(sorted(options))} (this tokenizer takes only a checkpoint)"
        )


def _generator(model, tokenizer, *, name, sampling, seed, checkpoint, dtype, quantization, compile, tf32):
    import torch

    from harness.core.interfaces import QUANTIZATION_RULES
    from harness.nn.models.ar_generator import ARGenerator

    if quantization is not None:
        if quantization not in QUANTIZATION_RULES:
            raise UserError(f"{name}: unknown quantization {quantization!r} (known: {', '.join(QUANTIZATION_RULES)})")
        tokenizer.quantization = quantization
    return ARGenerator(
        model,
        tokenizer,
        name=name,
        sampling=sampling,
        seed=seed,
        checkpoint=checkpoint,
        dtype=dtype or torch.float32,
        tf32=tf32,
        compile=compile,
    )


# ----------------------------------------------------------------------------------------------
# Tokenizers
# ----------------------------------------------------------------------------------------------
def _scaled(name: str, config, architecture):
    """The official config with ``architecture`` fields replaced: scaled-down files of the official
    layout (tests/fixtures/upstream, written by the official code); ``None`` keeps the release's."""
    from harness.core.config import replace_fields

    return replace_fields(config, architecture, f"{name}: architecture")


def _vq(
    name: str,
    key: str,
    file: str,
    *,
    device,
    checkpoint,
    tokenizer_checkpoint,
    options,
    image_size=256,
    eval_size=None,
    architecture=None,
):
    import dataclasses

    from baselines.llamagen import VQ_CONFIGS, LlamaGenTokenizer, load_vq

    _no_options(name, options)
    path = _need(
        name, checkpoint or tokenizer_checkpoint, f"the official tokenizer: --set model.checkpoint=/path/{file}"
    )
    cfg = _scaled(name, dataclasses.replace(VQ_CONFIGS[key], image_size=image_size), architecture)
    return LlamaGenTokenizer(load_vq(path, cfg, device), name=name, checkpoint=path, eval_size=eval_size)


def vq_16(*, device, checkpoint=None, tokenizer_checkpoint=None, architecture=None, **options):
    """LlamaGen VQ-16 (72M, 16x16 tokens at 256 px, [-1,1]); official vq_ds16_c2i.pt. ``architecture``:
    config overrides for a scaled-down file of the same layout."""
    return _vq(
        "vq-16",
        "VQ-16",
        "vq_ds16_c2i.pt",
        device=device,
        checkpoint=checkpoint,
        tokenizer_checkpoint=tokenizer_checkpoint,
        options=options,
        architecture=architecture,
    )


def vq_8(*, device, checkpoint=None, tokenizer_checkpoint=None, **options):
    """LlamaGen VQ-8 (70M, 32x32 tokens at 256 px); official vq_ds8_c2i.pt."""
    return _vq(
        "vq-8",
        "VQ-8",
        "vq_ds8_c2i.pt",
        device=device,
        checkpoint=checkpoint,
        tokenizer_checkpoint=tokenizer_checkpoint,
        options=options,
    )


def maskgit_vqgan(*, device, checkpoint=None, tokenizer_checkpoint=None, architecture=None, **options):
    """MaskGIT-VQGAN (54.5M, 16x16 tokens, codebook 1024); official maskgit-vqgan-imagenet-f16-256.bin.
    ``architecture``: config overrides for a scaled-down file of the same layout."""
    from baselines.maskgit_vqgan import CHECKPOINT_NAME, MaskGITTokenizer, PixelVQConfig, load

    _no_options("maskgit-vqgan", options)
    path = _need(
        "maskgit-vqgan",
        checkpoint or tokenizer_checkpoint,
        f"the official file: --set model.checkpoint=/path/{CHECKPOINT_NAME}",
    )
    cfg = _scaled("maskgit-vqgan", PixelVQConfig(), architecture)
    return MaskGITTokenizer(load(path, cfg, device=device), checkpoint=path)


def _titok(name: str, *, device, checkpoint, tokenizer_checkpoint, options, architecture=None):
    from baselines.titok import TITOK_CONFIGS, TiTokTokenizer, load

    _no_options(name, options)
    path = _need(
        name,
        checkpoint or tokenizer_checkpoint,
        f"the official weights: --set model.checkpoint=/path/{name.replace('-', '_')}.bin (HF yucornetto)",
    )
    return TiTokTokenizer(
        load(path, _scaled(name, TITOK_CONFIGS[name], architecture), device), name=name, checkpoint=path
    )


def _titok_factory(name: str, doc: str):
    def factory(*, device, checkpoint=None, tokenizer_checkpoint=None, architecture=None, **options):
        return _titok(
            name,
            device=device,
            checkpoint=checkpoint,
            tokenizer_checkpoint=tokenizer_checkpoint,
            options=options,
            architecture=architecture,
        )

    factory.__name__, factory.__doc__ = name.replace("-", "_"), doc
    return factory


titok_l_32 = _titok_factory(
    "titok-l-32", "TiTok-L-32 (32 tokens, legacy proxy-code decoder through the MaskGIT pixel decoder)."
)
titok_b_64 = _titok_factory("titok-b-64", "TiTok-B-64 (64 tokens).")
titok_s_128 = _titok_factory("titok-s-128", "TiTok-S-128 (128 tokens).")


# ----------------------------------------------------------------------------------------------
# Generators
# ----------------------------------------------------------------------------------------------
def _random_weights_only(name: str, checkpoint, tokenizer_checkpoint) -> None:
    if checkpoint or tokenizer_checkpoint:
        raise UserError(f"{name}: random_weights=true takes no checkpoints (got {checkpoint or tokenizer_checkpoint})")


def _llamagen(
    name: str,
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
    import dataclasses

    import torch

    from baselines.llamagen import GPT_PRESETS, VQ_CONFIGS, LlamaGenTokenizer, build_gpt, build_vq, load_gpt

    preset = GPT_PRESETS[name]
    if random_weights:  # the published architectures with seeded random weights, no file: speed runs only
        _random_weights_only(name, checkpoint, tokenizer_checkpoint)
        cfg = dataclasses.replace(VQ_CONFIGS["VQ-16"], image_size=preset.image_size)
        tokenizer = LlamaGenTokenizer(
            build_vq(cfg, device), name="vq-16-random", checkpoint=None, eval_size=preset.eval_size
        )
        model = build_gpt(preset.config, device, generator=torch.Generator().manual_seed(0))
        return _generator(
            model,
            tokenizer,
            name=name + "-random",
            sampling=preset.sampling,
            seed=0,
            checkpoint=None,
            dtype=dtype,
            quantization=quantization,
            compile=compile,
            tf32=tf32,
        )
    path = _need(
        name,
        checkpoint,
        f"the official checkpoint: --set model.checkpoint=/path/{preset.checkpoint_name} "
        "(and model.tokenizer_checkpoint=/path/vq_ds16_c2i.pt)",
    )
    tok_path = _need(
        name, tokenizer_checkpoint, "the official tokenizer too: --set model.tokenizer_checkpoint=/path/vq_ds16_c2i.pt"
    )
    tokenizer = _vq(
        "vq-16" if preset.image_size == 256 else f"vq-16-{preset.image_size}",
        "VQ-16",
        "vq_ds16_c2i.pt",
        device=device,
        checkpoint=tok_path,
        tokenizer_checkpoint=None,
        options={},
        image_size=preset.image_size,
        architecture=tokenizer_architecture,
        eval_size=preset.eval_size if preset.eval_size != preset.image_size else None,
    )
    model = load_gpt(path, _scaled(name, preset.config, architecture), device)
    return _generator(
        model,
        tokenizer,
        name=name,
        sampling=preset.sampling,
        seed=0,
        checkpoint=path,
        dtype=dtype,
        quantization=quantization,
        compile=compile,
        tf32=tf32,
    )


def _llamagen_factory(name: str):
    return released_ar_factory(
        _llamagen,
        name,
        name.replace("-", "_"),
        f"{name}: official LlamaGen c2i GPT + VQ-16 (constant CFG preset of the published evaluation); "
        "``architecture`` / ``tokenizer_architecture``: config overrides for scaled-down files",
    )


llamagen_gpt_b = _llamagen_factory("llamagen-gpt-b")
llamagen_gpt_l = _llamagen_factory("llamagen-gpt-l")
llamagen_gpt_b_384 = _llamagen_factory("llamagen-gpt-b-384")
llamagen_gpt_l_384 = _llamagen_factory("llamagen-gpt-l-384")
llamagen_gpt_xl_384 = _llamagen_factory("llamagen-gpt-xl-384")
llamagen_gpt_xxl_384 = _llamagen_factory("llamagen-gpt-xxl-384")
llamagen_gpt_3b_384 = _llamagen_factory("llamagen-gpt-3b-384")


def _rar(
    size: str,
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
    from baselines import maskgit_vqgan
    from baselines.rar import build, load, rar_config, rar_sampling

    name = f"rar-{size}"
    if random_weights:  # the published architecture with seeded random weights, no file: speed runs only
        import torch

        _random_weights_only(name, checkpoint, tokenizer_checkpoint)
        tokenizer = maskgit_vqgan.MaskGITTokenizer(maskgit_vqgan.build(device=device), checkpoint=None)
        model = build(rar_config(size), device, generator=torch.Generator().manual_seed(0))
        return _generator(
            model,
            tokenizer,
            name=name + "-random",
            sampling=rar_sampling(size),
            seed=None,
            checkpoint=None,
            dtype=dtype,
            quantization=quantization,
            compile=compile,
            tf32=tf32,
        )
    path = _need(
        name,
        checkpoint,
        f"the official checkpoint: --set model.checkpoint=/path/rar_{size}.bin "
        f"(and model.tokenizer_checkpoint=/path/{maskgit_vqgan.CHECKPOINT_NAME})",
    )
    tok_path = _need(
        name,
        tokenizer_checkpoint,
        f"the MaskGIT-VQGAN tokenizer too: --set model.tokenizer_checkpoint=/path/{maskgit_vqgan.CHECKPOINT_NAME}",
    )
    tokenizer = maskgit_vqgan_tokenizer(device=device, checkpoint=tok_path, architecture=tokenizer_architecture)
    model = load(path, _scaled(name, rar_config(size), architecture), device)
    return _generator(
        model,
        tokenizer,
        name=name,
        sampling=rar_sampling(size),
        seed=None,
        checkpoint=path,
        dtype=dtype,
        quantization=quantization,
        compile=compile,
        tf32=tf32,
    )


def _rar_factory(size: str):
    return released_ar_factory(
        _rar,
        size,
        f"rar_{size}",
        f"RAR-{size.upper()}: official rar_{size}.bin + MaskGIT-VQGAN (power-cosine CFG preset); "
        "``architecture`` / ``tokenizer_architecture``: config overrides for scaled-down files",
    )


rar_b, rar_l, rar_xl, rar_xxl = (_rar_factory(s) for s in ("b", "l", "xl", "xxl"))
maskgit_vqgan_tokenizer = maskgit_vqgan  # the registry's tokenizer factory, under a name _rar can use


# ----------------------------------------------------------------------------------------------
# Tiny systems trained here (baselines/configs/train_tiny_*.yaml, committed under baselines/weights/)
# ----------------------------------------------------------------------------------------------
def _weights(name: str) -> str:
    from pathlib import Path

    return str(Path(__file__).resolve().parent / "weights" / name)


def _tiny_tokenizer(name: str, file: str, *, device, checkpoint, tokenizer_checkpoint, options):
    from baselines.train_tiny import load_tiny_tokenizer

    _no_options(name, options)
    return load_tiny_tokenizer(checkpoint or tokenizer_checkpoint or _weights(file), name, device)


def vq_tiny(*, device, checkpoint=None, tokenizer_checkpoint=None, **options):
    """Tiny LlamaGen-style VQGAN (64 tokens at 32 px, codebook 512 x 8), trained on natural patches (committed)."""
    return _tiny_tokenizer(
        "vq-tiny",
        "tiny_vq.safetensors",
        device=device,
        checkpoint=checkpoint,
        tokenizer_checkpoint=tokenizer_checkpoint,
        options=options,
    )


def titok_tiny(*, device, checkpoint=None, tokenizer_checkpoint=None, **options):
    """Tiny TiTok-style 1D tokenizer (32 tokens at 32 px, codebook 512 x 8), trained on natural patches (committed)."""
    return _tiny_tokenizer(
        "titok-tiny",
        "tiny_titok.safetensors",
        device=device,
        checkpoint=checkpoint,
        tokenizer_checkpoint=tokenizer_checkpoint,
        options=options,
    )


def _tiny_generator(
    name: str,
    gpt_file: str,
    tok_name: str,
    tok_file: str,
    *,
    device,
    checkpoint,
    tokenizer_checkpoint,
    dtype,
    quantization,
    compile,
    tf32,
):
    from baselines.train_tiny import load_tiny_gpt, load_tiny_tokenizer

    path = checkpoint or _weights(gpt_file)
    model, sampling, _ = load_tiny_gpt(path, device)
    tokenizer = load_tiny_tokenizer(tokenizer_checkpoint or _weights(tok_file), tok_name, device)
    return _generator(
        model,
        tokenizer,
        name=name,
        sampling=sampling,
        seed=0,
        checkpoint=str(path),
        dtype=dtype,
        quantization=quantization,
        compile=compile,
        tf32=tf32,
    )


def llamagen_tiny(
    *, device, checkpoint=None, tokenizer_checkpoint=None, dtype=None, quantization=None, compile=False, tf32=None
):
    """Tiny LlamaGen GPT + tiny VQGAN (committed); sampling preset from the weights' metadata."""
    return _tiny_generator(
        "llamagen-tiny",
        "tiny_llamagen_gpt.safetensors",
        "vq-tiny",
        "tiny_vq.safetensors",
        device=device,
        checkpoint=checkpoint,
        tokenizer_checkpoint=tokenizer_checkpoint,
        dtype=dtype,
        quantization=quantization,
        compile=compile,
        tf32=tf32,
    )


def titok_ar_tiny(
    *, device, checkpoint=None, tokenizer_checkpoint=None, dtype=None, quantization=None, compile=False, tf32=None
):
    """Tiny LlamaGen-style GPT (1D RoPE) on the tiny TiTok's 1D codes (committed): AR on a bidirectional 1D tokenizer."""
    return _tiny_generator(
        "titok-ar-tiny",
        "tiny_titok_gpt.safetensors",
        "titok-tiny",
        "tiny_titok.safetensors",
        device=device,
        checkpoint=checkpoint,
        tokenizer_checkpoint=tokenizer_checkpoint,
        dtype=dtype,
        quantization=quantization,
        compile=compile,
        tf32=tf32,
    )

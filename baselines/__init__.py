"""Baselines behind the same interfaces as AliTok.

Diffusion families (one toolkit in ``harness.nn``: diffusion, flow, dit_blocks, diffusion_generator):
``dit`` (DiT-XL/2 + tiny DDPM), ``sit`` (SiT-XL/2 + tiny flow), ``lightningdit`` (XL/1 + VA-VAE),
``vae`` (LDM AutoencoderKL: SD VAE, VA-VAE), ``train_diffusion`` (the tiny trainer).
Each factory ``factory(*, device, checkpoint=None, tokenizer_checkpoint=None, **options)`` is one
line in ``harness/core/plugins.py``. Planned: LlamaGen, TiTok (DESIGN.md).
"""

"""Baselines behind the same interfaces as AliTok (not yet implemented).

Planned, per ../shared/DESIGN.md: LlamaGen VQGAN + GPT (sharing ``harness.nn.ar_sampling``), TiTok,
DiT and SiT / LightningDiT-style flow samplers (one diffusion toolkit in ``harness.nn``). Each is a
factory ``factory(*, device, checkpoint=None, tokenizer_checkpoint=None, **options)`` returning a
``harness.interfaces.Generator`` or ``Tokenizer``, registered with one line in ``harness/plugins.py``.
Like ``alitok/``, this package imports from harness only ``interfaces``, ``registry`` and ``nn``.
"""

"""Metrics with ADM-evaluator semantics: FID, IS, sFID, precision/recall, KID, rFID, PSNR/SSIM.

``table`` is the one metric table (name, feature extractor and layer, what the reference must hold,
whether logits are needed, the compute function); it fills the ``metrics`` registry and drives
``evaluate``, ``list metrics``, suites and ``validate``. One file per role beside it: ``weights``
(Inception weight tiers), ``inception`` (torch-fidelity extractor + sFID hook), ``features`` (streaming
extraction + cache), ``fid``/``isc``/``prc``/``kid`` (math from features), ``refstats`` (reference
batches), ``provenance`` (paper_comparable), ``evaluate`` (samples), ``recon`` (tokenizer reconstructions).
Heavy imports happen only in the modules that need them.
"""

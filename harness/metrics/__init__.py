"""Metrics with ADM-evaluator semantics: FID, IS, sFID, precision/recall, KID, rFID, PSNR/SSIM.

One file per role: ``weights`` (Inception weight tiers), ``inception`` (torch-fidelity extractor + sFID
hook), ``features`` (streaming extraction + cache), ``fid``/``isc``/``prc``/``kid`` (pure math from
features), ``refstats`` (reference batches), ``provenance`` (paper_comparable), ``evaluate`` (samples),
``recon`` (tokenizer reconstructions). Heavy imports happen only in the modules that need them.
"""

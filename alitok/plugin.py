"""Registry factories for AliTok (targets named in harness/plugins.py).

Import-light: model modules are imported inside each function, so listing plugins stays fast.
Signature of every factory: ``factory(*, device, checkpoint=None, tokenizer_checkpoint=None, **options)``.
Tokenizer factories are at the top (Engineer T); generator factories follow (Engineer G).
"""
from __future__ import annotations


def _no_options(name: str, options: dict) -> None:
    if options:
        raise ValueError(f"{name}: unknown option(s) {', '.join(sorted(options))} (this tokenizer takes only a checkpoint)")


def alitok_tokenizer(*, device, checkpoint=None, tokenizer_checkpoint=None, **options):
    """The official AliTok tokenizer (AliTok.pth, 273 tokens, strict load)."""
    _no_options("alitok", options)
    path = checkpoint or tokenizer_checkpoint
    if not path:
        raise ValueError("alitok needs the official checkpoint: --set model.checkpoint=/path/AliTok.pth")
    from alitok.tokenizer import OFFICIAL, AliTokTokenizer

    return AliTokTokenizer.from_checkpoint(path, device=device, name="alitok", config=OFFICIAL)


def tiny_tokenizer(*, device, checkpoint=None, tokenizer_checkpoint=None, **options):
    """The committed tiny tokenizer (alitok/weights/tiny_tokenizer.safetensors) or another file of ours."""
    _no_options("alitok-tiny", options)
    from alitok.tokenizer import AliTokTokenizer, tiny_checkpoint_path

    path = checkpoint or tokenizer_checkpoint or tiny_checkpoint_path()
    return AliTokTokenizer.from_checkpoint(path, device=device, name="alitok-tiny")

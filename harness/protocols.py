"""Named protocols (DESIGN.md "Protocols"); a suite or ``sample --protocol NAME`` starts from one."""
from __future__ import annotations

import dataclasses
import difflib

from harness.data.embedded import NUM_CLASSES as EMBEDDED_CLASSES
from harness.registry import RegistryError
from harness.specs import ProtocolSpec

ADM_METRICS = ("fid", "is", "sfid", "prec", "recall")

PROTOCOLS: dict[str, ProtocolSpec] = {
    # 50 per class, interleaved; reference = ADM VIRTUAL_imagenet256_labeled.npz (user passes its path)
    "imagenet256-gfid50k": ProtocolSpec("imagenet256-gfid50k", 50_000, 1000, 256, chunk_size=125, metrics=ADM_METRICS),
    # the first 5,000 samples of the 50k run (same sampling identity), for smoke tests on a GPU
    "imagenet256-smoke5k": ProtocolSpec("imagenet256-smoke5k", 5_000, 1000, 256, chunk_size=125, metrics=ADM_METRICS),
    # 50k ImageNet val images through center_crop_arr, reconstructed; FID vs the val set's own stats
    "imagenet256-rfid50k": ProtocolSpec("imagenet256-rfid50k", 50_000, 1000, 256, chunk_size=125, metrics=("fid",)),
    # embedded natural patches: 20 samples for each photo class at 32 px (CPU demo and CI)
    "demo": ProtocolSpec("demo", 20 * EMBEDDED_CLASSES, EMBEDDED_CLASSES, 32, chunk_size=25, metrics=("fid", "kid")),
}

DESCRIPTIONS: dict[str, str] = {
    "imagenet256-gfid50k": "gFID: 50,000 class-balanced samples (i % 1000), 256 px, vs ADM VIRTUAL_imagenet256_labeled.npz",
    "imagenet256-smoke5k": "the first 5,000 samples of imagenet256-gfid50k (same seeds), for quick GPU checks",
    "imagenet256-rfid50k": "rFID: ImageNet val 50k, ADM center_crop_arr 256, reconstructions vs val statistics",
    "demo": f"embedded natural patches: {EMBEDDED_CLASSES} photo classes x 20 samples, 32 px, chunks of 25",
}


def get_protocol(name: str) -> ProtocolSpec:
    if name not in PROTOCOLS:
        close = difflib.get_close_matches(name, list(PROTOCOLS), n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise RegistryError(f"unknown protocol {name!r}{hint} (known: {', '.join(PROTOCOLS)})")
    return PROTOCOLS[name]


def with_overrides(protocol: ProtocolSpec, **changes) -> ProtocolSpec:
    """A copy with some fields replaced (None values ignored); re-validates."""
    return dataclasses.replace(protocol, **{k: v for k, v in changes.items() if v is not None})

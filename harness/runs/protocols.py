"""The named protocols (a suite or ``sample --protocol NAME`` starts from one).

They are entries of the ``protocols`` registry (``harness.core.registry``): ``harness/core/plugins.py`` names
each constant below lazily with its one-line description, so ``alitok-bench list protocols`` shows
them without importing this module, and an outside package can add its own through the
``alitok_bench.plugins`` entry point. ``harness.runs.specs`` looks names up through the registry, never by
importing this module, so the two do not import each other.
"""

from __future__ import annotations

import dataclasses

from harness.core.registry import load_plugins, protocols
from harness.data.embedded import NUM_CLASSES as EMBEDDED_CLASSES
from harness.runs.specs import ProtocolSpec

ADM_METRICS = ("fid", "is", "sfid", "prec", "recall")

# 50 per class, interleaved (i % 1000); reference = ADM VIRTUAL_imagenet256_labeled.npz (user passes its path)
IMAGENET256_GFID50K = ProtocolSpec("imagenet256-gfid50k", 50_000, 1000, 256, chunk_size=125, metrics=ADM_METRICS)
# the first 5,000 samples of the 50k run (same sampling identity), for smoke tests on a GPU
IMAGENET256_SMOKE5K = ProtocolSpec("imagenet256-smoke5k", 5_000, 1000, 256, chunk_size=125, metrics=ADM_METRICS)
# 50k ImageNet val images through center_crop_arr, reconstructed; FID vs the val set's own stats
IMAGENET256_RFID50K = ProtocolSpec("imagenet256-rfid50k", 50_000, 1000, 256, chunk_size=125, metrics=("fid",))
# embedded natural patches: 20 samples for each photo class at 32 px (CPU demo and CI)
DEMO = ProtocolSpec("demo", 20 * EMBEDDED_CLASSES, EMBEDDED_CLASSES, 32, chunk_size=25, metrics=("fid", "kid"))


def get_protocol(name: str) -> ProtocolSpec:
    """The registered protocol ``name`` (unknown names get a one-line "did you mean")."""
    load_plugins()
    return protocols.get(name)


def with_overrides(protocol: ProtocolSpec, **changes) -> ProtocolSpec:
    """A copy with some fields replaced (None values ignored); re-validates."""
    return dataclasses.replace(protocol, **{k: v for k, v in changes.items() if v is not None})

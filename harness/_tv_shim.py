"""Make PyPI torchvision importable beside the CPU torch wheel.

PyPI's torchvision ``_C.so`` links CUDA libraries the CPU torch lacks; its import then dies in
``_meta_registrations.py`` on ``register_fake("torchvision::nms")``. Defining the two ops it
registers unconditionally (``nms``, ``qnms``) lets everything but the C++ ops import.
Where torch and torchvision match (a GPU machine), the real library loads and we step aside.
"""
from __future__ import annotations

import importlib.util
import os
import sys

_LIB = None  # keep a reference: a torch.library.Library drops its ops when garbage-collected


def install() -> bool:
    """Install the shim if needed; return True when it was installed."""
    global _LIB
    if _LIB is not None or "torchvision" in sys.modules:
        return False
    spec = importlib.util.find_spec("torchvision")
    if spec is None or not spec.submodule_search_locations:
        return False
    import torch

    so = os.path.join(list(spec.submodule_search_locations)[0], "_C.so")
    try:
        torch.ops.load_library(so)
        return False  # matching builds: the real ops are there
    except (OSError, RuntimeError):
        pass
    try:  # someone already defined them in this process
        torch.ops.torchvision.nms  # noqa: B018
        return False
    except (AttributeError, RuntimeError):
        pass
    _LIB = torch.library.Library("torchvision", "FRAGMENT")
    for op in ("nms", "qnms"):
        _LIB.define(f"{op}(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    return True

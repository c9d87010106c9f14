"""Make PyPI torchvision importable beside the CPU torch wheel, installed lazily.

PyPI's torchvision ``_C.so`` links CUDA libraries the CPU torch lacks; its import then dies in
``_meta_registrations.py`` on ``register_fake("torchvision::nms")``. Defining the two ops it
registers unconditionally (``nms``, ``qnms``) lets everything but the C++ ops import.
Where torch and torchvision match (a GPU machine), the real library loads and we step aside.

``import harness`` must not import torch (``alitok-bench --help`` and ``list`` stay fast), so
``harness/__init__.py`` only calls :func:`install_on_first_import`: a ``sys.meta_path`` hook that runs
:func:`install` the moment anything (torch-fidelity, timm, a test) first imports torchvision, then
removes itself. It finds nothing itself; the normal import machinery loads torchvision.
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import os
import sys

_LIB = None  # keep a reference: a torch.library.Library drops its ops when garbage-collected


def install() -> bool:
    """Install the shim if needed; return True when it was installed."""
    global _LIB
    if _LIB is not None or "torchvision" in sys.modules:
        return False
    _remove_hook()  # find_spec below must not re-enter the hook
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


class _InstallOnImport(importlib.abc.MetaPathFinder):
    """Runs :func:`install` when ``torchvision`` is first imported; never finds a module itself."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname == "torchvision":
            install()
        return None


_HOOK = _InstallOnImport()


def _remove_hook() -> None:
    if _HOOK in sys.meta_path:
        sys.meta_path.remove(_HOOK)


def install_on_first_import() -> None:
    """Arrange for :func:`install` to run just before torchvision's first import (idempotent)."""
    if "torchvision" in sys.modules or _LIB is not None:
        return
    if _HOOK not in sys.meta_path:
        sys.meta_path.insert(0, _HOOK)

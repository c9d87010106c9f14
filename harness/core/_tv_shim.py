"""Make PyPI torchvision importable beside the CPU torch wheel, installed lazily.

PyPI's torchvision ``_C.so`` links CUDA libraries the CPU torch lacks; its import then dies in
``_meta_registrations.py`` on ``register_fake("torchvision::nms")``. Defining the two ops it
registers unconditionally (``nms``, ``qnms``) lets everything but the C++ ops import.
Where torch and torchvision match (a GPU machine), the real library loads and we step aside.

``import harness`` must not import torch (``alitok-bench --help`` and ``list`` stay fast), so
``harness/__init__.py`` only calls :func:`install_on_first_import`: a ``sys.meta_path`` hook that runs
:func:`install` the moment anything (torch-fidelity, timm, a test) first imports torchvision, then
removes itself. It finds nothing itself; the normal import machinery loads torchvision.

The field's own tools (torch-fidelity's ``fidelity``, clean-fid, a notebook) never import ``harness``, so in
this environment they die on the same import. ``python -m harness.core._tv_shim install`` (``make setup`` runs
it) writes ``alitok_bench_tv_shim.pth`` into site-packages: at interpreter start it loads this file on its own
(not the ``harness`` package, whose import sets ``HF_HUB_OFFLINE``) and arms the same hook. This module
imports only the standard library at the top for that reason.
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


PTH_NAME = "alitok_bench_tv_shim.pth"

# One line (site.py runs .pth lines that start with "import"): find the harness package without importing it,
# load this file as a standalone module, keep it in sys.modules (its _LIB owns the ops: a module nobody holds
# is collected with its Library, and the ops vanish mid-process) and arm the hook. Where harness is gone, it
# does nothing.
PTH_LINE = (
    "import sys, importlib.util as _u; _s = _u.find_spec('harness'); "
    "_f = _s and _s.submodule_search_locations and _u.spec_from_file_location("
    "'_alitok_bench_tv_shim', list(_s.submodule_search_locations)[0] + '/core/_tv_shim.py'); "
    "_m = _f and _u.module_from_spec(_f); _f and _f.loader.exec_module(_m); "
    "_m and sys.modules.setdefault('_alitok_bench_tv_shim', _m); _m and _m.install_on_first_import()\n"
)


def install_pth(site_dir: str | None = None) -> str:
    """Write the .pth into ``site_dir`` (default: this interpreter's site-packages); returns its path."""
    import sysconfig

    folder = site_dir or sysconfig.get_paths()["purelib"]
    path = os.path.join(folder, PTH_NAME)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(PTH_LINE)
    os.replace(tmp, path)
    return path


if __name__ == "__main__":
    if sys.argv[1:2] != ["install"] or len(sys.argv) > 3:
        raise SystemExit("usage: python -m harness.core._tv_shim install [SITE_PACKAGES_DIR]")
    print(f"wrote {install_pth(sys.argv[2] if len(sys.argv) > 2 else None)}")

"""Build a CPU kernel library once per machine and load the ``torch.library`` operators it registers.

``load(name, sources)`` compiles the C files among ``sources`` with ``$CC`` (default ``gcc``; ``-O3
-march=<march> -fopenmp``) and the C++ files, which register the operators with checked arguments
(``TORCH_LIBRARY``), with ``$CXX`` (default ``g++``) against the running PyTorch's headers, links them
against PyTorch's libraries (its libgomp too, so OpenMP keeps one thread pool) and loads the result with
``torch.ops.load_library``.

The library is cached at ``<cache>/kernels/<name>-<digest>/<name>.so`` (cache: ``$ALITOK_BENCH_CACHE`` or
``~/.cache/alitok-bench``). The digest covers the bytes of every source and of the headers beside them,
the compilers named, every flag and the torch version, so an edited kernel or another PyTorch builds
anew, and an unchanged one is loaded without running a compiler (``compiler_runs()`` counts this
process's runs; tests check a second load makes none). The build happens in a temporary folder beside
the target and is renamed into place, so a killed build leaves no half-written library and two processes
building at once both end with a whole one.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path

import torch

from harness.core.io import cache_root

_lock = threading.Lock()
_loaded: dict[Path, Path] = {}  # library path -> itself, once loaded in this process
_runs = 0


class BuildError(RuntimeError):
    """The compiler is missing or refused a source; the message names the command and its last error line."""


def compiler_runs() -> int:
    """How many times this process has run a compiler (a cached library is loaded with none)."""
    return _runs


def _commands(
    sources: Sequence[Path], out: Path, march: str, defines: Sequence[str]
) -> tuple[list[list[str]], list[str]]:
    """The compile commands (one per source, objects beside ``out``) and the link command."""
    from torch.utils import cpp_extension

    cc, cxx = os.environ.get("CC", "gcc"), os.environ.get("CXX", "g++")
    torch_lib = cpp_extension.library_paths()[0]
    abi = f"-D_GLIBCXX_USE_CXX11_ABI={int(torch._C._GLIBCXX_USE_CXX11_ABI)}"
    includes = [f"-I{p}" for p in cpp_extension.include_paths()]
    compiles, objects = [], []
    for src in sources:
        obj = str(out.with_name(f"{src.name}.o"))
        objects.append(obj)
        if src.suffix == ".c":
            compiles.append([cc, "-O3", f"-march={march}", "-fopenmp", "-fPIC", *defines, "-c", str(src), "-o", obj])
        else:  # the operator registration: ordinary C++ against PyTorch, no instruction-set tuning needed
            compiles.append([cxx, "-O2", "-std=c++20", "-fPIC", abi, *includes, *defines, "-c", str(src), "-o", obj])
    link = [cxx, "-shared", *objects, "-o", str(out), "-fopenmp", f"-L{torch_lib}", f"-Wl,-rpath,{torch_lib}"]
    return compiles, link + ["-lc10", "-ltorch_cpu", "-ltorch"]


def digest(sources: Sequence[Path], march: str = "native", defines: Sequence[str] = ()) -> str:
    """sha256 of what decides the library's bytes: sources, the headers beside them, compilers, flags, torch."""
    h = hashlib.sha256()
    files = {Path(s) for s in sources} | {p for s in sources for p in Path(s).parent.glob("*.h")}
    for path in sorted(files):
        h.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    compiles, link = _commands([Path(s) for s in sources], Path("lib.so"), march, defines)
    h.update(repr((compiles, link, torch.__version__)).encode())
    return h.hexdigest()


def library_path(name: str, sources: Sequence[Path], march: str = "native", defines: Sequence[str] = ()) -> Path:
    return cache_root() / "kernels" / f"{name}-{digest(sources, march, defines)[:20]}" / f"{name}.so"


def _build(target: Path, sources: Sequence[Path], march: str, defines: Sequence[str]) -> None:
    global _runs
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".build-", dir=target.parent))
    try:
        out = tmp / target.name
        compiles, link = _commands(sources, out, march, defines)
        for what, cmd in [*zip((s.name for s in sources), compiles), ("linking", link)]:
            _runs += 1
            try:
                proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
            except (OSError, subprocess.SubprocessError) as e:
                raise BuildError(f"{cmd[0]} on {what}: {e}") from None
            if proc.returncode:
                last = (proc.stderr.strip().splitlines() or [f"exit status {proc.returncode}"])[-1]
                raise BuildError(f"{cmd[0]} failed on {what}: {last}")
        os.replace(out, target)  # whole or absent: a concurrent builder's rename leaves an equal file
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def load(name: str, sources: Sequence[Path], *, march: str = "native", defines: Sequence[str] = ()) -> Path:
    """Build ``sources`` into the cached library (unless it is there already) and load its operators.
    Returns the library's path; raises ``BuildError`` where it cannot be built."""
    sources = [Path(s) for s in sources]
    target = library_path(name, sources, march, defines)
    with _lock:
        if target not in _loaded:
            if not target.is_file():
                _build(target, sources, march, defines)
            torch.ops.load_library(str(target))
            _loaded[target] = target
    return target

"""Which CPU kernel to run, chosen on the machine that runs it: a short measurement at first use,
cached per CPU model, torch version, thread count and shapes class.

Why: the oneDNN packed Linear and the C decode-attention kernel were tuned on one CPU (an AMD EPYC);
which path wins depends on the CPU's vector units, caches and memory system, so a default that won
there is not evidence for another machine. ``choose(kind, shapes, candidates)`` times every candidate
(warm-up call, then ``rounds`` interleaved rounds; the minimum per candidate, since a loaded machine
only adds time) and keeps the fastest. The result is stored in ``<cache>/kernel_choice.json`` (cache:
``$ALITOK_BENCH_CACHE`` or ``~/.cache/alitok-bench``, as the feature cache) under a key naming the
kind, the shapes class and the machine, so a later process reuses it without measuring; ``recorded()``
lists the choices this process made, with their timings and source, for the bench records.

``$ALITOK_BENCH_KERNELS=measure`` ignores the cached file (measures again and overwrites it): do that
once on a quiet machine where the stored entry's ``load_average`` shows it was measured under load.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from harness.core.devices import cpu_model
from harness.core.io import write_json_atomic

CACHE_NAME = "kernel_choice.json"
_lock = threading.Lock()
_choices: dict[str, dict[str, Any]] = {}


def machine_key() -> str:
    return f"{cpu_model()} | torch {torch.__version__} | {torch.get_num_threads()} threads"


def cache_root() -> Path:
    """The project's cache folder: ``$ALITOK_BENCH_CACHE`` or ``~/.cache/alitok-bench``."""
    return Path(os.environ.get("ALITOK_BENCH_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "alitok-bench"))


def cache_file() -> Path:
    return cache_root() / CACHE_NAME


def _read_cache(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}  # missing or damaged: measure again (the file is rewritten whole)
    return data if isinstance(data, dict) else {}


def _measure(candidates: dict[str, Callable[[], Any]], rounds: int) -> dict[str, float]:
    for fn in candidates.values():
        fn()  # warm-up: first-call allocations, lazy builds
    best = {name: float("inf") for name in candidates}
    for _ in range(rounds):  # interleaved, so a load change hits every candidate alike
        for name, fn in candidates.items():
            t = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - t)
    return best


def choose(kind: str, shapes: str, candidates: dict[str, Callable[[], Any]], rounds: int = 5) -> str:
    """The fastest of ``candidates`` (name -> a call of a representative workload) on this machine for
    ``kind`` at ``shapes`` (a short class label, e.g. ``fp32 768x2304 rows 4,32``)."""
    key = f"{kind} | {shapes} | {machine_key()}"
    with _lock:
        hit = _choices.get(key)
        if hit is not None and hit["choice"] in candidates:
            return hit["choice"]
        path = cache_file()
        cached = {} if os.environ.get("ALITOK_BENCH_KERNELS") == "measure" else _read_cache(path)
        entry = cached.get(key)
        if isinstance(entry, dict) and entry.get("choice") in candidates:
            entry = {**entry, "source": f"cached ({path})"}
        else:
            seconds = _measure(candidates, rounds)
            entry = {
                "choice": min(seconds, key=seconds.get),
                "seconds": seconds,
                "rounds": rounds,
                "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "load_average": _load(),
            }  # a choice made on a loaded machine says so
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                write_json_atomic(path, {**_read_cache(path), key: entry})
            except OSError:
                pass  # a read-only cache only costs a measurement next time
            entry = {**entry, "source": "measured"}
        _choices[key] = {"kind": kind, "shapes": shapes, "machine": machine_key(), **entry}
        return entry["choice"]


def _load() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def recorded() -> list[dict[str, Any]]:
    """The choices made in this process: kind, shapes, machine, choice, per-candidate seconds, source."""
    with _lock:
        return [dict(v) for v in _choices.values()]


def forget() -> None:
    """Drop this process's choices (tests; the cached file stays)."""
    with _lock:
        _choices.clear()

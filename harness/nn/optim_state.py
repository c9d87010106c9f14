"""Optimizer state for resuming a training run, read without unpickling arbitrary objects.

``torch.load(weights_only=True)`` refuses anything but tensors, numbers, strings and containers; an
optimizer state saved with other objects (a scheduler closure, a custom class) is refused with one
line naming the file, instead of an ``UnpicklingError`` traceback. Bottom floor: errors, io only.
"""
from __future__ import annotations

import os
import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch

from harness.errors import InputFileError
from harness.io import atomic_target


def load_optimizer_state(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """The ``optimizer.state_dict()`` saved at ``path`` (``{"state": ..., "param_groups": [...]}``)."""
    p = Path(path)
    if not p.is_file():
        raise InputFileError(p, "no such optimizer state file")
    if p.stat().st_size == 0:
        raise InputFileError(p, "optimizer state file is empty (0 bytes)")
    try:
        state = torch.load(p, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else "unsupported object"
        raise InputFileError(p, f"refused by weights_only loading (holds more than tensors and plain values: "
                                f"{first[:160]}); delete it to restart the optimizer, or re-save state_dict() only") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, ValueError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise InputFileError(p, f"not a readable optimizer state ({first[:160]})") from None
    if not isinstance(state, dict) or not isinstance(state.get("param_groups"), list) or "state" not in state:
        raise InputFileError(p, "not an optimizer state_dict (needs 'state' and 'param_groups')")
    return state


def save_optimizer_state(optimizer: torch.optim.Optimizer, path: str | os.PathLike) -> None:
    """Atomically save ``optimizer.state_dict()`` in a form ``load_optimizer_state`` accepts."""
    with atomic_target(path, ".pt") as tmp:
        torch.save(optimizer.state_dict(), tmp)

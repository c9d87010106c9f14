"""Checkpoint I/O that never unpickles arbitrary objects.

- ``.safetensors``: tensors plus string metadata (our own checkpoints: config, seed, git sha).
- ``.pth`` / ``.bin`` / ``.pt``: ``torch.load(weights_only=True, mmap=True)`` (the official AliTok files
  are plain pickled state dicts): read once, the tensors backed by the mapped file, so peak memory
  is about one copy of the weights (the model's); anything that is not a flat ``{str: Tensor}``
  mapping (or one of those under a wrapper key such as ``ema``) is refused. Mapped tensors read the
  file until copied (``load_state_dict(..., assign=True)`` keeps them mapped): replace a checkpoint
  with a new file (``os.replace``), never rewrite one in place while a run reads it.
  The one global allowed besides tensors is ``argparse.Namespace`` (``SAFE_GLOBALS``): training
  checkpoints (LlamaGen ``autoregressive/train/train_c2i.py``) pickle their ``args`` beside the weights.
- wrappers are unwrapped as LlamaGen's sampling scripts do: ``model``, else ``module``, else ``state_dict``
  (``EMA_FIRST`` puts a training checkpoint's ``ema`` before them).
Every failure is a one-line ``CheckpointError`` naming the file.

Inside ``with planning():`` (``alitok-bench validate``) nothing is read but headers: state dicts come
back as meta tensors of the right shapes, models stay on the meta device, keys and shapes are still
checked strictly. So a 662M-parameter generator is planned in milliseconds, without its weights in memory.
"""

from __future__ import annotations

import argparse
import contextlib
import contextvars
import hashlib
import json
import os
import pickle
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from harness.core.errors import UserError, one_line
from harness.core.io import atomic_target


class CheckpointError(UserError, ValueError):
    """A checkpoint that is missing, truncated, not a plain state dict, or for another model."""


def _fail(path: Path, problem: str) -> CheckpointError:
    return CheckpointError(f"{path}: {problem}")


# an attribute bag with no code of its own: unpickling one runs nothing (no __setstate__, no __reduce__)
SAFE_GLOBALS = (argparse.Namespace,)
_PLANNING = contextvars.ContextVar("checkpoint_planning", default=False)
_SAFETENSORS_DTYPES = {
    "F64": torch.float64,
    "F32": torch.float32,
    "F16": torch.float16,
    "BF16": torch.bfloat16,
    "I64": torch.int64,
    "I32": torch.int32,
    "I16": torch.int16,
    "I8": torch.int8,
    "U8": torch.uint8,
    "BOOL": torch.bool,
}


@contextlib.contextmanager
def planning():
    """Load shapes only (meta tensors) and keep models on the meta device, for planning a run."""
    token = _PLANNING.set(True)
    try:
        yield
    finally:
        _PLANNING.reset(token)


def is_planning() -> bool:
    return _PLANNING.get()


def _safetensors_on_meta(p: Path) -> dict[str, torch.Tensor]:
    from safetensors import safe_open

    with safe_open(str(p), framework="pt") as f:
        return {
            k: torch.empty(
                f.get_slice(k).get_shape(),
                dtype=_SAFETENSORS_DTYPES.get(f.get_slice(k).get_dtype(), torch.float32),
                device="meta",
            )
            for k in f.keys()
        }


WRAPPERS = ("model", "module", "state_dict")  # wrappers of a state dict, in LlamaGen sample_c2i.py's order
EMA_FIRST = ("ema",) + WRAPPERS  # training checkpoints (DiT, SiT, LightningDiT train.py): the EMA weights


def _torch_load(p: Path) -> Any:
    """One weights-only read, memory-mapped (files in the zip format; older ones are read normally)."""
    with torch.serialization.safe_globals(list(SAFE_GLOBALS)):
        if is_planning():  # meta storages: the tensor bytes are never read
            return torch.load(p, map_location="meta", weights_only=True, mmap=True)
        try:
            return torch.load(p, map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError as e:
            if "mmap" not in str(e):  # legacy (pre-zip) serialisation cannot be mapped
                raise
            return torch.load(p, map_location="cpu", weights_only=True)


def load_state_dict(
    path: str | os.PathLike, prefix: str | None = None, wrappers: tuple[str, ...] = WRAPPERS
) -> dict[str, torch.Tensor]:
    """Read a flat state dict from safetensors or a weights-only torch pickle (read once, mapped).

    ``prefix`` selects a sub-dict (e.g. ``"model."``) and strips it, for checkpoints that wrap.
    Without a prefix, the first of ``wrappers`` that holds a tensor dict is unwrapped
    (``EMA_FIRST``: a training checkpoint's ``["ema"]`` before its ``["model"]``).
    """
    p = Path(path)
    if not p.is_file():
        raise _fail(p, "no such checkpoint file")
    if p.stat().st_size == 0:  # torch.load raises a message-less EOFError on these
        raise _fail(p, "empty file (0 bytes): an interrupted download or copy?")
    if p.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            sd = _safetensors_on_meta(p) if is_planning() else load_file(str(p))
        except (SafetensorError, OSError, ValueError, RuntimeError) as e:
            raise _fail(p, f"not a readable safetensors file ({one_line(e)[:120]})") from None
    else:
        try:
            sd = _torch_load(p)
        except pickle.UnpicklingError as e:
            msg = one_line(e)[:160]
            raise _fail(p, f"refused by weights_only loading (not a plain state dict): {msg}") from None
        # a legacy-format file of garbage reaches the weights-only unpickler's opcodes, which fail with
        # whatever lookup broke (a 5-byte text file: KeyError on its memo)
        except (
            RuntimeError,
            EOFError,
            zipfile.BadZipFile,
            OSError,
            ValueError,
            KeyError,
            IndexError,
            TypeError,
            AttributeError,
        ) as e:
            raise _fail(p, f"truncated or corrupt checkpoint ({type(e).__name__}: {one_line(e)[:120]})") from None
    if isinstance(sd, Mapping) and prefix is None:
        for key in wrappers:
            if (
                key in sd
                and isinstance(sd[key], Mapping)
                and all(isinstance(v, torch.Tensor) for v in sd[key].values())
            ):
                sd = sd[key]
                break
    if not isinstance(sd, Mapping) or not sd:
        raise _fail(p, f"expected a non-empty state dict, got {type(sd).__name__}")
    bad = [k for k, v in sd.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)]
    if bad:
        raise _fail(p, f"not a plain state dict: entry {bad[0]!r} is not a tensor")
    if prefix:
        sd = {k[len(prefix) :]: v for k, v in sd.items() if k.startswith(prefix)}
        if not sd:
            raise _fail(p, f"no keys start with {prefix!r}")
    return dict(sd)


def check_state_dict(
    model: torch.nn.Module,
    sd: Mapping[str, torch.Tensor],
    path: str | os.PathLike,
    what: str,
    allow_unexpected: bool = False,
) -> list[str]:
    """Strict key and shape check with a one-line explanation (wrong architecture, wrong size).
    ``allow_unexpected``: keys the model lacks are returned instead of refused (for models whose
    official loader is non-strict); missing keys and wrong shapes are always errors."""
    own = model.state_dict()
    missing = [k for k in own if k not in sd]
    extra = [k for k in sd if k not in own]
    unexpected = [] if allow_unexpected else extra
    shape = [k for k in own if k in sd and tuple(own[k].shape) != tuple(sd[k].shape)]
    if missing or unexpected or shape:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing keys (e.g. {missing[0]})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected keys (e.g. {unexpected[0]})")
        if shape:
            k = shape[0]
            parts.append(
                f"{len(shape)} shape mismatches (e.g. {k}: checkpoint {tuple(sd[k].shape)} vs model {tuple(own[k].shape)})"
            )
        raise CheckpointError(f"{path}: not a {what} checkpoint: " + "; ".join(parts))
    return sorted(extra)


def load_strict(
    build_on_meta,
    sd: Mapping[str, torch.Tensor],
    path: str | os.PathLike,
    what: str,
    device: torch.device | str = "cpu",
    allow_unexpected: bool = False,
) -> torch.nn.Module:
    """Build on the meta device (no allocation, no init), check keys/shapes, then materialise on
    ``device`` and load strictly. Modules must create non-persistent buffers lazily (RoPE tables,
    KV caches), since ``to_empty`` leaves them uninitialised.

    ``allow_unexpected`` (an official loader that is non-strict, e.g. LlamaGen's GPT): keys the model
    lacks are skipped and listed in ``model.checkpoint_unexpected_keys`` for the run's record."""
    model = build_on_meta()
    extra = check_state_dict(model, sd, path, what, allow_unexpected)
    if extra:
        sd = {k: v for k, v in sd.items() if k not in set(extra)}
    model.checkpoint_unexpected_keys = extra
    if is_planning():
        return model.eval()
    model = model.to_empty(device=device)
    model.load_state_dict(sd, strict=True)
    return model.eval()


def read_metadata(path: str | os.PathLike) -> dict[str, str]:
    p = Path(path)
    if p.suffix != ".safetensors":
        return {}
    from safetensors import safe_open

    with safe_open(str(p), framework="pt") as f:
        return dict(f.metadata() or {})


def save_safetensors(
    path: str | os.PathLike, state_dict: Mapping[str, torch.Tensor], metadata: Mapping[str, Any] | None = None
) -> Path:
    """Atomic save; non-string metadata values are stored as JSON strings."""
    from safetensors.torch import save_file

    p = Path(path)
    meta = {k: v if isinstance(v, str) else json.dumps(v, sort_keys=True) for k, v in (metadata or {}).items()}
    tensors = {k: v.detach().contiguous().cpu() for k, v in state_dict.items()}
    with atomic_target(p) as tmp:
        save_file(tensors, str(tmp), metadata=meta)
    return p


def state_dict_sha256(state_dict: Mapping[str, torch.Tensor]) -> str:
    """sha256 of the weights themselves, not of a file holding them: for each tensor, names sorted, its name,
    dtype and shape (as JSON) then its bytes (contiguous, CPU, native = little-endian order). Two files with
    equal tensors (saved by another torch version, under another temporary name, in another key order) give
    one digest; any changed value, dtype, shape or name gives another."""
    h = hashlib.sha256()
    for name in sorted(state_dict):
        t = state_dict[name].detach().cpu().contiguous()
        h.update(json.dumps([name, str(t.dtype).removeprefix("torch."), list(t.shape)]).encode() + b"\0")
        h.update(memoryview(t.reshape(-1).view(torch.uint8).numpy()))
    return h.hexdigest()

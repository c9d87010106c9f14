"""Upstream's own samplers, imported at run time from a folder of official checkouts the user names
(``bench --upstream DIR``, ``ar_floor_report --upstream DIR``), given the weights of the project's
model, so both are timed in one process, interleaved, on the same weights.

Nothing of upstream is copied here: ``UPSTREAM/alitok`` is put on ``sys.path`` for the import only,
its ``demo_util.get_config`` reads its own ``configs/alitok_{b,l,xl}.yaml``, its ``modeling.ar.ARModel``
is built from that config and loaded (``load_state_dict``, strict) with the project model's state
dict (the project's AliTok modules use the released key names), and a run is its ``ARModel.generate``
called as ``demo_util.sample_fn`` calls it (``condition``, ``guidance_scale``, ``guidance_scale_pow``,
``randomize_temperature``), under ``torch.manual_seed`` of the run's seed (upstream samples from the
global RNG). Imported modules are recorded with their files and the checkout's git commit, so a record
shows which code ran; an import that resolves outside the checkout is refused.

Upstream checkouts reuse top-level module names (``modeling``, ``models``), so each import first hides
the names the checkout defines from ``sys.modules`` and puts them back after; the loaded classes keep
their own module globals.

Families wired so far: AliTok (ali-vilab/alitok, ``modeling/ar.py``). For any other model
``bench --upstream`` names it among the skipped rows ("no upstream adapter") rather than dropping it silently.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from harness.core.errors import UserError
from harness.core.interfaces import ARSampling, Generator

_lock = threading.Lock()


@dataclasses.dataclass(frozen=True)
class Adapter:
    """How one registered model maps onto an upstream checkout."""

    checkout: str  # folder under UPSTREAM
    config: str  # the checkout's config file for this size
    module: str  # the module holding the model class
    cls: str  # the model class; its ``generate`` is what runs


# registry name (with or without the -random suffix) -> upstream
ADAPTERS: dict[str, Adapter] = {
    f"alitok-{size}": Adapter("alitok", f"configs/alitok_{size}.yaml", "modeling.ar", "ARModel")
    for size in ("b", "l", "xl")
}


def adapter_for(name: str) -> Adapter | None:
    return ADAPTERS.get(name.removesuffix("-random"))


def git_commit(checkout: Path) -> dict[str, Any]:
    """``{"commit": sha or None, "dirty": bool or None}`` of a checkout (None where it is not a git tree)."""

    def git(*args: str) -> str | None:
        try:
            return subprocess.run(
                ["git", "-C", str(checkout), *args], check=True, capture_output=True, text=True, timeout=30
            ).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return None

    commit = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no") if commit else None
    return {"commit": commit, "dirty": None if status is None else bool(status)}


def _top_level_names(checkout: Path) -> set[str]:
    return {
        p.stem if p.suffix == ".py" else p.name
        for p in checkout.iterdir()
        if (p.suffix == ".py" and p.is_file()) or (p.is_dir() and not p.name.startswith("."))
    }


@contextlib.contextmanager
def _importing_from(checkout: Path) -> Iterator[None]:
    """``checkout`` first on ``sys.path`` with its top-level names hidden from ``sys.modules`` (another
    checkout's ``modeling`` must not answer); everything put back on exit."""
    names = _top_level_names(checkout)
    with _lock:
        hidden = {k: sys.modules.pop(k) for k in list(sys.modules) if k.split(".")[0] in names}
        sys.path.insert(0, str(checkout))
        importlib.invalidate_caches()
        try:
            yield
        finally:
            sys.path.remove(str(checkout))
            for k in [k for k in sys.modules if k.split(".")[0] in names]:
                del sys.modules[k]
            sys.modules.update(hidden)


def _module_file(module: Any, checkout: Path) -> str:
    path = Path(getattr(module, "__file__", None) or "").resolve()
    if checkout not in path.parents:
        raise UserError(f"--upstream: {module.__name__} was imported from {path}, not from {checkout}")
    return str(path)


def load_official(
    name: str, upstream: Path, state_dict: dict[str, torch.Tensor], device: torch.device | str = "cpu"
) -> tuple[torch.nn.Module, dict[str, Any]]:
    """Upstream's model class for registry model ``name``, built from its own config and loaded
    strictly with ``state_dict`` -> ``(model, provenance)``."""
    adapter = adapter_for(name)
    if adapter is None:
        raise UserError(f"--upstream: no upstream adapter for {name} (wired: {', '.join(ADAPTERS)})")
    checkout = (Path(upstream) / adapter.checkout).resolve()
    if not (checkout / adapter.config).is_file():
        raise UserError(
            f"--upstream: {checkout / adapter.config}: not found (expected the official "
            f"{adapter.checkout} checkout under {upstream})"
        )
    try:
        with _importing_from(checkout):
            demo_util = importlib.import_module("demo_util")
            module = importlib.import_module(adapter.module)
            files = {m.__name__: _module_file(m, checkout) for m in (demo_util, module)}
            config = demo_util.get_config(str(checkout / adapter.config))
            model = getattr(module, adapter.cls)(config)
    except ImportError as e:  # upstream's own requirements (einops, omegaconf) missing
        raise UserError(
            f"--upstream: importing {checkout} failed: {e} (pip install einops omegaconf: upstream's requirements)"
        ) from None
    try:
        model.load_state_dict(state_dict, strict=True)
    except RuntimeError as e:
        raise UserError(
            f"--upstream: {name}'s weights do not load into {adapter.module}.{adapter.cls}: {str(e).splitlines()[0]}"
        ) from None
    model.eval().requires_grad_(False).to(device)  # as demo_util.get_ar_generator leaves it
    _check_same_weights(model, state_dict)
    provenance = {
        "checkout": str(checkout),
        **git_commit(checkout),
        "config": adapter.config,
        "files": files,
        "function": f"{adapter.module}.{adapter.cls}.generate",
        "weights": "the project model's state dict, loaded strictly",
    }
    return model, provenance


def _check_same_weights(model: torch.nn.Module, state_dict: dict[str, torch.Tensor]) -> None:
    theirs = model.state_dict()
    for key, value in state_dict.items():
        if not torch.equal(theirs[key].cpu(), value.cpu()):
            raise UserError(f"--upstream: {key} differs after loading (the official model changed it)")


class UpstreamARGenerator(Generator):
    """Upstream's ``generate`` behind the bench's generator hooks, on the project model's weights.

    Codes come from upstream's code; ``decode_codes`` uses the project's tokenizer (the same decoder
    for both rows of a comparison: what is compared is the token sampler, ``generation_s``).
    ``run_steps(n)`` runs upstream's ``generate`` with its ``image_seq_len`` set to ``n`` for the call:
    upstream's own loop, fewer steps (its CFG schedule then spans ``n`` steps; costs per step are
    unchanged)."""

    uniform_step_cost = False  # upstream's concatenating KV cache grows every step

    def __init__(self, project: Generator, upstream: Path, name: str | None = None):
        self.project = project
        self.model, self.provenance = load_official(
            name or project.name, upstream, project.model.state_dict(), project.device
        )
        self.name = f"{project.name}-official"
        self.tokenizer = project.tokenizer
        self.num_classes, self.image_size = project.num_classes, project.image_size
        self.quantization = project.quantization
        self.dtype = getattr(project, "dtype", torch.float32)
        if self.dtype != torch.float32:
            raise UserError("--upstream: upstream's generate runs in fp32 (as released); use --dtype fp32 or tf32")
        self.calls = 0

    @property
    def default_sampling(self) -> ARSampling:
        return self.project.default_sampling

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def _kwargs(self, params: ARSampling) -> dict[str, Any]:
        if params.cfg_schedule != "power-cosine" or params.top_k or params.top_p != 1.0 or params.cfg_interval != -1:
            raise UserError(
                f"--upstream: upstream's generate samples with the power-cosine CFG schedule and no "
                f"top-k/top-p; {self.project.name}'s parameters ({params.to_dict()}) differ"
            )
        # guidance_scale 0 is upstream's no-CFG path (one batch); 1.0 would still double it
        return {
            "guidance_scale": params.cfg_scale if params.cfg_scale != 1.0 else 0.0,
            "randomize_temperature": params.temperature,
            "guidance_scale_pow": params.cfg_power,
        }

    @torch.inference_mode()
    def generate_codes(
        self, labels: torch.Tensor, generator: torch.Generator, params: ARSampling | None = None
    ) -> torch.Tensor:
        params = params or self.default_sampling
        labels = self.check_labels(labels).to(self.device)
        torch.manual_seed(generator.initial_seed())  # upstream draws from the global RNG
        self.calls += 1
        return self.model.generate(condition=labels, **self._kwargs(params))

    def run_steps(
        self, labels: torch.Tensor, generator: torch.Generator, params: ARSampling | None, n_steps: int
    ) -> torch.Tensor:
        full = self.model.image_seq_len
        self.model.image_seq_len = n_steps
        try:
            codes = self.generate_codes(labels, generator, params)
        finally:
            self.model.image_seq_len = full
        return torch.nn.functional.pad(codes, (0, full - n_steps))

    def total_steps(self, params: ARSampling | None = None) -> int:
        return int(self.model.image_seq_len)

    def decode_codes(self, codes: torch.Tensor) -> torch.Tensor:
        return self.project.decode_codes(codes)

    @torch.inference_mode()
    def generate(
        self, labels: torch.Tensor, generator: torch.Generator, params: ARSampling | None = None
    ) -> torch.Tensor:
        return self.decode_codes(self.generate_codes(labels, generator, params)).to(labels.device)

    def release(self) -> None:
        if hasattr(self.model, "disable_kv_cache"):  # upstream's generate does it too; after an interrupted run
            self.model.disable_kv_cache()

    def linear_kernel(self) -> str:
        return "upstream (nn.Linear: aten)"

    def attention_kernel(self) -> str:
        return "upstream (SDPA, concatenating cache)"

    def info(self) -> dict[str, Any]:
        return {
            **self.project.info(),
            "name": self.name,
            "upstream": self.provenance,
            "linear_kernel": self.linear_kernel(),
            "attention_kernel": self.attention_kernel(),
            "kv_cache": "upstream (torch.cat per step)",
            "decode": f"the project's tokenizer ({self.tokenizer.name})",
        }


def official_generator(project: Generator, upstream: Path, name: str | None = None) -> UpstreamARGenerator:
    """The official sampler for ``project`` (registry ``name``, default its own) from ``upstream``."""
    return UpstreamARGenerator(project, upstream, name)

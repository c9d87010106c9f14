"""Importing upstream's own code from a checkout the user names, and loading the project model's weights
into upstream's model class: the part every family adapter shares (harness.speed.upstream lists them).

Nothing of upstream is copied here: the checkout is put on ``sys.path`` for the import only, the family's
``build`` makes upstream's model class as upstream's own sampling script or config does, and the project
model's state dict is loaded into it strictly (the project's modules use the released key names; tensors
upstream computes at build time and the project does not keep, RoPE tables, are kept as upstream built
them). Imported modules are recorded with their files and the checkout's git commit, so a record shows
which code ran; an import that resolves outside the checkout is refused.

Upstream checkouts reuse top-level module names (``modeling``, ``models``), so each import first hides
the names the checkout defines from ``sys.modules`` and puts them back after; the loaded classes and
functions keep their own module globals.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch

from harness.core.errors import UserError
from harness.core.interfaces import Generator

_lock = threading.Lock()


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


@dataclasses.dataclass(frozen=True)
class Adapter:
    """How one registered model maps onto an upstream checkout."""

    checkout: str  # folder under UPSTREAM
    config: str  # the checkout file the build follows (its config, or the sampling script whose defaults it uses)
    modules: tuple[str, ...]  # imported from the checkout; the build and the sampler use them
    build: Callable[[dict[str, Any], Path, Any], torch.nn.Module]  # (modules, checkout, project) -> upstream's model
    sampler: type  # the UpstreamGenerator subclass that runs upstream's sampling function
    function: str  # that function, as the provenance names it
    kept_as_built: tuple[str, ...] = ()  # key prefixes upstream computes at build and the project does not keep


@dataclasses.dataclass
class Official:
    """Upstream's model, loaded, with the modules it came from and what the record says about them."""

    model: torch.nn.Module
    modules: dict[str, Any]
    provenance: dict[str, Any]


def load_official(adapter: Adapter, name: str, upstream: Path, project: Any) -> Official:
    """Upstream's model class for registry model ``name`` built by ``adapter`` from ``UPSTREAM/<checkout>``
    and loaded strictly with ``project.model``'s state dict."""
    checkout = (Path(upstream) / adapter.checkout).resolve()
    if not (checkout / adapter.config).is_file():
        raise UserError(
            f"--upstream: {checkout / adapter.config}: not found (expected the official "
            f"{adapter.checkout} checkout under {upstream})"
        )
    state_dict = project.model.state_dict(keep_vars=True)
    try:
        with _importing_from(checkout):
            modules = {m: importlib.import_module(m) for m in adapter.modules}
            files = {m: _module_file(mod, checkout) for m, mod in modules.items()}
            model = adapter.build(modules, checkout, project)
    except ImportError as e:  # upstream's own requirements (einops, omegaconf, timm, torchdiffeq) missing
        raise UserError(
            f"--upstream: importing {checkout} failed: {e} (pip install '.[upstream]': upstream's requirements)"
        ) from None
    built = {k: v for k, v in model.state_dict().items() if k.startswith(adapter.kept_as_built or ("\0",))}
    try:
        # assign: upstream's parameters become the project's tensors (one copy of an XL model in memory, not
        # two); neither sampler writes to its weights
        model.load_state_dict({**built, **state_dict}, strict=True, assign=True)
    except RuntimeError as e:
        raise UserError(
            f"--upstream: {name}'s weights do not load into {type(model).__module__}.{type(model).__name__}: "
            f"{str(e).splitlines()[0]}"
        ) from None
    # as upstream's sampling scripts leave it; buffers upstream builds (masks, RoPE tables) follow the weights
    model.eval().requires_grad_(False).to(project.device)
    _check_same_weights(model, state_dict)
    provenance = {
        "checkout": str(checkout),
        **git_commit(checkout),
        "config": adapter.config,
        "files": files,
        "function": adapter.function,
        "weights": "the project model's tensors, loaded strictly (shared: load_state_dict assign=True)"
        + (f" ({', '.join(adapter.kept_as_built)} as upstream builds them)" if built else ""),
    }
    return Official(model, modules, provenance)


def _check_same_weights(model: torch.nn.Module, state_dict: dict[str, torch.Tensor]) -> None:
    theirs = model.state_dict()
    for key, value in state_dict.items():
        if not torch.equal(theirs[key].cpu(), value.cpu()):
            raise UserError(f"--upstream: {key} differs after loading (the official model changed it)")


class UpstreamGenerator(Generator):
    """Upstream's sampling function behind the bench's generator hooks, on the project model's weights.

    Codes / latents come from upstream's code; ``decode_codes`` is the project's (the same decoder for both
    rows of a comparison: what is compared is the sampler, ``generation_s``). Subclasses implement
    ``_sample(labels, params, n_steps)``: upstream's function with ``n_steps`` network calls (all of them
    when None), drawing from the global RNG seeded with the run's seed as upstream's scripts do."""

    def __init__(self, project: Generator, upstream: Path, name: str, adapter: Adapter):
        self.project = project
        official = load_official(adapter, name, upstream, project)
        self.model, self.modules, self.provenance = official.model, official.modules, official.provenance
        self.name = f"{project.name}-official"
        self.tokenizer = getattr(project, "tokenizer", None)
        self.num_classes, self.image_size = project.num_classes, project.image_size
        self.quantization = project.quantization
        self.dtype = getattr(project, "dtype", torch.float32)
        if self.dtype != torch.float32:
            raise UserError("--upstream: upstream's samplers run in fp32 here; use --dtype fp32 or tf32")
        self.calls = 0

    @property
    def default_sampling(self):
        return self.project.default_sampling

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def _sample(self, labels: torch.Tensor, params: Any, n_steps: int | None) -> torch.Tensor:
        raise NotImplementedError

    def _run(self, labels: torch.Tensor, generator: torch.Generator, params: Any, n_steps: int | None) -> torch.Tensor:
        params = params or self.default_sampling
        labels = self.check_labels(labels).to(self.device)
        torch.manual_seed(generator.initial_seed())  # upstream draws from the global RNG
        self.calls += 1
        with torch.inference_mode(), _eager():
            return self._sample(labels, params, n_steps)

    def generate_codes(self, labels: torch.Tensor, generator: torch.Generator, params: Any = None) -> torch.Tensor:
        return self._run(labels, generator, params, None)

    def run_steps(self, labels: torch.Tensor, generator: torch.Generator, params: Any, n_steps: int) -> torch.Tensor:
        return self._run(labels, generator, params, n_steps)

    def total_steps(self, params: Any = None) -> int | None:
        return self.project.total_steps(params)

    def decode_codes(self, codes: torch.Tensor) -> torch.Tensor:
        return self.project.decode_codes(codes)

    def generate(self, labels: torch.Tensor, generator: torch.Generator, params: Any = None) -> torch.Tensor:
        return self.decode_codes(self.generate_codes(labels, generator, params)).to(labels.device)

    def linear_kernel(self) -> str:
        return "upstream (nn.Linear: aten)"

    def attention_kernel(self) -> str:
        return "upstream's own"

    def info(self) -> dict[str, Any]:
        return {
            **self.project.info(),
            "name": self.name,
            "upstream": self.provenance,
            "linear_kernel": self.linear_kernel(),
            "attention_kernel": self.attention_kernel(),
            "decode": "the project's decoder",
            "torch_compile": "off: upstream's @torch.compile decorators run eagerly (torch._dynamo disabled)",
        }


@contextlib.contextmanager
def _eager() -> Iterator[None]:
    """Upstream decorates some forwards with ``@torch.compile`` (LightningDiT); the project's side runs
    eagerly unless bench --compile, so upstream's does too (and a CPU without a compiler still runs it)."""
    import torch._dynamo

    with torch._dynamo.config.patch(disable=True):
        yield

"""One generic registry, instantiated per kind (tokenizers, generators, metrics, suites, trainers, protocols).

Modelled on lm-evaluation-harness ``lm_eval/api/registry.py``: decorator or direct registration,
lazy ``"module:Attr"`` targets (so listing names imports no model code), an entry-point group
for outside packages, duplicate names rejected, unknown names answered with close matches.
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable, Iterator
from importlib import metadata
from typing import Any, Generic, TypeVar

from harness.core.errors import UserError

T = TypeVar("T")

ENTRY_POINT_GROUP = "alitok_bench.plugins"


class RegistryError(UserError, KeyError):
    """Unknown or conflicting registry name. ``str()`` is a one-line message."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


def import_target(target: str) -> Any:
    """Resolve a lazy "package.module:Attr" target."""
    module_name, _, attr = target.partition(":")
    if not module_name or not attr:
        raise RegistryError(f"lazy target {target!r} must look like 'package.module:Attr'")
    obj: Any = importlib.import_module(module_name)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


def _qualified(obj: Any) -> str | None:
    mod, qual = getattr(obj, "__module__", None), getattr(obj, "__qualname__", None)
    return f"{mod}:{qual}" if mod and qual else None


class Registry(Generic[T]):
    """Name -> object (or lazy ``"module:Attr"`` string resolved on first ``get``)."""

    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, Any] = {}
        self._help: dict[str, str] = {}

    # -- registration -------------------------------------------------------------------------
    def register(self, name: str, target: Any = None, *, help: str = "") -> Any:
        """``@reg.register("n")`` on a class/function, or ``reg.register("n", "mod:Attr")``."""
        if not isinstance(name, str) or not name or name != name.strip() or "/" in name:
            raise RegistryError(f"{self.kind}: invalid name {name!r}")

        def add(obj: Any) -> Any:
            self._add(name, obj, help)
            return obj

        return add if target is None else add(target)

    def _add(self, name: str, obj: Any, help: str) -> None:
        old = self._entries.get(name)
        if old is not None and old is not obj:
            # A decorator firing for the object a lazy placeholder already names is not a clash.
            same = isinstance(old, str) and old == _qualified(obj)
            same = same or (isinstance(obj, str) and obj == _qualified(old))
            if not same:
                raise RegistryError(f"{self.kind} {name!r} is already registered (to {self._describe(old)})")
            if isinstance(obj, str):
                return  # keep the resolved object
        self._entries[name] = obj
        if help or name not in self._help:
            self._help[name] = help or self._help.get(name, "")

    # -- lookup -------------------------------------------------------------------------------
    def get(self, name: str) -> T:
        if name not in self._entries:
            raise RegistryError(self.unknown_message(name))
        obj = self._entries[name]
        if isinstance(obj, str):
            obj = import_target(obj)
            self._entries[name] = obj
        return obj

    def is_loaded(self, name: str) -> bool:
        return name in self._entries and not isinstance(self._entries[name], str)

    def names(self) -> list[str]:
        return sorted(self._entries)

    def help(self, name: str) -> str:
        return self._help.get(name, "")

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._entries)

    def unknown_message(self, name: str) -> str:
        """The one-line "unknown NAME; did you mean ..." message."""
        close = difflib.get_close_matches(name, list(self._entries), n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        known = ", ".join(self.names()) or "none"
        return f"unknown {self.kind} {name!r}{hint} (known: {known})"

    @staticmethod
    def _describe(obj: Any) -> str:
        return obj if isinstance(obj, str) else (_qualified(obj) or repr(obj))


tokenizers: Registry = Registry("tokenizer")
generators: Registry = Registry("generator")
metrics: Registry = Registry("metric")
suites: Registry = Registry("suite")
trainers: Registry = Registry("trainer")
protocols: Registry = Registry("protocol")

REGISTRIES: dict[str, Registry] = {
    "tokenizers": tokenizers,
    "generators": generators,
    "metrics": metrics,
    "suites": suites,
    "trainers": trainers,
    "protocols": protocols,
}

_loaded = False


def register_mapping(mapping: dict[str, dict[str, str]], source: str) -> None:
    """Register ``{"generators": {"name": "mod:Attr", ...}, ...}`` lazily."""
    for kind, entries in mapping.items():
        if kind not in REGISTRIES:
            raise RegistryError(f"{source}: unknown registry kind {kind!r} (known: {', '.join(REGISTRIES)})")
        for name, target in entries.items():
            help = ""
            if isinstance(target, (tuple, list)):
                target, help = target
            REGISTRIES[kind].register(name, target, help=help)


def load_plugins(entry_points: Callable[[], Any] | None = None) -> None:
    """Register the built-in mapping and every ``alitok_bench.plugins`` entry point (once).

    An entry point may resolve to a mapping as in :func:`register_mapping` or to a callable that
    registers things itself.
    """
    global _loaded
    if _loaded:
        return
    _loaded = True
    from harness.core.plugins import BUILTIN

    register_mapping(BUILTIN, "harness.core.plugins")
    eps = (entry_points or metadata.entry_points)()
    selected = eps.select(group=ENTRY_POINT_GROUP) if hasattr(eps, "select") else eps.get(ENTRY_POINT_GROUP, [])
    for ep in selected:
        value = ep.load()
        if callable(value):
            value()
        else:
            register_mapping(value, f"entry point {ep.name!r}")


def released_ar_factory(build, key: str, name: str, doc: str):
    """The registry factory of one released AR size: ``build(key, ...)`` with the keywords every released AR
    factory takes, spelled out (torch-free, so importing a plugin module stays cheap; the sampler reads the factory's signature to see which it accepts)."""

    def factory(
        *,
        device,
        checkpoint=None,
        tokenizer_checkpoint=None,
        dtype=None,
        quantization=None,
        compile=False,
        tf32=None,
        random_weights=False,
        architecture=None,
        tokenizer_architecture=None,
    ):
        return build(
            key,
            device=device,
            checkpoint=checkpoint,
            tokenizer_checkpoint=tokenizer_checkpoint,
            dtype=dtype,
            quantization=quantization,
            compile=compile,
            tf32=tf32,
            random_weights=random_weights,
            architecture=architecture,
            tokenizer_architecture=tokenizer_architecture,
        )

    factory.__name__ = factory.__qualname__ = name
    factory.__doc__ = doc
    return factory

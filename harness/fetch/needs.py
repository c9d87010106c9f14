"""Which catalog files a set of registry entries, feature networks and protocols needs, and where the
factories find them (``with_official_files``)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any

from harness.fetch import catalog, store


def files_for(models: Iterable[str] = (), features: Iterable[str] = (), protocols: Iterable[str] = ()) -> list[str]:
    """Catalog names, in a stable order without repeats."""
    out: list[str] = []
    for m in models:
        out += catalog.entry_files(m)
    out += [catalog.FEATURE_NEEDS[f] for f in features if f in catalog.FEATURE_NEEDS]
    for p in protocols:
        out += list(catalog.PROTOCOL_NEEDS.get(p, ()))
    return list(dict.fromkeys(out))


def with_official_files(model: Any, *, only_present: bool = True, root=None) -> Any:
    """``model`` (a ModelSpec) with each checkpoint slot it leaves unset pointing at the official file in
    the weights root (``catalog.NEEDS``): with ``only_present``, only files that are there (a spec keeps
    its factory's own "needs the checkpoint" message otherwise); without, always (a suite then lists the
    absent file as missing and skips the run). Nothing changes with ``options.random_weights``."""
    needs = catalog.NEEDS.get(model.name)
    if not needs or model.options.get("random_weights"):
        return model
    changes: dict[str, Any] = {}
    options = dict(model.options)
    for slot, name in needs.items():
        path = store.path_of(name, root)
        if only_present and not path.exists():
            continue
        if slot.startswith("options."):
            options.setdefault(slot[len("options.") :], str(path))
        elif getattr(model, slot) is None:
            changes[slot] = str(path)
    if options != model.options:
        changes["options"] = options
    return dataclasses.replace(model, **changes) if changes else model


def official_name(path: str | None) -> str | None:
    """The catalog name a path refers to: a bare official name, or a path inside the weights root."""
    if not path:
        return None
    if path in catalog.FILES:
        return path
    root = str(store.weights_root()).rstrip("/") + "/"
    rel = path[len(root) :] if path.startswith(root) else None
    if rel is None:
        return None
    if rel in catalog.FILES:
        return rel
    folder = rel.rstrip("/") + "/"
    return folder if catalog.files_of(folder) else None


def fetch_hint(model: Any, root=None) -> str | None:
    """``fetch: alitok-bench fetch NAME`` when a file the registry entry takes from the weights root is
    absent (slots the spec sets to its own paths are not counted), else None."""
    needs = catalog.NEEDS.get(model.name)
    if not needs or model.options.get("random_weights"):
        return None
    absent = []
    for slot, name in needs.items():
        given = model.options.get(slot[len("options.") :]) if slot.startswith("options.") else getattr(model, slot)
        path = store.path_of(name, root)
        if (given is None or given == str(path)) and not path.exists():
            absent.append(name)
    if not absent:
        return None
    return (
        f"official files missing from {store.weights_root(root)}: {', '.join(absent)}; "
        f"get them with: alitok-bench fetch {model.name}"
    )

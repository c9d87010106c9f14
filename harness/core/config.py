"""YAML -> frozen dataclasses, ``--set a.b=c`` overrides, and a canonical hash that names a run.

Unknown or mistyped keys are errors that name their dotted path (``protocol.num_sample: unknown
key; did you mean 'num_samples'?``). Every YAML file and ``--set`` value is read by ``parse_yaml``
(a SafeLoader: no tags, no duplicate keys, no alias bombs, YAML 1.2 floats such as ``1e-2``).
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import json
import math
import re
import types
import typing
from pathlib import Path
from typing import Any, Literal, TypeVar, Union, get_args, get_origin, get_type_hints

import yaml

from harness.core.errors import UserError, one_line

T = TypeVar("T")


class ConfigError(UserError, ValueError):
    """A config problem, with the dotted path of the offending key in the message."""


# ----------------------------------------------------------------------------------------------
# Loading
# ----------------------------------------------------------------------------------------------
MAX_YAML_BYTES = 16 << 20  # configs, specs and claims files are kilobytes
MAX_YAML_NODES = 1_000_000  # values after alias expansion: a billion-laughs file passes it long before memory ends


class _Loader(yaml.SafeLoader):
    """``yaml.SafeLoader`` (no tags, no objects) that refuses duplicate keys and reads YAML 1.2 floats.

    PyYAML resolves floats by YAML 1.1, whose pattern needs a dot and a signed exponent: ``1e-2`` and
    ``1.5e3`` would be strings. The extra resolver makes them the floats every YAML 1.2 reader sees."""

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            seen: dict[Any, Any] = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue  # ``<<: *base`` keys may be overridden: that is what a merge is for
                key = self.construct_object(key_node, deep=deep)
                try:
                    first = seen.setdefault(key, key_node.start_mark)
                except TypeError:
                    continue  # an unhashable key: SafeConstructor refuses it with its own message
                if first is not key_node.start_mark:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"duplicate key {key!r} (first at line {first.line + 1})", key_node.start_mark
                    )
        return super().construct_mapping(node, deep=deep)


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$"),
    list("-+0123456789."),
)


def _yaml_problem(e: yaml.YAMLError) -> str:
    """One line: PyYAML's problem and where (its own str() spans several lines)."""
    if isinstance(e, yaml.MarkedYAMLError) and e.problem:
        mark = e.problem_mark
        return e.problem + (f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else "")
    return one_line(e)


def _check_values(data: Any, where: str) -> None:
    """Refuse what a safe loader still lets through: an alias bomb (a few lines that expand to billions of
    values), a document that contains itself, and NaN/inf numbers (no setting of ours means them)."""
    sizes: dict[int, int | None] = {}

    def size(node: Any, path: str) -> int:
        if isinstance(node, float) and not math.isfinite(node):
            raise ConfigError(f"{where}: {path or 'value'}: {node} is not a finite number")
        if not isinstance(node, (dict, list)):
            return 1
        if id(node) in sizes:
            if sizes[id(node)] is None:
                raise ConfigError(
                    f"{where}: {path or 'document'}: an alias refers to its own anchor (the document contains itself)"
                )
            return sizes[id(node)]  # type: ignore[return-value]
        sizes[id(node)] = None
        pairs = (
            ((str(k), v) for k, v in node.items())
            if isinstance(node, dict)
            else ((f"[{i}]", v) for i, v in enumerate(node))
        )
        n = 1
        for key, value in pairs:
            n += 1 + size(value, f"{path}{key}" if key.startswith("[") or not path else f"{path}.{key}")
            if n > MAX_YAML_NODES:
                raise ConfigError(
                    f"{where}: more than {MAX_YAML_NODES:,} values once aliases are expanded (an alias bomb?)"
                )
        sizes[id(node)] = n
        return n

    size(data, "")


def parse_yaml(text: str | bytes, where: str | Path) -> Any:
    """The one YAML reader: safe, UTF-8, size- and alias-limited, no duplicate keys, finite numbers."""
    if len(text) > MAX_YAML_BYTES:
        raise ConfigError(f"{where}: {len(text):,} bytes; a YAML file here is at most {MAX_YAML_BYTES:,}")
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as e:
            raise ConfigError(f"{where}: not UTF-8 text (byte {e.start}: {e.reason}); is it a YAML file?") from None
    try:
        data = yaml.load(text, Loader=_Loader)  # noqa: S506 - _Loader is a SafeLoader
    except yaml.YAMLError as e:
        raise ConfigError(f"{where}: not valid YAML ({_yaml_problem(e)})") from None
    except RecursionError:
        raise ConfigError(f"{where}: not valid YAML (nested deeper than Python can read)") from None
    _check_values(data, str(where))
    return data


def load_yaml(path: str | Path) -> dict[str, Any]:
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{p}: no such config file")
    if p.stat().st_size > MAX_YAML_BYTES:
        raise ConfigError(f"{p}: {p.stat().st_size:,} bytes; a YAML file here is at most {MAX_YAML_BYTES:,}")
    data = parse_yaml(p.read_bytes(), p)
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{p}: top level must be a mapping, got {type(data).__name__}")
    return data


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _convert(value: Any, tp: Any, path: str) -> Any:
    """Check/convert one value against a type annotation."""
    origin = get_origin(tp)
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        args = get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _convert(value, arg, path)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(errors[0] if len(errors) == 1 else f"{path}: {value!r} matches none of {_type_name(tp)}")
    if origin is Literal:
        if value not in get_args(tp):
            choices = ", ".join(repr(a) for a in get_args(tp))
            raise ConfigError(f"{path}: {value!r} is not one of {choices}")
        return value
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        return from_dict(tp, value, path)
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{path}: expected a list, got {type(value).__name__} {value!r}")
        args = get_args(tp)
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(args) != len(value):
                raise ConfigError(f"{path}: expected {len(args)} items, got {len(value)}")
            items = [_convert(v, a, f"{path}[{i}]") for i, (v, a) in enumerate(zip(value, args))]
        else:
            inner = args[0] if args else Any
            items = [_convert(v, inner, f"{path}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{path}: expected a mapping, got {type(value).__name__} {value!r}")
        _, vt = get_args(tp) or (str, Any)
        return {str(k): _convert(v, vt, _join(path, str(k))) for k, v in value.items()}
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{path}: expected true/false, got {type(value).__name__} {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{path}: expected an integer, got {type(value).__name__} {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{path}: expected a number, got {type(value).__name__} {value!r}")
        if not math.isfinite(value):
            raise ConfigError(f"{path}: {value} is not a finite number")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{path}: expected a string, got {type(value).__name__} {value!r}")
        return value
    if isinstance(tp, type) and not isinstance(value, tp):
        raise ConfigError(f"{path}: expected {tp.__name__}, got {type(value).__name__} {value!r}")
    return value


def from_dict(cls: type[T], data: Any, path: str = "") -> T:
    """Build dataclass ``cls`` from a mapping; unknown keys and wrong types are ``ConfigError``."""
    where = path or cls.__name__
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping, got {type(data).__name__} {data!r}")
    hints = get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = [k for k in data if k not in fields]
    if unknown:
        key = unknown[0]
        close = difflib.get_close_matches(str(key), list(fields), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else f" (known: {', '.join(fields)})"
        raise ConfigError(f"{_join(path, str(key))}: unknown key{hint}")
    kwargs = {}
    for name, f in fields.items():
        if name in data:
            kwargs[name] = _convert(data[name], hints[name], _join(path, name))
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ConfigError(f"{_join(path, name)}: required key missing")
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{where}: {e}") from None


def replace_fields(config: T, fields: dict[str, Any] | None, path: str = "") -> T:
    """``config`` (a dataclass) with ``fields`` replaced, checked as ``from_dict`` checks them; ``None`` or
    ``{}`` returns it unchanged. Factories use it for scaled-down files of an official layout."""
    if not fields:
        return config
    if not isinstance(fields, dict):
        raise ConfigError(f"{path or type(config).__name__}: expected a mapping of fields, got {fields!r}")
    current = {f.name: getattr(config, f.name) for f in dataclasses.fields(config) if f.init}
    return from_dict(type(config), {**current, **fields}, path)


def load(cls: type[T], path: str | Path, overrides: typing.Sequence[str] = ()) -> T:
    data = apply_overrides(load_yaml(path), overrides)
    try:
        return from_dict(cls, data)
    except ConfigError as e:
        raise ConfigError(f"{path}: {e}") from None


# ----------------------------------------------------------------------------------------------
# Overrides
# ----------------------------------------------------------------------------------------------
def apply_overrides(data: dict[str, Any], overrides: typing.Sequence[str]) -> dict[str, Any]:
    """Apply ``a.b=c`` strings (values parsed as YAML scalars) to a nested dict copy."""
    out = json.loads(json.dumps(data)) if data else {}
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set {item!r}: expected KEY=VALUE with a dotted key")
        try:
            value = parse_yaml(raw, f"--set {item}") if raw.strip() else ""
        except ConfigError as e:
            if "not valid YAML" not in str(e):
                raise  # NaN/inf, an alias bomb: refused, not taken as a string
            value = raw
        node: Any = out
        parts = key.strip().split(".")
        for i, part in enumerate(parts):
            where = ".".join(parts[: i + 1])
            if isinstance(node, list):  # ``entries.0.model.checkpoint``: a list is indexed by position
                if not part.isdigit() or int(part) >= len(node):
                    raise ConfigError(
                        f"--set {item!r}: {where}: a list of {len(node)} items takes an index 0..{len(node) - 1}"
                    )
                part = int(part)
            elif not isinstance(node, dict):
                raise ConfigError(f"--set {item!r}: {'.'.join(parts[:i])} is not a mapping")
            if i == len(parts) - 1:
                node[part] = value
                break
            nxt = node[part] if isinstance(node, list) else node.get(part)
            if nxt is None:
                nxt = node[part] = {}
            node = nxt
    return out


# ----------------------------------------------------------------------------------------------
# Canonical form and hash
# ----------------------------------------------------------------------------------------------
def to_dict(obj: Any) -> Any:
    """Dataclasses/tuples -> plain JSON-able structures (tuples become lists)."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, dict):
        return {str(k): to_dict(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    return obj


def canonical_json(obj: Any) -> str:
    return json.dumps(to_dict(obj), sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)


def spec_hash(obj: Any, length: int = 16) -> str:
    """sha256 of the canonical JSON; stable across Python runs and key order."""
    return hashlib.sha256(canonical_json(obj).encode()).hexdigest()[:length]


def dump_yaml(obj: Any) -> str:
    return yaml.safe_dump(to_dict(obj), sort_keys=False)

"""``alitok-bench list [KIND] [--json]``: registered names and their one-line help; imports no model code.

Kinds: generators, tokenizers, metrics (the metric table, with what each needs), suites, trainers,
protocols. ``--json`` prints one JSON document on stdout and nothing else there.
"""

from __future__ import annotations

import json

from harness.core.registry import REGISTRIES, load_plugins


def add_arguments(p) -> None:
    p.add_argument("kind", nargs="?", choices=sorted(REGISTRIES), help="which registry (default: all)")
    p.add_argument("--json", action="store_true", help="print one JSON document {kind: {name: {...}}} instead of text")


def _metric_fields(entry) -> dict:
    return {
        "features": entry.features,
        "layer": entry.layer,
        "reference_stats": list(entry.reference_stats),
        "needs_reference_images": entry.needs_reference_images,
        "needs_logits": entry.needs_logits,
        "default": entry.default,
    }


def _shipped_suites() -> dict[str, str]:
    """The suite YAMLs shipped in harness/suites/ (``run NAME`` finds them by stem) with their ``description``."""
    from harness.core import config
    from harness.suites.suite import SUITE_DIR, shipped_suites

    out = {}
    for name in shipped_suites():
        description = config.load_yaml(SUITE_DIR / f"{name}.yaml").get("description")
        out[name] = str(description or "").strip()
    return out


def collect(kinds: list[str]) -> dict[str, dict[str, dict]]:
    """``{kind: {name: {"help": ..., **fields}}}``; metric entries carry their table fields; suites are the
    registered ones and the YAMLs shipped in harness/suites/ (a YAML's description wins: it is what runs)."""
    import harness.metrics.table as metric_table  # fills the metrics registry (cheap: no torch)

    load_plugins()
    out: dict[str, dict[str, dict]] = {}
    for kind in kinds:
        reg = REGISTRIES[kind]
        out[kind] = {}
        for name in reg.names():
            item = {"help": reg.help(name)}
            if kind == "metrics" and reg.is_loaded(name) and isinstance(reg.get(name), metric_table.Metric):
                item.update(_metric_fields(reg.get(name)))
            out[kind][name] = item
        if kind == "suites":
            for name, description in _shipped_suites().items():
                out[kind][name] = {"help": description or out[kind].get(name, {}).get("help", "")}
            out[kind] = dict(sorted(out[kind].items()))
    return out


def _needs(fields: dict) -> str:
    parts = [f"{fields['features']}:{fields['layer']}"]
    if fields["reference_stats"]:
        parts.append("ref " + "/".join(fields["reference_stats"]))
    if fields["needs_reference_images"]:
        parts.append("ref images")
    if fields["needs_logits"]:
        parts.append("logits")
    return "[" + ", ".join(parts) + "]"


def run(args) -> int:
    data = collect([args.kind] if args.kind else list(REGISTRIES))
    if args.json:
        print(json.dumps(data, indent=2, sort_keys=True))
        return 0
    for kind, entries in data.items():
        print(f"{kind}:")
        if not entries:
            print("  (none)")
        width = max((len(n) for n in entries), default=0)
        for name, fields in entries.items():
            text = fields["help"] + (f"  {_needs(fields)}" if "features" in fields else "")
            print(f"  {name:<{width}}  {text}".rstrip())
    return 0

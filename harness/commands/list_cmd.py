"""``alitok-bench list [generators|tokenizers|metrics|suites]``: names and one-line help, no model imports."""
from __future__ import annotations

from harness.registry import REGISTRIES, load_plugins


def add_arguments(p) -> None:
    p.add_argument("kind", nargs="?", choices=sorted(REGISTRIES), help="which registry (default: all)")


def run(args) -> int:
    load_plugins()
    kinds = [args.kind] if args.kind else list(REGISTRIES)
    for kind in kinds:
        reg = REGISTRIES[kind]
        print(f"{kind}:")
        if not len(reg):
            print("  (none)")
        width = max((len(n) for n in reg.names()), default=0)
        for name in reg.names():
            help_text = reg.help(name)
            print(f"  {name:<{width}}  {help_text}".rstrip())
    return 0

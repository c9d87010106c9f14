"""docs/DESIGN.md's floors, checked on the source: every import points down or sideways, never up, and
no two modules import each other (directly or round a longer loop).

Floors (a module may import its own floor and the floors below it; harness/'s top-level folders
name them):
  1 bottom: harness (package), core/, data/, nn/, fetch/
  2 engine: runs/, sampling/, metrics/, speed/
  3 model families: alitok/, baselines/ (from floor 2 only ``harness.runs.training``; never each other)
  4 presentation: suites/, report/
  5 entry points: cli/, api, __main__
Lazy imports inside functions count: they run too, and they are how circles hide.
"""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("harness", "alitok", "baselines")

# harness/'s top-level folder (or module) -> floor; every module takes the floor of the folder it sits
# in, so a newcomer reads the floor from the path (docs/DESIGN.md, "Floors")
HARNESS_FLOORS = {
    1: ("core", "data", "nn", "fetch"),
    2: ("runs", "sampling", "metrics", "speed"),
    4: ("suites", "report"),
    5: ("cli", "api", "__main__"),
}
# module-name prefix -> floor; the longest matching prefix wins
FLOORS = {
    "harness": 1,
    "alitok": 3,
    "baselines": 3,
    **{f"harness.{top}": floor for floor, tops in HARNESS_FLOORS.items() for top in tops},
}
# what floor 3 may take from floor 2
FAMILY_MAY_USE = ("harness.runs.training",)


def floor_of(module: str) -> int | None:
    parts = module.split(".")
    for i in range(len(parts), 0, -1):
        floor = FLOORS.get(".".join(parts[:i]))
        if floor is not None and (i > 1 or module == parts[0] or parts[0] != "harness"):
            return floor
    return None


def module_name(path: Path, root: Path = ROOT) -> str:
    rel = path.relative_to(root).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def source_map(root: Path = ROOT) -> dict[str, tuple[str, bool]]:
    """module name -> (source text, is_package) for every .py file of the three packages."""
    out = {}
    for package in PACKAGES:
        for p in sorted((root / package).rglob("*.py")):
            out[module_name(p, root)] = (p.read_text(), p.name == "__init__.py")
    return out


def imports(name: str, source: str, is_package: bool, known: set[str]) -> list[tuple[int, str]]:
    """(line, imported module) pairs; ``from pkg import mod`` resolves to ``pkg.mod`` when that is a module."""
    out = []
    for node in ast.walk(ast.parse(source, name)):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolve against this module's package
                pkg = name.split(".") if is_package else name.split(".")[:-1]
                pkg = pkg[: len(pkg) - (node.level - 1)]
                base = ".".join(pkg + ([base] if base else []))
            for a in node.names:
                full = f"{base}.{a.name}" if base else a.name
                out.append((node.lineno, full if full in known else base))
    return out


def check_floors(sources: dict[str, tuple[str, bool]]) -> list[str]:
    """Every import that points up a floor, crosses between families, or reaches the engine's upper floors."""
    known = set(sources)
    bad = []
    for name, (text, is_package) in sources.items():
        mine = floor_of(name)
        for line, target in imports(name, text, is_package, known):
            if target.split(".")[0] not in PACKAGES:
                continue
            theirs = floor_of(target)
            where = f"{name}:{line} imports {target}"
            if mine is None or theirs is None:
                bad.append(f"{where} (no floor assigned: add it to FLOORS and docs/DESIGN.md)")
            elif mine == 3:
                same_family = target.split(".")[0] == name.split(".")[0]
                if not same_family and (theirs == 3 or (theirs > 1 and not target.startswith(FAMILY_MAY_USE))):
                    bad.append(f"{where} (a model family takes floor 1 and harness.runs.training only)")
            elif theirs == 3 and mine != 3:
                bad.append(f"{where} (the engine reaches model families only through the registry)")
            elif theirs > mine:
                bad.append(f"{where} (floor {mine} -> floor {theirs}: points up)")
    return bad


def find_cycles(sources: dict[str, tuple[str, bool]]) -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan), i.e. import circles."""
    known = set(sources)
    graph = {
        n: sorted({t for _, t in imports(n, text, pkg, known) if t in known and t != n})
        for n, (text, pkg) in sources.items()
    }
    index, low, stack, on_stack, cycles = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                cycles.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return cycles


# -- the tree as it is ------------------------------------------------------------------------------


def test_every_import_points_down():
    bad = check_floors(source_map())
    assert not bad, "\n".join(bad)


def test_no_import_circles():
    cycles = find_cycles(source_map())
    assert not cycles, cycles


def test_the_checker_sees_imports():
    # guards against a checker that passes because it parses nothing
    sources = source_map()
    assert {"harness.cli", "harness.metrics.evaluate", "harness.nn.checkpoints.checkpoint"} <= set(sources)
    known = set(sources)
    found = {t for n, (s, p) in sources.items() for _, t in imports(n, s, p, known)}
    assert {
        "harness.core.interfaces",
        "harness.nn.checkpoints.checkpoint",
        "harness.core.config",
        "harness.core.registry",
    } <= found


def test_floors_match_the_design_document():
    """docs/DESIGN.md lists the same floors as FLOORS (each prefix on the line of its floor)."""
    text = (ROOT / "docs" / "DESIGN.md").read_text()
    section = text[text.index("## Floors") :]
    section = section[: section.index("\n## ", 4)]
    lines = {int(line.split(".")[0]): line for line in section.splitlines() if line[:1].isdigit()}
    assert sorted(lines) == [1, 2, 3, 4, 5]
    for prefix, floor in FLOORS.items():
        shown = "harness" if prefix == "harness" else prefix.removeprefix("harness.")
        assert f"`{shown}" in lines[floor], f"{prefix} (floor {floor}) missing from DESIGN.md's floor {floor}"


def test_every_top_level_entry_has_a_floor():
    """Nothing sits at harness/'s root without a floor: a new file goes into the folder of its floor."""
    entries = {
        p.stem
        for p in (ROOT / "harness").iterdir()
        if (p.suffix == ".py" and p.stem != "__init__") or (p / "__init__.py").is_file()
    }
    placed = {top for tops in HARNESS_FLOORS.values() for top in tops}
    assert entries == placed, f"unplaced: {sorted(entries - placed)}; gone: {sorted(placed - entries)}"


def test_design_lists_every_module():
    """docs/DESIGN.md's layout names every module of harness/ by its path."""
    text = (ROOT / "docs" / "DESIGN.md").read_text()
    paths = [p.relative_to(ROOT).as_posix() for p in sorted((ROOT / "harness").rglob("*.py"))]
    # a package is listed by its folder (harness/nn/layers/), the root package by its __init__.py
    paths = [p.removesuffix("__init__.py") if p.count("/") > 1 else p for p in paths]
    missing = [p for p in paths if p not in text]
    assert not missing, f"add to docs/DESIGN.md's layout: {missing}"


# -- the checker fails when it should ----------------------------------------------------------------


def _planted(**changes) -> dict[str, tuple[str, bool]]:
    sources = dict(source_map())
    for name, text in changes.items():
        name = name.replace("__", ".")
        old_text, pkg = sources.get(name, ("", False))
        sources[name] = (old_text + "\n" + text, pkg)
    return sources


def test_planted_upward_import_fails():
    bad = check_floors(_planted(harness__metrics__fid="from harness.suites.suite import run_suite\n"))
    assert len(bad) == 1 and "harness.metrics.fid" in bad[0] and "floor 2 -> floor 4" in bad[0]
    # the one the issue named: the engine importing a CLI module (even lazily, inside a function)
    bad = check_floors(_planted(harness__suites__suite="def f():\n    from harness.cli.sample import run\n"))
    assert len(bad) == 1 and "floor 4 -> floor 5" in bad[0]
    bad = check_floors(_planted(harness__core__io="import harness.runs.records\n"))
    assert len(bad) == 1 and "floor 1 -> floor 2" in bad[0]


def test_planted_family_imports_fail():
    assert check_floors(_planted(harness__metrics__fid="import alitok.generator\n"))
    assert check_floors(_planted(alitok__generator="from harness.metrics import fid\n"))
    assert check_floors(_planted(alitok__generator="import baselines\n"))
    assert not check_floors(_planted(alitok__generator="import harness.runs.training\n"))


def test_planted_circle_fails():
    cycles = find_cycles(_planted(harness__runs__specs="def f():\n    from harness.runs import protocols\n"))
    assert ["harness.runs.protocols", "harness.runs.specs"] in cycles
    # a longer loop inside one floor: a -> b -> c -> a
    sources = {
        "harness.core.io": ("from harness.core import errors\n", False),
        "harness.core.errors": ("import harness.core.devices\n", False),
        "harness.core.devices": ("from harness.core.io import atomic_path\n", False),
    }
    assert find_cycles(sources) == [["harness.core.devices", "harness.core.errors", "harness.core.io"]]


def test_planted_on_disk_package(tmp_path):
    """The same checks on a synthetic tree read from disk (relative imports included)."""
    pkg = tmp_path / "harness"
    (pkg / "metrics").mkdir(parents=True)
    (pkg / "core").mkdir()
    (pkg / "cli").mkdir()
    for init in ("", "metrics", "core", "cli"):
        (pkg / init / "__init__.py").write_text("")
    (pkg / "core" / "errors.py").write_text("")
    (pkg / "metrics" / "fid.py").write_text("from ..core.errors import x\nfrom . import kid\n")
    (pkg / "metrics" / "kid.py").write_text("from .fid import y\n")
    sources = {module_name(p, tmp_path): (p.read_text(), p.name == "__init__.py") for p in pkg.rglob("*.py")}
    assert find_cycles(sources) == [["harness.metrics.fid", "harness.metrics.kid"]]
    assert not check_floors(sources)
    (pkg / "core" / "errors.py").write_text("from ..metrics import fid\nfrom harness import cli\n")
    sources["harness.core.errors"] = ((pkg / "core" / "errors.py").read_text(), False)
    assert len(check_floors(sources)) == 2

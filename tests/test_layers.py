"""The import rules of the layers (docs/design.md): read from the source, not from a running import."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Dict, FrozenSet, List, Set

PACKAGE = Path(__file__).resolve().parent.parent / "sharedsg"
RAY_FREE = ("model", "learn", "data", "harness", "experiments", "bench", "commands")
# the benchmarks of the Ray runtime (and the Ray helpers they share with the tests) import ray themselves
RAY_BENCHES = {"runtime.py", "server.py", "soak.py", "raytools.py"}
# runtime/, by what each part does (docs/design.md, "Layers")
RUNTIME_PARTS = {"__init__.py", "service", "hosting", "cluster", "sweep.py"}


def _imports(path: Path):
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            yield node.module


def _modules(sub: str):
    return sorted((PACKAGE / sub).rglob("*.py"))


def test_runtime_never_imports_the_experiments():
    bad = [(p.name, m) for p in _modules("runtime") for m in _imports(p) if m.startswith("sharedsg.experiments")]
    assert bad == []


def test_nothing_below_runtime_imports_ray_or_climbs_up():
    """model, learn, data and harness never import ray, the runtime or the experiments; the
    experiments, commands and benchmarks reach ray only through sharedsg.runtime."""
    below = {"model", "learn", "data", "harness"}
    for sub in RAY_FREE:
        for p in _modules(sub):
            for m in _imports(p):
                if not (sub == "bench" and p.name in RAY_BENCHES):
                    assert m != "ray" and not m.startswith("ray."), (p, m)
                if sub in below:
                    assert not m.startswith(("sharedsg.runtime", "sharedsg.experiments", "sharedsg.commands")), (p, m)
    for p in _modules("model") + _modules("data"):
        assert not any(m.startswith(("sharedsg.learn", "sharedsg.harness")) for m in _imports(p)), p


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _import_graph() -> Dict[str, Set[str]]:
    """sharedsg module -> the sharedsg modules it imports, at module level or inside a function
    (``from pkg import name`` counts as an import of ``pkg.name`` where that is a module)."""
    paths = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph: Dict[str, Set[str]] = {}
    for name, path in paths.items():
        out: Set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                out.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom):
                assert node.level == 0 and node.module, (path, "relative import")
                out.update(f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in paths else node.module
                           for a in node.names)
        graph[name] = {m for m in out if m in paths and m != name}
    return graph


def _circles(graph: Dict[str, Set[str]]) -> List[FrozenSet[str]]:
    """The strongly connected components of more than one module (Tarjan): each holds an import circle."""
    index: Dict[str, int] = {}
    low: Dict[str, int] = {}
    stack: List[str] = []
    found: List[FrozenSet[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = {stack.pop()}
            while v not in component:
                component.add(stack.pop())
            if len(component) > 1:
                found.append(frozenset(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_circle_finder_sees_a_circle_through_a_function_level_import():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    assert _circles(graph) == [frozenset({"a", "b", "c"})]
    assert "sharedsg.runtime.cluster.ops" in _import_graph()["sharedsg.commands.cluster"]  # imported inside a function there


def test_no_import_circles():
    assert [sorted(c) for c in _circles(_import_graph())] == []


def test_the_runtime_is_split_by_responsibility_and_every_parser_is_in_commands():
    parts = {p.name for p in (PACKAGE / "runtime").iterdir() if p.name != "__pycache__"}
    assert parts == RUNTIME_PARTS
    from sharedsg.cli import COMMAND_MODULES

    assert all(m.startswith("sharedsg.commands.") for m in COMMAND_MODULES)
    parsers = sorted(p.relative_to(PACKAGE).as_posix() for p in PACKAGE.rglob("*.py") if "def add_parser(" in p.read_text())
    assert parsers == sorted(m.replace("sharedsg.", "").replace(".", "/") + ".py" for m in COMMAND_MODULES)


def test_the_public_api_reaches_ray_only_lazily():
    """sharedsg/api.py sits above harness/ (its SG endpoint and exchange rule), learn/ and model/; ray
    (and sharedsg.runtime, which imports it) load only inside the functions that need a group on Ray,
    never at the module's top."""
    for p in (PACKAGE / "api.py", PACKAGE / "__init__.py"):
        tree = ast.parse(p.read_text())
        top = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
        names = [a.name for n in top if isinstance(n, ast.Import) for a in n.names]
        names += [n.module for n in top if isinstance(n, ast.ImportFrom) and n.module]
        assert not [m for m in names if m == "ray" or m.startswith(("ray.", "sharedsg.runtime",
                                                                    "sharedsg.experiments"))], p
    for p in _modules(""):
        if p.parent != PACKAGE or p.name != "api.py":
            assert "sharedsg.api" not in list(_imports(p)), p  # nothing in the package depends on the API

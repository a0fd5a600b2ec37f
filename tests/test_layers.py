"""The import rules of the layers (docs/design.md): read from the source, not from a running import."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "sharedsg"
RAY_FREE = ("model", "learn", "data", "harness", "experiments", "bench", "commands")


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
                assert m != "ray" and not m.startswith("ray."), (p, m)
                if sub in below:
                    assert not m.startswith(("sharedsg.runtime", "sharedsg.experiments", "sharedsg.commands")), (p, m)
    for p in _modules("model") + _modules("data"):
        assert not any(m.startswith(("sharedsg.learn", "sharedsg.harness")) for m in _imports(p)), p


def test_the_public_api_reaches_ray_only_lazily():
    """sharedsg/api.py sits above learn/ and model/; ray (and sharedsg.runtime, which imports it) load
    only inside the functions that need a group on Ray, never at the module's top."""
    for p in (PACKAGE / "api.py", PACKAGE / "__init__.py"):
        tree = ast.parse(p.read_text())
        top = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
        names = [a.name for n in top if isinstance(n, ast.Import) for a in n.names]
        names += [n.module for n in top if isinstance(n, ast.ImportFrom) and n.module]
        assert not [m for m in names if m == "ray" or m.startswith(("ray.", "sharedsg.runtime",
                                                                    "sharedsg.experiments", "sharedsg.harness"))], p
    for p in _modules(""):
        if p.parent != PACKAGE or p.name != "api.py":
            assert "sharedsg.api" not in list(_imports(p)), p  # nothing in the package depends on the API

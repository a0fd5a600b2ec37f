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

"""The package's layering (docs/architecture.md): imports only flow downwards and never form a circle.

Every `import` / `from ... import` in bitdance/ counts, including the lazy ones inside functions: a lazy
upward import is still an upward dependency. A module's layer is that of the longest prefix in LAYERS.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "bitdance"

# Lowest first. A module may import its own layer and the layers below it, never one above.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("primitives and configs", ("bitdance.core",)),
    ("models and data", ("bitdance.tokenizer", "bitdance.generator", "bitdance.checkpoint", "bitdance.data")),
    ("sampling", ("bitdance.sampling",)),
    ("pipeline and editing", ("bitdance.pipeline", "bitdance.safety")),
    (
        "product surfaces",
        (
            "bitdance.cli",
            "bitdance.commands",
            "bitdance.server",
            "bitdance.export",
            "bitdance.quantization",
            "bitdance.training",
            "bitdance.evaluation",
            "bitdance.convert",
        ),
    ),
]
# The package root holds only the version string; any layer may read it.
ROOT = "bitdance"


def modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def imports_of(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """bitdance modules that `name` imports (resolved to the module, not the package, where possible)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out: set[str] = set()

    def resolve(dotted: str) -> str | None:
        while dotted and dotted not in known:
            dotted = dotted.rpartition(".")[0]
        return dotted or None

    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                base_name = ".".join(base + ([node.module] if node.module else []))
            else:
                base_name = node.module or ""
            # `from pkg import sub` names the submodule when one exists, else the package.
            targets = [
                f"{base_name}.{a.name}" if f"{base_name}.{a.name}" in known else base_name for a in node.names
            ]
        else:
            continue
        for target in targets:
            if target == ROOT or not target.startswith(ROOT + "."):
                continue
            resolved = resolve(target)
            if resolved and resolved != name:
                out.add(resolved)
    return out


def graph() -> dict[str, set[str]]:
    known = modules()
    return {name: imports_of(name, path, known) for name, path in known.items()}


def layer_of(name: str) -> int | None:
    best, level = -1, None
    for i, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if (name == prefix or name.startswith(prefix + ".")) and len(prefix) > best:
                best, level = len(prefix), i
    return level


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for root in sorted(edges):
        if root in index:
            continue
        work = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_the_root_holds_no_loose_modules():
    loose = sorted(
        p.name for p in PACKAGE.glob("*.py") if p.name not in ("__init__.py", "cli.py", "checkpoint.py")
    )
    assert not loose, f"modules at the package root (put them in their layer's folder): {loose}"


def test_every_module_has_a_layer():
    unplaced = sorted(name for name in modules() if name != ROOT and layer_of(name) is None)
    assert not unplaced, f"modules with no layer in LAYERS (add them to docs/architecture.md too): {unplaced}"


def test_imports_only_flow_downwards():
    upward = []
    for name, targets in sorted(graph().items()):
        here = layer_of(name)
        for target in sorted(targets):
            there = layer_of(target)
            if here is not None and there is not None and there > here:
                upward.append(f"{name} ({LAYERS[here][0]}) imports {target} ({LAYERS[there][0]})")
    assert not upward, "upward imports:\n" + "\n".join(upward)


def test_no_import_circles():
    assert not cycles(graph()), f"import circles: {cycles(graph())}"


def test_the_checks_catch_what_they_guard():
    # The cycle finder and the layer map on made-up graphs: a circle, an upward edge, a clean chain.
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []
    assert layer_of("bitdance.generator.transformer") < layer_of("bitdance.sampling.decode")
    assert layer_of("bitdance.server.app") > layer_of("bitdance.pipeline")


@pytest.mark.parametrize("verb_module", ["bitdance.commands.generate", "bitdance.training.cli"])
def test_graph_sees_lazy_imports(verb_module):
    # Imports inside functions count: these verb modules import the pipeline / trainers lazily.
    assert graph()[verb_module], f"{verb_module} should have bitdance imports"

"""Dependencies point down: every import in the package obeys the layer table written in docs/architecture.md."""

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
PACKAGE = ROOT / "src" / "openjukebox"


def layer_table() -> list[list[str]]:
    """The ```layers block of docs/architecture.md, top layer first."""
    block = re.search(r"```layers\n(.*?)```", (ROOT / "docs" / "architecture.md").read_text(), re.S)
    assert block, "docs/architecture.md has no ```layers block"
    return [line.split() for line in block.group(1).strip().splitlines()]


def module_imports() -> dict[str, set[str]]:
    """'vqvae.model' → the package modules it imports (dotted, without 'openjukebox.'), at any depth of the file."""
    graph = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
        package = parts[:-1] if parts[-1] != "__init__" else parts[:-1]
        if parts[-1] == "__init__":
            parts = parts[:-1] or ["__init__"]
        deps = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level:
                base = package[:len(package) - node.level + 1]
                target = base + (node.module.split(".") if node.module else [])
                deps |= {".".join(target + [a.name]) if not node.module else ".".join(target) for a in node.names}
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("openjukebox"):
                deps.add(node.module.removeprefix("openjukebox").lstrip("."))
            elif isinstance(node, ast.Import):
                deps |= {a.name.removeprefix("openjukebox").lstrip(".") for a in node.names
                         if a.name.startswith("openjukebox")}
        graph[".".join(parts)] = {d for d in deps if d}
    return graph


def unit(module: str) -> str:
    return module.split(".")[0]


def violations(graph: dict[str, set[str]], layers: list[list[str]]) -> list[str]:
    """Upward imports between layers, and cycles between units of one layer."""
    rank = {name: i for i, layer in enumerate(layers) for name in layer}
    found = []
    for module, deps in graph.items():
        if unit(module) == "__init__":
            continue  # the public face sits above every layer
        for dep in deps:
            if unit(dep) != unit(module) and rank[unit(dep)] < rank[unit(module)]:
                found.append(f"{module} imports {dep}, a layer above it")
    edges = {(unit(m), unit(d)) for m, deps in graph.items() for d in deps if unit(m) != unit(d)}
    for a, b in edges:
        if (b, a) in edges and a < b:
            found.append(f"{a} and {b} import each other")
    return found


def test_every_module_is_in_one_layer():
    names = [name for layer in layer_table() for name in layer]
    assert len(names) == len(set(names)), "a unit is listed in two layers"
    units = {unit(m) for m in module_imports()} - {"__init__"}
    assert units == set(names), f"not in the table: {units - set(names)}; in the table only: {set(names) - units}"


def test_imports_point_down():
    assert violations(module_imports(), layer_table()) == []


@pytest.mark.parametrize("graph, expected", [
    ({"vqvae.model": {"prior.model"}, "prior.model": set()}, ["vqvae.model imports prior.model, a layer above it"]),
    ({"data.dataset": {"labels"}, "labels": {"data.metadata"}, "data.metadata": set()},
     ["data and labels import each other"]),
    ({"prior.model": {"vqvae.blocks", "prior.attention"}, "vqvae.blocks": set(), "prior.attention": set()}, []),
])
def test_the_checker_finds_upward_imports_and_cycles(graph, expected):
    layers = [["prior"], ["vqvae"], ["data", "labels"]]
    assert violations(graph, layers) == expected


def test_the_graph_reader_sees_relative_and_function_level_imports():
    graph = module_imports()
    assert "resnet1d" in graph["vqvae.blocks"]  # from ..resnet1d import ResNet1D
    assert "sample.ancestral" in graph["sample.alignment"]  # from .ancestral import ...
    assert "version" in graph["__init__"]  # from .version import __version__
    assert {"jukebox", "sample.pipeline"} <= graph["cli"]  # imported inside functions

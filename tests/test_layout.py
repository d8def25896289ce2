"""The package's layout: imports point one way (cli -> experiments -> algorithms -> core), no
import cycles, one home for target facts, unique module names.

The import graph is read from the source with ``ast`` (nothing is imported), so an arrow that
runs up is found even inside a function body.
"""

from __future__ import annotations

import ast
import re
from collections import defaultdict
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "unitprune"

#: The layer of every top-level module or subpackage of ``unitprune``: a module may import from
#: its own layer and the layers below, never from a layer above.
LAYERS = {
    # core: the UnIT semantics, its layers and their C-kernel bindings
    "_version": 0, "accounting": 0, "activations": 0, "approx": 0, "backends": 0, "calibrate": 0, "config": 0,
    "convert": 0, "counts": 0, "geometry": 0, "kernels": 0, "layers": 0, "model_pass": 0, "report": 0,
    "selection": 0, "torch_reference": 0, "versions": 0,
    # algorithms and their inputs
    "baselines": 1, "data": 1, "mcu": 1, "models": 1, "shrink": 1, "training": 1,
    # experiment harnesses
    "experiments": 2,
    # the command line
    "cli": 3, "__main__": 3,
}
LAYER_NAMES = ["core", "algorithms", "experiments", "cli"]


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, top_level_only: bool) -> list[str]:
    """The unitprune modules ``path`` imports (``from . import x`` resolved to the submodule)."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    tree = ast.parse(path.read_text())
    nodes = tree.body if top_level_only else ast.walk(tree)
    found = []
    for node in nodes:
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[:len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if not target.startswith("unitprune"):
                continue
            for alias in node.names:
                submodule = PACKAGE.parent / Path(*f"{target}.{alias.name}".split("."))
                is_module = submodule.with_suffix(".py").is_file() or (submodule / "__init__.py").is_file()
                found.append(f"{target}.{alias.name}" if is_module else target)
        elif isinstance(node, ast.Import):
            found += [alias.name for alias in node.names if alias.name.startswith("unitprune")]
    return found


def _top(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def _sources() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def test_every_module_has_a_layer():
    tops = {_top(_module_name(path)) for path in _sources()} - {""}
    assert tops <= set(LAYERS), f"modules without a layer in tests/test_layout.py: {sorted(tops - set(LAYERS))}"


def test_imports_point_one_way():
    """No module imports from a layer above its own (the package root's public API is exempt)."""
    wrong = []
    for path in _sources():
        source = _module_name(path)
        if source == "unitprune":
            continue
        for target in _imports(path, top_level_only=False):
            if not _top(target):
                wrong.append(f"{source} imports the package root ({target}): import the module instead")
                continue
            a, b = LAYERS[_top(source)], LAYERS[_top(target)]
            if b > a:
                wrong.append(f"{source} ({LAYER_NAMES[a]}) imports {target} ({LAYER_NAMES[b]})")
    assert not wrong, "\n".join(wrong)


def test_the_checker_sees_an_upward_import(tmp_path, monkeypatch):
    """The rule is not vacuous: a core module importing an experiment is reported."""
    fake = tmp_path / "unitprune"
    (fake / "experiments").mkdir(parents=True)
    (fake / "__init__.py").write_text("")
    (fake / "experiments" / "__init__.py").write_text("")
    (fake / "experiments" / "sweep.py").write_text("X = 1\n")
    (fake / "layers.py").write_text("from .experiments.sweep import X\n")
    monkeypatch.setitem(globals(), "PACKAGE", fake)
    with pytest.raises(AssertionError, match=r"unitprune.layers \(core\) imports unitprune.experiments.sweep"):
        test_imports_point_one_way()


def _cycles(graph: dict[str, set[str]]) -> list[str]:
    """Every cycle a depth-first search meets in ``graph`` (module -> modules it imports)."""
    state, stack, cycles = {}, [], []

    def visit(node):
        state[node] = 1
        stack.append(node)
        for child in sorted(graph.get(node, ())):
            if state.get(child) == 1:
                cycles.append(" -> ".join(stack[stack.index(child):] + [child]))
            elif child not in state:
                visit(child)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)
    return cycles


def test_cycle_search_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a -> b -> c -> a"]
    assert _cycles({"a": {"b", "c"}, "b": {"c"}}) == []


def test_no_import_cycles_between_modules():
    """Module-level imports form no cycle (a cycle works only by import order). The package root
    re-exports the public API: it imports everything, and no module may import it."""
    graph = defaultdict(set)
    for path in _sources():
        source = _module_name(path)
        for target in _imports(path, top_level_only=True):
            if target not in (source, "unitprune"):
                graph[source].add(target)
    cycles = _cycles(graph)
    assert not cycles, "\n".join(cycles)


def test_module_names_are_unique():
    """No two modules share a file name (a reader greps for one ``report.py``, not three)."""
    by_name = defaultdict(list)
    for path in _sources():
        if path.name not in ("__init__.py", "__main__.py"):
            by_name[path.name].append(str(path.relative_to(PACKAGE)))
    repeated = {name: paths for name, paths in by_name.items() if len(paths) > 1}
    assert not repeated, repeated


def test_target_facts_have_one_home():
    """Chip facts are written only in mcu/targets/specs.py: the stack reserve, the MSP430 FRAM end,
    the counter fields and the ABI layouts are not restated elsewhere."""
    patterns = {"stack reserve": re.compile(r"STACK_RESERVE\s*=\s*\d"),
                "MSP430 FRAM end": re.compile(r"0xFF80\s*-\s*0x4000"),
                "counter fields": re.compile(r"\(\s*\"dense\",\s*\"zero_weight\",\s*\"zero_activation\""),
                "ABI layout table": re.compile(r"\"avr-far\"\s*:\s*\(")}
    specs = PACKAGE / "mcu" / "targets" / "specs.py"
    found = []
    for path in _sources():
        if path == specs:
            continue
        text = path.read_text()
        found += [f"{path.relative_to(PACKAGE)}: {what}" for what, pattern in patterns.items() if pattern.search(text)]
    assert not found, found

"""The layering of docs/architecture.md, checked on the source: imports only go downward, no
import cycles between modules, and the balancing engine imports nothing chemical."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "molmtl"
#: subpackage (or leaf module) → layer; a module may import its own subpackage and lower layers
LAYERS = {
    "_version": 0,
    "_device": 0,
    "_threads": 0,
    "registry": 0,
    "rundir": 0,
    "graphs": 0,
    "balancing": 1,
    "featurizers": 1,
    "data": 2,
    "nn": 3,
    "models": 4,
    "training": 5,
    "predict": 5,
    "pretrained": 1,
    "benchmark": 6,
    "cli": 7,
    "__main__": 8,
}
CHEMISTRY = ("rdkit", "torch_geometric", "molmtl.featurizers", "molmtl.data", "molmtl.nn")


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> list[tuple[str, bool]]:
    """(imported module, at module level outside ``if TYPE_CHECKING``) for every import."""
    tree = ast.parse(path.read_text())
    top_level = set()
    for node in tree.body:
        if not (isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)):
            top_level.update(id(n) for n in ast.walk(node))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            found += [(name, id(node) in top_level) for name in names]
        elif isinstance(node, ast.Import):
            found += [(alias.name, id(node) in top_level) for alias in node.names]
    return found


MODULES = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _layer(module: str) -> int:
    return LAYERS[module.split(".")[1]] if module != "molmtl" else 8


@pytest.mark.parametrize("module", [m for m in MODULES if m != "molmtl"])
def test_imports_go_only_downward(module):
    own = module.split(".")[1]
    for imported, _ in _imports(MODULES[module]):
        if not imported.startswith("molmtl.") or imported.split(".")[1] == own:
            continue
        assert _layer(imported) <= _layer(module), f"{module} imports {imported} (upward)"


def test_the_balancing_engine_imports_nothing_chemical():
    for module, path in MODULES.items():
        if module.startswith("molmtl.balancing"):
            for imported, _ in _imports(path):
                assert not imported.startswith(CHEMISTRY), f"{module} imports {imported}"


def test_no_import_cycles_between_modules():
    graph = {}
    for module, path in MODULES.items():
        imported = {name for name, top_level in _imports(path) if top_level and name in MODULES}
        # importing a.b runs a's __init__ first, unless the importer is already inside a
        imported |= {parent for name in imported for parent in _parents(name)}
        graph[module] = imported - {module, *_parents(module)}
    cycle = _find_cycle(graph)
    assert cycle is None, " -> ".join(cycle)


def _parents(module: str) -> list[str]:
    parts = module.split(".")
    return [".".join(parts[:i]) for i in range(2, len(parts))]


def _find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for successor in sorted(graph[node]):
            if state.get(successor) == 1:
                return [*path[path.index(successor) :], successor]
            if successor not in state and (found := visit(successor)):
                return found
        state[node] = 2
        path.pop()
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None

"""Package structure: no import circles between our modules; the console API imports no torch up front."""

import ast
import subprocess
import sys
from pathlib import Path

import napari_cervix

PACKAGE = Path(napari_cervix.__file__).parent


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    """Our modules a file imports, at module level or inside functions (a lazy import still couples)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            targets = [base] + [f"{base}.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        else:
            continue
        found.update(t for t in targets if t.startswith("napari_cervix"))
    return found


def import_graph() -> dict[str, set[str]]:
    files = {module_name(p): p for p in PACKAGE.rglob("*.py") if "configs" not in p.parts}
    graph = {}
    for name, path in files.items():
        edges = set()
        for target in imports_of(path):
            while target and target not in files:  # "from .x import function" names the module x
                target = target.rpartition(".")[0]
            if target and target != name:
                edges.add(target)
        graph[name] = edges
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state, stack = {}, []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                return stack[stack.index(nxt) :] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = "done"
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_no_import_circles():
    graph = import_graph()
    # Parents import their children to re-export them; children never need their parent package, so drop
    # the child → parent edge that "from . import x" style imports produce.
    for name, edges in graph.items():
        edges.discard(name.rpartition(".")[0])
    assert find_cycle(graph) is None, " → ".join(find_cycle(graph))


def test_cycle_finder_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_console_api_is_light_until_used():
    code = (
        "import sys, napari_cervix as nc; "
        "assert 'torch' not in sys.modules, 'torch imported by import napari_cervix'; "
        "import inspect; params = inspect.signature(nc.segment_semantic).parameters; "
        "assert 'tile_size' in params, list(params); "
        "assert 'torch' not in sys.modules, 'torch imported by resolving the API'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)

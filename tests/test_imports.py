"""catlib's modules import each other without circles (read from the source, imports inside
functions included: a late import only hides a circle). A circle means two modules that cannot
be understood, or tested, one without the other."""
import ast
from pathlib import Path

CATLIB = Path(__file__).resolve().parents[1] / "catlib"

def import_graph(root: Path = CATLIB) -> dict[str, set[str]]:
    """``{module: catlib modules it imports}``, packages named by their ``__init__``."""
    def name(path: Path) -> str:
        parts = list(path.relative_to(root.parent).with_suffix("").parts)
        return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)

    modules = {name(p): p for p in root.rglob("*.py")}
    graph = {}
    for module, path in modules.items():
        imported = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                imported |= {node.module} | {f"{node.module}.{a.name}" for a in node.names}
            elif isinstance(node, ast.Import):
                imported |= {a.name for a in node.names}
        graph[module] = {m for m in imported if m in modules and m != module}
    return graph


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every circle a depth-first search meets, each as ``[a, b, ..., a]``."""
    state, stack, found = {}, [], []

    def visit(u: str) -> None:
        state[u] = "open"
        stack.append(u)
        for v in sorted(graph[u]):
            if state.get(v) == "open":
                found.append(stack[stack.index(v):] + [v])
            elif v not in state:
                visit(v)
        stack.pop()
        state[u] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module)
    return found


def test_circles_finds_a_made_up_circle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert circles(graph) == [["a", "b", "c", "a"]]
    assert circles({"a": {"b"}, "b": set()}) == []


def test_catlib_imports_have_no_circles():
    graph = import_graph()
    assert {"catlib.metrics", "catlib.models", "catlib.diffusion", "catlib.viz.speed"} <= set(graph)  # files read
    assert "catlib.viz.speed" in graph["catlib.experiments.text8"]  # imports in the source are seen
    found = circles(graph)
    assert not found, "import circles: " + "; ".join(" -> ".join(c) for c in found)

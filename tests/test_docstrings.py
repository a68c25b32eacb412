"""catlib's docstrings hold no control characters: a LaTeX ``\\t`` or ``\\b`` in a docstring that is
not a raw string becomes a tab or a backspace (``help(build_model)`` once showed "<TAB>ilde s")."""
import ast
from pathlib import Path

CATLIB = Path(__file__).resolve().parents[1] / "catlib"


def test_no_control_characters_in_docstrings():
    bad = []
    for path in sorted(CATLIB.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                doc = ast.get_docstring(node, clean=False) or ""
                if any(c in doc for c in "\t\b\f\r\a\v"):
                    bad.append(f"{path.relative_to(CATLIB.parent)}: {getattr(node, 'name', 'module')}")
    assert not bad, f"docstrings with control characters (make them raw strings): {bad}"

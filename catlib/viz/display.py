"""Small display helpers shared by the chapters: library source and Markdown tables."""

from __future__ import annotations

import inspect
from collections.abc import Sequence


def markdown_table(columns: Sequence[str], rows: Sequence[Sequence]) -> str:
    """A GitHub-flavoured Markdown table; cells are formatted with ``str``.

    >>> print(markdown_table(["a", "b"], [[1, 2]]))
    | a | b |
    |---|---|
    | 1 | 2 |
    """
    lines = ["| " + " | ".join(map(str, columns)) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(map(str, row)) + " |" for row in rows]
    return "\n".join(lines)


def show_source(*objects) -> None:
    """Display the source of functions, methods or classes (``inspect.getsource``), highlighted.

    The chapters show the library's code this way rather than copying it, so that what the
    reader sees is what runs.
    """
    from IPython.display import Code, display

    for obj in objects:
        display(Code(inspect.getsource(obj), language="python"))

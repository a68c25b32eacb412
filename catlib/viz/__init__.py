"""Plots and widgets used by the chapters (matplotlib, plotly and ipywidgets).

``catlib.viz.display`` has the helpers every chapter uses; ``catlib.viz.dequantization`` and
``catlib.viz.argmax`` the figures of chapters 1 and 2.
"""

from catlib.viz.display import markdown_table, show_source

__all__ = ["markdown_table", "show_source"]

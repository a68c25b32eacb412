"""Sphinx glue: a self-contained site (no CDN), the build's profile shown, scoreboard last.

Loaded by jupyter-book through ``sphinx: local_extensions`` in ``_config.yml``:

1. Sets ``PLOTLY_RENDERER=notebook`` for the kernels that execute the chapters, so a plotly
   figure shown with ``fig.show()`` (or as a cell's last value) is saved as HTML that the site
   can draw. In Jupyter and Colab nothing changes: plotly picks its usual renderer there.
2. That renderer inlines all of plotly.js (~5 MB) into the first figure's output of every
   chapter and adds a MathJax ``<script>`` from a CDN to every figure. We drop both from the
   page and load ``_static/plotly/plotly.min.js`` instead, copied at the end of the build from
   the installed plotly package (so it always matches the plotly that drew the figures). If
   plotly ever changes its markup so that the inlined copy is not recognised, the copy stays
   in the page, which still works offline.
3. Reads ``book/scoreboard`` after every chapter, so the scoreboard sees the result files the
   chapters wrote in the same build.
4. Names the profile the chapters ran at (``$CATBOOK_PROFILE``) in every page's footer, and in
   a banner when it is not ``full``.
"""

from __future__ import annotations

import html
import os
import re
import shutil
from pathlib import Path
from typing import Any

from docutils import nodes
from sphinx.application import Sphinx

PLOTLY_STATIC = "plotly/plotly.min.js"
LAST_DOCS = ("book/scoreboard",)

# The <script> that plotly's "notebook" renderer emits once per kernel with plotly.js inlined.
_INLINE_PLOTLYJS = re.compile(
    r"<script[^>]*>\s*/\*\*?\s*\n\s*\*\s*plotly\.js v[\s\S]*?window\.Plotly\s*=\s*Plotly;"
    r"[\s\S]*?</script>"
)
# MathJax loaded from a CDN by plotly's HTML renderers (pages with math load the vendored
# MathJax themselves, and plotly.js uses it when it is there).
_CDN_SCRIPT = re.compile(r"<script[^>]*\ssrc=\"https?://[^\"]*mathjax[^\"]*\"[^>]*>\s*</script>")


def _configure(app: Sphinx, config: Any) -> None:
    os.environ["PLOTLY_RENDERER"] = "notebook"
    # Say on every page which profile the chapters were executed at.
    profile = html.escape(os.environ.get("CATBOOK_PROFILE", "full"))
    options = config.html_theme_options
    options["extra_footer"] = (
        f"The chapters on this site were executed at the <code>{profile}</code> profile "
        "when it was built (see <em>How to run</em>)."
    )
    if profile != "full" and not options.get("announcement"):
        options["announcement"] = (
            f"This build ran the chapters at the “{profile}” profile: tiny settings "
            "that check the code runs, so its numbers are not meant to match the papers."
        )


def _read_last(app: Sphinx, env: Any, docnames: list[str]) -> None:
    for name in LAST_DOCS:
        if name in docnames:
            docnames.remove(name)
            docnames.append(name)


def _strip_plotly_payload(app: Sphinx, doctree: nodes.document) -> None:
    for node in list(doctree.findall(nodes.raw)):
        if "html" not in node.get("format", "").split():
            continue
        text = node.astext()
        if "plotly" not in text.lower():
            continue
        new = _CDN_SCRIPT.sub("", _INLINE_PLOTLYJS.sub("", text))
        if new != text:
            node.children = [nodes.Text(new)]


def _add_plotly_js(
    app: Sphinx, pagename: str, templatename: str, context: dict, doctree: Any
) -> None:
    if "plotly-graph-div" in context.get("body", ""):
        # Before the page's own inline scripts run, i.e. in <head>, ahead of other files.
        app.add_js_file(PLOTLY_STATIC, priority=200)


def _copy_plotly_js(app: Sphinx, exception: Exception | None) -> None:
    if exception is not None or app.builder.format != "html":
        return
    import plotly

    source = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
    target = Path(app.outdir) / "_static" / PLOTLY_STATIC
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, target)


def _launch_only_notebooks(app: Sphinx, pagename: str, templatename: str, context: dict, doctree: Any) -> None:
    """Drop the launch (Colab) buttons of pages that are not ``.ipynb`` files: the theme also
    gives them to MyST-markdown pages with a kernel (the scoreboard), and Colab cannot open those."""
    if Path(app.env.doc2path(pagename)).suffix != ".ipynb":
        context["header_buttons"] = [b for b in context.get("header_buttons", [])
                                     if b.get("label") != "launch-buttons"]


def setup(app: Sphinx) -> dict[str, Any]:
    app.connect("config-inited", _configure)
    app.connect("env-before-read-docs", _read_last)
    app.connect("doctree-read", _strip_plotly_payload)
    app.connect("html-page-context", _add_plotly_js)
    app.connect("html-page-context", _launch_only_notebooks, priority=502)  # after the theme's (501)
    app.connect("build-finished", _copy_plotly_js)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}

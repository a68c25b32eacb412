r"""Progress bars: a live widget for a reader at a notebook, text lines when the book is built.

:func:`progress_bar` is ``tqdm``. In a notebook it draws ``tqdm.auto``'s widget, which a reader
watches move. A notebook executed unattended (``make book``, papermill, the tests) saves its
outputs, and a saved widget shows as blank space on the site; with the environment variable
``CATBOOK_PROGRESS=text`` (set by the Makefile and the tests) every bar is written as text on
stderr instead, at most every ``CATBOOK_PROGRESS_SECONDS`` seconds (default 10), so a papermill
log (``--log-output``) shows it and the site shows its last state.

>>> from unittest import mock
>>> with mock.patch.dict("os.environ", {"CATBOOK_PROGRESS": "text"}):
...     bar = progress_bar(range(3), desc="demo", disable=True)
>>> type(bar).__module__, sum(bar)
('tqdm.std', 3)
"""
from __future__ import annotations

import os

from tqdm import tqdm as text_tqdm
from tqdm.auto import tqdm as auto_tqdm


def text_progress() -> bool:
    """Whether bars are written as text (``CATBOOK_PROGRESS=text``) rather than as widgets."""
    mode = os.environ.get("CATBOOK_PROGRESS", "auto")
    if mode not in ("auto", "text"):
        raise ValueError(f"CATBOOK_PROGRESS must be 'auto' or 'text', got {mode!r}")
    return mode == "text"


def progress_bar(*args, **kwargs):
    """``tqdm(*args, **kwargs)``: a widget or terminal bar (``tqdm.auto``), or text (see the module)."""
    if not text_progress():
        return auto_tqdm(*args, **kwargs)
    seconds = float(os.environ.get("CATBOOK_PROGRESS_SECONDS", "10"))
    kwargs["mininterval"] = max(kwargs.get("mininterval", 0.1), seconds)
    return text_tqdm(*args, **kwargs)

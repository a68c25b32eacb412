"""What a benchmark was measured on and with: the processor's name and the commit of the code."""
from __future__ import annotations

import platform
from pathlib import Path

__all__ = ["cpu_name", "commit"]


def cpu_name() -> str:
    """The processor's model name (``/proc/cpuinfo``), or what ``platform`` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:  # pragma: no cover - not Linux
        pass
    return platform.processor() or platform.machine()


def commit() -> str:
    """``git rev-parse HEAD`` of the checkout whose ``catlib`` is imported, ``+dirty`` when tracked files differ
    (:func:`catlib.results.code_commit`)."""
    from catlib.results import code_commit

    return code_commit()

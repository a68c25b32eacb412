"""What a benchmark was measured on and with: the processor's name and the commit of the code."""
from __future__ import annotations

import platform
import subprocess
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
    """``git rev-parse HEAD`` of the checkout whose ``catlib`` is imported, ``+dirty`` when tracked files differ."""
    import catlib

    root = Path(catlib.__file__).resolve().parents[1]
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True,
                              check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("+dirty" if dirty else "")

"""Wall-clock timing of work that may run on a GPU.

CUDA kernels run asynchronously: a clock read right after a call measures only the launch.
:func:`timed` synchronises the device before starting and before stopping the clock, so the
seconds cover the whole computation on any device.
"""
from __future__ import annotations

import time
from typing import Callable, TypeVar

import torch

__all__ = ["synchronize", "timed"]

T = TypeVar("T")


def synchronize(device: torch.device | str) -> None:
    """Wait for the queued work of ``device`` to finish (a no-op off CUDA)."""
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(work: Callable[[], T], device: torch.device | str) -> tuple[T, float]:
    """Run ``work()`` and return ``(its result, wall-clock seconds)``, synchronising ``device`` around it.

    >>> out, seconds = timed(lambda: torch.ones(3).sum(), "cpu")
    >>> float(out), seconds >= 0
    (3.0, True)
    """
    synchronize(device)
    start = time.perf_counter()
    out = work()
    synchronize(device)
    return out, time.perf_counter() - start

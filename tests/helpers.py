"""Small helpers shared by the unit tests (pytest puts this folder on ``sys.path``)."""
from __future__ import annotations

import functools

import torch
from torch import nn


def randomize(module: nn.Module, std: float = 0.3, seed: int = 0) -> nn.Module:
    """Move every parameter off its (often identity) initialisation by seeded noise of ``std``; returns ``module``."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(torch.randn(p.shape, generator=g, dtype=p.dtype) * std)
    return module


def interrupted_draw(draw, on_call: int):
    """A batch function like ``draw(n, generator)`` that raises ``KeyboardInterrupt`` on its ``on_call``-th call.

    Stands for a lost session (a Colab runtime gone) during that training step. It carries
    ``draw``'s name (``functools.wraps``), so a run resumed with ``draw`` itself has the same
    data description in its checkpoint fingerprint, as a program run again would.
    """
    calls = {"n": 0}

    @functools.wraps(draw)
    def batch(n, g):
        calls["n"] += 1
        if calls["n"] == on_call:
            raise KeyboardInterrupt
        return draw(n, g)

    return batch


def notebook_python(source: str) -> str:
    """A code cell's source as Python that ``ast`` can parse: notebook ``!`` and ``%`` lines become ``pass``."""
    return "\n".join(line[:len(line) - len(line.lstrip())] + "pass" if line.lstrip().startswith(("!", "%"))
                     else line for line in source.splitlines())

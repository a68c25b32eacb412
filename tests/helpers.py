"""Small helpers shared by the unit tests (pytest puts this folder on ``sys.path``)."""
from __future__ import annotations

import torch
from torch import nn


def randomize(module: nn.Module, std: float = 0.3, seed: int = 0) -> nn.Module:
    """Move every parameter off its (often identity) initialisation by seeded noise of ``std``; returns ``module``."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(torch.randn(p.shape, generator=g, dtype=p.dtype) * std)
    return module

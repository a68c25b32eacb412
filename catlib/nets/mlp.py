"""A plain multilayer perceptron, optionally starting as the zero function."""
from __future__ import annotations

from torch import Tensor, nn

from catlib.validation import check_positive_int, check_positive_ints


class MLP(nn.Sequential):
    """``in_features -> hidden -> ... -> out_features`` with GELU activations.

    Args:
        in_features: size of the input's last axis.
        out_features: size of the output's last axis.
        hidden: sizes of the hidden layers, a tuple (``()``: one linear layer).
        zero_init: start the last layer at zero, so that a coupling layer built on this net
            begins as the identity (a common flow initialisation, as in Glow).

    Shapes: ``[*, in_features] -> [*, out_features]``.

    >>> import torch
    >>> MLP(3, 4, hidden=(8,), zero_init=True)(torch.ones(2, 3)).abs().sum().item()
    0.0
    """

    def __init__(self, in_features: int, out_features: int, hidden: tuple[int, ...] = (128, 128),
                 zero_init: bool = False):
        layers: list[nn.Module] = []
        sizes = (check_positive_int("in_features", in_features), *check_positive_ints("hidden", hidden))
        out_features = check_positive_int("out_features", out_features)
        for a, b in zip(sizes[:-1], sizes[1:]):
            layers += [nn.Linear(a, b), nn.GELU()]
        last = nn.Linear(sizes[-1], out_features)
        if zero_init:
            nn.init.zeros_(last.weight)
            nn.init.zeros_(last.bias)
        layers.append(last)
        super().__init__(*layers)

    def forward(self, x: Tensor) -> Tensor:  # noqa: D102 (nn.Sequential)
        return super().forward(x)

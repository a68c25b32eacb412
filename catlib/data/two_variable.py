r"""The two-variable toy of the TRUFL paper (Tan et al., 2022, appendix C.1).

Two variables with 4 categories each; their joint (rows :math:`x_1`, columns :math:`x_2`) is

.. math::
    P = \begin{pmatrix} 1/8 & 0 & 1/8 & 0 \\ 0 & 1/8 & 0 & 1/8 \\
                        1/8 & 0 & 1/8 & 0 \\ 0 & 0 & 0 & 1/4 \end{pmatrix},

seven outcomes with entropy :math:`6 \cdot \tfrac18 \log 8 + \tfrac14 \log 4 = 1.906` nats
(2.75 bits). The zeros make it a test of whether a model can put no mass somewhere.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor

from catlib.validation import check_positive_int

__all__ = ["TWO_VARIABLE_JOINT", "TwoVariableToy"]

#: The joint table ``[4, 4]``: ``P[x1, x2]``.
TWO_VARIABLE_JOINT = torch.tensor([[1, 0, 1, 0], [0, 1, 0, 1], [1, 0, 1, 0], [0, 0, 0, 2]],
                                  dtype=torch.float64) / 8


class TwoVariableToy:
    """Samples ``x [n, 2]`` of the joint; ``support [16, 2]`` and ``probs [16]`` enumerate every pair.

    >>> toy = TwoVariableToy()
    >>> round(toy.entropy_nats, 3), round(toy.entropy_bits, 2), toy.sample(3, seed=0).shape
    (1.906, 2.75, torch.Size([3, 2]))
    """

    data_shape = (2,)
    num_classes = 4

    def __init__(self):
        self.joint = TWO_VARIABLE_JOINT.clone()
        grid = torch.cartesian_prod(torch.arange(4), torch.arange(4))
        self.support = grid
        self.probs = self.joint.flatten()
        p = self.probs[self.probs > 0]
        self.entropy_nats = float(-(p * p.log()).sum())
        self.entropy_bits = self.entropy_nats / math.log(2)

    def sample(self, n: int, seed: int | None = None) -> Tensor:
        n = check_positive_int("n", n)
        g = torch.Generator().manual_seed(seed) if seed is not None else None
        return self.support[torch.multinomial(self.probs, n, replacement=True, generator=g)]

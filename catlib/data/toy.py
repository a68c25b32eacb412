r"""The 50-class toy distribution of the workshop paper's Table 2, with entropy 4.82 bits.

The paper does not publish its distribution, only its entropy. Ours: logits are 50 draws of a
standard normal from a generator seeded with 0, sorted in decreasing order and multiplied by a
temperature :math:`\tau`; :math:`\tau` is found by bisection so that the entropy of
:math:`\operatorname{softmax}(\tau z)` is 4.82 bits to within 1e-10 (uniform would be
:math:`\log_2 50 = 5.64` bits).
"""
from __future__ import annotations

import torch
from torch import Tensor

from catlib.metrics import entropy_bits

__all__ = ["toy50_probs", "Toy50"]


def _entropy_at(logits: Tensor, tau: float) -> float:
    return entropy_bits(torch.softmax(tau * logits, 0))


def toy50_probs(num_classes: int = 50, entropy: float = 4.82, seed: int = 0) -> Tensor:
    """Probabilities ``[num_classes]`` (float64) of the toy distribution, entropy ``entropy`` bits.

    >>> p = toy50_probs()
    >>> round(entropy_bits(p), 6), p.shape
    (4.82, torch.Size([50]))
    """
    if not 0 < entropy < torch.log2(torch.tensor(float(num_classes))):
        raise ValueError(f"entropy must be in (0, log2({num_classes})) bits, got {entropy}")
    z = torch.randn(num_classes, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    z = z.sort(descending=True).values
    lo, hi = 0.0, 1.0
    while _entropy_at(z, hi) > entropy:  # entropy decreases with the temperature tau
        hi *= 2
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if _entropy_at(z, mid) > entropy else (lo, mid)
    return torch.softmax(0.5 * (lo + hi) * z, 0)


class Toy50:
    """Samples of the toy distribution: ``x [n, 1]`` class indices, one variable of 50 classes.

    ``support`` is ``[50, 1]`` (every class once) and ``probs`` ``[50]``, for exact averages.

    >>> toy = Toy50()
    >>> toy.sample(4, seed=0).shape
    torch.Size([4, 1])
    """

    data_shape = (1,)

    def __init__(self, num_classes: int = 50, entropy: float = 4.82):
        self.num_classes = num_classes
        self.probs = toy50_probs(num_classes, entropy)
        self.entropy_bits = entropy_bits(self.probs)
        self.support = torch.arange(num_classes).unsqueeze(1)

    def sample(self, n: int, seed: int | None = None) -> Tensor:
        g = torch.Generator().manual_seed(seed) if seed is not None else None
        return torch.multinomial(self.probs, n, replacement=True, generator=g).unsqueeze(1)

"""Linear transforms on vectors: actnorm, fixed permutations and an LU-parametrised linear layer."""
from __future__ import annotations

import torch
from torch import Tensor, nn

from catlib.flows.base import Transform

__all__ = ["ActNorm", "Permutation", "LinearLU"]


class ActNorm(Transform):
    r"""Per-coordinate affine map :math:`z = (x - b) e^{-\log s}` (Glow).

    On its first training forward pass it initialises ``b`` and ``log s`` so that the batch
    has zero mean and unit variance per coordinate; the flag is a buffer, so a loaded
    checkpoint does not initialise again. ``ldj = -sum(log s)``.
    """

    def __init__(self, dim: int):
        super().__init__()
        self.shift = nn.Parameter(torch.zeros(dim))
        self.log_scale = nn.Parameter(torch.zeros(dim))
        self.register_buffer("initialized", torch.tensor(False))

    @torch.no_grad()
    def _initialize(self, x: Tensor) -> None:
        self.shift.copy_(x.mean(0))
        std = x.std(0) if x.shape[0] > 1 else torch.ones_like(x[0])
        self.log_scale.copy_(torch.log(std.clamp(min=1e-3)))
        self.initialized.fill_(True)

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        if self.training and not bool(self.initialized):
            self._initialize(x.detach())
        z = (x - self.shift) * torch.exp(-self.log_scale)
        return z, (-self.log_scale.sum()).expand(x.shape[0])

    def inverse(self, z: Tensor, context: Tensor | None = None) -> Tensor:
        return z * torch.exp(self.log_scale) + self.shift


class Permutation(Transform):
    """A fixed permutation of the coordinates (``ldj = 0``); seeded random or reversal."""

    def __init__(self, dim: int, kind: str = "reverse", seed: int = 0):
        super().__init__()
        if kind == "reverse":
            perm = torch.arange(dim - 1, -1, -1)
        elif kind == "random":
            perm = torch.randperm(dim, generator=torch.Generator().manual_seed(seed))
        else:
            raise ValueError(f"kind must be 'reverse' or 'random', got {kind!r}")
        self.register_buffer("perm", perm)
        self.register_buffer("inv_perm", torch.argsort(perm))

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return x[:, self.perm], x.new_zeros(x.shape[0])

    def inverse(self, z: Tensor, context: Tensor | None = None) -> Tensor:
        return z[:, self.inv_perm]


class LinearLU(Transform):
    r"""Invertible linear layer :math:`z = W x`, the vector analogue of Glow's 1x1 convolution.

    :math:`W = P L (U + \operatorname{diag}(e^{\log|s|}) \cdot \operatorname{sign}(s))` with a
    fixed permutation :math:`P`, unit lower-triangular :math:`L` and strictly upper-triangular
    :math:`U`; ``ldj = sum(log|s|)``. It starts at a random orthogonal matrix (seeded).
    """

    def __init__(self, dim: int, seed: int = 0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        q, _ = torch.linalg.qr(torch.randn(dim, dim, generator=g))
        p, l, u = torch.linalg.lu(q)
        s = torch.diagonal(u)
        self.register_buffer("p", p)
        self.register_buffer("sign_s", torch.sign(s))
        self.register_buffer("lower_mask", torch.tril(torch.ones(dim, dim), -1))
        self.register_buffer("eye", torch.eye(dim))
        self.lower = nn.Parameter(l)
        self.upper = nn.Parameter(torch.triu(u, 1))
        self.log_s = nn.Parameter(torch.log(s.abs()))

    def weight(self) -> Tensor:
        lower = self.lower * self.lower_mask + self.eye
        upper = self.upper * self.lower_mask.T + torch.diag(self.sign_s * torch.exp(self.log_s))
        return self.p @ lower @ upper

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return x @ self.weight().T, self.log_s.sum().expand(x.shape[0])

    def inverse(self, z: Tensor, context: Tensor | None = None) -> Tensor:
        return torch.linalg.solve(self.weight(), z.T).T

"""The flow interface: invertible transforms, a flow (base + transforms) and a conditional flow.

Directions follow survae_flows: ``forward`` goes from data to latent and returns the
log-determinant of its Jacobian, ``inverse`` goes back.
"""
from __future__ import annotations

from typing import Iterable

import torch
from torch import Tensor, nn

__all__ = ["Transform", "Flow", "ConditionalFlow"]


class Transform(nn.Module):
    """An invertible map with a tractable Jacobian.

    Subclasses implement

    - ``forward(x, context=None) -> (z, ldj)`` with ``x, z [batch, dim]`` and
      ``ldj = log|det dz/dx|`` of shape ``[batch]``;
    - ``inverse(z, context=None) -> x``.

    ``context [batch, context_dim]`` is only used by conditional transforms.
    """

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        raise NotImplementedError

    def inverse(self, z: Tensor, context: Tensor | None = None) -> Tensor:
        raise NotImplementedError


class Flow(nn.Module):
    r"""A density on :math:`\mathbb{R}^{dim}`: base distribution plus invertible transforms.

    .. math:: \log p(x) = \log p_{base}(f(x)) + \log |\det \partial f / \partial x|

    Args:
        base: has ``log_prob(z, context) -> [batch]`` and ``sample(n, context) -> [n, dim]``.
        transforms: applied in order from data to latent.

    >>> from catlib.distributions import StandardNormal
    >>> from catlib.flows import ActNorm
    >>> flow = Flow(StandardNormal(2), [ActNorm(2)])
    >>> flow.log_prob(torch.zeros(3, 2)).shape, flow.sample(4).shape
    (torch.Size([3]), torch.Size([4, 2]))
    """

    def __init__(self, base: nn.Module, transforms: Iterable[Transform]):
        super().__init__()
        self.base = base
        self.transforms = nn.ModuleList(transforms)

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Data to latent: ``(z [batch, dim], ldj [batch])``."""
        ldj = torch.zeros(x.shape[0], device=x.device, dtype=x.dtype)
        for t in self.transforms:
            x, l = t(x, context)
            ldj = ldj + l
        return x, ldj

    def log_prob(self, x: Tensor, context: Tensor | None = None) -> Tensor:
        """``x [batch, dim] -> [batch]``."""
        z, ldj = self(x, context)
        return self.base.log_prob(z, context) + ldj

    def inverse(self, z: Tensor, context: Tensor | None = None) -> Tensor:
        for t in reversed(self.transforms):
            z = t.inverse(z, context)
        return z

    @torch.no_grad()
    def sample(self, n: int, context: Tensor | None = None) -> Tensor:
        """``[n, dim]`` samples (``n`` is ignored when a context sets the batch)."""
        return self.inverse(self.base.sample(n, context), context)


class ConditionalFlow(nn.Module):
    r"""A reparametrised conditional density :math:`q(u \mid c)`, for variational distributions.

    Sampling runs the transforms in their ``forward`` direction from the base noise to ``u``:

    .. math:: \varepsilon \sim q_{base}(\cdot \mid c),\quad u = f(\varepsilon; c),\quad
              \log q(u \mid c) = \log q_{base}(\varepsilon \mid c) - \log|\det \partial f/\partial\varepsilon|

    Args:
        base: has ``sample_with_log_prob(context) -> (eps [batch, dim], log q [batch])``,
            e.g. :class:`catlib.distributions.ConditionalNormal`.
        transforms: conditional transforms taking ``context``.
    """

    def __init__(self, base: nn.Module, transforms: Iterable[Transform] = ()):
        super().__init__()
        self.base = base
        self.transforms = nn.ModuleList(transforms)

    def sample_with_log_prob(self, context: Tensor) -> tuple[Tensor, Tensor]:
        """``context [batch, c] -> (u [batch, dim], log q(u|c) [batch])``, differentiable."""
        u, log_q = self.base.sample_with_log_prob(context)
        for t in self.transforms:
            u, ldj = t(u, context)
            log_q = log_q - ldj
        return u, log_q

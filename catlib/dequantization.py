r"""Dequantization of the one-hot hypercube: the uniform and variational baselines.

The class ``x`` becomes the corner ``onehot(x)`` of :math:`\{0,1\}^K` and noise
:math:`u \in [0,1)^K` fills its unit cell, :math:`v = \mathrm{onehot}(x) + u`:

- uniform (Uria et al., 2013): :math:`u \sim \mathcal{U}[0,1)^K`, :math:`\log q = 0`;
- variational (Ho et al., 2019): :math:`u = \sigma(s)`, :math:`s \sim q(s|x)` a conditional flow.

Both give :math:`\log P(x) \ge \mathbb{E}_q[\log p(v) - \log q(u|x)]`. We decode a sample by
``argmax(v)``: on the occupied cells it is the class of the corner, and elsewhere it extends
the cells to a partition of :math:`\mathbb{R}^K` whose region for ``x`` contains the cell of
``x``, so the bound stays a bound for the decoded model.

Shapes: ``x [batch, D]``; ``v [batch, D * K]``.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from catlib.argmax import QFlowFactory, flat_onehot, q_flow_or_default, strictly_below
from catlib.distributions import uniform_open

__all__ = ["UniformDequantization", "VariationalDequantization"]


class _HypercubeDequantization(nn.Module):
    stochastic_forward = True

    def __init__(self, num_vars: int, num_classes: int):
        super().__init__()
        self.num_vars, self.num_classes = num_vars, num_classes

    @property
    def dim(self) -> int:
        return self.num_vars * self.num_classes

    def onehot(self, x: Tensor) -> Tensor:
        return flat_onehot(x, self.num_classes)

    def inverse(self, v: Tensor) -> Tensor:
        """``v [batch, D*K] -> x [batch, D]`` by argmax (see the module docstring)."""
        return v.view(v.shape[0], self.num_vars, self.num_classes).argmax(-1)


class UniformDequantization(_HypercubeDequantization):
    """``forward(x) -> (onehot(x) + u, ldj = 0)`` with uniform ``u``."""

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        h = self.onehot(x)
        u = uniform_open(h.shape, device=h.device).to(h.dtype)
        return h + u, h.new_zeros(h.shape[0])


class VariationalDequantization(_HypercubeDequantization):
    r"""``forward(x) -> (onehot(x) + sigmoid(s), ldj = -log q(u|x))``.

    .. math:: \log q(u|x) = \log q(s|x) - \sum \log \sigma'(s),\quad
              \log\sigma'(s) = -\mathrm{softplus}(-s) - \mathrm{softplus}(s)

    ``q(s|x)`` is a conditional flow on a logistic base, so at initialisation ``u`` is exactly
    uniform and the layer starts as :class:`UniformDequantization`. It is built by
    ``q_flow(dim, dim, base="logistic")`` (see :data:`catlib.argmax.QFlowFactory`; default:
    :func:`~catlib.argmax.conditional_flow` with ``flow_steps`` couplings of ``hidden`` MLPs).
    """

    def __init__(self, num_vars: int, num_classes: int, flow_steps: int = 2, hidden: tuple[int, ...] = (128,),
                 q_flow: QFlowFactory | None = None):
        super().__init__(num_vars, num_classes)
        self.q_s = q_flow_or_default(q_flow, flow_steps, hidden)(self.dim, self.dim, base="logistic")

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        h = self.onehot(x)
        s, log_q_s = self.q_s.sample_with_log_prob(h)
        log_q_u = log_q_s + (F.softplus(-s) + F.softplus(s)).sum(-1)
        # h + sigmoid(s) rounds up to h + 1 in float32 once s > 16 (a logistic draw does that
        # about once in 10^7): keep v strictly inside the cell of x, [h, h + 1)
        v = strictly_below(h + torch.sigmoid(s), h + 1)
        return v, -log_q_u

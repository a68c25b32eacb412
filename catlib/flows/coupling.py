"""Coupling layers: affine (Real NVP) and mixture-of-logistics (Flow++), optionally conditional."""
from __future__ import annotations

import torch
from torch import Tensor
from torch.nn import functional as F

from catlib.flows.base import Transform
from catlib.nets import MLP

__all__ = ["AffineCoupling", "MixtureLogisticCoupling", "checkerboard_mask"]


def checkerboard_mask(dim: int, parity: int) -> Tensor:
    """Boolean ``[dim]`` mask selecting the coordinates that stay fixed (``i % 2 == parity``)."""
    return torch.arange(dim) % 2 == parity


class _Coupling(Transform):
    """Shared plumbing: split by a fixed mask, condition on the fixed half and the context."""

    def __init__(self, dim: int, params_per_dim: int, parity: int = 0, context_dim: int = 0,
                 hidden: tuple[int, ...] = (128, 128)):
        super().__init__()
        if dim < 2:
            raise ValueError(f"a coupling layer needs dim >= 2, got {dim}")
        self.register_buffer("mask", checkerboard_mask(dim, parity))
        # the mask's coordinates as a strided slice (a view; no nonzero/index kernels, traceable by
        # torch.compile); the same values as indexing with the mask
        self._parity = parity if parity in (0, 1) else None
        self.n_fixed = int(self.mask.sum())
        self.n_out = dim - self.n_fixed
        self.params_per_dim = params_per_dim
        self.context_dim = context_dim
        self.net = MLP(self.n_fixed + context_dim, self.n_out * params_per_dim, hidden, zero_init=True)

    def _params(self, fixed: Tensor, context: Tensor | None) -> Tensor:
        h = fixed if context is None or self.context_dim == 0 else torch.cat([fixed, context], -1)
        return self.net(h).view(fixed.shape[0], self.n_out, self.params_per_dim)

    def _fixed_moved(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """``(x[:, mask], x[:, ~mask])``: the fixed and the moved coordinates of ``x [batch, dim]``."""
        if self._parity is None:
            return x[:, self.mask], x[:, ~self.mask]
        return x[:, self._parity::2], x[:, 1 - self._parity::2]

    def _merge(self, fixed: Tensor, moved: Tensor) -> Tensor:
        out = torch.empty(fixed.shape[0], self.mask.numel(), device=fixed.device, dtype=moved.dtype)
        if self._parity is None:
            out[:, self.mask] = fixed.to(moved.dtype)
            out[:, ~self.mask] = moved
        else:
            out[:, self._parity::2] = fixed.to(moved.dtype)
            out[:, 1 - self._parity::2] = moved
        return out


class AffineCoupling(_Coupling):
    r"""Affine coupling: :math:`z_b = x_b \cdot e^{s(x_a, c)} + t(x_a, c)`, :math:`z_a = x_a`.

    The log-scale is softly bounded, :math:`s = 3 \tanh(\tilde s / 3)`, for stable training.
    ``ldj = sum(s)``. Shapes: ``x [batch, dim]``, ``context [batch, context_dim]``.
    """

    def __init__(self, dim: int, parity: int = 0, context_dim: int = 0, hidden: tuple[int, ...] = (128, 128)):
        super().__init__(dim, 2, parity, context_dim, hidden)

    def _scale_shift(self, fixed: Tensor, context: Tensor | None) -> tuple[Tensor, Tensor]:
        p = self._params(fixed, context)
        return 3.0 * torch.tanh(p[..., 0] / 3.0), p[..., 1]

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        fixed, moved = self._fixed_moved(x)
        log_s, t = self._scale_shift(fixed, context)
        return self._merge(fixed, moved * torch.exp(log_s) + t), log_s.sum(-1)

    def inverse(self, z: Tensor, context: Tensor | None = None) -> Tensor:
        fixed, moved = self._fixed_moved(z)
        log_s, t = self._scale_shift(fixed, context)
        return self._merge(fixed, (moved - t) * torch.exp(-log_s))


class MixtureLogisticCoupling(_Coupling):
    r"""Mixture-of-logistics coupling (Flow++, Ho et al. 2019).

    .. math::
        z_b = \operatorname{logit}\Big(\sum_j \pi_j\, \sigma\big(\tfrac{x_b - \mu_j}{s_j}\big)\Big)
              \cdot e^{a} + b

    with all of :math:`\pi, \mu, s, a, b` functions of :math:`(x_a, c)`. The CDF and its logit
    are computed with log-sum-exp of log-sigmoids; the inverse solves the monotone CDF by
    bisection (``inverse_iterations`` halvings of a bracket that is checked to contain the
    root).

    Args:
        dim: event size.
        num_mixtures: number of logistic components per coordinate.
    """

    def __init__(self, dim: int, parity: int = 0, context_dim: int = 0, hidden: tuple[int, ...] = (128, 128),
                 num_mixtures: int = 4, inverse_iterations: int = 60):
        super().__init__(dim, 2 + 3 * num_mixtures, parity, context_dim, hidden)
        self.num_mixtures = num_mixtures
        self.inverse_iterations = inverse_iterations

    def _split(self, fixed: Tensor, context: Tensor | None):
        p = self._params(fixed, context)
        k = self.num_mixtures
        log_a = 3.0 * torch.tanh(p[..., 0] / 3.0)
        b = p[..., 1]
        log_pi = torch.log_softmax(p[..., 2:2 + k], -1)
        mu = p[..., 2 + k:2 + 2 * k]
        log_s = 3.0 * torch.tanh(p[..., 2 + 2 * k:] / 3.0)
        return log_a, b, log_pi, mu, log_s

    @staticmethod
    def _logit_cdf(x: Tensor, log_pi: Tensor, mu: Tensor, log_s: Tensor):
        """Return ``(logit F(x), log F'(x) - log F(x) - log(1 - F(x)))`` elementwise."""
        y = (x.unsqueeze(-1) - mu) * torch.exp(-log_s)
        log_cdf = torch.logsumexp(log_pi + F.logsigmoid(y), -1)
        log_sf = torch.logsumexp(log_pi + F.logsigmoid(-y), -1)
        log_pdf = torch.logsumexp(log_pi + F.logsigmoid(y) + F.logsigmoid(-y) - log_s, -1)
        return log_cdf - log_sf, log_pdf - log_cdf - log_sf

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        fixed, moved = self._fixed_moved(x)
        log_a, b, log_pi, mu, log_s = self._split(fixed, context)
        logit, log_deriv = self._logit_cdf(moved, log_pi, mu, log_s)
        z = logit * torch.exp(log_a) + b
        return self._merge(fixed, z), (log_deriv + log_a).sum(-1)

    def inverse(self, z: Tensor, context: Tensor | None = None) -> Tensor:
        fixed, moved = self._fixed_moved(z)
        log_a, b, log_pi, mu, log_s = self._split(fixed, context)
        target = (moved - b) * torch.exp(-log_a)
        # Bracket: every component's logit-CDF is within its own scale of the mixture's.
        spread = torch.exp(log_s).amax(-1) * (target.abs() + 50.0)
        lo = mu.amin(-1) - spread
        hi = mu.amax(-1) + spread
        for _ in range(self.inverse_iterations):
            mid = 0.5 * (lo + hi)
            val, _ = self._logit_cdf(mid, log_pi, mu, log_s)
            go_up = val < target
            lo = torch.where(go_up, mid, lo)
            hi = torch.where(go_up, hi, mid)
        return self._merge(fixed, 0.5 * (lo + hi))

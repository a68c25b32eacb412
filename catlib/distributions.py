"""Base and noise distributions: Gaussian, Gumbel, truncated Gumbel and logistic.

The Gumbel pair follows the workshop paper's Appendix A (Hoogeboom et al., 2021). Both are
written in ``logaddexp`` / ``log(expm1)`` forms so that they stay finite far in the tails,
and their uniforms are kept strictly inside (0, 1).

Every class has the small ``torch.distributions`` surface the library needs:
``log_prob(value)``, ``rsample(sample_shape)`` (reparametrised) and ``sample``.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import Tensor, nn
from torch.nn import functional as F

__all__ = [
    "log_expm1",
    "uniform_open",
    "log_neg_log_uniform",
    "next_below",
    "Gumbel",
    "TruncatedGumbel",
    "Logistic",
    "TruncatedLogistic",
    "StandardNormal",
    "ConditionalNormal",
    "ConditionalLogistic",
]

_LOG_2PI = math.log(2 * math.pi)


def log_expm1(y: Tensor) -> Tensor:
    r"""Stable :math:`\log(e^y - 1)` for :math:`y > 0`.

    For large ``y`` it is ``y + log(1 - exp(-y))``; for small ``y`` it is
    ``log(expm1(y))``; both branches are finite where they are used.

    >>> float(log_expm1(torch.tensor(1e-3)))  # close to log(1e-3)
    -6.9072...
    >>> float(log_expm1(torch.tensor(100.0)))
    100.0
    """
    y_small = torch.clamp(y, max=20.0)
    return torch.where(y > 20.0, y + torch.log(-torch.expm1(-y)), torch.log(torch.expm1(y_small)))


def uniform_open(shape: Sequence[int], device=None, generator=None) -> Tensor:
    """Float64 uniform samples strictly inside (0, 1), without atoms in the tails.

    ``torch.rand`` in float32 returns multiples of 2^-24, exactly 0 once in 2^24 draws; a clamp
    there would put an atom of that probability at the clamp value, where the Gumbel and
    logistic transforms assign a density of about e^-87 (the importance weights of such a
    draw are astronomically wrong). We draw in float64 (multiples of 2^-53), replace the exact
    zero by 2^-54 (an atom of probability 2^-53), and leave the cast to the caller, after the
    tail transform (``log(-log u)``, ``logit u``) is computed in float64.

    >>> u = uniform_open((3,))
    >>> u.dtype, bool(((u > 0) & (u < 1)).all())
    (torch.float64, True)
    """
    u = torch.rand(tuple(shape), device=device, dtype=torch.float64, generator=generator)
    return u.clamp(min=2.0**-54)


def next_below(t: Tensor) -> Tensor:
    """The largest floating-point number below each entry of ``t``, differentiable as ``t`` itself.

    ``torch.nextafter`` has no derivative in some PyTorch versions (2.11 on CUDA raises
    ``NotImplementedError`` in backward); here its step is added as a constant, so the gradient
    is the identity. The value is exact: the step between neighbouring floats is representable.
    Infinite entries give ``nextafter``'s value (``+inf``: the largest float) and no gradient.

    >>> t = torch.tensor([1.0, -3.0], requires_grad=True)
    >>> bool((next_below(t) < t).all()), torch.equal(next_below(t), torch.nextafter(t, t - 1))
    (True, True)
    >>> next_below(t).sum().backward(); t.grad
    tensor([1., 1.])
    >>> next_below(torch.tensor([math.inf])) == torch.finfo(torch.float32).max
    tensor([True])
    """
    d = t.detach()
    below = torch.nextafter(d, torch.full_like(d, -math.inf))
    return torch.where(torch.isfinite(d), t + (below - d), below)   # +inf -> the largest float, as nextafter


def log_neg_log_uniform(shape: Sequence[int], device=None, dtype=None, generator=None) -> Tensor:
    r""":math:`\log(-\log u)` for uniform ``u``, computed in float64 and cast to ``dtype``.

    This is the noise of the Gumbel inverse CDFs; its range is about [-36.7, 3.6].
    """
    u = uniform_open(shape, device=device, generator=generator)
    return torch.log(-torch.log(u)).to(dtype or torch.get_default_dtype())


def _shape(sample_shape) -> torch.Size:
    return torch.Size(sample_shape) if not isinstance(sample_shape, torch.Size) else sample_shape


class Gumbel:
    r"""Gumbel distribution with location ``loc`` and unit scale.

    .. math:: \log \mathrm{Gumbel}(g \mid \phi) = \phi - g - e^{\phi - g},
              \qquad g = \phi - \log(-\log u),\ u \sim \mathcal{U}(0, 1).

    Args:
        loc: locations :math:`\phi`, any shape.

    >>> d = Gumbel(torch.zeros(3))
    >>> d.rsample((5,)).shape
    torch.Size([5, 3])
    """

    def __init__(self, loc: Tensor):
        self.loc = torch.as_tensor(loc, dtype=torch.get_default_dtype()) if not torch.is_tensor(loc) else loc

    def log_prob(self, value: Tensor) -> Tensor:
        """Log density, same shape as the broadcast of ``value`` and ``loc``."""
        z = self.loc - value
        return z - torch.exp(z)

    def cdf(self, value: Tensor) -> Tensor:
        return torch.exp(-torch.exp(self.loc - value))

    def icdf(self, u: Tensor) -> Tensor:
        """Inverse CDF: ``loc - log(-log u)``."""
        return self.loc - torch.log(-torch.log(u))

    def icdf_with_log_prob(self, log_neg_log_u: Tensor) -> tuple[Tensor, Tensor]:
        r"""Sample and its log density from :math:`\ell = \log(-\log u)`.

        :math:`g = \phi - \ell` and :math:`\log p(g) = \ell - e^{\ell}`: the density is read
        off the noise, with no cancellation.
        """
        return self.loc - log_neg_log_u, log_neg_log_u - torch.exp(log_neg_log_u)

    def rsample(self, sample_shape: Sequence[int] = ()) -> Tensor:
        shape = _shape(sample_shape) + self.loc.shape
        return self.icdf_with_log_prob(log_neg_log_uniform(shape, self.loc.device, self.loc.dtype))[0]

    def sample(self, sample_shape: Sequence[int] = ()) -> Tensor:
        with torch.no_grad():
            return self.rsample(sample_shape)


class TruncatedGumbel:
    r"""Gumbel(``loc``) conditioned on being below ``upper``.

    .. math::
        \log p(g) = \phi - g - e^{\phi - g} + e^{\phi - T}
                  = \phi - g - e^{\phi - T + \log(e^{T - g} - 1)}, \quad g < T,

    sampled by inverting its CDF :math:`F(g) = \exp(e^{\phi-T} - e^{\phi-g})`:
    :math:`g = \phi - \operatorname{logaddexp}(\phi - T, \log(-\log u))`, which is below
    :math:`T` for every finite ``u``. In floating point a sample may round onto ``T`` itself
    when ``T`` lies far below ``loc``; we then move it to the next representable number below
    ``T`` (``torch.nextafter``), so the bound ``g < T`` holds exactly. ``log_prob`` is
    ``-inf`` at or above ``upper``.

    Args:
        loc: locations :math:`\phi`.
        upper: truncation points :math:`T`, broadcastable with ``loc``.

    >>> d = TruncatedGumbel(torch.zeros(4), torch.full((4,), -3.0))
    >>> bool((d.rsample((1000,)) < -3.0).all())
    True
    """

    def __init__(self, loc: Tensor, upper: Tensor):
        self.loc, self.upper = torch.broadcast_tensors(torch.as_tensor(loc), torch.as_tensor(upper))

    def log_prob(self, value: Tensor) -> Tensor:
        gap = self.upper - value
        inside = gap > 0
        safe_gap = torch.where(inside, gap, torch.ones_like(gap))
        lp = self.loc - value - torch.exp(self.loc - self.upper + log_expm1(safe_gap))
        return torch.where(inside, lp, torch.full_like(lp, -math.inf))

    def icdf(self, u: Tensor) -> Tensor:
        return self.icdf_with_log_prob(torch.log(-torch.log(u)))[0]

    def icdf_with_log_prob(self, log_neg_log_u: Tensor) -> tuple[Tensor, Tensor]:
        r"""Sample and its log density from :math:`\ell = \log(-\log u)`.

        With :math:`L = \operatorname{logaddexp}(\phi - T, \ell)`: :math:`g = \phi - L` and
        :math:`\log p(g) = L - e^{\ell}` (substitute :math:`e^{\phi - g} = e^{\phi-T} - \log u`
        into the density). This stays exact when ``g`` itself rounds onto ``T``, e.g. for
        ``T`` 100 below ``loc`` in float32, where ``log_prob(g)`` can only return ``-inf``.
        """
        big = torch.logaddexp(self.loc - self.upper, log_neg_log_u)
        return torch.minimum(self.loc - big, next_below(self.upper)), big - torch.exp(log_neg_log_u)

    def rsample_with_log_prob(self, sample_shape: Sequence[int] = ()) -> tuple[Tensor, Tensor]:
        shape = _shape(sample_shape) + self.loc.shape
        return self.icdf_with_log_prob(log_neg_log_uniform(shape, self.loc.device, self.loc.dtype))

    def rsample(self, sample_shape: Sequence[int] = ()) -> Tensor:
        return self.rsample_with_log_prob(sample_shape)[0]

    def sample(self, sample_shape: Sequence[int] = ()) -> Tensor:
        with torch.no_grad():
            return self.rsample(sample_shape)


class Logistic:
    r"""Logistic distribution.

    .. math:: \log p(x) = -\frac{x-\mu}{s} - \log s - 2\,\mathrm{softplus}\!\left(-\frac{x-\mu}{s}\right)

    >>> d = Logistic(torch.tensor(0.0), torch.tensor(1.0))
    >>> round(float(d.log_prob(torch.tensor(0.0)).exp()), 4)  # 1/4 at the mode
    0.25
    """

    def __init__(self, loc: Tensor, scale: Tensor):
        self.loc, self.scale = torch.broadcast_tensors(torch.as_tensor(loc), torch.as_tensor(scale))

    def log_prob(self, value: Tensor) -> Tensor:
        z = (value - self.loc) / self.scale
        return -z - torch.log(self.scale) - 2 * F.softplus(-z)

    def cdf(self, value: Tensor) -> Tensor:
        return torch.sigmoid((value - self.loc) / self.scale)

    def icdf(self, u: Tensor) -> Tensor:
        return self.loc + self.scale * (torch.log(u) - torch.log1p(-u))

    def rsample(self, sample_shape: Sequence[int] = ()) -> Tensor:
        shape = _shape(sample_shape) + self.loc.shape
        u = uniform_open(shape, device=self.loc.device)
        return (self.loc + self.scale * (torch.log(u) - torch.log1p(-u)).to(self.loc.dtype))

    def sample(self, sample_shape: Sequence[int] = ()) -> Tensor:
        with torch.no_grad():
            return self.rsample(sample_shape)


class TruncatedLogistic:
    r"""Standard logistic truncated to the interval whose CDF values are :math:`m \pm s/2` (TRUFL eq. 4-7).

    .. math::
        f(z; m, s) = \frac{\sigma(z)\,\sigma(-z)}{s}\quad\text{if}\quad
        \Big|\sigma(z) - m\Big| \le \frac{s}{2},\qquad 0\ \text{otherwise},

    sampled by the inverse CDF of a uniform on :math:`(m - s/2, m + s/2)`:
    :math:`z = \operatorname{logit}(m + (u_0 - \tfrac12)\,s)` with :math:`u_0 \sim U(0, 1)`, which
    is differentiable in ``m`` and ``s`` (Tan et al., 2022, appendix A.1). ``m = 1/2, s = 1`` is
    the untruncated logistic; ``m = 1/4, s = 1/2`` is the half-logistic on :math:`z < 0`.

    The support is :math:`[\operatorname{logit}(m - s/2), \operatorname{logit}(m + s/2)]`, computed
    with the same ``logit`` as the samples, so a sample always lies inside it.

    Args:
        m: centre of the CDF interval, in (0, 1).
        s: its width, in (0, 1], with ``m - s/2 >= 0`` and ``m + s/2 <= 1`` (broadcast with ``m``).

    >>> d = TruncatedLogistic(torch.tensor(0.25), torch.tensor(0.5))
    >>> bool((d.rsample((100,)) <= 0).all()), float(d.log_prob(torch.tensor(1.0)))
    (True, -inf)
    """

    def __init__(self, m: Tensor, s: Tensor):
        self.m, self.s = torch.broadcast_tensors(torch.as_tensor(m), torch.as_tensor(s))
        if not ((self.s > 0) & (self.m - self.s / 2 >= 0) & (self.m + self.s / 2 <= 1)).all():
            raise ValueError("TruncatedLogistic needs 0 < s and 0 <= m - s/2 < m + s/2 <= 1, "
                             f"got m in [{float(self.m.min()):.4g}, {float(self.m.max()):.4g}], "
                             f"s in [{float(self.s.min()):.4g}, {float(self.s.max()):.4g}]")

    @staticmethod
    def logit(u: Tensor) -> Tensor:
        """``log u - log(1 - u)``: the standard logistic's inverse CDF (``+-inf`` at 1 and 0)."""
        return torch.log(u) - torch.log1p(-u)

    @property
    def low(self) -> Tensor:
        """Lower end of the support (``-inf`` when ``m - s/2 = 0``)."""
        return self.logit(self.m - self.s / 2)

    @property
    def high(self) -> Tensor:
        """Upper end of the support (``+inf`` when ``m + s/2 = 1``)."""
        return self.logit(self.m + self.s / 2)

    def contains(self, z: Tensor) -> Tensor:
        """Boolean tensor: ``z`` inside the (closed) support."""
        return (z >= self.low) & (z <= self.high)

    def untruncated_log_prob(self, z: Tensor) -> Tensor:
        r""":math:`\log \sigma(z) + \log \sigma(-z) - \log s` everywhere, ignoring the support."""
        return -F.softplus(-z) - F.softplus(z) - torch.log(self.s)

    def log_prob(self, z: Tensor) -> Tensor:
        """Log density, ``-inf`` outside the support."""
        return torch.where(self.contains(z), self.untruncated_log_prob(z), -math.inf)

    def soft_log_indicator(self, z: Tensor, temperature: float) -> Tensor:
        r"""A smooth upper bound on :math:`\log 1[z \in \text{support}]`: 0 inside, decaying outside.

        .. math::
            -\frac{1}{\tau}\,\max\Big(0,\ \big|\sigma(z) - m\big| - \frac{s}{2}\Big),

        measured in CDF units (how far :math:`\sigma(z)` lies outside :math:`m \pm s/2`). It
        tends to the hard indicator as :math:`\tau \to 0` and, unlike it, has a gradient
        outside the support that pulls the support's ends away from ``z``.

        >>> d = TruncatedLogistic(torch.tensor(0.25), torch.tensor(0.5))
        >>> d.soft_log_indicator(torch.tensor([-1.0, 0.0, 1.0]), 0.1)
        tensor([ 0.0000,  0.0000, -2.3106])
        """
        if not temperature > 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        return (self.s / 2 - (torch.sigmoid(z) - self.m).abs()).clamp(max=0) / temperature

    def icdf(self, u0: Tensor) -> Tensor:
        """Map uniforms ``u0`` in (0, 1) to samples (reparametrised in ``m`` and ``s``)."""
        return self.logit(self.m + (u0 - 0.5) * self.s)

    def rsample(self, sample_shape: Sequence[int] = ()) -> Tensor:
        shape = _shape(sample_shape) + self.m.shape
        return self.icdf(uniform_open(shape, device=self.m.device).to(self.m.dtype))

    def sample(self, sample_shape: Sequence[int] = ()) -> Tensor:
        with torch.no_grad():
            return self.rsample(sample_shape)


class StandardNormal(nn.Module):
    r"""Standard normal on vectors of size ``dim``: the usual flow base.

    ``log_prob(z)`` sums over the last axis: ``z [batch, dim] -> [batch]``.

    >>> StandardNormal(3).log_prob(torch.zeros(2, 3)).shape
    torch.Size([2])
    """

    def __init__(self, dim: int):
        super().__init__()
        self.dim = dim
        self.register_buffer("_anchor", torch.zeros(()))  # follows .to(device)

    def log_prob(self, z: Tensor, context: Tensor | None = None) -> Tensor:
        return -0.5 * (z**2 + _LOG_2PI).sum(-1)

    def sample(self, n: int, context: Tensor | None = None) -> Tensor:
        if context is not None:
            n = context.shape[0]
        return torch.randn(n, self.dim, device=self._anchor.device, dtype=self._anchor.dtype)


class ConditionalNormal(nn.Module):
    r"""Diagonal Gaussian whose mean and log-scale come from a network of the context.

    .. math:: q(u \mid c) = \mathcal{N}(u;\ \mu(c), \operatorname{diag} \sigma(c)^2)

    Args:
        net: maps ``context [batch, *]`` to ``[batch, 2 * dim]`` (means, then log-scales).
        dim: event size.

    ``sample_with_log_prob(context)`` returns ``(u [batch, dim], log q [batch])`` with ``u``
    reparametrised.
    """

    def __init__(self, net: nn.Module, dim: int):
        super().__init__()
        self.net, self.dim = net, dim

    def _params(self, context: Tensor) -> tuple[Tensor, Tensor]:
        mean, log_scale = self.net(context).chunk(2, dim=-1)
        return mean, log_scale

    def log_prob(self, u: Tensor, context: Tensor) -> Tensor:
        mean, log_scale = self._params(context)
        eps = (u - mean) * torch.exp(-log_scale)
        return (-0.5 * (eps**2 + _LOG_2PI) - log_scale).sum(-1)

    def sample_with_log_prob(self, context: Tensor) -> tuple[Tensor, Tensor]:
        mean, log_scale = self._params(context)
        eps = torch.randn_like(mean)
        u = mean + torch.exp(log_scale) * eps
        return u, (-0.5 * (eps**2 + _LOG_2PI) - log_scale).sum(-1)


class ConditionalLogistic(ConditionalNormal):
    r"""Logistic whose location and log-scale come from a network of the context.

    .. math:: q(s \mid c) = \prod_i \mathrm{Logistic}(s_i;\ \mu_i(c), \sigma_i(c))

    The base of the noise flows that end in a sigmoid: :math:`\sigma(s)` is *exactly* uniform on
    :math:`(0,1)` when :math:`\mu = 0, \sigma = 1`, so such a flow can start at uniform noise.
    The standard logistic draw :math:`\log u - \log(1-u)` is made in float64 from
    :func:`uniform_open`, so its tails reach :math:`\pm 37` instead of stopping at float32's
    :math:`\pm 17`. Same interface as :class:`ConditionalNormal`.

    >>> import torch.nn as nn
    >>> q = ConditionalLogistic(nn.Linear(1, 4), 2)
    >>> s, log_q = q.sample_with_log_prob(torch.zeros(3, 1))
    >>> bool(torch.allclose(q.log_prob(s, torch.zeros(3, 1)), log_q, atol=1e-5))
    True
    """

    @staticmethod
    def _standard_log_prob(z: Tensor) -> Tensor:
        return -z - 2 * F.softplus(-z)

    def log_prob(self, u: Tensor, context: Tensor) -> Tensor:
        mean, log_scale = self._params(context)
        z = (u - mean) * torch.exp(-log_scale)
        return (self._standard_log_prob(z) - log_scale).sum(-1)

    def sample_with_log_prob(self, context: Tensor) -> tuple[Tensor, Tensor]:
        mean, log_scale = self._params(context)
        w = uniform_open(mean.shape, device=mean.device)
        z = (torch.log(w) - torch.log1p(-w)).to(mean.dtype)
        return mean + torch.exp(log_scale) * z, (self._standard_log_prob(z) - log_scale).sum(-1)

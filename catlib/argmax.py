r"""The argmax surjection and its probabilistic inverses (Hoogeboom et al., 2021).

A categorical variable :math:`x \in \{0..K-1\}` is the argmax of a continuous
:math:`v \in \mathbb{R}^K`. The generative direction is deterministic, ``x = argmax(v)``;
the inference direction samples :math:`v \sim q(v \mid x)` with support inside the region
:math:`\{v : \arg\max v = x\}`, which gives the bound

.. math:: \log P(x) \ge \mathbb{E}_{q(v|x)}\big[\log p(v) - \log q(v \mid x)\big].

Three inverses :math:`q(v \mid x)`, each a class below:

- :class:`ThresholdInverse`: learned :math:`u \sim q(u|x)` pushed below
  :math:`T = u_x` by :math:`v_i = T - \mathrm{softplus}(T - u_i)`;
- :class:`GumbelInverse`: a Gumbel(:math:`\phi`) vector conditioned on its argmax;
- :class:`GumbelThresholdInverse`: learned noise in (0, 1) through the inverse CDFs of the
  Gumbel and truncated Gumbel.

and, for many classes, the Cartesian-product (base-M digits) encoding, with the binary case
:class:`BinaryThresholdInverse` using one real number per bit.

Shapes: ``x [batch, D]`` class indices; ``v [batch, D * K]`` (flattened for the flow).

The learned inverses take their conditional flow from a factory ``q_flow(dim, context_dim,
base=...) -> ConditionalFlow`` (:data:`QFlowFactory`); by default :func:`conditional_flow` (MLP
couplings), and for images the convolutional flows of :mod:`catlib.flows.image`.
"""
from __future__ import annotations

import math
from functools import partial
from typing import Callable

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from catlib.distributions import (ConditionalLogistic, ConditionalNormal, Gumbel, TruncatedGumbel, log_neg_log_uniform,
                                  next_below)
from catlib.flows import ConditionalFlow, coupling_stack
from catlib.nets import MLP
from catlib.validation import check_positive_int, check_positive_ints

__all__ = [
    "ArgmaxSurjection", "ArgmaxInverse", "ThresholdInverse", "GumbelInverse",
    "GumbelThresholdInverse", "BinaryThresholdInverse", "CartesianEncoding",
    "cartesian_tradeoffs", "threshold", "flat_onehot", "gumbel_argmax_transform", "conditional_flow", "log_softplus",
    "strictly_below", "QFlowFactory", "q_flow_or_default",
]

QFlowFactory = Callable[..., ConditionalFlow]
"""``q_flow(dim, context_dim, base=...) -> ConditionalFlow``: builds :math:`q(u \\mid c)` on
``[batch, dim]`` given a context ``[batch, context_dim]``, with a ``"normal"`` or
``"logistic"`` base that is standard at initialisation (see :func:`conditional_flow`)."""


def log_softplus(y: Tensor) -> Tensor:
    """Stable ``log(softplus(y))``: equals ``y`` to float precision for ``y < -20``."""
    return torch.where(y < -20.0, y, torch.log(F.softplus(torch.clamp(y, min=-20.0))))


def flat_onehot(x: Tensor, num_classes: int) -> Tensor:
    """``x [batch, D]`` -> one-hot vectors flattened to ``[batch, D * K]`` in the default dtype."""
    return F.one_hot(x, num_classes).flatten(1).to(torch.get_default_dtype())


def strictly_below(v: Tensor, upper: Tensor) -> Tensor:
    """Floating-point guard: ``v`` moved to the largest number below ``upper`` if it rounded onto it.

    >>> float(strictly_below(torch.tensor(1.0), torch.tensor(1.0))) < 1.0
    True
    """
    return torch.minimum(v, next_below(upper))


def threshold(u: Tensor, x: Tensor) -> tuple[Tensor, Tensor]:
    r"""Softplus thresholding of ``u`` below its entry at ``x``.

    .. math:: T = u_x,\qquad v_x = T,\qquad v_i = T - \mathrm{softplus}(T - u_i)\ (i \ne x),

    an injective map onto :math:`\{v : \arg\max v = x\}` with
    :math:`\log|\det \partial v / \partial u| = -\sum_{i \ne x} \mathrm{softplus}(u_i - T)`.

    Args:
        u: ``[batch, D, K]``.
        x: ``[batch, D]`` class indices.

    Returns:
        ``v [batch, D, K]`` and ``ldj [batch]`` (the log-determinant of ``u -> v``).

    >>> v, ldj = threshold(torch.tensor([[[0.0, 3.0, -1.0]]]), torch.tensor([[2]]))
    >>> int(v.argmax(-1))
    2
    """
    T = u.gather(-1, x.unsqueeze(-1))
    is_x = F.one_hot(x, u.shape[-1]).bool()
    below = strictly_below(T - F.softplus(T - u), T)
    v = torch.where(is_x, u, below)
    ldj = -(F.softplus(u - T) * (~is_x)).flatten(1).sum(-1)
    return v, ldj


def conditional_flow(dim: int, context_dim: int, num_steps: int = 2, hidden: tuple[int, ...] = (128,),
                     coupling: str = "affine", base: str = "normal") -> ConditionalFlow:
    r"""``q(u | context)``: a conditional diagonal base followed by ``num_steps`` conditional couplings.

    The couplings start as the identity and the base at location 0, scale 1, so at
    initialisation ``q(u | c)`` is the standard ``base`` for every context, whatever the
    mixing layers between the couplings do to it:

    - ``"normal"`` (:class:`ConditionalNormal`): mixing by learned linear layers, which start
      at random rotations, under which a standard normal is unchanged;
    - ``"logistic"`` (:class:`ConditionalLogistic`): mixing by fixed reversals, under which
      i.i.d. logistic noise is unchanged. Its sigmoid is exactly uniform, so a variational
      dequantizer starts as the uniform one, and Gumbel thresholding as the Gumbel inverse.
    """
    bases = {"normal": (ConditionalNormal, "linear"), "logistic": (ConditionalLogistic, "reverse")}
    if not isinstance(base, str) or base not in bases:
        raise ValueError(f"base must be one of {sorted(bases)}, got {base!r}")
    num_steps = check_positive_int("num_steps", num_steps, minimum=0)
    hidden = check_positive_ints("hidden", hidden)
    base_class, mixing = bases[base]
    net = MLP(context_dim, 2 * dim, hidden, zero_init=True)
    transforms = (coupling_stack(dim, num_steps, hidden, coupling, context_dim, actnorm=False, mixing=mixing)
                  if dim > 1 else [])
    return ConditionalFlow(base_class(net, dim), transforms)


def q_flow_or_default(q_flow: QFlowFactory | None, flow_steps: int, hidden: tuple[int, ...]) -> QFlowFactory:
    """``q_flow`` if given, else :func:`conditional_flow` with ``flow_steps`` couplings of ``hidden`` MLPs."""
    return q_flow if q_flow is not None else partial(conditional_flow, num_steps=flow_steps, hidden=hidden)


def gumbel_argmax_transform(phi: Tensor, log_neg_log_u: Tensor, x: Tensor) -> tuple[Tensor, Tensor]:
    r"""Map noise :math:`\ell = \log(-\log u)` to a Gumbel(``phi``) vector with argmax ``x``.

    .. math::
        T = v_x = \operatorname{logsumexp}\phi - \ell_x,\qquad
        v_i = \phi_i - \operatorname{logaddexp}(\phi_i - T, \ell_i)\ (i \ne x),

    the inverse CDFs of :math:`\mathrm{Gumbel}(\operatorname{logsumexp}\phi)` and of
    :math:`\mathrm{TruncGumbel}(\phi_i; T)`. With uniform ``u`` this samples
    :math:`q(v|x) = \prod_i \mathrm{Gumbel}(v_i|\phi_i) / \operatorname{softmax}(\phi)_x`.

    Args:
        phi: ``[D, K]`` or ``[batch, D, K]`` locations.
        log_neg_log_u: ``[batch, D, K]``.
        x: ``[batch, D]``.

    Returns:
        ``v [batch, D, K]`` and the summed log density of ``v`` under those distributions
        ``[batch]``, which is minus the log-determinant of ``u -> v``.
    """
    phi = phi.expand_as(log_neg_log_u)
    top = Gumbel(torch.logsumexp(phi, -1, keepdim=True))
    T, log_p_top = top.icdf_with_log_prob(log_neg_log_u.gather(-1, x.unsqueeze(-1)))
    v_rest, log_p_rest = TruncatedGumbel(phi, T).icdf_with_log_prob(log_neg_log_u)
    is_x = F.one_hot(x, phi.shape[-1]).bool()
    v = torch.where(is_x, T, v_rest)
    log_density = log_p_top.flatten(1).sum(-1) + (log_p_rest * (~is_x)).flatten(1).sum(-1)
    return v, log_density


class ArgmaxInverse(nn.Module):
    """A distribution ``q(v | x)`` supported on the argmax region of ``x``.

    Subclasses implement ``sample(x) -> (v [batch, D, K], log q(v|x) [batch])``.
    """

    def __init__(self, num_vars: int, num_classes: int):
        super().__init__()
        self.num_vars, self.num_classes = num_vars, num_classes

    @property
    def dim(self) -> int:
        """Size of the flattened ``v``."""
        return self.num_vars * self.num_classes

    def context(self, x: Tensor) -> Tensor:
        """One-hot of ``x`` flattened: ``[batch, D * K]``, the conditioning of ``q(u|x)``, in the
        dtype of the layer's parameters (so that a ``.double()`` model runs in float64)."""
        param = next(self.parameters(), None)
        return flat_onehot(x, self.num_classes).to(torch.get_default_dtype() if param is None else param.dtype)

    def sample(self, x: Tensor) -> tuple[Tensor, Tensor]:
        raise NotImplementedError

    def decode(self, v: Tensor) -> Tensor:
        """``v [batch, D * K] -> x [batch, D]``: the argmax."""
        return v.view(v.shape[0], self.num_vars, self.num_classes).argmax(-1)


class ThresholdInverse(ArgmaxInverse):
    r"""Thresholding inverse: :math:`u \sim q(u|x)` (conditional flow), then :func:`threshold`.

    .. math:: \log q(v|x) = \log q(u|x) + \sum_{i \ne x} \mathrm{softplus}(u_i - T)

    ``q(u|x)`` is built by ``q_flow(dim, dim, base="normal")`` (default: :func:`conditional_flow`
    with ``flow_steps`` couplings of ``hidden`` MLPs; ``flow_steps`` and ``hidden`` are unused
    when ``q_flow`` is given).
    """

    def __init__(self, num_vars: int, num_classes: int, flow_steps: int = 2, hidden: tuple[int, ...] = (128,),
                 q_flow: QFlowFactory | None = None):
        super().__init__(num_vars, num_classes)
        self.q_u = q_flow_or_default(q_flow, flow_steps, hidden)(self.dim, self.dim, base="normal")

    def sample(self, x: Tensor) -> tuple[Tensor, Tensor]:
        u, log_q = self.q_u.sample_with_log_prob(self.context(x))
        v, ldj = threshold(u.view(x.shape[0], self.num_vars, self.num_classes), x)
        return v, log_q - ldj


class _GumbelLocations(nn.Module):
    """Learned Gumbel locations ``phi [D, K]``, set from the class frequencies of the first batch."""

    def __init__(self, num_vars: int, num_classes: int):
        super().__init__()
        self.phi = nn.Parameter(torch.zeros(num_vars, num_classes))
        self.register_buffer("initialized", torch.tensor(False))

    def forward(self, x: Tensor) -> Tensor:
        if self.training and not bool(self.initialized):
            with torch.no_grad():
                counts = F.one_hot(x, self.phi.shape[-1]).sum(0).to(self.phi.dtype)  # [D, K]
                freq = (counts + 0.5) / (counts.sum(-1, keepdim=True) + 0.5 * self.phi.shape[-1])
                self.phi.copy_(torch.log(freq))
                self.initialized.fill_(True)
        return self.phi


class GumbelInverse(ArgmaxInverse):
    r"""Gumbel inverse: :math:`v \sim \mathrm{Gumbel}(\phi)` conditioned on :math:`\arg\max v = x`.

    .. math::
        T = v_x \sim \mathrm{Gumbel}(\operatorname{logsumexp}\phi),\qquad
        v_i \sim \mathrm{TruncGumbel}(\phi_i; T)\ (i \ne x),

    so that :math:`\log q(v|x) = \sum_i \log\mathrm{Gumbel}(v_i|\phi_i) - \log\operatorname{softmax}(\phi)_x`.
    The locations are learned and start at the log class frequencies of the first batch.
    """

    def __init__(self, num_vars: int, num_classes: int):
        super().__init__(num_vars, num_classes)
        self.locations = _GumbelLocations(num_vars, num_classes)

    def sample(self, x: Tensor) -> tuple[Tensor, Tensor]:
        noise = log_neg_log_uniform((x.shape[0], self.num_vars, self.num_classes), device=x.device,
                                    dtype=self.locations.phi.dtype)
        return gumbel_argmax_transform(self.locations(x), noise, x)


class GumbelThresholdInverse(ArgmaxInverse):
    r"""Gumbel thresholding: learned noise :math:`w \in (0,1)^{D \times K}` through Gumbel inverse CDFs.

    :math:`s \sim q(s|x)` (conditional flow on :math:`\mathbb{R}^{D \times K}`), :math:`w = \sigma(s)`,

    .. math::
        T = \operatorname{logsumexp}\phi - \log(-\log w_x),\qquad
        v_i = \phi_i - \operatorname{logaddexp}(\phi_i - T, \log(-\log w_i)),

    with :math:`-\log \sigma(s) = \mathrm{softplus}(-s)` so no probability is ever rounded.
    Because the inverse CDF's log-derivative is minus the log density,

    .. math::
        \log q(v|x) = \log q(s|x) - \sum \log \sigma'(s) + \log \mathrm{Gumbel}(T)
                      + \sum_{i\ne x} \log \mathrm{TruncGumbel}(v_i; \phi_i, T),

    and with :math:`w` uniform it is exactly :class:`GumbelInverse`. ``q(s|x)`` is built by
    ``q_flow(dim, dim, base="logistic")``, which starts at the standard logistic, i.e. at uniform
    :math:`w` (default: :func:`conditional_flow`, as in :class:`ThresholdInverse`).
    """

    def __init__(self, num_vars: int, num_classes: int, flow_steps: int = 2, hidden: tuple[int, ...] = (128,),
                 q_flow: QFlowFactory | None = None):
        super().__init__(num_vars, num_classes)
        self.locations = _GumbelLocations(num_vars, num_classes)
        self.q_s = q_flow_or_default(q_flow, flow_steps, hidden)(self.dim, self.dim, base="logistic")

    def sample(self, x: Tensor) -> tuple[Tensor, Tensor]:
        s, log_q_s = self.q_s.sample_with_log_prob(self.context(x))
        s = s.view(x.shape[0], self.num_vars, self.num_classes)
        log_q_w = log_q_s + (F.softplus(-s) + F.softplus(s)).flatten(1).sum(-1)  # minus log sigmoid'
        v, log_density = gumbel_argmax_transform(self.locations(x), log_softplus(-s), x)
        return v, log_q_w + log_density


class BinaryThresholdInverse(ArgmaxInverse):
    r"""Binary digits with one real number each: :math:`v = (2b - 1)\,\mathrm{softplus}(u)`.

    A two-class argmax needs only the sign of one number. With :math:`u \sim q(u|b)`,
    :math:`\log q(v|b) = \log q(u|b) + \mathrm{softplus}(-u)` (minus :math:`\log\sigma(u)`).
    ``softplus(u)`` is kept at or above the smallest positive float so that the sign survives
    rounding. Here ``num_classes`` is 2 and ``v`` has ``D`` entries, not ``2 D``. ``q(u|b)``
    is built by ``q_flow(D, D, base="normal")`` (default: :func:`conditional_flow`).
    """

    def __init__(self, num_vars: int, flow_steps: int = 2, hidden: tuple[int, ...] = (128,),
                 q_flow: QFlowFactory | None = None):
        super().__init__(num_vars, 2)
        self.q_u = q_flow_or_default(q_flow, flow_steps, hidden)(num_vars, num_vars, base="normal")

    @property
    def dim(self) -> int:
        return self.num_vars

    def context(self, x: Tensor) -> Tensor:
        return (2 * x - 1).to(torch.get_default_dtype())

    def sample(self, x: Tensor) -> tuple[Tensor, Tensor]:
        u, log_q = self.q_u.sample_with_log_prob(self.context(x))
        magnitude = F.softplus(u).clamp(min=torch.finfo(u.dtype).tiny)
        v = (2 * x - 1).to(u.dtype) * magnitude
        return v, log_q + F.softplus(-u).sum(-1)

    def decode(self, v: Tensor) -> Tensor:
        return (v > 0).long()


class ArgmaxSurjection(nn.Module):
    r"""Surjective layer ``x <-> v`` (survae_flows direction: ``forward`` is data to latent).

    ``forward(x) -> (v [batch, dim], ldj [batch])`` samples ``v ~ q(v|x)`` and returns
    :math:`\mathrm{ldj} = -\log q(v|x)`; ``inverse(v) -> x`` is the argmax.
    """

    stochastic_forward = True

    def __init__(self, inverse: ArgmaxInverse):
        super().__init__()
        self.q = inverse

    @property
    def dim(self) -> int:
        return self.q.dim

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        v, log_q = self.q.sample(x)
        return v.flatten(1), -log_q

    def inverse(self, v: Tensor) -> Tensor:
        return self.q.decode(v)


class CartesianEncoding:
    r"""Base-``M`` digits of class indices: ``K`` classes as :math:`d_m = \lceil \log_M K \rceil` digits.

    Codes :math:`\ge K` are unused: a model over digits may put mass on them, which keeps its
    bound on :math:`\log P(x)` valid (the mass is simply lost) and shows up as invalid samples.

    >>> enc = CartesianEncoding(50, 2)
    >>> enc.digits
    6
    >>> enc.encode(torch.tensor([[5]]))
    tensor([[[1, 0, 1, 0, 0, 0]]])
    """

    def __init__(self, num_classes: int, base: int):
        base = check_positive_int("base", base, minimum=2)
        num_classes = check_positive_int("num_classes", num_classes, minimum=2)
        self.num_classes, self.base = num_classes, base
        digits, capacity = 1, base
        while capacity < num_classes:  # integer arithmetic: no floating-point log
            digits, capacity = digits + 1, capacity * base
        self.digits = digits

    def encode(self, x: Tensor) -> Tensor:
        """``x [...]`` -> digits ``[..., d_m]``, least significant first."""
        powers = self.base ** torch.arange(self.digits, device=x.device)
        return torch.div(x.unsqueeze(-1), powers, rounding_mode="floor") % self.base

    def decode(self, digits: Tensor) -> tuple[Tensor, Tensor]:
        """Digits ``[..., d_m]`` -> ``(x [...], valid [...])``, valid where ``x < K``."""
        powers = self.base ** torch.arange(self.digits, device=digits.device)
        x = (digits * powers).sum(-1)
        return x, x < self.num_classes


def cartesian_tradeoffs(num_classes: int, bases: list[int]) -> list[dict]:
    """The workshop paper's Table 5 computed: for each base M, the digits, neighbours and size.

    Within one digit every argmax region borders the ``M - 1`` others ("neighbours per
    digit"; the paper's column reads M for it); a class has ``d_m (M - 1)`` classes one digit
    away; two classes can differ in up to ``d_m`` digits ("max distance"); ``v`` has
    ``d_m * M`` entries, or ``d_m`` with the one-number binary form.

    >>> [r["digits"] for r in cartesian_tradeoffs(2000, [2000, 45, 13, 2])]
    [1, 2, 3, 11]
    """
    rows = []
    for m in bases:
        d = CartesianEncoding(num_classes, m).digits
        rows.append({"base": m, "digits": d, "neighbours_per_digit": m - 1,
                     "one_digit_away": d * (m - 1), "max_distance": d,
                     "total_dimensions": d * m, "binary_sign_dimensions": d if m == 2 else None,
                     "unused_codes": m**d - num_classes})
    return rows

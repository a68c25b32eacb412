r"""Autoregressive mixture-of-logistics flow over sequences, with a cached-state sampler.

The prior of the autoregressive text models of Argmax Flows (Hoogeboom et al., 2021, section
6.1), which the paper takes from CategoricalNF (Lippe and Gavves, 2020). In the official code
(repository ``didriknielsen/argmax_flows``) it is ``AutoregressiveMixtureCDFCoupling`` of
``model/CategoricalNF/flows/autoregressive_coupling.py`` with the network
``AutoregressiveLSTMModel`` of ``model/CategoricalNF/networks/autoregressive_layers.py`` and the
elementwise maths of ``model/CategoricalNF/flows/mixture_cdf_layer.py`` (Flow++'s
mixture-of-logistics CDF, Ho et al., 2019).

Each coordinate :math:`v_{t,c}` of a sequence ``v [batch, L, d]`` is mapped by

.. math::
    z_{t,c} = \Big(\operatorname{logit} \sum_{j=1}^M \pi_j\,
              \sigma\big(\tfrac{v_{t,c} - \mu_j}{s_j}\big) + b\Big)\, e^{a},

with :math:`(a, b, \pi, \mu, s)` functions of :math:`v_{<t}` and :math:`v_{t,<c}`
(:class:`~catlib.nets.lstm.ARLSTMNet`), so the Jacobian is triangular and

.. math:: \log\Big|\det\frac{\partial z}{\partial v}\Big| = \sum_{t,c} a_{t,c}
          + \log F'(v_{t,c}) - \log F(v_{t,c}) - \log(1 - F(v_{t,c})).

The inverse is sequential: position by position, coordinate by coordinate, each a monotone
scalar equation solved by safeguarded Newton steps (:func:`mixture_logistic_inverse`) for all
rows of the batch at once. :meth:`ARMixtureLogisticFlow.inverse` keeps the LSTM state between
positions (``L`` LSTM steps); :meth:`ARMixtureLogisticFlow.inverse_reference` recomputes the
whole network for every coordinate, as the official code does (``L d`` full passes), and
serves as the reference in the tests and the benchmark.
"""
from __future__ import annotations

import contextlib
from typing import Iterator, NamedTuple

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from catlib.flows.base import Transform
from catlib.nets.lstm import ARLSTMNet
from catlib.validation import check_positive_int

__all__ = ["MixtureParams", "mixture_logistic_params", "mixture_logistic_logit_cdf", "mixture_logistic_transform",
           "mixture_logistic_inverse", "ARMixtureLogisticFlow"]


class MixtureParams(NamedTuple):
    """Parameters of the elementwise map, float64: ``shift, log_scale [*]``; ``log_pi, means, log_scales [*, M]``."""

    shift: Tensor
    log_scale: Tensor
    log_pi: Tensor
    means: Tensor
    log_scales: Tensor

    def select(self, index) -> "MixtureParams":
        """The parameters of ``[..., index]`` of the leading (non-mixture) axes, e.g. ``(slice(None), j)``."""
        return MixtureParams(self.shift[index], self.log_scale[index], self.log_pi[index], self.means[index],
                             self.log_scales[index])


def mixture_logistic_params(raw: Tensor, scaling_factor: Tensor, mixture_scaling_factor: Tensor) -> MixtureParams:
    r"""Split network outputs ``raw [*, c, 2 + 3M]`` into :class:`MixtureParams` (float64).

    As ``MixtureCDFCoupling.get_mixt_params`` (``model/CategoricalNF/flows/mixture_cdf_layer.py``):
    ``raw[..., 0]`` is the shift :math:`b`, ``raw[..., 1]`` the log-scale :math:`a`, then ``M``
    mixture logits, ``M`` means and ``M`` log-scales. Both log-scales are softly bounded by
    learned per-channel factors :math:`f = e^{\phi}` (``phi`` starts at 0):
    :math:`a = f \tanh(\tilde a / \max(f, 1))`.

    Args:
        raw: ``[*, c, 2 + 3M]``.
        scaling_factor: :math:`\phi` of the output scale, ``[c]``.
        mixture_scaling_factor: :math:`\phi` of the component scales, ``[c, M]``.
    """
    m = (raw.shape[-1] - 2) // 3
    if raw.shape[-1] != 2 + 3 * m or m < 1:
        raise ValueError(f"raw must have 2 + 3 M entries in its last axis, got {raw.shape[-1]}")
    fac = torch.exp(scaling_factor)
    log_scale = torch.tanh(raw[..., 1] / fac.clamp(min=1.0)) * fac
    mfac = torch.exp(mixture_scaling_factor)
    log_scales = torch.tanh(raw[..., 2 + 2 * m:] / mfac.clamp(min=1.0)) * mfac
    log_pi = torch.log_softmax(raw[..., 2:2 + m].double(), -1)
    return MixtureParams(raw[..., 0].double(), log_scale.double(), log_pi, raw[..., 2 + m:2 + 2 * m].double(),
                         log_scales.double())


def mixture_logistic_logit_cdf(x: Tensor, log_pi: Tensor, means: Tensor, log_scales: Tensor) -> tuple[Tensor, Tensor]:
    r"""``(logit F(x), log F'(x) - log F(x) - log(1 - F(x)))`` of :math:`F = \sum_j \pi_j \sigma((x - \mu_j)/s_j)`.

    Computed with log-sum-exps of log-sigmoids, so neither :math:`F` nor :math:`1 - F` is ever
    rounded to 0 or 1. Shapes: ``x [*]``, the rest ``[*, M]``.

    >>> lp = torch.zeros(1, 1, dtype=torch.float64)
    >>> logit, _ = mixture_logistic_logit_cdf(torch.tensor([0.7], dtype=torch.float64), lp, lp, lp)
    >>> round(float(logit), 6)  # one standard logistic: the logit of its CDF is x
    0.7
    """
    y = (x.unsqueeze(-1) - means) * torch.exp(-log_scales)
    log_cdf = torch.logsumexp(log_pi + F.logsigmoid(y), -1)
    log_sf = torch.logsumexp(log_pi + F.logsigmoid(-y), -1)
    log_pdf = torch.logsumexp(log_pi + F.logsigmoid(y) + F.logsigmoid(-y) - log_scales, -1)
    return log_cdf - log_sf, log_pdf - log_cdf - log_sf


def mixture_logistic_transform(x: Tensor, p: MixtureParams) -> tuple[Tensor, Tensor]:
    r""":math:`z = (\operatorname{logit} F(x) + b)\, e^{a}` elementwise, and its elementwise log-derivative.

    Shapes: ``x [*]`` (float64), ``p`` as :class:`MixtureParams` -> ``(z [*], ldj [*])``.
    """
    logit, log_deriv = mixture_logistic_logit_cdf(x, p.log_pi, p.means, p.log_scales)
    return (logit + p.shift) * torch.exp(p.log_scale), log_deriv + p.log_scale


@torch.no_grad()
def mixture_logistic_inverse(z: Tensor, p: MixtureParams, max_iterations: int = 100, tol: float = 1e-12) -> Tensor:
    r"""Solve :func:`mixture_logistic_transform` for ``x`` by safeguarded Newton steps, elementwise and vectorised.

    We solve :math:`g(x) = \operatorname{logit} F(x) - y = 0` for the target
    :math:`y = z e^{-a} - b`. Since :math:`y` is the logit of a convex combination of the
    components' CDFs, it lies between their logits :math:`(x - \mu_j)/s_j`, so the root lies in

    .. math:: \big[\min_j (\mu_j + s_j y),\ \max_j (\mu_j + s_j y)\big],

    an exact bracket (the official code's ``mixture_inv_cdf`` bisects
    :math:`\mu \pm 20 \sum_j s_j`, which can miss the root for large :math:`|y|`). We start at
    :math:`x_0 = \sum_j \pi_j (\mu_j + s_j y)`, inside the bracket, and take Newton steps

    .. math:: x \leftarrow x - g(x)\,\frac{F(x)\,(1 - F(x))}{F'(x)},

    shrinking the bracket with the sign of :math:`g` at every iterate; a step that would leave
    the bracket is replaced by its midpoint (bisection), so the iteration cannot diverge. Newton
    converges quadratically: a handful of iterations reach float64 round-off where bisection
    needs about 48 halvings, each costing the same few vectorised operations. An element is
    solved when :math:`|g(x)| \le` ``tol`` :math:`\max(1, |y|)` (a small Newton step alone is
    no proof: next to a very narrow component the slope is huge and the step tiny while the root
    is far) or its bracket has shrunk to round-off; the loop stops when every element is solved,
    or after ``max_iterations``. Not differentiable (computed without autograd).

    Shapes: ``z [*]`` (float64) -> ``x [*]``.

    >>> p = MixtureParams(*(torch.zeros(1, dtype=torch.float64) for _ in range(2)),
    ...                   *(torch.zeros(1, 1, dtype=torch.float64) for _ in range(3)))
    >>> float(mixture_logistic_inverse(torch.tensor([0.7], dtype=torch.float64), p)[0])  # one logistic: x = z
    0.7
    """
    target = z * torch.exp(-p.log_scale) - p.shift
    ends = p.means + torch.exp(p.log_scales) * target.unsqueeze(-1)
    lo, hi = ends.amin(-1), ends.amax(-1)
    if lo.numel() == 0:
        return lo
    x = (torch.exp(p.log_pi) * ends).sum(-1)
    inv_scales = torch.exp(-p.log_scales)
    log_pi_over_s = p.log_pi - p.log_scales
    for _ in range(max_iterations):
        y = (x.unsqueeze(-1) - p.means) * inv_scales
        log_sig = F.logsigmoid(y)  # log sigma(-y) = log sigma(y) - y
        a = p.log_pi + log_sig
        log_cdf, log_sf = torch.logsumexp(a, -1), torch.logsumexp(a - y, -1)
        log_pdf = torch.logsumexp(log_pi_over_s + 2 * log_sig - y, -1)
        g = log_cdf - log_sf - target
        solved = (g.abs() <= tol * target.abs().clamp(min=1.0)) | (hi - lo <= 1e-15 * x.abs().clamp(min=1.0))
        if bool(solved.all()):
            break
        below = g < 0
        lo, hi = torch.where(below, x, lo), torch.where(below, hi, x)
        step = torch.addcmul(x, g, torch.exp(log_cdf + log_sf - log_pdf), value=-1.0)
        x = torch.where(solved, x, torch.where((step >= lo) & (step <= hi), step, 0.5 * (lo + hi)))
    return x


@contextlib.contextmanager
def _without_onednn(device: torch.device) -> Iterator[None]:
    """On the CPU, run the block with oneDNN (mkldnn) off: measured on 2 CPU cores (one thread), one step of
    a 2-layer ``nn.LSTM(128 -> 256)`` took 0.84 ms with it and 0.22 ms without for one row, 1.27 / 1.15 ms
    for 64 rows (benchmarks/speed_sampling.py). Elsewhere, nothing changes."""
    if device.type != "cpu" or not torch.backends.mkldnn.enabled:
        yield
        return
    torch.backends.mkldnn.enabled = False
    try:
        yield
    finally:
        torch.backends.mkldnn.enabled = True


class ARMixtureLogisticFlow(Transform):
    r"""Autoregressive mixture-of-logistics flow on sequences ``v [batch, L, d]`` (see the module docstring).

    Follows ``AutoregressiveMixtureCDFCoupling`` of ``model/CategoricalNF/flows/autoregressive_coupling.py``
    in ``didriknielsen/argmax_flows``: the network's ``d (2 + 3M)`` outputs per position, the
    learned soft bounds of both log-scales (``scaling_factor [d]``, ``mixture_scaling_factor
    [d, M]``, both starting at 0) and the elementwise maths in float64. The networks start at
    PyTorch's default initialisation, as in the official code (the flow is not the identity at
    initialisation).

    Args:
        dim: ``d``, numbers per position.
        seq_len: ``L``.
        num_mixtures: ``M`` (the official AR text model hard-codes 27).
        lstm_size, lstm_layers, input_dropout: of :class:`~catlib.nets.lstm.ARLSTMNet`.
        inverse_iterations: at most this many Newton (or bisection) iterations per coordinate.

    ``forward(v) -> (z, ldj [batch])``; ``inverse(z) -> v`` (cached LSTM state);
    ``inverse_reference(z) -> v`` (recomputes the prefix: slow, for checks).

    >>> flow = ARMixtureLogisticFlow(2, 5, num_mixtures=3, lstm_size=8, lstm_layers=1).eval()
    >>> v = torch.randn(3, 5, 2)
    >>> z, ldj = flow(v)
    >>> bool(torch.allclose(flow.inverse(z), v, atol=1e-4)), ldj.shape
    (True, torch.Size([3]))
    """

    def __init__(self, dim: int, seq_len: int, num_mixtures: int = 27, lstm_size: int = 2048, lstm_layers: int = 2,
                 input_dropout: float = 0.0, inverse_iterations: int = 100):
        super().__init__()
        self.dim = check_positive_int("dim", dim)
        self.seq_len = check_positive_int("seq_len", seq_len)
        self.num_mixtures = check_positive_int("num_mixtures", num_mixtures)
        self.inverse_iterations = check_positive_int("inverse_iterations", inverse_iterations)
        self.params_per_dim = 2 + 3 * num_mixtures
        self.net = ARLSTMNet(dim, self.params_per_dim, lstm_size, seq_len, lstm_layers, input_dropout)
        self.scaling_factor = nn.Parameter(torch.zeros(dim))
        self.mixture_scaling_factor = nn.Parameter(torch.zeros(dim, num_mixtures))

    def _check(self, v: Tensor, name: str) -> None:
        if v.dim() != 3 or tuple(v.shape[1:]) != (self.seq_len, self.dim):
            raise ValueError(f"{name} must have shape [batch, {self.seq_len}, {self.dim}], got {list(v.shape)}")

    def _params(self, raw: Tensor) -> MixtureParams:
        return mixture_logistic_params(raw, self.scaling_factor, self.mixture_scaling_factor)

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """``v [batch, L, d] -> (z [batch, L, d], ldj [batch])``."""
        self._check(x, "v")
        z, ldj = mixture_logistic_transform(x.double(), self._params(self.net(x)))
        return z.to(x.dtype), ldj.flatten(1).sum(-1).to(x.dtype)

    def _solve(self, z: Tensor, raw: Tensor, c: int) -> Tensor:
        """Coordinate ``c`` of one position: ``z [batch]``, ``raw [batch, d, P] -> v [batch]``."""
        p = self._params(raw).select((slice(None), c))
        return mixture_logistic_inverse(z.double(), p, self.inverse_iterations)

    @torch.no_grad()
    def inverse(self, z: Tensor, context: Tensor | None = None) -> Tensor:
        """``z [batch, L, d] -> v``: all rows at once, position by position, the LSTM state cached.

        Per position one LSTM step (on the previous position's values) and ``d`` passes of the
        small masked head, each followed by a vectorised bisection.
        """
        self._check(z, "z")
        batch = z.shape[0]
        v = torch.zeros_like(z)
        state, prev = None, None
        with _without_onednn(z.device):
            for t in range(self.seq_len):
                features, state = self.net.step(prev, t, state, batch)
                vt = v[:, t]
                for c in range(self.dim):
                    vt[:, c] = self._solve(z[:, t, c], self.net.head(features, vt), c).to(z.dtype)
                prev = vt
        return v

    @torch.no_grad()
    def inverse_reference(self, z: Tensor) -> Tensor:
        """The same inverse recomputing the whole network for every coordinate (official ``reverse``)."""
        self._check(z, "z")
        v = torch.zeros_like(z)
        for t in range(self.seq_len):
            for c in range(self.dim):
                v[:, t, c] = self._solve(z[:, t, c], self.net(v)[:, t], c).to(z.dtype)
        return v

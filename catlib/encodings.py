r"""Learned categorical encodings: CatNF and TRUFL dequantizers with the Bayes-optimal decoder.

Each categorical variable :math:`x_t \in \{0..K-1\}` gets a stochastic embedding
:math:`z_t \in \mathbb{R}^d` from a per-category dequantizer :math:`q(z_t \mid x_t)`, and is read
back by the decoder that is optimal for that dequantizer (Lippe & Gavves, 2020; Tan et al.,
2022, eq. 2), Bayes' rule with a class prior :math:`\hat p(x)`:

.. math::
    p(x_t \mid z_t) = \frac{q(z_t \mid x_t)\,\hat p(x_t)}{\sum_{x'} q(z_t \mid x')\,\hat p(x')},
    \qquad
    \log P(x) \ge \mathbb{E}_{q(z|x)}\Big[\log p(z) + \sum_t \log p(x_t \mid z_t) - \log q(z_t \mid x_t)\Big].

The dequantizer (TRUFL, Tan et al., 2022, eq. 4-7 and Algorithm 1) is a truncated logistic in
each of the ``d`` coordinates followed by a category-conditional scale and shift ``g``:

.. math::
    z^0 = \operatorname{logit}\big(m(x) + (u_0 - \tfrac12)\,s(x)\big),\quad u_0 \sim U(0,1),\qquad
    z = g(z^0; x) = z^0 e^{a(x)} + b(x),

with :math:`m = \sigma(\tilde m)`, :math:`s = 2 \min(m, 1 - m)\,\sigma(\tilde s)` (eq. 5).
Special cases, each a constructor of :class:`CategoricalEncoding`:

- :meth:`~CategoricalEncoding.catnf`: ``m = 1/2, s = 1``, no truncation: CatNF's logistic
  dequantizer (its supports all overlap, so decoding is never certain);
- :meth:`~CategoricalEncoding.trufl`: learned ``m, s``: supports can become disjoint, decoding
  lossless;
- :meth:`~CategoricalEncoding.orthants`: ``m`` in {1/4, 3/4} by the bits of ``x``, ``s = 1/2``
  and ``g`` the identity: each class owns one orthant of :math:`\mathbb{R}^{\lceil\log_2 K\rceil}`,
  the support of the binary argmax flow.

A truncated dequantizer leaves regions of :math:`\mathbb{R}^d` that no class supports, where the
decoder is undefined; :func:`rejection_sample` draws from the prior truncated to the union of
supports (Tan et al., 2022, section 3.2) and estimates its normaliser :math:`Z`.

Shapes: ``x [batch, D]`` class indices; ``z [batch, D * d]`` (flattened for the prior flow).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from catlib.distributions import TruncatedLogistic, uniform_open
from catlib.validation import check_float, check_positive_float, check_positive_int

__all__ = ["CategoricalEncoding", "RejectionStats", "rejection_sample", "elbo_breakdown", "within_group_std"]


class CategoricalEncoding(nn.Module):
    r"""Per-category (truncated) logistic dequantizer :math:`q(z_t|x_t)` and the optimal decoder.

    A layer in the survae direction: ``forward(x) -> (z, ldj)`` samples :math:`z \sim q(z|x)`
    and returns :math:`\mathrm{ldj} = \sum_t \log p(x_t|z_t) - \log q(z_t|x_t)`, so that a prior
    flow adds :math:`\log p(z)`; ``inverse(z)`` samples :math:`x \sim p(x|z)`.

    Args:
        num_vars: ``D``, categorical variables per example.
        num_classes: ``K``.
        latent_dim: ``d``, real numbers per variable.
        truncation: ``"learned"`` (TRUFL), ``"none"`` (CatNF) or ``"fixed"`` (``m``, ``s``
            given and not trained).
        affine: learn the category-conditional scale and shift ``g`` (else ``g`` is the identity).
        m, s: ``[K, d]`` the fixed truncation of ``truncation="fixed"``.
        init_spread: standard deviation of the random initial shifts ``b(x)``, so that classes
            start apart (a finite number > 0).
        init_truncation: initial :math:`\tilde s` of TRUFL (with :math:`\tilde m = 0`), a finite
            number: at 2 the CDF interval is 88% of the line, so TRUFL starts close to CatNF and
            learns to cut.
        support_temperature: ``tau > 0`` (finite) trains with soft support edges (TRUFL only, see
            below); 0 (the default) trains on the exact ELBO.
        seed: seed of that initialisation.

    **Soft support edges.** The decoder's indicators :math:`1[z \in \text{support}(k)]` have no
    gradient, so nothing in the exact ELBO's gradient moves a support's ends away from another
    class's samples, while the density of class ``k`` inside its support falls as it *widens*:
    supports drift into each other. With ``support_temperature`` the decoder's denominator, in
    training mode only, uses each other class's density with its indicator replaced by
    :meth:`~catlib.distributions.TruncatedLogistic.soft_log_indicator` (equal inside the
    support, a thin exponential tail of width ``tau`` CDF units outside). That only adds to the
    denominator, so the training objective is a lower bound on the ELBO, equal to it once the
    supports are ``tau``-separated; evaluation (``eval()`` mode) always uses the hard supports.

    The class prior :math:`\hat p(x)` is a buffer, uniform until :meth:`set_class_prior` counts
    it from data (any :math:`\hat p` gives a valid bound; the counted one is optimal).

    >>> enc = CategoricalEncoding.trufl(num_vars=3, num_classes=5, latent_dim=2)
    >>> z, ldj = enc(torch.tensor([[0, 4, 2]]))
    >>> z.shape, ldj.shape, enc.inverse(z).shape
    (torch.Size([1, 6]), torch.Size([1]), torch.Size([1, 3]))
    """

    stochastic_forward = True

    def __init__(self, num_vars: int, num_classes: int, latent_dim: int = 2, truncation: str = "learned",
                 affine: bool = True, m: Tensor | None = None, s: Tensor | None = None,
                 init_spread: float = 1.0, init_truncation: float = 2.0, support_temperature: float = 0.0,
                 seed: int = 0):
        super().__init__()
        if truncation not in ("learned", "none", "fixed"):
            raise ValueError(f"truncation must be 'learned', 'none' or 'fixed', got {truncation!r}")
        self.num_vars = check_positive_int("num_vars", num_vars)
        self.num_classes = check_positive_int("num_classes", num_classes, minimum=2)
        self.latent_dim = check_positive_int("latent_dim", latent_dim)
        self.truncation = truncation
        init_spread = check_positive_float("init_spread", init_spread)
        init_truncation = check_float("init_truncation", init_truncation)
        support_temperature = check_float("support_temperature", support_temperature, 0.0)
        if support_temperature > 0 and truncation != "learned":
            raise ValueError(f"support_temperature applies to learned truncation (TRUFL), got truncation={truncation!r}")
        self.support_temperature = support_temperature
        shape = (self.num_classes, self.latent_dim)
        g = torch.Generator().manual_seed(seed)
        if truncation == "learned":
            self.m_logit = nn.Parameter(torch.zeros(shape))
            self.s_logit = nn.Parameter(torch.full(shape, init_truncation))
        elif truncation == "fixed":
            if m is None or s is None or tuple(m.shape) != shape or tuple(s.shape) != shape:
                raise ValueError(f"truncation='fixed' needs m and s of shape {list(shape)}, got "
                                 f"{None if m is None else list(m.shape)} and {None if s is None else list(s.shape)}")
            TruncatedLogistic(m, s)  # checks the constraints
            self.register_buffer("m_fixed", m.to(torch.get_default_dtype()))
            self.register_buffer("s_fixed", s.to(torch.get_default_dtype()))
        self.affine = affine
        if affine:
            self.shift = nn.Parameter(init_spread * torch.randn(shape, generator=g))
            self.log_scale = nn.Parameter(torch.zeros(shape))
        self.register_buffer("log_class_prior", torch.full((self.num_classes,), -math.log(self.num_classes)))

    # --- the special cases -------------------------------------------------------------------
    @classmethod
    def catnf(cls, num_vars: int, num_classes: int, latent_dim: int = 2, **options) -> "CategoricalEncoding":
        """CatNF: logistic dequantizer with category-conditional scale and shift, no truncation."""
        return cls(num_vars, num_classes, latent_dim, truncation="none", **options)

    @classmethod
    def trufl(cls, num_vars: int, num_classes: int, latent_dim: int = 2, **options) -> "CategoricalEncoding":
        """TRUFL: truncated logistic with learned ``m, s`` per category and dimension, then ``g``."""
        return cls(num_vars, num_classes, latent_dim, truncation="learned", **options)

    @classmethod
    def orthants(cls, num_vars: int, num_classes: int) -> "CategoricalEncoding":
        """Fixed truncation giving class ``x`` the orthant of its binary code (bit 1: ``z > 0``).

        ``d = ceil(log2 K)``; ``m = 1/4`` (bit 0) or ``3/4`` (bit 1), ``s = 1/2``, no ``g``. (The
        paper writes ``s = 0.25``; with eq. 6's ``s`` as the *width* of the CDF interval, half
        the line needs ``s = 1/2``.)
        """
        d = max(1, math.ceil(math.log2(num_classes)))
        bits = (torch.arange(num_classes).unsqueeze(-1) >> torch.arange(d)) & 1
        m = 0.25 + 0.5 * bits.to(torch.get_default_dtype())
        return cls(num_vars, num_classes, d, truncation="fixed", affine=False, m=m, s=torch.full_like(m, 0.5))

    # --- parameters --------------------------------------------------------------------------
    @property
    def dim(self) -> int:
        """Size of ``z``: ``D * d``."""
        return self.num_vars * self.latent_dim

    @property
    def truncated(self) -> bool:
        return self.truncation != "none"

    def truncation_params(self) -> tuple[Tensor, Tensor]:
        """``(m, s)``, each ``[K, d]`` (eq. 5)."""
        if self.truncation == "learned":
            m = torch.sigmoid(self.m_logit)
            return m, 2 * torch.minimum(m, 1 - m) * torch.sigmoid(self.s_logit)
        if self.truncation == "fixed":
            return self.m_fixed, self.s_fixed
        half = self.log_class_prior.new_full((self.num_classes, self.latent_dim), 0.5)
        return half, 2 * half

    def base(self) -> TruncatedLogistic:
        """The ``K x d`` truncated logistics of :math:`z^0`, batch shape ``[K, d]``."""
        return TruncatedLogistic(*self.truncation_params())

    def _affine(self) -> tuple[Tensor, Tensor]:
        if self.affine:
            return self.shift, self.log_scale
        zeros = self.log_class_prior.new_zeros(self.num_classes, self.latent_dim)
        return zeros, zeros

    @torch.no_grad()
    def set_class_prior(self, x: Tensor, smoothing: float = 1.0) -> Tensor:
        r"""Count :math:`\hat p(x)` from data ``x [N, D]`` (add-``smoothing`` counts), store, return it ``[K]``."""
        counts = torch.bincount(x.flatten().cpu(), minlength=self.num_classes).double() + smoothing
        probs = counts / counts.sum()
        self.log_class_prior.copy_(probs.log().to(self.log_class_prior))
        return probs

    # --- q(z|x) and p(x|z) -------------------------------------------------------------------
    def sample_q(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """``z [batch, D, d]`` from :math:`q(z|x)` (reparametrised) and :math:`\\log q(z_t|x_t)` ``[batch, D]``."""
        m, s = self.truncation_params()
        shift, log_scale = self._affine()
        # float64 inverse CDF: in float32 a uniform within 2^-25 of 1 rounds to 1 and logit(1) = inf
        base = TruncatedLogistic(m[x].double(), s[x].double())
        z0 = base.icdf(uniform_open(base.m.shape, device=x.device))
        log_f = base.untruncated_log_prob(z0).to(m.dtype)  # z0 lies in the support
        z0 = z0.to(m.dtype)
        z = z0 * log_scale[x].exp() + shift[x]
        return z, (log_f - log_scale[x]).sum(-1)

    def log_q_all(self, z: Tensor, truncate: bool = True, temperature: float = 0.0) -> Tensor:
        r""":math:`\log q(z_t \mid x' = k)` for every class, ``z [batch, D, d] -> [batch, D, K]``.

        ``truncate=False`` ignores the supports (each class's density continued outside it);
        ``temperature > 0`` softens their edges (the surrogate of ``support_temperature``).
        """
        shift, log_scale = self._affine()
        z0 = (z.unsqueeze(-2) - shift) * torch.exp(-log_scale)  # [batch, D, K, d]
        base = self.base()
        if not (truncate and self.truncated):
            log_f = base.untruncated_log_prob(z0)
        elif temperature > 0:
            log_f = base.untruncated_log_prob(z0) + base.soft_log_indicator(z0, temperature)
        else:
            log_f = base.log_prob(z0)
        return (log_f - log_scale).sum(-1)

    def decoder_log_probs(self, z: Tensor, truncate: bool = True) -> Tensor:
        """:math:`\\log p(x_t = k \\mid z_t)`, ``[batch, D, K]``; rows whose ``z_t`` no class supports are NaN."""
        joint = self.log_q_all(z.view(z.shape[0], self.num_vars, self.latent_dim), truncate) + self.log_class_prior
        return joint - torch.logsumexp(joint, -1, keepdim=True)

    def supported(self, z: Tensor) -> Tensor:
        """``[batch]`` bool: every ``z_t`` of the row lies in the support of some class."""
        if not self.truncated:
            return torch.ones(z.shape[0], dtype=torch.bool, device=z.device)
        z = z.view(z.shape[0], self.num_vars, self.latent_dim)
        return torch.isfinite(self.log_q_all(z)).any(-1).all(-1)

    def terms(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        r"""One sample ``z [batch, D * d]`` with :math:`\sum_t \log p(x_t|z_t)` and :math:`\sum_t \log q(z_t|x_t)`, each ``[batch]``.

        The true class's density comes from the sampling pass (Algorithm 1), not from mapping
        ``z`` back, so rounding can never put a sample outside its own support.
        """
        z, log_px_z, log_q = self.variable_terms(x)
        return z.flatten(1), log_px_z.sum(-1), log_q.sum(-1)

    def variable_terms(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """:meth:`terms` before the sums over variables: ``z [batch, D, d]``, ``log p(x_t|z_t)`` and ``log q(z_t|x_t)`` ``[batch, D]``."""
        z, log_q_true = self.sample_q(x)
        joint = self.log_q_all(z, temperature=self.support_temperature if self.training else 0.0) + self.log_class_prior
        joint = joint.scatter(-1, x.unsqueeze(-1), (log_q_true + self.log_class_prior[x]).unsqueeze(-1))
        log_px_z = joint.gather(-1, x.unsqueeze(-1)).squeeze(-1) - torch.logsumexp(joint, -1)
        return z, log_px_z, log_q_true

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        z, log_px_z, log_q = self.terms(x)
        return z, log_px_z - log_q

    def inverse(self, z: Tensor, truncate: bool = True, greedy: bool = False) -> Tensor:
        """``x [batch, D]`` sampled from :math:`p(x|z)` (``greedy``: its most likely class).

        With ``truncate`` the decoder uses the truncated densities; a ``z_t`` outside every
        support (possible only without rejection sampling) is decoded with the densities
        continued outside their supports, as the paper does without rejection sampling.
        """
        logits = self.decoder_log_probs(z, truncate)
        if truncate and self.truncated:
            unsupported = torch.isnan(logits).any(-1, keepdim=True)
            if unsupported.any():
                logits = torch.where(unsupported, self.decoder_log_probs(z, truncate=False), logits)
        if greedy:
            return logits.argmax(-1)
        return torch.multinomial(logits.exp().view(-1, self.num_classes), 1).view(z.shape[0], self.num_vars)


@dataclass
class RejectionStats:
    """Counts of one rejection-sampling run and the normaliser they estimate.

    ``log_z`` estimates :math:`\\log Z = \\log P_{p(z)}(z \\in \\text{union of supports})` by the
    acceptance rate; ``log_z_stderr`` is its delta-method standard error.
    """

    drawn: int
    accepted: int

    @property
    def acceptance_rate(self) -> float:
        return self.accepted / self.drawn

    @property
    def rejection_rate(self) -> float:
        return 1.0 - self.acceptance_rate

    @property
    def log_z(self) -> float:
        return math.log(self.acceptance_rate) if self.accepted else -math.inf

    @property
    def log_z_stderr(self) -> float:
        p = self.acceptance_rate
        return math.sqrt((1 - p) / (p * self.drawn)) if self.accepted else math.inf


@torch.no_grad()
def rejection_sample(draw: Callable[[Tensor], Tensor], accept: Callable[[Tensor], Tensor], n: int,
                     max_rounds: int = 1000) -> tuple[Tensor, RejectionStats]:
    r"""Draw ``n`` rows from a prior truncated to an accepted region (TRUFL Algorithm 2).

    .. math:: p_{trunc}(z) = p(z)\,\mathbb{1}[z \in S] / Z,\qquad Z = P_{p}(z \in S) \approx \frac{\text{accepted}}{\text{drawn}}

    Args:
        draw: ``rows [m] -> z [m, ...]``, fresh prior draws for the listed output rows (a
            conditional prior uses ``rows`` to pick each row's condition).
        accept: ``z [m, ...] -> [m]`` bool.
        n: number of rows.
        max_rounds: rounds of redrawing before giving up with a ``RuntimeError``.

    Returns:
        ``z [n, ...]`` (every row accepted) and the :class:`RejectionStats` of all draws.

    >>> z, stats = rejection_sample(lambda rows: torch.randn(len(rows), 1), lambda z: z[:, 0] > 0, 100)
    >>> bool((z > 0).all()), 0.3 < stats.acceptance_rate < 0.7
    (True, True)
    """
    n = check_positive_int("n", n)
    max_rounds = check_positive_int("max_rounds", max_rounds)
    todo = torch.arange(n)
    out = None
    drawn = accepted = 0
    for _ in range(max_rounds):
        z = draw(todo)
        ok = accept(z).cpu()
        if out is None:
            out = z.new_zeros(n, *z.shape[1:])
        out[todo[ok].to(z.device)] = z[ok.to(z.device)]
        drawn, accepted = drawn + len(ok), accepted + int(ok.sum())
        todo = todo[~ok]
        if len(todo) == 0:
            return out, RejectionStats(drawn, accepted)
    raise RuntimeError(f"rejection sampling: {len(todo)} of {n} rows still rejected after {max_rounds} rounds "
                       f"({accepted} of {drawn} draws accepted); the prior puts almost no mass on the supports")


@torch.no_grad()
def elbo_breakdown(model: nn.Module, x: Tensor, samples: int = 1) -> dict[str, float]:
    r"""Average ELBO terms of a dequantized model on ``x [N, *data_shape]``, in nats per example.

    Returns ``reconstruction`` :math:`\mathbb{E}[\log p(x|z)]`, ``kl``
    :math:`\mathbb{E}[\log q(z|x) - \log p(z)]` and ``elbo`` = reconstruction - kl. For argmax
    layers (deterministic decoding) the reconstruction is 0.
    """
    layer = model.layer
    rows = model._layer_input(x.to(model.device)).repeat(samples, 1)
    if hasattr(layer, "terms"):
        z, log_px_z, log_q = layer.terms(rows)
    else:  # argmax surjection: ldj = -log q(v|x), p(x|v) = 1
        z, ldj = layer(rows)
        log_px_z, log_q = torch.zeros_like(ldj), -ldj
    recon = float(log_px_z.mean())
    kl = float((log_q - model.flow.log_prob(z)).mean())
    return {"reconstruction": recon, "kl": kl, "elbo": recon - kl}


def within_group_std(samples: Tensor) -> float:
    r"""Within-group standard deviation (WGSD) of embeddings, ``samples [groups, n, d]``.

    As in Tan et al. (2022, section 5.3): standardise each dimension over all ``groups * n``
    samples, take the standard deviation of each group's ``n`` samples per dimension, and
    average over groups and dimensions. Small values mean peaked :math:`q(z|x)`.

    >>> round(within_group_std(torch.randn(50, 200, 3, generator=torch.Generator().manual_seed(0))), 1)
    1.0
    """
    if samples.dim() != 3 or samples.shape[1] < 2:
        raise ValueError(f"samples must have shape [groups, n >= 2, d], got {list(samples.shape)}")
    flat = samples.reshape(-1, samples.shape[-1]).double()
    standard = (samples.double() - flat.mean(0)) / flat.std(0)
    return float(standard.std(1).mean())

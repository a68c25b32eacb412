r"""Absorbing-state ("masked") diffusion: the D3PM absorbing kernel (Austin et al., 2021).

Where multinomial diffusion (:mod:`catlib.diffusion`) resamples a category uniformly, the
absorbing kernel replaces it by an extra *mask* state and never changes it back. With ``K``
data classes ``0 .. K-1``, the mask is state ``K`` and a variable lives in ``K + 1`` states.
With a schedule :math:`\alpha_t` (D3PM's :func:`absorbing_schedule`, or multinomial
diffusion's :func:`~catlib.diffusion.cosine_schedule` / :func:`~catlib.diffusion.linear_schedule`)
and :math:`\bar\alpha_t = \prod_{s \le t} \alpha_s`, :math:`\bar\alpha_0 = 1`:

.. math:: q(x_t \mid x_{t-1}) = \alpha_t\,[x_t = x_{t-1}] + (1 - \alpha_t)\,[x_t = K]
          \quad (x_{t-1} < K), \qquad q(x_t = K \mid x_{t-1} = K) = 1,

.. math:: q(x_t \mid x_0) = \bar\alpha_t\,[x_t = x_0] + (1 - \bar\alpha_t)\,[x_t = K].

The posterior is simple: an unmasked :math:`x_t` *is* :math:`x_0` and stays, and a masked one
was unmasked at step :math:`t` with probability :math:`(\bar\alpha_{t-1} - \bar\alpha_t) /
(1 - \bar\alpha_t)`:

.. math:: q(x_{t-1} \mid x_t = K, x_0) = \frac{\bar\alpha_{t-1} - \bar\alpha_t}{1 - \bar\alpha_t}\,
          [x_{t-1} = x_0] + \frac{1 - \bar\alpha_{t-1}}{1 - \bar\alpha_t}\,[x_{t-1} = K].

It is linear in the one-hot :math:`x_0`, so the same formula with a distribution
:math:`\hat p(x_0 \mid x_t)` in place of :math:`x_0` gives the reverse model
:math:`p(x_{t-1} \mid x_t) = \sum_{x_0} q(x_{t-1} \mid x_t, x_0)\,\hat p(x_0 \mid x_t)`
(:func:`absorbing_log_posterior`). Everything here works in log space with
:data:`~catlib.diffusion.LOG_ZERO` for :math:`\log 0`, as :mod:`catlib.diffusion` does.
Tested against transition matrices multiplied out in ``tests/test_masked_diffusion.py``.
"""
from __future__ import annotations

import math
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from catlib.diffusion import (LOG_ZERO, MAX_ENUMERATED_STATES, PROGRESS_FROM_CALLS, build_denoiser, check_times,
                              index_to_log_onehot, log1mexp, make_schedule, spaced_times)
from catlib.metrics import importance_weighted
from catlib.progress import progress_bar
from catlib.validation import check_classes, check_data_shape, check_positive_int

__all__ = ["absorbing_schedule", "absorbing_log_marginal", "absorbing_log_posterior", "MaskedDiffusion",
           "ContinuousMaskedDiffusion", "MASKING_SCHEDULES", "predicted_log_x0", "unmasking_sampler",
           "all_mask_patterns", "build_masked_diffusion", "MASKING_TIME"]


def absorbing_schedule(timesteps: int) -> Tensor:
    r"""D3PM's schedule for the absorbing kernel, as :math:`\alpha_t = 1 - 1/(T - t + 1)`.

    Each step masks one of the :math:`T - t + 1` steps' share of what is left, so the masked
    fraction grows linearly, :math:`\bar\alpha_t = 1 - t/T`, and reaches :math:`\bar\alpha_T = 0`:
    every variable is masked at :math:`t = T` and the prior "all masked" matches
    :math:`q(x_T \mid x_0)` exactly (no prior term in the bound). Multinomial diffusion's
    schedules end at a small positive :math:`\bar\alpha_T`, which would leave that term infinite.

    >>> absorbing_schedule(4).cumprod(0)
    tensor([0.7500, 0.5000, 0.2500, 0.0000], dtype=torch.float64)
    """
    timesteps = check_positive_int("timesteps", timesteps)
    t = torch.arange(1, timesteps + 1, dtype=torch.float64)
    return 1 - 1 / (timesteps - t + 1)


def _log(values: Tensor) -> Tensor:
    """``values`` (log-probabilities) with ``-inf`` raised to :data:`LOG_ZERO`."""
    return values.clamp_min(LOG_ZERO)


def absorbing_log_marginal(x0: Tensor, num_classes: int, log_alpha_bar: Tensor | float) -> Tensor:
    r""":math:`\log q(x_t \mid x_0)` over the ``K + 1`` states, ``[*x0.shape, K + 1]``.

    Args:
        x0: data classes in ``[0, K)``, any shape.
        num_classes: ``K``.
        log_alpha_bar: :math:`\log \bar\alpha_t`, a number or a tensor that broadcasts to ``x0``.

    >>> absorbing_log_marginal(torch.tensor([1]), 3, torch.tensor(0.5).log()).exp().round(decimals=4)
    tensor([[0.0000, 0.5000, 0.0000, 0.5000]])
    """
    log_alpha_bar = torch.as_tensor(log_alpha_bar, device=x0.device)
    if not log_alpha_bar.is_floating_point():
        log_alpha_bar = log_alpha_bar.to(torch.get_default_dtype())
    log_alpha_bar = log_alpha_bar.expand(x0.shape)
    keep = index_to_log_onehot(x0, num_classes + 1, log_alpha_bar.dtype) + log_alpha_bar[..., None]
    masked = index_to_log_onehot(torch.full_like(x0, num_classes), num_classes + 1, log_alpha_bar.dtype)
    return _log(torch.logaddexp(keep, masked + log1mexp(log_alpha_bar)[..., None]))


def absorbing_log_posterior(log_x0: Tensor, x_t: Tensor, log_alpha_bar_prev: Tensor | float,
                            log_alpha_bar: Tensor | float) -> Tensor:
    r""":math:`\log q(x_{t-1} \mid x_t, x_0)` over the ``K + 1`` states, ``[*x_t.shape, K + 1]``.

    ``log_x0 [*x_t.shape, K]`` is a log one-hot :math:`x_0` (the true posterior) or the log of a
    distribution :math:`\hat p(x_0 \mid x_t)` (the reverse model). An unmasked ``x_t`` stays
    whatever ``log_x0`` says: it is :math:`x_0`.

    Args:
        log_x0: ``[*x_t.shape, K]`` log-probabilities of :math:`x_0`.
        x_t: states in ``[0, K]`` (``K``: masked).
        log_alpha_bar_prev, log_alpha_bar: :math:`\log\bar\alpha_{t-1} \ge \log\bar\alpha_t`
            (``0.0`` for :math:`\bar\alpha_0 = 1`), numbers or tensors broadcasting to ``x_t``;
            :math:`\bar\alpha_t < 1` where ``x_t`` is masked (otherwise a mask is impossible there).

    >>> log_x0 = torch.tensor([[0.9, 0.1]]).log()
    >>> absorbing_log_posterior(log_x0, torch.tensor([2]), 0.0, torch.tensor(0.5).log()).exp().round(decimals=4)
    tensor([[0.9000, 0.1000, 0.0000]])
    >>> absorbing_log_posterior(log_x0, torch.tensor([2]), torch.tensor(0.8).log(),
    ...                         torch.tensor(0.5).log()).exp().round(decimals=4)
    tensor([[0.5400, 0.0600, 0.4000]])
    """
    num_classes = log_x0.shape[-1]
    dtype = log_x0.dtype
    prev = torch.as_tensor(log_alpha_bar_prev, dtype=dtype, device=x_t.device).expand(x_t.shape)
    now = torch.as_tensor(log_alpha_bar, dtype=dtype, device=x_t.device).expand(x_t.shape)
    if (now > prev + 1e-12).any():
        raise ValueError("log_alpha_bar must not exceed log_alpha_bar_prev: masking only ever grows")
    # log(1 - abar_t), log(abar_{t-1} - abar_t) = log abar_{t-1} + log(1 - abar_t / abar_{t-1}), log(1 - abar_{t-1})
    log_1m_now = log1mexp(now)
    log_unmask = prev + log1mexp(now - prev) - log_1m_now
    log_stay = log1mexp(prev) - log_1m_now
    masked_row = torch.cat([log_x0 + log_unmask[..., None], log_stay[..., None]], dim=-1)
    kept_row = index_to_log_onehot(x_t.clamp_max(num_classes), num_classes + 1, dtype)
    return _log(torch.where((x_t == num_classes)[..., None], masked_row, kept_row))


def all_mask_patterns(data_shape: Sequence[int], device: torch.device | None = None) -> Tensor:
    """Every way to mask ``data_shape``'s positions, ``[2 ** D, *data_shape]`` bool (``True``: masked),
    for exact bounds on tiny problems (at most 4096 patterns).

    >>> all_mask_patterns((2,)).tolist()
    [[False, False], [True, False], [False, True], [True, True]]
    """
    D = math.prod(data_shape)
    if 2 ** D > MAX_ENUMERATED_STATES:
        raise ValueError(f"exact bounds need 2 ** num_vars <= {MAX_ENUMERATED_STATES} masks, got 2 ** {D}")
    patterns = (torch.arange(2 ** D, device=device)[:, None] >> torch.arange(D, device=device)) % 2
    return patterns.bool().view(-1, *data_shape)


def predicted_log_x0(denoise_fn: Callable[[Tensor, Tensor], Tensor], x_t: Tensor, t: Tensor,
                     num_classes: int) -> Tensor:
    r""":math:`\log \hat p(x_0 \mid x_t)` over the ``K`` data classes, ``[*x_t.shape, K]``: the
    log-softmax of ``denoise_fn(x_t, t)``'s first ``K`` logits (a network over the ``K + 1``
    states may return ``K + 1``; the mask's logit is dropped, the data never holds it)."""
    logits = denoise_fn(x_t, t)
    if tuple(logits.shape[:-1]) != tuple(x_t.shape) or logits.shape[-1] not in (num_classes, num_classes + 1):
        raise ValueError(f"denoise_fn must return logits of shape {list(x_t.shape) + [num_classes]} "
                         f"(or K + 1 = {num_classes + 1} classes), got {list(logits.shape)}")
    return F.log_softmax(logits[..., :num_classes].float(), dim=-1)


def unmasking_sampler(mask: int, shape: tuple[int, ...], jumps: list[tuple[Tensor, object]],
                      unmask_probability: Callable, p_log_x0: Callable[[Tensor, Tensor], Tensor],
                      progress: bool | None = None, device: torch.device | None = None) -> tuple[Tensor, int]:
    r"""The reverse chain of a masking process from the all-masked ``x [*shape]`` (value ``mask``):
    for each jump ``(t [n], s)``, every masked position is
    unmasked with probability ``unmask_probability(t, s)`` ``[n]`` and then takes a class drawn
    from :math:`\hat p(x_0 \mid x_t)` = ``p_log_x0(x, t)``. The network is called only on jumps
    where some position unmasks. Returns the samples and the number of network calls.
    """
    progress = len(jumps) >= PROGRESS_FROM_CALLS if progress is None else progress
    x = torch.full(shape, mask, dtype=torch.long, device=device)
    calls = 0
    for t, s in progress_bar(jumps, disable=not progress, desc="sampling", leave=False):
        u = unmask_probability(t, s).view(-1, *[1] * (x.dim() - 1))
        unmask = (x == mask) & (torch.rand(x.shape, device=x.device, dtype=torch.float64) < u)
        if unmask.any():
            calls += 1
            x = torch.where(unmask, torch.distributions.Categorical(logits=p_log_x0(x, t)).sample(), x)
    return x, calls


def _stratified(b: int, device: torch.device) -> Tensor:
    """``b`` numbers in ``[0, 1)``, one uniform draw in each slice ``[i/b, (i+1)/b)``, shuffled (float64)."""
    u = torch.rand((), dtype=torch.float64, device=device)
    return ((u + torch.arange(b, dtype=torch.float64, device=device) / b) % 1.0)[torch.randperm(b, device=device)]


class _MaskingModel(nn.Module):
    r"""What the discrete- and continuous-time models share: the ``K + 1`` states, the network's
    :math:`\hat p(x_0 \mid x_t)`, masking at a given keep probability, the masked positions'
    negative log-likelihood and its exact average over every mask pattern, and the importance
    weights of whole trajectories (:meth:`log_weight`)."""

    def __init__(self, data_shape: Sequence[int], num_classes: int, denoise_fn: Callable[[Tensor, Tensor], Tensor]):
        super().__init__()
        self.data_shape = check_data_shape(data_shape)
        self.num_classes = check_positive_int("num_classes", num_classes, minimum=2)
        self.denoise_fn = denoise_fn
        self.last_sample_calls = 0

    @property
    def device(self) -> torch.device:
        return next(self.buffers()).device

    @property
    def mask(self) -> int:
        """The mask state, ``K``."""
        return self.num_classes

    def _network_time(self, t: Tensor) -> Tensor:
        """The time ``denoise_fn`` sees for the model's time ``t``."""
        return t

    def p_log_x0(self, x_t: Tensor, t: Tensor) -> Tensor:
        r""":math:`\log \hat p(x_0 \mid x_t)` over the ``K`` classes, ``[b, *data_shape, K]`` (one network call)."""
        return predicted_log_x0(self.denoise_fn, x_t, self._network_time(t), self.num_classes)

    def _as_output(self, values: Tensor) -> Tensor:
        """A bound computed in float64, returned in the network's dtype (the default dtype for a float32 model)."""
        dtype = next((p.dtype for p in self.parameters()), torch.get_default_dtype())
        return values.to(dtype)

    def _per_example(self, values: Tensor) -> Tensor:
        """``values [b]`` viewed as ``[b, 1, ...]`` against ``[b, *data_shape]``."""
        return values.view(-1, *[1] * len(self.data_shape))

    def _corrupt(self, x0: Tensor, keep: Tensor) -> Tensor:
        """``x_t``: each position of ``x0`` kept with probability ``keep [b]``, masked otherwise."""
        kept = torch.rand(x0.shape, device=x0.device, dtype=torch.float64) < self._per_example(keep)
        return torch.where(kept, x0, torch.full_like(x0, self.mask))

    def _masked_nll(self, x0: Tensor, x_t: Tensor, t: Tensor) -> Tensor:
        r""":math:`\sum_{d:\ x_{t,d} = K} -\log \hat p(x_{0,d} \mid x_t)` in nats, ``[b]``."""
        nll = -self.p_log_x0(x_t, t).gather(-1, x0[..., None])[..., 0].double()
        return (nll * (x_t == self.mask)).flatten(1).sum(1)

    def _over_all_masks(self, x0: Tensor, t: Tensor, keep: Tensor, loss: Callable[[Tensor, Tensor, Tensor], Tensor]
                        ) -> Tensor:
        """``E_{q(x_t | x_0)} loss(x0, x_t, t)`` exactly, each position kept with probability ``keep [b]``:
        the sum over every mask pattern (:func:`all_mask_patterns`) weighted by its probability, ``[b]``."""
        patterns = all_mask_patterns(self.data_shape, self.device)
        b, n = x0.shape[0], patterns.shape[0]
        x0s, ts = x0.repeat_interleave(n, 0), t.repeat_interleave(n)
        masked = patterns.repeat(b, *[1] * len(self.data_shape))
        x_t = torch.where(masked, torch.full_like(x0s, self.mask), x0s)
        p_keep = self._per_example(keep.to(torch.float64).repeat_interleave(n))
        weight = torch.where(masked, 1 - p_keep, p_keep).flatten(1).prod(1)     # q(x_t | x_0)
        return (weight * loss(x0s, x_t, ts)).view(b, n).sum(1)

    def masking_times(self, x0: Tensor) -> Tensor:
        """When each position of ``x0 [b, *data_shape]`` is masked, in the model's time: a position is
        masked at time ``t`` exactly when its masking time is ``<= t``. Defined by each model."""
        raise NotImplementedError

    def log_weight(self, x0: Tensor) -> Tensor:
        r"""One importance weight :math:`\log p(x_{0:T}) - \log q(x_{1:T} \mid x_0)` per row, ``[b]``.

        Draw when each position is masked (:meth:`masking_times` :math:`m_d`); the reverse model and
        the posterior unmask positions at the same rates and differ only in what they reveal
        (:math:`\hat p` against the data's class), so the weight is the log-probability of an
        any-order autoregressive model with the order given by the masking times:

        .. math:: \log w = \sum_d \log \hat p\big(x_{0,d} \mid x_{m_d}\big),

        :math:`x_{m_d}` masked exactly where :math:`m_j \le m_d`. Its mean over the masking times
        is the ELBO; :meth:`log_prob` with ``k > 1`` averages ``k`` weights inside the log (IWBO).
        Costs ``D`` network rows per example (positions masked at the same time could share one).
        """
        b, D = x0.shape[0], math.prod(self.data_shape)
        m = self.masking_times(x0).reshape(b, D)
        masked = m[:, None, :] <= m[:, :, None]                                 # [b, d, j]: j masked when d unmasks
        x_t = torch.where(masked, self.mask, x0.reshape(b, 1, D)).reshape(b * D, *self.data_shape)
        log_p = self.p_log_x0(x_t, m.reshape(b * D)).reshape(b, D, D, self.num_classes)
        index = torch.arange(D, device=x0.device)
        return log_p[:, index, index].gather(-1, x0.reshape(b, D, 1))[..., 0].double().sum(1)

    def _iwbo(self, x: Tensor, k: int) -> Tensor:
        """:func:`~catlib.metrics.importance_weighted` over ``k`` masking orders, without gradients, ``[b]``."""
        rows = max(1, 4096 // math.prod(self.data_shape))      # log_weight makes D network rows of each
        with torch.no_grad():
            return importance_weighted(self.log_weight, x, k, max_rows=rows)


class MaskedDiffusion(_MaskingModel):
    r"""Discrete-time absorbing-state diffusion and its learned reverse (D3PM's absorbing kernel).

    The network ``denoise_fn(x_t, t)`` sees ``x_t [b, *data_shape]`` with values in ``[0, K]``
    (``K``: masked) and returns logits ``[b, *data_shape, K']`` with ``K' = K`` or ``K + 1`` (a
    network built for the ``K + 1`` input states; its last logit is ignored): :math:`\hat p(x_0
    \mid x_t)` is their softmax over the ``K`` classes. The reverse step is
    :math:`p(x_{t-1} \mid x_t) = q(x_{t-1} \mid x_t, \hat x_0)` (:func:`absorbing_log_posterior`).

    Its bound needs no prior term (:math:`\bar\alpha_T = 0`, checked) and each step's KL has a
    closed form: with :math:`u_t = (\bar\alpha_{t-1} - \bar\alpha_t)/(1 - \bar\alpha_t)`, only
    masked positions count,

    .. math:: L_{t-1} = \mathrm{KL}\big(q(x_{t-1} \mid x_t, x_0)\,\|\,p(x_{t-1} \mid x_t)\big)
              = -u_t \sum_{d:\ x_{t,d} = K} \log \hat p(x_{0,d} \mid x_t),

    and :math:`-\log p(x_0) \le \sum_{t=1}^T \mathbb{E}_{q(x_t \mid x_0)} L_{t-1}` (at
    :math:`t = 1`, :math:`u_1 = 1` and the term is the decoder's negative log-likelihood).

    >>> from catlib.nets import TimeMLP
    >>> model = MaskedDiffusion((3,), 4, TimeMLP(3, 5, hidden=(8,)), timesteps=10)
    >>> model.sample(2, steps=4).shape, model.last_sample_calls <= 4
    (torch.Size([2, 3]), True)
    """

    def __init__(self, data_shape: Sequence[int], num_classes: int, denoise_fn: Callable[[Tensor, Tensor], Tensor],
                 timesteps: int = 1000, schedule: str | Tensor = "absorbing"):
        super().__init__(data_shape, num_classes, denoise_fn)
        self.num_timesteps = check_positive_int("timesteps", timesteps)
        alphas = absorbing_schedule(self.num_timesteps) if schedule == "absorbing" else make_schedule(
            schedule, self.num_timesteps)
        log_alpha_bar = torch.cat([torch.zeros(1, dtype=torch.float64), alphas.log().cumsum(0)])
        if log_alpha_bar[-1] > -math.inf:
            raise ValueError(f"the all-masked prior needs alpha_bar_T = 0 (schedule 'absorbing'); this schedule "
                             f"ends at {log_alpha_bar[-1].exp():.3g}, which would make the prior term infinite")
        self.register_buffer("log_alpha_bar", log_alpha_bar)  # [T + 1], index t: log alpha-bar_t

    def unmask_probability(self, t: Tensor, s: Tensor | None = None) -> Tensor:
        r""":math:`(\bar\alpha_s - \bar\alpha_t) / (1 - \bar\alpha_t)`, float64 like ``t``: the chance that a
        position masked at ``t`` is unmasked at ``s < t`` (``s = t - 1`` by default)."""
        s = t - 1 if s is None else s
        now, then = self.log_alpha_bar[t], self.log_alpha_bar[s]
        return (then + log1mexp(now - then) - log1mexp(now)).exp()

    def q_sample(self, x0: Tensor, t: Tensor) -> Tensor:
        """``x_t ~ q(x_t | x_0)``: each position masked independently with probability ``1 - alpha-bar_t``."""
        return self._corrupt(x0, self.log_alpha_bar[t].exp())

    def _loss_given_xt(self, x0: Tensor, x_t: Tensor, t: Tensor) -> Tensor:
        """``L_{t-1}`` given ``x_t`` in nats, ``[b]`` (closed form, see the class)."""
        return self.unmask_probability(t) * self._masked_nll(x0, x_t, t)

    def loss_terms(self, x0: Tensor, t: int | Tensor) -> Tensor:
        """``L_{t-1}`` in nats with one ``x_t ~ q(x_t | x_0)`` per example, ``[b]``."""
        x0 = check_classes(x0, self.data_shape, self.num_classes, "x0").to(self.device)
        t = check_times(t, x0.shape[0], 1, self.num_timesteps, self.device)
        return self._loss_given_xt(x0, self.q_sample(x0, t), t)

    def _expected_loss(self, x0: Tensor, t: Tensor) -> Tensor:
        """``L_{t-1}`` averaged exactly over the ``2 ** D`` masks of ``x_t``, ``[b]``."""
        return self._over_all_masks(x0, t, self.log_alpha_bar[t].exp(), self._loss_given_xt)

    def elbo_terms(self, x: Tensor, exact: bool = False) -> Tensor:
        """``[b, T]``: column ``t - 1`` is ``L_{t-1}`` in nats, with one ``x_t`` sample per term or, with
        ``exact``, averaged over every mask pattern (tiny problems); their sum is ``-ELBO``."""
        x = check_classes(x, self.data_shape, self.num_classes, "x").to(self.device)
        columns = []
        for t_now in range(1, self.num_timesteps + 1):
            t = torch.full((x.shape[0],), t_now, dtype=torch.long, device=self.device)
            columns.append(self._expected_loss(x, t) if exact else self._loss_given_xt(x, self.q_sample(x, t), t))
        return torch.stack(columns, 1)

    def masking_times(self, x0: Tensor) -> Tensor:
        r"""Each position's masking step ``m`` in ``[1, T]``, ``P(m <= t) = 1 - alpha-bar_t``, ``[b, *data_shape]`` long."""
        u = 1 - torch.rand(x0.shape, dtype=torch.float64, device=self.device)             # (0, 1]
        return torch.searchsorted(-torch.expm1(self.log_alpha_bar[1:]).contiguous(), u.flatten()).view(x0.shape) + 1

    def training_loss(self, x: Tensor) -> Tensor:
        """``T * L_{t-1}`` at one step per example, the steps stratified over ``[1, T]`` (an unbiased
        estimate of the negative ELBO), averaged over the batch: nats per example, a scalar."""
        x = check_classes(x, self.data_shape, self.num_classes, "x").to(self.device)
        u = _stratified(x.shape[0], self.device)
        t = (u * self.num_timesteps).long().clamp(max=self.num_timesteps - 1) + 1
        return (self.num_timesteps * self._loss_given_xt(x, self.q_sample(x, t), t)).mean()

    def log_prob(self, x: Tensor, k: int = 1, exact: bool = False) -> Tensor:
        """A lower bound on ``log p(x)`` in nats, ``[b]``: the ELBO (``k = 1``; see :meth:`elbo_terms`:
        all ``T`` terms, one ``x_t`` each, or ``exact`` over every mask pattern) or, for ``k > 1``, the
        importance-weighted bound over ``k`` masking orders (:meth:`log_weight`, without gradients)."""
        k = check_positive_int("k", k)
        if k > 1:
            if exact:
                raise ValueError(f"exact=True computes the ELBO and needs k = 1, got k = {k}")
            return self._as_output(self._iwbo(check_classes(x, self.data_shape, self.num_classes, "x").to(self.device), k))
        return self._as_output(-self.elbo_terms(x, exact).sum(1))

    @torch.no_grad()
    def sample(self, n: int, steps: int | None = None, progress: bool | None = None) -> Tensor:
        """``n`` samples ``[n, *data_shape]`` from the all-masked state in ``steps`` jumps (default ``T``).

        A jump from ``t`` to the next time ``s`` unmasks each masked position with probability
        :meth:`unmask_probability` and draws its class from :math:`\\hat p(x_0 \\mid x_t)`; the
        network is called only when some position unmasks (``last_sample_calls`` counts the calls).
        """
        n = check_positive_int("n", n)
        times = spaced_times(self.num_timesteps, steps) + [0]
        jumps = [(torch.full((n,), t, dtype=torch.long, device=self.device), s) for t, s in zip(times[:-1], times[1:])]
        x, self.last_sample_calls = unmasking_sampler(
            self.mask, (n, *self.data_shape), jumps, lambda t, s: self.unmask_probability(t, torch.full_like(t, s)),
            self.p_log_x0, progress, self.device)
        return x


#: Continuous masking schedules on ``t in [0, 1]``: ``(alpha(t), alpha'(t))``, the share of
#: positions still unmasked at time ``t`` (1 at 0, 0 at 1) and its derivative.
MASKING_SCHEDULES = {
    "linear": (lambda t: 1 - t, lambda t: -torch.ones_like(t)),
    "cosine": (lambda t: 1 - torch.cos(math.pi / 2 * (1 - t)), lambda t: -math.pi / 2 * torch.sin(math.pi / 2 * (1 - t))),
}

#: The inverse of each schedule's masked share: ``MASKING_TIME[name](u)`` is the time ``t`` with
#: ``1 - alpha(t) = u``, so a uniform ``u`` gives a position's masking time.
MASKING_TIME = {
    "linear": lambda u: u,
    "cosine": lambda u: 1 - 2 / math.pi * torch.acos(u),
}


class _Rescaled(nn.Module):
    """``denoise_fn(x, t * scale)``: a network of the continuous model called at discrete steps."""

    def __init__(self, denoise_fn: Callable[[Tensor, Tensor], Tensor], scale: float):
        super().__init__()
        self.denoise_fn, self.scale = denoise_fn, scale

    def forward(self, x_t: Tensor, t: Tensor) -> Tensor:
        return self.denoise_fn(x_t, t.to(torch.get_default_dtype()) * self.scale)


class ContinuousMaskedDiffusion(_MaskingModel):
    r"""Masked diffusion in continuous time (the bound of MDLM and MD4).

    At time :math:`t \in [0, 1]` each position is masked independently with probability
    :math:`1 - \alpha(t)` (:data:`MASKING_SCHEDULES`: ``linear`` :math:`\alpha = 1 - t`, ``cosine``
    :math:`\alpha = 1 - \cos(\tfrac{\pi}{2}(1 - t))`). The limit :math:`T \to \infty` of the
    discrete bound of :class:`MaskedDiffusion` is a weighted cross-entropy on masked positions:

    .. math:: -\log p(x_0) \le \int_0^1 \frac{-\alpha'(t)}{1 - \alpha(t)}\,
              \mathbb{E}_{q(x_t \mid x_0)} \sum_{d:\ x_{t,d} = K} -\log \hat p(x_{0,d} \mid x_t)\,dt.

    ``denoise_fn`` is called as in :class:`MaskedDiffusion` with the time ``t * time_scale``
    (float), so a network made for ``T = time_scale`` discrete steps fits both.
    :meth:`training_loss` draws the batch's times stratified (one per ``1/b`` slice of
    ``[0, 1]``, the low-variance sampling of MD4's code); :meth:`log_prob` estimates the bound by
    drawing the number of masked positions (:meth:`loss_given_count`, ``times`` draws per example),
    or (``exact``) integrates it with ``quadrature`` Gauss-Legendre nodes over every mask pattern
    (tiny problems), or with ``k > 1`` gives the importance-weighted bound.

    >>> from catlib.nets import TimeMLP
    >>> model = ContinuousMaskedDiffusion((3,), 4, TimeMLP(3, 5, hidden=(8,)))
    >>> model.training_loss(torch.tensor([[0, 1, 3], [2, 2, 0]])).shape, model.sample(2, steps=5).shape
    (torch.Size([]), torch.Size([2, 3]))
    """

    def __init__(self, data_shape: Sequence[int], num_classes: int, denoise_fn: Callable[[Tensor, Tensor], Tensor],
                 schedule: str = "linear", time_scale: float = 1000.0, min_time: float = 1e-4):
        super().__init__(data_shape, num_classes, denoise_fn)
        if schedule not in MASKING_SCHEDULES:
            raise ValueError(f"schedule must be one of {sorted(MASKING_SCHEDULES)}, got {schedule!r}")
        self.schedule = schedule
        self.alpha, self.alpha_prime = MASKING_SCHEDULES[schedule]
        self.time_scale, self.min_time = float(time_scale), float(min_time)
        self.register_buffer("_anchor", torch.zeros(()))  # gives the model a device

    def _network_time(self, t: Tensor) -> Tensor:
        """``t [b]`` in ``[0, 1]`` as the network sees it, ``t * time_scale``."""
        return t.to(torch.get_default_dtype()) * self.time_scale

    def weight(self, t: Tensor) -> Tensor:
        r""":math:`-\alpha'(t) / (1 - \alpha(t))` (``1 / t`` for the linear schedule)."""
        return -self.alpha_prime(t) / (1 - self.alpha(t))

    def loss_at(self, x0: Tensor, t: Tensor, x_t: Tensor | None = None) -> Tensor:
        """The integrand at times ``t [b]`` with one ``x_t`` each (or the given one), nats, ``[b]``."""
        t = t.to(torch.float64).clamp(self.min_time, 1.0)
        x_t = self._corrupt(x0, self.alpha(t)) if x_t is None else x_t
        return self.weight(t) * self._masked_nll(x0, x_t, t)

    def stratified_times(self, b: int) -> Tensor:
        """``b`` times in ``[0, 1)``, one uniform draw in each slice ``[i/b, (i+1)/b)``, shuffled."""
        return _stratified(b, self.device)

    def loss_given_count(self, x0: Tensor, m: Tensor) -> Tensor:
        r"""An unbiased estimate of the negative bound with ``m [b]`` positions masked (``1 <= m <= D``),
        nats, ``[b]``; with ``m`` uniform on ``1..D`` its mean is the bound.

        Write :math:`p = 1 - \alpha(t)` for the masked share. The bound is
        :math:`\int_0^1 \frac{1}{p}\,\mathbb{E}\big[\sum_{d\ \mathrm{masked}} -\log\hat p\big]\,dp`,
        and since :math:`\frac{1}{p}\binom{D}{m} p^m (1-p)^{D-m} = \frac{1}{m}\,
        \mathrm{Beta}(p;\, m, D - m + 1)`, it equals
        :math:`\sum_{m=1}^{D} \frac{1}{m}\,\mathbb{E}_{p \sim \mathrm{Beta}(m, D-m+1)}\,
        \mathbb{E}_{m\ \mathrm{positions}} \sum_{d\ \mathrm{masked}} -\log \hat p(x_{0,d} \mid x_t)`.
        So: draw :math:`p`, its time :math:`t` (:data:`MASKING_TIME`), mask ``m`` positions chosen
        uniformly, and weigh their loss by :math:`D/m`. Unlike :meth:`loss_at`, whose weight
        :math:`1/t` meets a rare masked position at a small :math:`t` with a huge weight (a
        heavy-tailed estimate), this one is bounded by :math:`D` times the largest loss of a position.
        """
        b, D = x0.shape[0], math.prod(self.data_shape)
        m = m.to(self.device)
        share = torch.distributions.Beta(m.double(), (D - m + 1).double()).sample()
        t = MASKING_TIME[self.schedule](share)
        ranks = torch.rand(b, D, device=self.device).argsort(1).argsort(1)
        masked = (ranks < m[:, None]).view(x0.shape)
        x_t = torch.where(masked, torch.full_like(x0, self.mask), x0)
        return D / m.double() * self._masked_nll(x0, x_t, t)

    def masking_times(self, x0: Tensor) -> Tensor:
        """Each position's masking time ``m`` in ``(0, 1]``, ``P(m <= t) = 1 - alpha(t)``, ``[b, *data_shape]``."""
        u = 1 - torch.rand(x0.shape, dtype=torch.float64, device=self.device)
        return MASKING_TIME[self.schedule](u)

    def training_loss(self, x: Tensor) -> Tensor:
        """Mean over the batch of the bound's one-sample estimate, nats per example (a scalar)."""
        x = check_classes(x, self.data_shape, self.num_classes, "x").to(self.device)
        return self.loss_at(x, self.stratified_times(x.shape[0])).mean()

    def _exact_at(self, x0: Tensor, t: float) -> Tensor:
        """The integrand at time ``t`` averaged over every mask pattern, ``[b]``."""
        times = torch.full((x0.shape[0],), max(t, self.min_time), dtype=torch.float64, device=self.device)
        return self._over_all_masks(x0, times, self.alpha(times), lambda x0s, x_t, ts: self.loss_at(x0s, ts, x_t))

    def log_prob(self, x: Tensor, k: int = 1, exact: bool = False, quadrature: int = 200, times: int = 1) -> Tensor:
        """A lower bound on ``log p(x)`` in nats, ``[b]``. ``k = 1``: the ELBO, estimated with ``times``
        draws per example of :meth:`loss_given_count` (the number of masked positions stratified over
        ``1..D``), or ``exact`` (Gauss-Legendre with ``quadrature`` nodes over every mask pattern,
        tiny problems). ``k > 1``: the importance-weighted bound over ``k`` masking
        orders (:meth:`~_MaskingModel.log_weight`, without gradients)."""
        x = check_classes(x, self.data_shape, self.num_classes).to(self.device)
        k = check_positive_int("k", k)
        if k > 1:
            if exact:
                raise ValueError(f"exact=True computes the ELBO and needs k = 1, got k = {k}")
            return self._as_output(self._iwbo(x, k))
        if exact:
            nodes, weights = np.polynomial.legendre.leggauss(check_positive_int("quadrature", quadrature))
            bound = -sum(w / 2 * self._exact_at(x, (node + 1) / 2) for node, w in zip(nodes.tolist(), weights.tolist()))
        else:
            times, D = check_positive_int("times", times), math.prod(self.data_shape)
            u = torch.rand(x.shape[0], dtype=torch.float64, device=self.device)
            counts = [((u + i / times) % 1.0 * D).long().clamp(max=D - 1) + 1 for i in range(times)]
            bound = -torch.stack([self.loss_given_count(x, m) for m in counts]).mean(0)
        return self._as_output(bound)

    def discretized(self, steps: int) -> MaskedDiffusion:
        r"""The discrete-time model with ``T = steps`` that this one's ``sample(n, steps)`` runs:
        :math:`\bar\alpha_i = \alpha(i / S)` and the same network at time :math:`i / S`. Its
        :meth:`MaskedDiffusion.log_prob` is the bound of the ``S``-step sampler (it shares, not copies,
        the network)."""
        steps = check_positive_int("steps", steps)
        model = MaskedDiffusion(self.data_shape, self.num_classes, _Rescaled(self.denoise_fn, self.time_scale / steps),
                                timesteps=steps).to(self.device)
        grid = torch.arange(steps + 1, dtype=torch.float64, device=self.device) / steps
        model.log_alpha_bar.copy_(self.alpha(grid).clamp(min=0).log())
        return model

    @torch.no_grad()
    def sample(self, n: int, steps: int = 1000, progress: bool | None = None) -> Tensor:
        r"""``n`` samples ``[n, *data_shape]`` with ``steps`` evenly spaced jumps from ``t = 1`` to 0;
        a position masked at ``t`` is unmasked by ``s`` with probability
        :math:`(\alpha(s) - \alpha(t)) / (1 - \alpha(t))`. See :func:`unmasking_sampler`."""
        n, steps = check_positive_int("n", n), check_positive_int("steps", steps)
        grid = torch.linspace(1, 0, steps + 1, dtype=torch.float64).tolist()
        jumps = [(torch.full((n,), t, dtype=torch.float64, device=self.device), s) for t, s in zip(grid[:-1], grid[1:])]

        def unmask(t: Tensor, s: float) -> Tensor:
            a_t, a_s = self.alpha(t), self.alpha(torch.full_like(t, s))
            return (a_s - a_t) / (1 - a_t)

        x, self.last_sample_calls = unmasking_sampler(self.mask, (n, *self.data_shape), jumps, unmask,
                                                      self.p_log_x0, progress, self.device)
        return x


def build_masked_diffusion(data_shape: Sequence[int], num_classes: int, time: str = "continuous",
                           schedule: str | None = None, timesteps: int = 1000, network: str | None = None,
                           **options) -> ContinuousMaskedDiffusion | MaskedDiffusion:
    """A masked diffusion with the denoiser of :func:`catlib.diffusion.build_diffusion` built for the
    ``K + 1`` states (the mask is the last input class; the mask's output logit is ignored).

    Args:
        data_shape, num_classes: as for :func:`~catlib.diffusion.build_diffusion`.
        time: ``"continuous"`` (:class:`ContinuousMaskedDiffusion`, MDLM / MD4's bound; default) or
            ``"discrete"`` (:class:`MaskedDiffusion`, D3PM's absorbing kernel with ``timesteps`` steps).
        schedule: ``"linear"`` or ``"cosine"`` (continuous; default linear), ``"absorbing"`` (discrete,
            the only one that ends all masked).
        timesteps: the discrete model's ``T``; for the continuous one the scale of the network's time
            (``t * timesteps``), so the networks match multinomial diffusion's with ``T = timesteps``.
        network, options: the network and its sizes, as for :func:`~catlib.diffusion.build_diffusion`.

    The model carries ``name = "masked-diffusion"`` and ``options`` (every setting).

    >>> model = build_masked_diffusion((4,), 3, hidden=(16,))
    >>> x = torch.tensor([[0, 2, 1, 1]])
    >>> model.log_prob(x).shape, model.log_prob(x, k=3).shape, model.sample(2, steps=5).shape
    (torch.Size([1]), torch.Size([1]), torch.Size([2, 4]))
    >>> build_masked_diffusion((4,), 3, time="discrete", timesteps=10, hidden=(16,)).num_timesteps
    10
    """
    shape = check_data_shape(data_shape)
    num_classes = check_positive_int("num_classes", num_classes, minimum=2)
    timesteps = check_positive_int("timesteps", timesteps)
    if time not in ("continuous", "discrete"):
        raise ValueError(f"time must be 'continuous' or 'discrete', got {time!r}")
    schedules = sorted(MASKING_SCHEDULES) if time == "continuous" else ["absorbing"]
    schedule = schedules[0 if time == "discrete" else schedules.index("linear")] if schedule is None else schedule
    if schedule not in schedules:
        raise ValueError(f"schedule for time={time!r} must be one of {schedules}, got {schedule!r}")
    net, network, opt = build_denoiser(shape, num_classes + 1, timesteps, network, **options)
    if time == "continuous":
        model = ContinuousMaskedDiffusion(shape, num_classes, net, schedule, time_scale=timesteps)
    else:
        model = MaskedDiffusion(shape, num_classes, net, timesteps, schedule)
    model.name = "masked-diffusion"
    model.options = {"time": time, "schedule": schedule, "timesteps": timesteps, "network": network, **opt}
    return model

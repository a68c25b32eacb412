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

import torch
from torch import Tensor

from catlib.diffusion import LOG_ZERO, index_to_log_onehot, log1mexp
from catlib.validation import check_positive_int

__all__ = ["absorbing_schedule", "absorbing_log_marginal", "absorbing_log_posterior"]


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

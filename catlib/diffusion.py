r"""Multinomial diffusion (Hoogeboom et al., 2021) in log space: schedules, helpers and the model.

The forward process resamples each variable uniformly with probability :math:`\beta_t`
(eq. 11 of the paper); the model predicts :math:`\hat x_0` and denoises with the posterior
:math:`q(x_{t-1} \mid x_t, \hat x_0)` (eq. 13-14); training minimises the variational bound
(eq. 15-16). Probabilities carry a trailing class axis: ``[batch, *data_shape, K]``.
"""
from __future__ import annotations

import math
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from catlib.metrics import importance_weighted
from catlib.nets import ENWIK8_TRANSFORMER, TEXT8_TRANSFORMER, TimeMLP, TimeTransformer, UNet
from catlib.progress import progress_bar
from catlib.validation import (as_int, check_bool, check_classes, check_data_shape, check_float,
                               check_positive_int, check_positive_ints, count_check, optional_check)

__all__ = ["cosine_schedule", "linear_schedule", "log_add_exp", "log1mexp", "index_to_log_onehot",
           "categorical_kl", "log_categorical", "MultinomialDiffusion", "build_diffusion", "LOG_ZERO",
           "TEXT8_DIFFUSION", "ENWIK8_DIFFUSION", "spaced_times",
           "check_times", "make_schedule", "MAX_ENUMERATED_STATES"]

LOG_ZERO = math.log(1e-30)
"""Stands for :math:`\\log 0` in log one-hot vectors: finite, so no ``-inf - (-inf) = NaN`` can
arise downstream, and :math:`e^{-69} = 10^{-30}` is negligible next to every probability the
schedules produce."""

MAX_ENUMERATED_STATES = 4096
"""The most states an exact bound enumerates (``K ** D`` here, ``2 ** D`` mask patterns in
:mod:`catlib.masked_diffusion`)."""

PROGRESS_FROM_CALLS = 100
"""Sampling shows a progress bar by default from this many network calls on (1000 calls of a
small network take minutes on a CPU)."""


# ----------------------------------------------------------------------------- schedules

def cosine_schedule(timesteps: int, s: float = 0.008) -> Tensor:
    r"""The cosine schedule of the official multinomial-diffusion code, as :math:`\alpha_t`.

    .. math:: f(t) = \cos^2\Big(\frac{t/T + s}{1 + s}\,\frac{\pi}{2}\Big),\qquad
              \alpha_t = \sqrt{\operatorname{clip}\big(f(t)/f(t-1),\ 0.001,\ 1\big)}

    The square root is the official code's choice ("the alpha in our paper is the alpha_sqrt
    from the Gaussian diffusion"): as long as the clip does not bite,
    :math:`\bar\alpha_t = \sqrt{f(t)/f(0)}`, the ratio of the *cosines* (not of their
    squares as in Nichol & Dhariwal's Gaussian schedule). The clip (kept from the official
    code) only acts at the last step, where :math:`f(T) = 0`: there :math:`\alpha_T =
    \sqrt{0.001}`, so :math:`\bar\alpha_T` is small but positive.

    Args:
        timesteps: ``T``.
        s: offset that keeps :math:`\beta_1` from being vanishingly small.

    Returns:
        ``[T]`` float64, :math:`\alpha_1, \dots, \alpha_T`.

    >>> alphas = cosine_schedule(1000)
    >>> f = lambda t: math.cos((t / 1000 + 0.008) / 1.008 * math.pi / 2)
    >>> abs(float(alphas[:500].prod()) - f(500) / f(0)) < 1e-12, bool((alphas < 1).all())
    (True, True)
    """
    timesteps = check_positive_int("timesteps", timesteps)
    t = torch.arange(timesteps + 1, dtype=torch.float64)
    f = torch.cos((t / timesteps + s) / (1 + s) * math.pi / 2) ** 2
    return (f[1:] / f[:-1]).clamp(0.001, 1.0).sqrt()


def linear_schedule(timesteps: int, beta_start: float | None = None, beta_end: float | None = None) -> Tensor:
    r"""A schedule with linearly increasing :math:`\beta_t = 1 - \alpha_t`.

    .. math:: \beta_t = \beta_{start} + \frac{t - 1}{T - 1}(\beta_{end} - \beta_{start})

    The defaults scale with ``T`` as in Nichol & Dhariwal (2021): :math:`\beta_{start} =
    0.1/T`, :math:`\beta_{end} = \min(20/T, 0.999)` (DDPM's ``1e-4`` and ``0.02`` at
    ``T = 1000``).

    Returns:
        ``[T]`` float64, :math:`\alpha_1, \dots, \alpha_T`.

    >>> linear_schedule(3, 0.1, 0.5)
    tensor([0.9000, 0.7000, 0.5000], dtype=torch.float64)
    """
    timesteps = check_positive_int("timesteps", timesteps)
    beta_start = 0.1 / timesteps if beta_start is None else beta_start
    beta_end = min(20 / timesteps, 0.999) if beta_end is None else beta_end
    if not 0 < beta_start <= beta_end < 1:
        raise ValueError(f"linear_schedule needs 0 < beta_start <= beta_end < 1, got beta_start={beta_start}, "
                         f"beta_end={beta_end}")
    return 1 - torch.linspace(beta_start, beta_end, timesteps, dtype=torch.float64)


# ----------------------------------------------------------------------------- log-space helpers

def log_add_exp(a: Tensor, b: Tensor) -> Tensor:
    r""":math:`\log(e^a + e^b)`, stable (``-inf`` when both are ``-inf``, never NaN).

    >>> log_add_exp(torch.tensor([0.0, -math.inf]), torch.tensor([0.0, -math.inf]))
    tensor([0.6931,   -inf])
    """
    return torch.logaddexp(a, b)


def log1mexp(a: Tensor) -> Tensor:
    r""":math:`\log(1 - e^a)` for :math:`a \le 0`, accurate at both ends (Mächler, 2012).

    .. math:: \log(1 - e^a) = \begin{cases} \log(-\operatorname{expm1}(a)) & a > -\log 2 \\
              \operatorname{log1p}(-e^a) & \text{otherwise} \end{cases}

    >>> log1mexp(torch.tensor([-1e-20, -50.0], dtype=torch.float64))
    tensor([-4.6052e+01, -1.9287e-22], dtype=torch.float64)
    """
    return torch.where(a > -math.log(2), torch.log(-torch.expm1(a)), torch.log1p(-torch.exp(a)))


def index_to_log_onehot(x: Tensor, num_classes: int, dtype: torch.dtype | None = None) -> Tensor:
    """Log one-hot vectors ``[*x.shape, K]``: 0 at the class, :data:`LOG_ZERO` elsewhere.

    >>> index_to_log_onehot(torch.tensor([1]), 3)
    tensor([[-69.0776,   0.0000, -69.0776]])
    """
    zero = torch.zeros((), dtype=dtype or torch.get_default_dtype(), device=x.device)
    return torch.where(F.one_hot(x, num_classes).bool(), zero, LOG_ZERO)


def categorical_kl(log_p: Tensor, log_q: Tensor) -> Tensor:
    r"""KL divergence between categoricals given by log-probabilities, over the last axis.

    .. math:: \mathrm{KL}(p \,\|\, q) = \sum_k p_k (\log p_k - \log q_k),\qquad 0 \log 0 = 0

    Args:
        log_p, log_q: ``[*, K]``; ``log_p`` may hold ``-inf`` (zero probabilities).

    Returns:
        ``[*]``.

    >>> p = torch.tensor([[0.5, 0.5, 0.0]]).log()
    >>> categorical_kl(p, torch.full((1, 3), 1 / 3).log())
    tensor([0.4055])
    """
    p = log_p.exp()
    return torch.where(p > 0, p * (log_p - log_q), 0.0).sum(-1)


def log_categorical(log_x: Tensor, log_probs: Tensor) -> Tensor:
    r""":math:`\sum_k x_k \log \theta_k`: the log-likelihood of one-hot ``x`` (given in log space) under ``θ``.

    >>> log_categorical(index_to_log_onehot(torch.tensor([2]), 3), torch.tensor([[0.2, 0.3, 0.5]]).log())
    tensor([-0.6931])
    """
    return (log_x.exp() * log_probs).sum(-1)


def _log_prob_of(log_probs: Tensor, x: Tensor) -> Tensor:
    """``log_probs [b, *shape, K]`` at the classes ``x [b, *shape]``, summed over the data axes: ``[b]``."""
    return log_probs.gather(-1, x.unsqueeze(-1)).flatten(1).sum(1)


def _sample_categorical(log_probs: Tensor) -> Tensor:
    """One class index per categorical ``[*, K] -> [*]`` by the Gumbel-max trick (``u`` kept away from 0)."""
    u = torch.rand_like(log_probs).clamp(min=torch.finfo(log_probs.dtype).tiny)
    return (log_probs - torch.log(-torch.log(u))).argmax(-1)


def check_times(t: int | Tensor, batch: int, low: int, high: int, device: torch.device | None = None,
                name: str = "t") -> Tensor:
    """Time steps ``t`` (an int or a LongTensor ``[batch]`` or ``[]``) as a LongTensor ``[batch]`` on
    ``device``, each checked to lie in ``[low, high]``; a clear ``ValueError`` otherwise.

    >>> check_times(3, 2, 1, 10).tolist()
    [3, 3]
    """
    if not torch.is_tensor(t) and as_int(t) is not None:  # int or NumPy integer
        t = as_int(t)
        if not low <= t <= high:
            raise ValueError(f"{name} must be in [{low}, {high}], got {t}")
        return torch.full((batch,), t, dtype=torch.long, device=device)
    if not torch.is_tensor(t) or t.is_floating_point() or t.is_complex() or t.dtype == torch.bool:
        raise ValueError(f"{name} must be an int or a LongTensor of shape [{batch}], got "
                         f"{type(t).__name__ if not torch.is_tensor(t) else t.dtype}")
    if t.dim() == 0:
        t = t.expand(batch)
    if t.shape != (batch,):
        raise ValueError(f"{name} must be an int or a LongTensor of shape [{batch}], got shape {list(t.shape)}")
    bad = (t < low) | (t > high)
    if bad.any():
        i = int(bad.nonzero()[0])
        raise ValueError(f"{name} must be in [{low}, {high}], got {int(t[i])} at position {i}")
    return t.to(device, torch.long)


def spaced_times(timesteps: int, steps: int | None = None) -> list[int]:
    """``steps`` evenly spaced times ``T = t_S > ... > t_1 = 1`` (all ``T`` by default): where a
    sampler with ``steps`` network calls stops.

    >>> spaced_times(100, 4)
    [100, 67, 34, 1]
    """
    steps = timesteps if steps is None else check_positive_int("steps", steps)
    if steps > timesteps:
        raise ValueError(f"steps must be in [1, {timesteps}], got {steps}")
    return torch.linspace(timesteps, 1, steps, dtype=torch.float64).round().long().tolist()


def make_schedule(schedule: str | Tensor, timesteps: int) -> Tensor:
    """``[T]`` float64 alphas: ``"cosine"``, ``"linear"`` or a tensor of ``T`` values in ``(0, 1)`` (checked)."""
    if torch.is_tensor(schedule):
        alphas = schedule.detach().to(torch.float64).cpu()
        if alphas.shape != (timesteps,) or not ((alphas > 0) & (alphas < 1)).all():
            raise ValueError(f"schedule as a tensor must hold {timesteps} alphas in (0, 1), got shape "
                             f"{list(alphas.shape)} with values in [{alphas.min():.3g}, {alphas.max():.3g}]")
        return alphas
    if schedule == "cosine":
        return cosine_schedule(timesteps)
    if schedule == "linear":
        return linear_schedule(timesteps)
    raise ValueError(f"schedule must be 'cosine', 'linear' or a tensor of alphas, got {schedule!r}")


# ----------------------------------------------------------------------------- the model

class MultinomialDiffusion(nn.Module):
    r"""Multinomial diffusion: a Markov chain that resamples categories, and its learned reverse.

    .. math:: q(x_t \mid x_{t-1}) = \mathcal{C}\big(\alpha_t x_{t-1} + (1 - \alpha_t)/K\big),\qquad
              q(x_t \mid x_0) = \mathcal{C}\big(\bar\alpha_t x_0 + (1 - \bar\alpha_t)/K\big)

    .. math:: p(x_{t-1} \mid x_t) = q(x_{t-1} \mid x_t, \hat x_0),\qquad
              \hat x_0 = \operatorname{softmax}(\mathrm{denoise\_fn}(x_t, t))

    **Time convention**: ``t`` is 1-based as in the paper. :math:`x_0` is the data and
    :math:`x_1, \dots, x_T` are ever noisier; every ``t`` argument is an int or a LongTensor
    ``[batch]`` in ``[1, T]`` (the schedule buffers hold time ``t`` at index ``t - 1``).
    :math:`L_{t-1}` is the term of the bound that trains :math:`p(x_{t-1} \mid x_t)`; for
    ``t = 1`` it is the decoder term :math:`-\log p(x_0 \mid x_1)` with
    :math:`p(x_0 \mid x_1) = \mathcal{C}(\hat x_0)`.

    The ELBO, in nats (Hoogeboom et al., 2021, eq. 15-16):

    .. math:: \log P(x_0) \ge -\mathrm{KL}(q(x_T \mid x_0) \,\|\, \mathcal{C}(1/K))
              - \sum_{t=1}^{T} L_{t-1},\qquad
              L_{t-1} = \mathbb{E}_{q(x_t \mid x_0)}\,\mathrm{KL}\big(q(x_{t-1} \mid x_t, x_0)
              \,\|\, p(x_{t-1} \mid x_t)\big)

    Args:
        data_shape: shape of one example, e.g. ``(D,)`` or ``(H, W)``.
        num_classes: ``K``.
        denoise_fn: ``(x_t [b, *data_shape] long, t [b] long, 1-based) -> logits
            [b, *data_shape, K]`` of :math:`\hat x_0`, e.g. :class:`~catlib.nets.TimeMLP` or
            :class:`~catlib.nets.UNet`.
        timesteps: ``T``.
        schedule: ``"cosine"`` (:func:`cosine_schedule`), ``"linear"``
            (:func:`linear_schedule`) or a float tensor of ``T`` alphas in ``(0, 1)``.
        timestep_sampling: ``"importance"`` (loss-aware, see :meth:`sample_timesteps`) or
            ``"uniform"``; used by :meth:`training_loss`.

    >>> from catlib.nets import TimeMLP
    >>> model = MultinomialDiffusion((3,), 4, TimeMLP(3, 4, hidden=(16,)), timesteps=10)
    >>> x = torch.tensor([[0, 1, 3]])
    >>> bool(torch.allclose(model.marginal_probs(x, t=10).sum(-1), torch.ones(1, 3)))  # probabilities
    True
    >>> model.log_prob(x).shape, model.sample(2).shape
    (torch.Size([1]), torch.Size([2, 3]))
    """

    def __init__(self, data_shape: Sequence[int], num_classes: int, denoise_fn: Callable[[Tensor, Tensor], Tensor],
                 timesteps: int = 1000, schedule: str | Tensor = "cosine", timestep_sampling: str = "importance"):
        super().__init__()
        self.data_shape = check_data_shape(data_shape)
        self.num_classes = check_positive_int("num_classes", num_classes, minimum=2)
        self.num_timesteps = check_positive_int("timesteps", timesteps)
        if timestep_sampling not in ("uniform", "importance"):
            raise ValueError(f"timestep_sampling must be 'uniform' or 'importance', got {timestep_sampling!r}")
        self.timestep_sampling = timestep_sampling
        self.denoise_fn = denoise_fn
        self.last_sample_calls = 0

        log_alpha = make_schedule(schedule, self.num_timesteps).log()
        log_cumprod_alpha = log_alpha.cumsum(0)
        self.register_buffer("log_alpha", log_alpha)
        self.register_buffer("log_1_min_alpha", log1mexp(log_alpha))
        self.register_buffer("log_cumprod_alpha", log_cumprod_alpha)
        self.register_buffer("log_1_min_cumprod_alpha", log1mexp(log_cumprod_alpha))
        self.register_buffer("Lt_history", torch.zeros(self.num_timesteps, dtype=torch.float64))
        self.register_buffer("Lt_count", torch.zeros(self.num_timesteps, dtype=torch.long))

    @property
    def device(self) -> torch.device:
        return self.log_alpha.device

    @property
    def num_vars(self) -> int:
        """Number of categorical variables per example, ``prod(data_shape)``."""
        return math.prod(self.data_shape)

    # ------------------------------------------------------------------ input checks

    def _time(self, t: int | Tensor, batch: int, name: str = "t", low: int = 1, high: int | None = None) -> Tensor:
        """``t`` as a LongTensor ``[batch]`` on the model's device, checked to lie in ``[low, high]`` (default ``T``)."""
        return check_times(t, batch, low, self.num_timesteps if high is None else high, self.device, name)

    def _log_probs(self, x: Tensor, name: str) -> Tensor:
        """Log-probabilities ``[b, *data_shape, K]`` of class indices or of probability vectors."""
        if not (torch.is_tensor(x) and x.is_floating_point()):
            x = check_classes(x, self.data_shape, self.num_classes, name).to(self.device)
            return index_to_log_onehot(x, self.num_classes)
        shape = (*self.data_shape, self.num_classes)
        if x.dim() != len(shape) + 1 or tuple(x.shape[1:]) != shape:
            raise ValueError(f"{name} as probability vectors must have shape [batch, {', '.join(map(str, shape))}] "
                             f"(K = {self.num_classes} on the last axis), got {list(x.shape)}")
        if x.dtype in (torch.float16, torch.bfloat16):
            x = x.float()
        if not torch.isfinite(x).all() or (x < 0).any():
            raise ValueError(f"{name} must hold finite non-negative probabilities, got values in "
                             f"[{x.min().item():.3g}, {x.max().item():.3g}]")
        err = (x.sum(-1) - 1).abs().max().item()
        if err > torch.finfo(x.dtype).eps ** 0.5:
            raise ValueError(f"{name} probability vectors must sum to 1 over the last axis, got a sum off by {err:.3g}")
        return x.to(self.device).clamp(min=1e-30).log()

    def _coef(self, buffer: Tensor, t: Tensor, like: Tensor) -> Tensor:
        """``buffer[t - 1]`` shaped ``[b, 1, ..., 1]`` to broadcast against ``like``, in its dtype."""
        return buffer[t - 1].to(like.dtype).view(-1, *[1] * (like.dim() - 1))

    # ------------------------------------------------------------------ forward process q

    def q_log_transition(self, log_x_prev: Tensor, t: int | Tensor) -> Tensor:
        r"""Log of eq. 11, :math:`\log q(x_t \mid x_{t-1}) = \log(\alpha_t x_{t-1} + (1 - \alpha_t)/K)`.

        Args:
            log_x_prev: log-probabilities of :math:`x_{t-1}`, ``[b, *data_shape, K]``.
            t: int or LongTensor ``[b]`` in ``[1, T]``.

        Returns:
            ``[b, *data_shape, K]``, the log-probabilities of :math:`x_t`.
        """
        t = self._time(t, log_x_prev.shape[0])
        return log_add_exp(log_x_prev + self._coef(self.log_alpha, t, log_x_prev),
                           self._coef(self.log_1_min_alpha, t, log_x_prev) - math.log(self.num_classes))

    def q_log_marginal(self, log_x_start: Tensor, t: int | Tensor) -> Tensor:
        r"""Log of eq. 12, :math:`\log q(x_t \mid x_0) = \log(\bar\alpha_t x_0 + (1 - \bar\alpha_t)/K)`.

        Shapes as in :meth:`q_log_transition`.
        """
        t = self._time(t, log_x_start.shape[0])
        return log_add_exp(log_x_start + self._coef(self.log_cumprod_alpha, t, log_x_start),
                           self._coef(self.log_1_min_cumprod_alpha, t, log_x_start) - math.log(self.num_classes))

    def q_log_posterior(self, log_x_start: Tensor, x_t: Tensor, t: int | Tensor,
                        s: int | Tensor | None = None) -> Tensor:
        r"""Log of eq. 13, :math:`\log q(x_s \mid x_t, x_0)` for :math:`0 \le s < t` (``s = t - 1`` by default).

        .. math:: q(x_s \mid x_t, x_0) \propto \big[a\, x_t + (1 - a)/K\big] \odot
                  \big[\bar\alpha_s x_0 + (1 - \bar\alpha_s)/K\big],\qquad a = \bar\alpha_t / \bar\alpha_s

        The first factor is :math:`q(x_t \mid x_s)` as a function of :math:`x_s` (the
        transition is symmetric); ``a = α_t`` for ``s = t - 1``, and ``s < t - 1`` gives the
        step-skipping posterior of the composed transition. For ``s = 0`` the result is
        ``log_x_start`` itself: the one-hot :math:`x_0` (Bayes' rule, as :math:`\bar\alpha_0 = 1`),
        or, for a predicted :math:`\hat x_0`, the decoder :math:`p(x_0 \mid x_t) = \mathcal{C}(\hat x_0)`.

        Args:
            log_x_start: log-probabilities of :math:`x_0` (one-hot or :math:`\hat x_0`), ``[b, *data_shape, K]``.
            x_t: class indices ``[b, *data_shape]``.
            t: int or LongTensor ``[b]`` in ``[1, T]``.
            s: int or LongTensor ``[b]`` in ``[0, t)``.

        Returns:
            ``[b, *data_shape, K]``, normalised over the last axis.
        """
        b = log_x_start.shape[0]
        t = self._time(t, b)
        if s is None:
            s = t - 1
        else:
            s = self._time(s, b, "s", low=0, high=self.num_timesteps - 1)
            if (s >= t).any():
                i = int((s >= t).nonzero()[0])
                raise ValueError(f"s must be smaller than t, got s = {int(s[i])} and t = {int(t[i])} at position {i}")
        log_a = torch.where(s == t - 1, self.log_alpha[t - 1], self.log_cumprod_alpha[t - 1]
                            - torch.where(s > 0, self.log_cumprod_alpha[(s - 1).clamp(min=0)], 0.0))
        shape = (b, *[1] * (log_x_start.dim() - 1))
        log_fwd = log_add_exp(index_to_log_onehot(x_t, self.num_classes, log_x_start.dtype)
                              + log_a.to(log_x_start.dtype).view(shape),
                              log1mexp(log_a).to(log_x_start.dtype).view(shape) - math.log(self.num_classes))
        unnormed = log_fwd + self.q_log_marginal(log_x_start, s.clamp(min=1))
        log_post = unnormed - torch.logsumexp(unnormed, -1, keepdim=True)
        return torch.where(s.view(shape) == 0, log_x_start, log_post)

    def transition_probs(self, x_prev: Tensor, t: int | Tensor) -> Tensor:
        """Eq. 11, :math:`q(x_t \\mid x_{t-1})` ``[b, *data_shape, K]``; ``x_prev`` holds class
        indices ``[b, *data_shape]`` or probability vectors ``[b, *data_shape, K]``."""
        return self.q_log_transition(self._log_probs(x_prev, "x_prev"), t).exp()

    def marginal_probs(self, x0: Tensor, t: int | Tensor) -> Tensor:
        """Eq. 12, :math:`q(x_t \\mid x_0)` ``[b, *data_shape, K]``; ``x0`` as in :meth:`transition_probs`."""
        return self.q_log_marginal(self._log_probs(x0, "x0"), t).exp()

    def posterior_probs(self, x0: Tensor, xt: Tensor, t: int | Tensor) -> Tensor:
        """Eq. 13, :math:`q(x_{t-1} \\mid x_t, x_0)` ``[b, *data_shape, K]``; ``x0`` class indices or
        probability vectors (:math:`\\hat x_0`), ``xt`` class indices; for ``t = 1`` it is ``x0`` itself."""
        xt = check_classes(xt, self.data_shape, self.num_classes, "xt").to(self.device)
        return self.q_log_posterior(self._log_probs(x0, "x0"), xt, t).exp()

    def q_sample(self, x_start: Tensor, t: int | Tensor) -> Tensor:
        """Draw :math:`x_t \\sim q(x_t \\mid x_0)`: class indices ``[b, *data_shape]``; ``x_start`` as ``x0``
        in :meth:`marginal_probs`."""
        return _sample_categorical(self.q_log_marginal(self._log_probs(x_start, "x_start"), t))

    # ------------------------------------------------------------------ model p

    def p_log_x0(self, x_t: Tensor, t: int | Tensor) -> Tensor:
        r""":math:`\log \hat x_0 = \log\operatorname{softmax}(\mathrm{denoise\_fn}(x_t, t))`, ``[b, *data_shape, K]``.

        A caveat on the name: for ``t >= 2`` the bound is not minimised by the true posterior
        :math:`\hat x_{0,d} = q(x_{0,d} \mid x_t)` but by
        :math:`\hat x_{0,d} \propto q(x_{0,d} \mid x_t) / q(x_{t,d} \mid x_{0,d})`, which makes
        :math:`p(x_{t-1,d} \mid x_t)` the true marginal :math:`q(x_{t-1,d} \mid x_t)` (for
        ``D = 1`` this is the data distribution itself, whatever :math:`x_t`); only the decoder
        (``t = 1``) wants the posterior. ``tests/test_diffusion.py`` checks both facts with oracles.
        """
        x_t = check_classes(x_t, self.data_shape, self.num_classes, "x_t").to(self.device)
        t = self._time(t, x_t.shape[0])
        logits = self.denoise_fn(x_t, t)
        expected = (x_t.shape[0], *self.data_shape, self.num_classes)
        if tuple(logits.shape) != expected:
            raise ValueError(f"denoise_fn must return logits of shape {list(expected)}, got {list(logits.shape)}")
        if logits.dtype in (torch.float16, torch.bfloat16):
            logits = logits.float()
        return F.log_softmax(logits, dim=-1)

    def p_log_prob_prev(self, x_t: Tensor, t: int | Tensor, s: int | Tensor | None = None) -> Tensor:
        r"""Eq. 14, :math:`\log p(x_s \mid x_t) = \log q(x_s \mid x_t, \hat x_0)`, ``s = t - 1`` by default.

        For ``s = 0`` (e.g. ``t = 1``) it is :math:`\log \hat x_0`; ``s < t - 1`` skips steps
        (see :meth:`q_log_posterior`). One network call. Returns ``[b, *data_shape, K]``.
        """
        x_t = check_classes(x_t, self.data_shape, self.num_classes, "x_t").to(self.device)
        return self.q_log_posterior(self.p_log_x0(x_t, t), x_t, t, s)

    # ------------------------------------------------------------------ the bound

    def _loss_given_xt(self, log_x_start: Tensor, x_t: Tensor, t: Tensor, s: Tensor | None = None) -> Tensor:
        """The term for the step ``t -> s`` (``s = t - 1`` by default) given ``x_t``, ``[b]``: the KL of
        eq. 15 for ``s >= 1``, the decoder NLL of eq. 16 for ``s = 0``."""
        s = t - 1 if s is None else s
        log_p = self.p_log_prob_prev(x_t, t, s)
        kl = categorical_kl(self.q_log_posterior(log_x_start, x_t, t, s), log_p)
        nll = -log_categorical(log_x_start, log_p)
        first = (s == 0).view(-1, *[1] * len(self.data_shape))
        return torch.where(first, nll, kl).flatten(1).sum(1)

    def loss_terms(self, x_start: Tensor, t: int | Tensor) -> Tensor:
        r""":math:`L_{t-1}` in nats, ``[b]``, with one :math:`x_t \sim q(x_t \mid x_0)` per example.

        .. math:: L_{t-1} = \begin{cases} -\log p(x_0 \mid x_1) & t = 1 \\
                  \mathrm{KL}\big(q(x_{t-1} \mid x_t, x_0) \,\|\, p(x_{t-1} \mid x_t)\big) & t \ge 2
                  \end{cases}

        summed over the data dimensions; the KL is computed in closed form (eq. 15).

        Args:
            x_start: class indices ``[b, *data_shape]``.
            t: int or LongTensor ``[b]`` in ``[1, T]``.
        """
        x_start = check_classes(x_start, self.data_shape, self.num_classes, "x_start").to(self.device)
        t = self._time(t, x_start.shape[0])
        log_x_start = index_to_log_onehot(x_start, self.num_classes)
        x_t = _sample_categorical(self.q_log_marginal(log_x_start, t))
        return self._loss_given_xt(log_x_start, x_t, t)

    def prior_kl(self, x_start: Tensor) -> Tensor:
        r""":math:`\mathrm{KL}(q(x_T \mid x_0) \,\|\, \mathcal{C}(1/K))` in nats, summed over the data axes, ``[b]``."""
        x_start = check_classes(x_start, self.data_shape, self.num_classes, "x_start").to(self.device)
        log_q = self.q_log_marginal(index_to_log_onehot(x_start, self.num_classes), self.num_timesteps)
        return categorical_kl(log_q, torch.full_like(log_q, -math.log(self.num_classes))).flatten(1).sum(1)

    def _expected_loss(self, log_x_start: Tensor, t: Tensor, s: Tensor | None = None) -> Tensor:
        r""":math:`L_{t-1} = \sum_{x_t} q(x_t \mid x_0)\, L_{t-1}(x_t)` over all ``K ** num_vars`` states, ``[b]``."""
        K, D = self.num_classes, self.num_vars
        if K ** D > MAX_ENUMERATED_STATES:
            raise ValueError(f"enumerate_xt needs num_classes ** num_vars <= {MAX_ENUMERATED_STATES} states, "
                             f"got {K} ** {D}")
        idx = torch.arange(K ** D, device=self.device)
        states = (idx[:, None] // K ** torch.arange(D, device=self.device) % K).view(-1, *self.data_shape)
        b, n = log_x_start.shape[0], states.shape[0]
        x_t = states.repeat(b, *[1] * len(self.data_shape))      # row i * n + j holds state j
        log_x0 = log_x_start.repeat_interleave(n, 0)              # ... and example i
        t = t.repeat_interleave(n)
        s = None if s is None else s.repeat_interleave(n)
        log_weight = _log_prob_of(self.q_log_marginal(log_x0, t), x_t)
        return (log_weight.exp() * self._loss_given_xt(log_x0, x_t, t, s)).view(b, n).sum(1)

    @torch.no_grad()
    def elbo_terms(self, x: Tensor, progress: bool = False, enumerate_xt: bool = False) -> Tensor:
        r"""Every term of the bound: column ``t - 1`` holds :math:`L_{t-1}` in nats, ``[b, T]``.

        With ``enumerate_xt=False`` each term uses one :math:`x_t \sim q(x_t \mid x_0)` (its KL
        in closed form): an unbiased estimate of the term, ``T`` network calls in all. With
        ``enumerate_xt=True`` the expectation over :math:`x_t` is summed over every state
        (only for ``K ** num_vars <= 4096``): the exact terms, for tests and toys.
        The ELBO is ``-(elbo_terms(x).sum(1) + prior_kl(x))``. Runs without gradients.
        """
        jumps = [(t, t - 1) for t in range(1, self.num_timesteps + 1)]
        return self._bound_terms(x, jumps, progress, enumerate_xt)

    def _bound_terms(self, x: Tensor, jumps: list[tuple[int, int]], progress: bool, enumerate_xt: bool) -> Tensor:
        """One column per jump ``(t, s)`` of the chain: the term of the step ``t -> s``, ``[b, len(jumps)]``."""
        x = check_classes(x, self.data_shape, self.num_classes).to(self.device)
        log_x_start = index_to_log_onehot(x, self.num_classes)
        columns = []
        for t_now, s_next in progress_bar(jumps, disable=not progress, desc="ELBO terms", leave=False):
            t = torch.full((x.shape[0],), t_now, dtype=torch.long, device=self.device)
            s = torch.full_like(t, s_next)
            if enumerate_xt:
                columns.append(self._expected_loss(log_x_start, t, s))
            else:
                x_t = _sample_categorical(self.q_log_marginal(log_x_start, t))
                columns.append(self._loss_given_xt(log_x_start, x_t, t, s))
        return torch.stack(columns, 1)

    @torch.no_grad()
    def skip_elbo_terms(self, x: Tensor, steps: int, progress: bool = False, enumerate_xt: bool = False) -> Tensor:
        r"""The terms of the bound of the ``steps``-step model that :meth:`sample` runs, ``[b, steps]``.

        The forward process seen only at the times :math:`T = t_S > \dots > t_1` of
        :meth:`sampling_times` (and 0) is again a Markov chain, with the composed kernels
        :math:`q(x_t \mid x_s)`, so the model that jumps between those times has the bound

        .. math:: \log P(x_0) \ge -\mathrm{KL}_{prior} - \sum_{i=2}^{S}
                  \mathbb{E}\,\mathrm{KL}\big(q(x_{t_{i-1}} \mid x_{t_i}, x_0) \,\|\,
                  p(x_{t_{i-1}} \mid x_{t_i})\big) - \mathbb{E}[-\log p(x_0 \mid x_{t_1})],

        column ``i`` holding the jump from the ``i``-th visited time (largest first). For
        ``steps = T`` these are the columns of :meth:`elbo_terms` in reverse order. One sample
        of each :math:`x_{t_i} \sim q(x_{t_i} \mid x_0)`, ``steps`` network calls; with
        ``enumerate_xt=True`` the exact expectations, as in :meth:`elbo_terms`.
        """
        times = self.sampling_times(steps) + [0]
        return self._bound_terms(x, list(zip(times[:-1], times[1:])), progress, enumerate_xt)

    def log_weight(self, x: Tensor, progress: bool = False) -> Tensor:
        r"""One trajectory's :math:`\log p(x_{0:T}) - \log q(x_{1:T} \mid x_0)` per row, ``[b]``.

        .. math:: \log w = \log p(x_T) + \sum_{t=1}^T \log p(x_{t-1} \mid x_t) - \sum_{t=1}^T \log q(x_t \mid x_{t-1}),
                  \qquad x_t \sim q(x_t \mid x_{t-1})

        ``T`` network calls; ``x`` holds checked class indices on the model's device.
        """
        log_w = torch.full((x.shape[0],), -self.num_vars * math.log(self.num_classes), device=x.device)
        x_prev = x
        steps = range(1, self.num_timesteps + 1)
        for t in progress_bar(steps, disable=not progress, desc="trajectory", leave=False):
            log_q = self.q_log_transition(index_to_log_onehot(x_prev, self.num_classes), t)
            x_t = _sample_categorical(log_q)
            log_w = log_w - _log_prob_of(log_q, x_t) + _log_prob_of(self.p_log_prob_prev(x_t, t), x_prev)
            x_prev = x_t
        return log_w

    def log_prob(self, x: Tensor, k: int = 1, exact: bool = False, progress: bool = False,
                 steps: int | None = None) -> Tensor:
        r"""A lower bound on :math:`\log P(x)` in nats, ``[b]``.

        - ``k = 1, exact=False``: the unbiased one-timestep estimate of the ELBO,
          :math:`-T L_{t-1} - \mathrm{KL}_{prior}` with ``t`` uniform in ``[1, T]`` (one network call).
        - ``exact=True``: all ``T`` terms summed, :math:`-\sum_t L_{t-1} - \mathrm{KL}_{prior}`,
          each term with one sample :math:`x_t \sim q(x_t \mid x_0)` and its KL in closed form
          (``T`` network calls). "Exact" means no timestep sampling; each term is still an
          unbiased one-sample estimate of its expectation over :math:`x_t` (see :meth:`elbo_terms`).
        - ``k > 1``: the importance-weighted bound over ``k`` whole trajectories
          :math:`x_{1:T} \sim q(x_{1:T} \mid x_0)` with weights from :meth:`log_weight`
          (``k * T`` network calls).

        - ``exact=True, steps=S``: the bound of the ``S``-step model that ``sample(n, steps=S)``
          runs, all ``S`` terms summed (:meth:`skip_elbo_terms`).

        ``exact=True`` and ``k > 1`` are evaluation tools and run without gradients.

        Args:
            x: class indices ``[b, *data_shape]``.
            k: number of importance samples (trajectories).
            exact: sum all ``T`` terms (only with ``k = 1``).
            progress: show a progress bar for the ``T``-step loops.
            steps: with ``exact=True``, the number of visited times of a shortened chain.
        """
        x = check_classes(x, self.data_shape, self.num_classes).to(self.device)
        k = check_positive_int("k", k)
        if exact and k > 1:
            raise ValueError(f"exact=True computes the ELBO and needs k = 1, got k = {k}")
        if k > 1:
            with torch.no_grad():
                return importance_weighted(lambda rows: self.log_weight(rows, progress), x, k)
        if steps is not None and not exact:
            raise ValueError(f"steps = {steps} selects the bound of a shortened chain and needs exact=True")
        if exact:
            with torch.no_grad():
                terms = self.elbo_terms(x, progress) if steps is None else self.skip_elbo_terms(x, steps, progress)
                return -(terms.sum(1) + self.prior_kl(x))
        t = torch.randint(1, self.num_timesteps + 1, (x.shape[0],), device=self.device)
        return -(self.num_timesteps * self.loss_terms(x, t) + self.prior_kl(x))

    # ------------------------------------------------------------------ training

    def sample_timesteps(self, batch: int) -> tuple[Tensor, Tensor]:
        r"""Timesteps for a training batch and their probabilities: ``(t [b] long in [1, T], p(t) [b])``.

        ``"uniform"``: :math:`p(t) = 1/T`. ``"importance"`` (Nichol & Dhariwal, 2021, as in the
        official code): uniform until every ``t`` has been seen at least 10 times
        (``Lt_count``), then

        .. math:: p(t) \propto \sqrt{\mathbb{E}[L_{t-1}^2]} + 10^{-4}

        with :math:`\mathbb{E}[L_{t-1}^2]` the running average ``Lt_history`` kept by
        :meth:`training_loss`. Both buffers are in the ``state_dict``, so a resumed run samples
        as the original would; draws use torch's global generator.
        """
        batch = check_positive_int("batch", batch)
        T = self.num_timesteps
        if self.timestep_sampling == "importance" and bool((self.Lt_count >= 10).all()):
            weights = torch.sqrt(self.Lt_history + 1e-10) + 1e-4
            p = weights / weights.sum()
            index = torch.multinomial(p, batch, replacement=True)
            return index + 1, p[index].float()
        t = torch.randint(1, T + 1, (batch,), device=self.device)
        return t, torch.full((batch,), 1 / T, device=self.device)

    def _update_history(self, t: Tensor, loss: Tensor) -> None:
        """Fold the batch's :math:`L_{t-1}^2` into ``Lt_history`` (weight 0.1, per ``t`` the batch mean) and count."""
        index = t - 1
        count = torch.zeros_like(self.Lt_count).index_add_(0, index, torch.ones_like(index))
        total = torch.zeros_like(self.Lt_history).index_add_(0, index, loss.detach().double() ** 2)
        seen = count > 0
        new = 0.9 * self.Lt_history + 0.1 * total / count.clamp(min=1)
        self.Lt_history.copy_(torch.where(seen, new, self.Lt_history))
        self.Lt_count += count

    def training_loss(self, x: Tensor) -> Tensor:
        r"""The training objective: an unbiased estimate of the negative ELBO, in nats per example.

        .. math:: \frac{1}{b}\sum_{i=1}^b \Big[\frac{L_{t_i - 1}(x^{(i)})}{p(t_i)}
                  + \mathrm{KL}(q(x_T \mid x^{(i)}) \,\|\, \mathcal{C}(1/K))\Big],\qquad t_i \sim p(t)

        with :math:`p(t)` from :meth:`sample_timesteps`. It is on the scale of
        ``-log_prob(x).mean()`` (nats per example, not per dimension), the quantity every other
        model trains on. In training mode the :math:`L_{t-1}` history of the importance
        sampler is updated; in eval mode nothing changes.

        Args:
            x: class indices ``[b, *data_shape]``.

        Returns:
            a scalar.
        """
        x = check_classes(x, self.data_shape, self.num_classes).to(self.device)
        t, pt = self.sample_timesteps(x.shape[0])
        loss = self.loss_terms(x, t)
        if self.training:
            self._update_history(t, loss)
        return (loss / pt + self.prior_kl(x)).mean()

    # ------------------------------------------------------------------ sampling

    def sampling_times(self, steps: int | None = None) -> list[int]:
        """The times ``T = t_S > ... > t_1 >= 1`` the sampler visits (one network call each), evenly spaced.

        >>> from catlib.nets import TimeMLP
        >>> MultinomialDiffusion((1,), 2, TimeMLP(1, 2), timesteps=100).sampling_times(4)
        [100, 67, 34, 1]
        """
        return spaced_times(self.num_timesteps, steps)

    def _reverse(self, n: int, steps: int | None, progress: bool | None, keep: bool) -> tuple[list[int], list[Tensor]]:
        """The reverse chain from uniform noise: the times visited and the states (all, or only the last).

        ``progress=None`` shows a bar when the chain makes :data:`PROGRESS_FROM_CALLS` network calls or more."""
        n = check_positive_int("n", n)
        times = self.sampling_times(steps)
        progress = len(times) >= PROGRESS_FROM_CALLS if progress is None else progress
        x = torch.randint(self.num_classes, (n, *self.data_shape), device=self.device)
        chain = [x]
        for i, t in enumerate(progress_bar(times, disable=not progress, desc="sampling", leave=False)):
            s = times[i + 1] if i + 1 < len(times) else 0
            x = _sample_categorical(self.p_log_prob_prev(x, t, s))
            chain = chain + [x] if keep else [x]
        self.last_sample_calls = len(times)
        return times + [0], chain

    @torch.no_grad()
    def sample_chain(self, n: int, steps: int | None = None, progress: bool | None = None) -> tuple[list[int], Tensor]:
        r"""Run the reverse chain from uniform noise and keep every state.

        With ``steps = None`` (or ``T``) this is ancestral sampling, :math:`x_{t-1} \sim
        p(x_{t-1} \mid x_t)` for ``t = T, ..., 1``. With ``steps = S < T`` the chain visits the
        ``S`` times of :meth:`sampling_times` and jumps from ``t`` to the next time ``s`` with
        :math:`p(x_s \mid x_t) = q(x_s \mid x_t, \hat x_0)`, the posterior of the composed
        transition :math:`q(x_t \mid x_s) = \mathcal{C}(\bar\alpha_t/\bar\alpha_s\, x_s +
        (1 - \bar\alpha_t/\bar\alpha_s)/K)`; the last jump (to ``s = 0``) draws
        :math:`x_0 \sim \mathcal{C}(\hat x_0)`. ``S`` network calls (stored in
        ``last_sample_calls``). A progress bar shows the calls when there are
        :data:`PROGRESS_FROM_CALLS` or more (``progress=True`` / ``False``: always / never).

        Returns:
            ``(times, chain)``: the ``S + 1`` times ``[T, ..., 0]`` and the states
            ``[S + 1, n, *data_shape]`` at those times (``chain[-1]`` is the sample).
        """
        times, chain = self._reverse(n, steps, progress, keep=True)
        return times, torch.stack(chain)

    @torch.no_grad()
    def sample(self, n: int, steps: int | None = None, progress: bool | None = None) -> Tensor:
        """``n`` samples ``[n, *data_shape]`` (long) with ``steps`` network calls (default ``T``); see
        :meth:`sample_chain`."""
        return self._reverse(n, steps, progress, keep=False)[1][-1]


def _rate(name: str, value) -> float:
    return check_float(name, value, 0.0, 1.0, strict_maximum=True)


# how build_diffusion checks (and converts) each network option; the networks check how they combine
_NETWORK_CHECKS: dict[str, Callable] = {
    "hidden": check_positive_ints, "time_dim": optional_check(count_check(1)), "channels": count_check(1),
    "channel_mults": lambda name, value: check_positive_ints(name, value, allow_empty=False, example="(1, 2)"),
    "num_res_blocks": count_check(1), "dropout": _rate, "attention": check_bool,
    "layers": count_check(1), "width": count_check(4), "heads": count_check(1), "local_heads": count_check(0),
    "local_window": optional_check(count_check(1)), "ff_mult": count_check(1),
}

_NETWORK_OPTIONS = {
    "mlp": {"hidden": (256, 256), "time_dim": 64},
    "unet": {"channels": 24, "channel_mults": (1, 2), "num_res_blocks": 1, "time_dim": None, "dropout": 0.0,
             "attention": False},
    "transformer": {"layers": 2, "width": 64, "heads": 4, "local_heads": 2, "local_window": None, "ff_mult": 4,
                    "dropout": 0.0},
}

TEXT8_DIFFUSION: dict = {"data_shape": (256,), "num_classes": 27, "timesteps": 1000, "network": "transformer",
                         **TEXT8_TRANSFORMER}
"""``build_diffusion(**TEXT8_DIFFUSION)`` is the official text8 model (``ehoogeboom/multinomial_diffusion``,
``text_diffusion/README.md`` and ``text_diffusion/datasets/data.py``: chunks of 256 characters,
27 classes, ``--diffusion_steps 1000``, the 12-layer :data:`~catlib.nets.TEXT8_TRANSFORMER`)."""

ENWIK8_DIFFUSION: dict = {"data_shape": (320,), "num_classes": 256, "timesteps": 4000, "network": "transformer",
                          **ENWIK8_TRANSFORMER}
"""``build_diffusion(**ENWIK8_DIFFUSION)`` is the official enwik8 model: chunks of 320 bytes, 256
classes, ``--diffusion_steps 4000``, :data:`~catlib.nets.ENWIK8_TRANSFORMER`."""


def build_denoiser(shape: tuple[int, ...], num_states: int, timesteps: int, network: str | None = None,
                   **options) -> tuple[nn.Module, str, dict]:
    """The denoiser ``(x_t, t) -> logits [b, *shape, num_states]`` of :func:`build_diffusion`, with its
    name and its checked options: ``(net, network, options)``.

    ``num_states`` is ``K`` for multinomial diffusion and ``K + 1`` (the mask) for
    :func:`catlib.masked_diffusion.build_masked_diffusion`; ``timesteps`` scales the transformer's
    time embedding. Options and their checks are those of :func:`build_diffusion`.

    >>> net, network, opt = build_denoiser((4,), 3, 20, hidden=(8,))
    >>> network, net(torch.zeros(2, 4, dtype=torch.long), torch.tensor([1, 5])).shape
    ('mlp', torch.Size([2, 4, 3]))
    """
    network = ("unet" if len(shape) == 2 else "mlp") if network is None else network
    if not isinstance(network, str) or network not in _NETWORK_OPTIONS:
        raise ValueError(f"network must be 'mlp' or 'unet', got {network!r}; sequences (L,) may also use 'transformer'")
    if network == "unet" and len(shape) != 2:
        raise ValueError(f"network 'unet' needs data_shape (H, W), got {shape}")
    if network == "transformer" and len(shape) != 1:
        raise ValueError(f"network 'transformer' needs data_shape (L,), got {shape}")
    allowed = _NETWORK_OPTIONS[network]
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ValueError(f"unknown option(s) {unknown} for network {network!r}; expected some of {sorted(allowed)}")
    opt = {key: _NETWORK_CHECKS[key](key, value) for key, value in {**allowed, **options}.items()}
    if network == "mlp":
        net = TimeMLP(math.prod(shape), num_states, opt["hidden"], opt["time_dim"])
    elif network == "unet":
        net = UNet(num_states, **opt)
    else:
        net = TimeTransformer(num_states, shape[0], timesteps, **opt)
    return net, network, opt


def build_diffusion(data_shape: Sequence[int], num_classes: int, timesteps: int = 1000, schedule: str = "cosine",
                    timestep_sampling: str = "importance", network: str | None = None,
                    **options) -> MultinomialDiffusion:
    """A :class:`MultinomialDiffusion` with a :class:`~catlib.nets.TimeMLP`, :class:`~catlib.nets.UNet` or
    :class:`~catlib.nets.TimeTransformer` denoiser.

    Args:
        data_shape: ``(D,)`` (default network ``"mlp"``) or ``(H, W)`` (default ``"unet"``);
            the MLP flattens any shape; ``"transformer"`` takes sequences ``(L,)``.
        num_classes: ``K``.
        timesteps, schedule, timestep_sampling: as in :class:`MultinomialDiffusion` (the
            official text models use ``T = 1000`` for text8 and ``T = 4000`` for enwik8).
        network: ``"mlp"``, ``"unet"`` or ``"transformer"``.
        options: the network's: ``hidden``, ``time_dim`` for ``"mlp"``; ``channels``,
            ``channel_mults``, ``num_res_blocks``, ``time_dim``, ``dropout``, ``attention``
            for ``"unet"``; ``layers``, ``width``, ``heads``, ``local_heads``, ``local_window``,
            ``ff_mult``, ``dropout`` for ``"transformer"`` (small defaults; the paper's are
            :data:`~catlib.nets.TEXT8_TRANSFORMER`, and :data:`TEXT8_DIFFUSION` holds the whole
            official text8 setting).

    Every option is checked here and a bad one raises ``ValueError`` naming it: ``hidden`` and
    ``channel_mults`` are tuples of positive integers (``channel_mults`` non-empty), the sizes and
    counts positive integers (``local_heads`` may be 0; ``time_dim`` and ``local_window`` may be
    ``None`` for their defaults), ``dropout`` a number in [0, 1), ``attention`` a bool.

    The model carries ``name = "multinomial-diffusion"`` and ``options`` (every setting).

    >>> model = build_diffusion((4,), 3, timesteps=20, hidden=(32,))
    >>> model.name, model.options["network"], model.sample(2).shape
    ('multinomial-diffusion', 'mlp', torch.Size([2, 4]))
    >>> text = build_diffusion((16,), 27, timesteps=50, network="transformer", width=32, local_window=8)
    >>> text.log_prob(torch.randint(27, (2, 16))).shape, text.sample(3, steps=5).shape
    (torch.Size([2]), torch.Size([3, 16]))
    """
    shape = check_data_shape(data_shape)
    num_classes = check_positive_int("num_classes", num_classes, minimum=2)
    timesteps = check_positive_int("timesteps", timesteps)
    net, network, opt = build_denoiser(shape, num_classes, timesteps, network, **options)
    model = MultinomialDiffusion(shape, num_classes, net, timesteps, schedule, timestep_sampling)
    model.name = "multinomial-diffusion"
    model.options = {"timesteps": timesteps, "schedule": schedule, "timestep_sampling": timestep_sampling,
                     "network": network, **opt}
    return model

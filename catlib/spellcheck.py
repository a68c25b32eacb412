r"""Unsupervised spell-checking with a text diffusion model: one denoising pass (paper, figure 5).

A multinomial diffusion model trained on text predicts :math:`\hat x_0` from a noisy
:math:`x_t`. A sentence with a few wrong characters looks like a draw of :math:`x_1`, so the most
likely :math:`x_0` under :math:`\hat x_0(x_1, 1)` is a corrected sentence, from a single network call
(Hoogeboom et al., 2021, section 6.1, "Unsupervised spell-checking"; only substitutions, not
insertions, can be corrected). The official script is ``ehoogeboom/multinomial_diffusion``,
``text_diffusion/eval_spellcheck.py``: ``predict_start`` at its 0-based time 0 (our ``t = 1``),
then the argmax over classes.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor

from catlib.validation import check_classes, check_positive_int

__all__ = ["corrupt", "denoise_in_one_step", "SPELLCHECK_GROUND_TRUTH", "SPELLCHECK_CORRUPTED"]

SPELLCHECK_GROUND_TRUTH = ("mexico city the aztec stadium estadio azteca home of club america is one of the world s "
                           "largest stadiums with capacity to seat approximately one one zero zero zero zero fans "
                           "mexico hosted the football world cup in one nine seven zero and one nine eight six")
"""The text8 test sentence of figure 5 (256 characters), as in ``text_diffusion/eval_spellcheck.py``."""

SPELLCHECK_CORRUPTED = ("mexico citi the aztec stadium estadio azteca home of clup amerika is one of the world s "
                        "largest stadioms with capakity to seat approsimately one one zeto zero zero zero fans "
                        "mexico hosted the footpall wolld cup in one nine zeven zero and one nyne eiggt six")
"""The same sentence with 12 characters substituted, the official script's input."""


def corrupt(x: Tensor, fraction: float, num_classes: int,
            generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
    r"""Replace ``round(fraction * L)`` characters of each row by a different character, uniformly at random.

    The positions are a uniformly random subset of that size (per row); each chosen character
    :math:`c` becomes :math:`(c + u) \bmod K` with :math:`u` uniform in :math:`\{1, \dots, K - 1\}`,
    i.e. uniform over the other :math:`K - 1` classes, so exactly the masked positions change.

    Args:
        x: class indices ``[b, *shape]`` (e.g. ``[b, L]``), in ``[0, num_classes)``.
        fraction: share of the ``L = prod(shape)`` positions of each row to change, in ``[0, 1]``.
        num_classes: ``K``.
        generator: the random generator to draw from (torch's global one by default).

    Returns:
        ``(x_corrupt, mask)``: ``x_corrupt`` long like ``x``, ``mask`` bool like ``x``, true where
        the character was replaced (``round(fraction * L)`` per row).

    >>> g = torch.Generator().manual_seed(0)
    >>> x = torch.zeros(2, 10, dtype=torch.long)
    >>> x_c, mask = corrupt(x, 0.3, 27, g)
    >>> mask.sum(1).tolist(), bool(((x_c != x) == mask).all())
    ([3, 3], True)
    """
    num_classes = check_positive_int("num_classes", num_classes, minimum=2)
    if not torch.is_tensor(x) or x.dim() < 2:
        shape = list(x.shape) if torch.is_tensor(x) else type(x).__name__
        raise ValueError(f"x must be a LongTensor of class indices of shape [batch, L], got {shape}")
    x = check_classes(x, tuple(x.shape[1:]), num_classes)
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0.0 <= fraction <= 1.0:
        raise ValueError(f"fraction must be a number in [0, 1], got {fraction!r}")
    b, length = x.shape[0], math.prod(x.shape[1:])
    count = round(fraction * length)
    device = generator.device if generator is not None else x.device
    order = torch.rand(b, length, generator=generator, device=device).argsort(dim=1)
    mask = torch.zeros(b, length, dtype=torch.bool, device=device).scatter_(1, order[:, :count], True)
    shift = torch.randint(1, num_classes, (b, length), generator=generator, device=device)
    flat = x.reshape(b, length).to(device)
    x_corrupt = torch.where(mask, (flat + shift) % num_classes, flat)
    return x_corrupt.view_as(x).to(x.device), mask.view(x.shape).to(x.device)


@torch.no_grad()
def denoise_in_one_step(model, x: Tensor, t: int | Tensor = 1) -> tuple[Tensor, Tensor]:
    r"""The most likely :math:`x_0` under the model's :math:`\hat x_0(x_t, t)`, and where it differs from ``x``.

    .. math:: x_0^\star = \operatorname*{arg\,max}_k\ \hat x_{0,k}(x_t = x,\ t)

    per position, one network call, in the model's current mode (call ``model.eval()`` first if
    its network uses dropout). ``t = 1`` (the default) treats ``x`` as the first noisy step, the
    paper's spell checker; a larger ``t`` assumes more noise.

    Args:
        model: a :class:`~catlib.diffusion.MultinomialDiffusion`.
        x: class indices ``[b, *data_shape]`` (the corrupted text).
        t: int or LongTensor ``[b]`` in ``[1, T]``.

    Returns:
        ``(x0, changed)``: ``x0`` long ``[b, *data_shape]``, the suggestion; ``changed`` bool of the
        same shape, ``x0 != x``. Both on the model's device.

    >>> from catlib.diffusion import build_diffusion
    >>> model = build_diffusion((8,), 5, timesteps=10, network="transformer", width=16, heads=2)
    >>> x = torch.tensor([[0, 1, 2, 3, 4, 0, 1, 2]])
    >>> x0, changed = denoise_in_one_step(model, x)
    >>> x0.shape, bool((changed == (x0 != x)).all())
    (torch.Size([1, 8]), True)
    """
    if not hasattr(model, "p_log_x0"):
        raise ValueError(f"model must be a MultinomialDiffusion (with p_log_x0), got {type(model).__name__}")
    log_x0 = model.p_log_x0(x, t)  # checks x and t
    x0 = log_x0.argmax(dim=-1)
    return x0, x0 != x.to(x0.device)

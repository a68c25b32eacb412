r"""Metrics: the importance-weighted bound, bits per dimension of ELBO / IWBO bounds, and exact
entropies of synthetic data.

Bits per dimension: :math:`-\log P(x) / (D \ln 2)` with ``D`` categorical variables per example.
"""
from __future__ import annotations

import math
import warnings
from typing import Callable

import torch
from torch import Tensor, nn

from catlib.progress import progress_bar
from catlib.validation import check_positive_int

__all__ = ["bits_per_dim", "entropy_bits", "evaluate_bound", "expected_bound_bits", "importance_weighted"]


def bits_per_dim(log_prob: Tensor, num_vars: int) -> Tensor:
    """Convert nats per example ``[batch]`` to bits per categorical variable ``[batch]``.

    >>> float(bits_per_dim(torch.tensor([-math.log(4.0)]), 1))
    2.0
    """
    return -log_prob / (math.log(2.0) * num_vars)


def entropy_bits(probs: Tensor) -> float:
    """Entropy in bits of a probability table (any shape, summing to one); ``0 log 0 = 0``.

    >>> entropy_bits(torch.full((8,), 1 / 8))
    3.0
    """
    probs = probs.double().flatten()
    if (probs < 0).any() or abs(float(probs.sum()) - 1.0) > 1e-9:
        raise ValueError(f"probs must be non-negative and sum to one, got sum {float(probs.sum())}")
    p = probs[probs > 0]
    return float(-(p * torch.log2(p)).sum())


def importance_weighted(log_weight: Callable[[Tensor], Tensor], x: Tensor, k: int,
                        max_rows: int = 8192) -> Tensor:
    r"""Importance-weighted bound from a sampler of log-weights.

    .. math:: \mathrm{IWBO}_k(x) = \log \frac{1}{k}\sum_{j=1}^k w_j,\qquad
              \log w_j = \log p(v_j) - \log q(v_j \mid x),\ v_j \sim q(\cdot \mid x)

    which is the ELBO for ``k = 1`` and increases to :math:`\log P(x)` as ``k`` grows (Burda
    et al., 2016). The ``k`` samples are drawn in chunks of at most ``max_rows`` rows, so
    ``k = 1000`` fits in memory for any batch size.

    Args:
        log_weight: ``x [b, ...] -> [b]``, one fresh sample of ``log w`` per row.
        x: ``[batch, ...]``.
        k: number of importance samples.

    Returns:
        ``[batch]``.

    With weights 1 and 3 drawn in turn, the bound with both is :math:`\log 2`, above their mean
    log-weight :math:`\tfrac12 \log 3` (the ELBO):

    >>> draws = iter([torch.zeros(1), torch.full((1,), math.log(3.0))])
    >>> round(float(importance_weighted(lambda rows: torch.cat([next(draws) for _ in rows]), torch.zeros(1), 2)), 4)
    0.6931
    """
    k = check_positive_int("k", k)
    out = []
    for xb in x.split(max_rows):
        b = xb.shape[0]
        per_chunk = max(1, max_rows // b)
        logs = []
        for start in range(0, k, per_chunk):
            kc = min(per_chunk, k - start)
            rows = xb.repeat(kc, *([1] * (xb.dim() - 1)))
            logs.append(log_weight(rows).view(kc, b))
        out.append(torch.logsumexp(torch.cat(logs), 0) - math.log(k))
    return torch.cat(out)


@torch.no_grad()
def evaluate_bound(model: nn.Module, x: Tensor, k: int = 1, batch_size: int = 256,
                   progress: bool = True, **log_prob_options) -> Tensor:
    """``model.log_prob(x, k, **log_prob_options)`` for a whole data set in batches, in eval mode:
    ``[N]`` nats (e.g. ``exact=True`` for multinomial diffusion's all-terms ELBO).

    Warns (``RuntimeWarning``) when some bounds are NaN or infinite, saying how many and where
    the first is, since any average of them is then meaningless; the values are returned as
    they are.
    """
    was_training = model.training
    model.eval()
    try:
        out = [model.log_prob(xb, k=k, **log_prob_options).cpu()
               for xb in progress_bar(x.split(batch_size), desc=f"bound k={k}", disable=not progress, leave=False)]
    finally:
        model.train(was_training)
    bounds = torch.cat(out)
    bad = ~torch.isfinite(bounds)
    if bad.any():
        first = int(bad.nonzero()[0, 0])
        warnings.warn(f"{int(bad.sum())} of {len(bounds)} bounds are non-finite (first: {bounds[first].item()} at "
                      f"row {first}); an average over them is not a number of bits. The model's parameters or "
                      f"these examples need a look", RuntimeWarning, stacklevel=2)
    return bounds


@torch.no_grad()
def expected_bound_bits(model: nn.Module, support: Tensor, probs: Tensor, k: int = 1,
                        repeats: int = 1, progress: bool = True) -> float:
    r"""Exact data average of a bound for a distribution with a small support, in bits per dim.

    .. math:: \sum_x P_{data}(x)\,\big(-\mathcal{L}_k(x)\big) / (D \ln 2)

    Instead of a sampled test set, every point of the support is evaluated (``repeats``
    independent estimates each) and weighted by its true probability, so the only noise left
    is the bound's own.

    Args:
        support: ``[S, *data_shape]`` every value the data can take.
        probs: ``[S]`` their probabilities.
    """
    xs = support.repeat(repeats, *([1] * (support.dim() - 1)))
    lp = evaluate_bound(model, xs, k=k, progress=progress).view(repeats, -1).mean(0)
    num_vars = support[0].numel()
    return float((probs.double().cpu() * bits_per_dim(lp.double(), num_vars)).sum())

r"""Metrics: bits per dimension of ELBO / IWBO bounds, and exact entropies of synthetic data.

Bits per dimension: :math:`-\log P(x) / (D \ln 2)` with ``D`` categorical variables per example.
"""
from __future__ import annotations

import math
import warnings

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

__all__ = ["bits_per_dim", "entropy_bits", "evaluate_bound", "expected_bound_bits"]


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
               for xb in tqdm(x.split(batch_size), desc=f"bound k={k}", disable=not progress, leave=False)]
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

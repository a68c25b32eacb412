"""Models for categorical data built from a dequantizing layer and a flow, and ``build_model``.

Every model is an ``nn.Module`` with the two verbs the book compares methods by:

- ``log_prob(x, k=1) -> [batch]``: a lower bound on :math:`\\log P(x)` in nats (the ELBO for
  ``k = 1``, the importance-weighted bound IWBO with ``k`` samples for ``k > 1``);
- ``sample(n) -> LongTensor [n, *data_shape]``.
"""
from __future__ import annotations

import math
from typing import Callable, Sequence

import torch
from torch import Tensor, nn

from catlib.argmax import (ArgmaxSurjection, BinaryThresholdInverse, CartesianEncoding, GumbelInverse,
                           GumbelThresholdInverse, ThresholdInverse)
from catlib.dequantization import UniformDequantization, VariationalDequantization
from catlib.distributions import StandardNormal
from catlib.flows import Flow, coupling_stack
from catlib.validation import check_classes, check_positive_int

__all__ = ["CategoricalFlow", "build_model", "MODEL_NAMES", "importance_weighted"]


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


class CategoricalFlow(nn.Module):
    r"""A flow :math:`p(v)` on :math:`\mathbb{R}^{dim}` seen through a dequantizing layer.

    .. math:: \log P(x) \ge \mathbb{E}_{q(v|x)}[\log p(v) - \log q(v|x)]

    Args:
        data_shape: shape of one example, e.g. ``(D,)``.
        num_classes: ``K``.
        layer: maps ``x [batch, D']`` to ``(v [batch, dim], -log q(v|x) [batch])`` and back by
            ``layer.inverse(v)``; an argmax surjection or a hypercube dequantization.
        flow: density on ``v``.
        encoding: optional :class:`~catlib.argmax.CartesianEncoding`; then the layer sees
            the base-M digits of ``x`` (``D' = D * d_m``) and samples with unused codes are
            redrawn (their rate is kept in ``last_invalid_rate``).
    """

    def __init__(self, data_shape: Sequence[int], num_classes: int, layer: nn.Module, flow: Flow,
                 encoding: CartesianEncoding | None = None):
        super().__init__()
        self.data_shape = tuple(data_shape)
        self.num_classes = num_classes
        self.layer, self.flow, self.encoding = layer, flow, encoding
        self.last_invalid_rate: float | None = None
        self.register_buffer("_anchor", torch.zeros(()))

    @property
    def device(self) -> torch.device:
        return self._anchor.device

    def _layer_input(self, x: Tensor) -> Tensor:
        x = x.flatten(1)
        if self.encoding is not None:
            x = self.encoding.encode(x).flatten(1)
        return x

    def log_weight(self, x_layer: Tensor) -> Tensor:
        """One sample of :math:`\\log p(v) - \\log q(v|x)` per row of the layer's input ``[b, D']``."""
        v, ldj = self.layer(x_layer)
        return self.flow.log_prob(v) + ldj

    def log_prob(self, x: Tensor, k: int = 1) -> Tensor:
        """Lower bound on ``log P(x)`` in nats, ``[batch]`` (ELBO for k=1, IWBO for k>1)."""
        x = check_classes(x, self.data_shape, self.num_classes).to(self.device)
        return importance_weighted(self.log_weight, self._layer_input(x), k)

    @torch.no_grad()
    def sample(self, n: int, max_tries: int = 100) -> Tensor:
        """``n`` samples ``[n, *data_shape]``; codes outside ``[0, K)`` are redrawn (Cartesian encodings)."""
        n = check_positive_int("n", n)
        x = self.layer.inverse(self.flow.sample(n))
        if self.encoding is None:
            self.last_invalid_rate = 0.0
            return x.view(n, *self.data_shape)
        x = x.view(n, -1, self.encoding.digits)
        out = torch.empty(n, x.shape[1], dtype=torch.long, device=x.device)
        todo = torch.ones(n, dtype=torch.bool, device=x.device)
        drawn = invalid = 0
        for _ in range(max_tries):
            codes, valid = self.encoding.decode(x)
            ok = valid.all(-1)
            drawn, invalid = drawn + len(ok), invalid + int((~ok).sum())
            rows = todo.nonzero()[:, 0]
            out[rows[ok]] = codes[ok]
            todo[rows[ok]] = False
            if not todo.any():
                break
            m = int(todo.sum())
            x = self.layer.inverse(self.flow.sample(m)).view(m, -1, self.encoding.digits)
        else:
            raise RuntimeError(f"after {max_tries} draws {int(todo.sum())} samples still decode to codes "
                               f">= {self.num_classes}: the model puts most of its mass on unused codes")
        self.last_invalid_rate = invalid / drawn
        return out.view(n, *self.data_shape)


MODEL_NAMES = ("uniform-dequantization", "variational-dequantization", "argmax-threshold",
               "argmax-gumbel", "argmax-gumbel-threshold", "argmax-binary")

_COMMON = {"flow_steps": 4, "hidden": (128, 128), "coupling": "affine", "mixing": "linear"}
_VARIATIONAL = {"q_flow_steps": 2, "q_hidden": (128,)}
_OPTIONS = {
    "uniform-dequantization": {},
    "variational-dequantization": _VARIATIONAL,
    "argmax-threshold": {**_VARIATIONAL, "base": None},
    "argmax-gumbel": {},
    "argmax-gumbel-threshold": _VARIATIONAL,
    "argmax-binary": _VARIATIONAL,
}


def _check_data_shape(data_shape) -> tuple[int, ...]:
    try:
        shape = tuple(data_shape)
    except TypeError:
        raise ValueError(f"data_shape must be a tuple of positive integers, got {data_shape!r}") from None
    if not shape or any(isinstance(d, bool) or not isinstance(d, int) or d < 1 for d in shape):
        raise ValueError(f"data_shape must be a tuple of positive integers, got {data_shape!r}")
    return shape


def build_model(name: str, data_shape: Sequence[int], num_classes: int, **options) -> nn.Module:
    """Build a model for categorical data of shape ``data_shape`` with ``num_classes`` classes.

    Names: ``"uniform-dequantization"``, ``"variational-dequantization"``,
    ``"argmax-threshold"``, ``"argmax-gumbel"``, ``"argmax-gumbel-threshold"``,
    ``"argmax-binary"`` (thresholded binary Cartesian product).

    Options (all have small working defaults): ``flow_steps``, ``hidden``, ``coupling``
    (``"affine"`` or ``"mixture"``), ``mixing`` (``"linear"`` or ``"reverse"``) for the flow
    :math:`p(v)`; ``q_flow_steps``, ``q_hidden`` for the variational :math:`q(u|x)`;
    ``base`` (an integer M >= 2) for ``"argmax-threshold"`` on base-M digits.

    >>> model = build_model("argmax-threshold", (3,), 5)
    >>> x = torch.tensor([[0, 4, 2]])
    >>> model.log_prob(x).shape, model.sample(2).shape
    (torch.Size([1]), torch.Size([2, 3]))
    """
    if name not in _OPTIONS:
        raise ValueError(f"unknown model {name!r}; expected one of {', '.join(MODEL_NAMES)}")
    data_shape = _check_data_shape(data_shape)
    num_classes = check_positive_int("num_classes", num_classes, minimum=2)
    allowed = {**_COMMON, **_OPTIONS[name]}
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ValueError(f"unknown option(s) {unknown} for {name!r}; expected some of {sorted(allowed)}")
    opt = {**allowed, **options}
    num_vars = math.prod(data_shape)
    q_args = (opt["q_flow_steps"], tuple(opt["q_hidden"])) if "q_flow_steps" in opt else ()

    encoding = None
    if name == "argmax-binary":
        encoding = CartesianEncoding(num_classes, 2)
        layer = ArgmaxSurjection(BinaryThresholdInverse(num_vars * encoding.digits, *q_args))
    elif name == "argmax-threshold" and opt["base"] is not None:
        encoding = CartesianEncoding(num_classes, check_positive_int("base", opt["base"], minimum=2))
        layer = ArgmaxSurjection(ThresholdInverse(num_vars * encoding.digits, encoding.base, *q_args))
    elif name == "argmax-threshold":
        layer = ArgmaxSurjection(ThresholdInverse(num_vars, num_classes, *q_args))
    elif name == "argmax-gumbel":
        layer = ArgmaxSurjection(GumbelInverse(num_vars, num_classes))
    elif name == "argmax-gumbel-threshold":
        layer = ArgmaxSurjection(GumbelThresholdInverse(num_vars, num_classes, *q_args))
    elif name == "uniform-dequantization":
        layer = UniformDequantization(num_vars, num_classes)
    else:
        layer = VariationalDequantization(num_vars, num_classes, *q_args)

    dim = layer.dim
    flow = Flow(StandardNormal(dim), coupling_stack(dim, opt["flow_steps"], tuple(opt["hidden"]),
                                                    opt["coupling"], mixing=opt["mixing"]))
    model = CategoricalFlow(data_shape, num_classes, layer, flow, encoding)
    model.name = name
    model.options = opt
    return model

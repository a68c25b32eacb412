r"""The text models of Argmax Flows (section 6.1): autoregressive and coupling flows over character sequences.

A sequence ``x [batch, L]`` of class indices is lifted to ``v [batch, L, d]`` by a dequantizing
layer ``q(v|x)``, and a flow ``p(v)`` on sequences gives the bound

.. math:: \log P(x) \ge \mathbb{E}_{q(v|x)}\big[\log p(v) - \log q(v \mid x)\big]

(ELBO; with ``k`` samples, the IWBO). :func:`build_text_flow` builds the six models of the
paper's Table 2: ``kind`` ``"ar"`` or ``"coupling"`` times ``dequantization`` ``"argmax"``,
``"uniform"`` or ``"variational"``.

Following the official code (repository ``didriknielsen/argmax_flows``; the commands in its
``README.md`` set ``--encoder_steps 0`` for all four text runs):

- argmax (``model/transforms/argmax_product.py``, ``model/distributions/binary_encoder.py``):
  the binary Cartesian product, ``d = ceil(log2 K)`` bits per character (5 for text8, 8 for
  enwik8), most significant bit first (``integer_to_base`` in ``model/transforms/utils.py``);
  :math:`u \sim q(u|x)` a diagonal Gaussian per position whose mean and log-scale come from a
  context network of ``x``, and :math:`v = (2b - 1)\,\mathrm{softplus}(u)`; decoding is the sign.
  Codes ``>= K`` are unused (the official ``inverse`` returns them as they are). By default a
  sample's unused code is decoded to the nearest used code in ``v``-space
  (:func:`nearest_code`): that makes the decoding a partition of space into ``K`` regions, each
  containing the region of its own code, so ``log_prob`` stays a lower bound for the decoded
  model and sampling takes one pass; ``sample(n, invalid="redraw")`` redraws such sequences
  instead (the model conditioned on used codes; with ``L = 256`` an untrained model almost
  never draws a sequence free of unused codes).
- the context of ``q``: for ``"ar"`` a bidirectional LSTM over the embedded characters
  (``IdxContextNet``, ``model/ar/encoder_context.py``); for ``"coupling"`` a position-wise
  feed-forward net (``ContextFF``, ``model/coupling/flow.py``).
- ``"ar"`` prior (``model/ar/flow.py``, ``ArgmaxARFlow``): ``num_steps`` autoregressive
  mixture-of-logistics layers (:class:`~catlib.flows.autoregressive.ARMixtureLogisticFlow`),
  the sequence reversed between layers, on a base with a learned mean and scale per channel
  (``ConvNormal1d``, ``model/distributions/conv_normal1d.py``). The paper's run has one layer.
- ``"coupling"`` prior (``model/coupling/flow.py``, ``ArgmaxCouplingFlow``): ``num_steps``
  steps of [sequence reversal and a 1x1 linear layer over the channels (not before the first
  step), mixture-of-logistics coupling]: the first ``d // 2`` channels of every position are
  kept and condition, through a bidirectional LSTM over the whole sequence, the transform of the
  remaining channels (``CouplingMixtureCDFCoupling``, ``model/CategoricalNF/flows/autoregressive_coupling2.py``).

The dequantization twins are *not* in the official repository (it holds only the argmax
models); the paper says (section 6.1) that they add noise on (0, 1) to the one-hot
representation and use the same flows. So by default the twins model ``v = onehot(x) + u``,
``d = K`` (27 numbers per character for text8, 256 for enwik8), with ``u`` uniform, or
``u = sigmoid(s)`` with ``s`` from a diagonal Gaussian given by the same context network as the
argmax model's ``q`` (our choice, so that the twins differ from the argmax model only in the
lifting). ``representation="binary"`` dequantizes the ``ceil(log2 K)`` bits instead, a cheaper
variant the paper does not report. A caveat on enwik8: with ``d = 256`` the official masked
feed-forward head of the AR conditioner (dense weights under masks, quadratic in ``d``) would
hold about 3 billion weights at the paper's sizes, so we doubt the paper's enwik8 twins used the
one-hot with exactly this network; we could not find out what they used. Both decode by the
argmax (one-hot) or by ``v >= 1`` (bits), which extend the occupied cells to a partition of
space, so the bound holds for the decoded model (see :mod:`catlib.dequantization`).

Shapes: ``x [batch, L]`` LongTensor; ``v, z [batch, L, d]``.
"""
from __future__ import annotations

import contextlib
import math
from typing import Iterator

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from catlib.argmax import CartesianEncoding, strictly_below
from catlib.distributions import uniform_open
from catlib.flows.autoregressive import (ARMixtureLogisticFlow, MixtureParams, mixture_logistic_inverse,
                                         mixture_logistic_params, mixture_logistic_transform)
from catlib.flows.base import Flow, Transform
from catlib.flows.linear import LinearLU
from catlib.metrics import importance_weighted
from catlib.nets.lstm import BiLSTMNet, IndexContextFF, IndexContextLSTM
from catlib.timing import timed
from catlib.validation import check_choice, check_classes, check_float, check_positive_int

__all__ = [
    "TEXT8_AR_CONFIG", "ENWIK8_AR_CONFIG", "TEXT8_COUPLING_CONFIG", "ENWIK8_COUPLING_CONFIG", "PAPER_TRAINING",
    "TEXT_FLOW_KINDS", "TEXT_DEQUANTIZATIONS", "ChannelNormal", "ReverseSequence", "ChannelLinear",
    "SequenceMixtureCoupling", "BinaryArgmaxLayer", "HypercubeLayer", "TextFlow", "build_text_flow",
    "time_sampling", "binary_encode", "binary_decode", "nearest_code",
]

_LOG_2PI = math.log(2 * math.pi)

TEXT_FLOW_KINDS = ("ar", "coupling")
TEXT_DEQUANTIZATIONS = ("argmax", "uniform", "variational")

#: The paper's autoregressive text8 model: the README command ``--lstm_size 2048 --encoder_steps 0
#: --num_steps 1 --lstm_layers 2 --input_dp_rate 0.25 --model ar --dataset text8_f256`` with the
#: defaults of ``model/model.py`` (``context_size 128``, ``context_lstm_size 512``,
#: ``context_lstm_layers 1``) and the 27 mixtures hard-coded in ``model/ar/flow.py``.
TEXT8_AR_CONFIG = {
    "kind": "ar", "dequantization": "argmax", "seq_len": 256, "num_classes": 27,
    "num_steps": 1, "num_mixtures": 27, "lstm_size": 2048, "lstm_layers": 2, "input_dropout": 0.25,
    "context_size": 128, "context_hidden": 512, "context_layers": 1,
}
#: enwik8: the same command with ``--dataset enwik8_f320`` (320 bytes, 256 classes, 8 bits).
ENWIK8_AR_CONFIG = {**TEXT8_AR_CONFIG, "seq_len": 320, "num_classes": 256}
#: The paper's coupling text8 model: ``--lstm_size 512 --encoder_steps 0 --num_steps 8 --lstm_layers 2
#: --input_dp_rate 0.05 --num_mixtures 8 --model coupling --dataset text8_f256`` with the defaults
#: ``context_size 128``, ``context_ff_size 512``, ``context_ff_layers 1``.
TEXT8_COUPLING_CONFIG = {
    "kind": "coupling", "dequantization": "argmax", "seq_len": 256, "num_classes": 27,
    "num_steps": 8, "num_mixtures": 8, "lstm_size": 512, "lstm_layers": 2, "input_dropout": 0.05,
    "context_size": 128, "context_hidden": 512, "context_layers": 1,
}
#: enwik8 coupling: ``--lstm_size 768 --input_dp_rate 0.1`` and ``--dataset enwik8_f320``.
ENWIK8_COUPLING_CONFIG = {**TEXT8_COUPLING_CONFIG, "seq_len": 320, "num_classes": 256, "lstm_size": 768,
                          "input_dropout": 0.1}
#: Training settings of the README commands (the loss is the ELBO in bits per character). The AR
#: runs name no optimizer, so they use the default of the repository's ``optim/expdecay.py``,
#: which is not in the copy we could read (``None`` below).
PAPER_TRAINING = {
    "text8-ar": {"batch_size": 64, "epochs": 40, "optimizer": None, "lr": None},
    "enwik8-ar": {"batch_size": 64, "epochs": 40, "optimizer": None, "lr": None},
    "text8-coupling": {"batch_size": 16, "epochs": 40, "optimizer": "adamax", "lr": 1e-3, "warmup": 1000},
    "enwik8-coupling": {"batch_size": 32, "epochs": 20, "optimizer": "adamax", "lr": 1e-3, "warmup": 1000,
                        "gamma": 0.95},
}

# small defaults: every size can be raised to the paper's (the configs above)
_DEFAULTS = {
    "ar": {"num_steps": 1, "num_mixtures": 4, "lstm_size": 32, "lstm_layers": 1, "input_dropout": 0.0,
           "context_size": 16, "context_hidden": 32, "context_layers": 1, "inverse_iterations": 100},
    "coupling": {"num_steps": 8, "num_mixtures": 4, "lstm_size": 32, "lstm_layers": 1, "input_dropout": 0.0,
                 "context_size": 16, "context_hidden": 32, "context_layers": 1, "inverse_iterations": 100},
}
_REPRESENTATIONS = ("onehot", "binary")


def binary_encode(x: Tensor, bits: int) -> Tensor:
    """``x [*] -> [*, bits]`` binary digits, most significant first (as the official ``integer_to_base``).

    >>> binary_encode(torch.tensor([5, 26]), 5).tolist()
    [[0, 0, 1, 0, 1], [1, 1, 0, 1, 0]]
    """
    powers = 2 ** torch.arange(bits - 1, -1, -1, device=x.device)
    return torch.div(x.unsqueeze(-1), powers, rounding_mode="floor") % 2


def binary_decode(b: Tensor) -> Tensor:
    """``[*, bits] -> [*]``, the inverse of :func:`binary_encode`.

    >>> binary_decode(torch.tensor([[1, 1, 0, 1, 0]])).tolist()
    [26]
    """
    powers = 2 ** torch.arange(b.shape[-1] - 1, -1, -1, device=b.device)
    return (b * powers).sum(-1)


def nearest_code(v: Tensor, num_classes: int, threshold: float = 0.0) -> Tensor:
    r"""Decode bits ``v [*, d]`` (bit ``i`` is ``v_i > threshold``) to the nearest used code in ``[0, K)``.

    The squared distance from ``v`` to the region of code ``c`` is
    :math:`\sum_i \max(0, -(2 b_i(c) - 1)(v_i - \text{threshold}))^2`; it is 0 for ``v``'s own
    code, so used codes decode as :func:`binary_decode` does, and unused codes go to the used
    code whose region is closest (ties, of measure zero, to the smallest index).

    >>> nearest_code(torch.tensor([[1.0, 0.3, -1.0], [1.0, -3.0, 0.5]]), 5).tolist()  # 110 -> 100, 101 -> 100
    [4, 4]
    """
    codes = binary_encode(torch.arange(num_classes, device=v.device), v.shape[-1])  # [K, d]
    signs = (2 * codes - 1).to(v.dtype)
    wrong_side = F.relu(-(v.unsqueeze(-2) - threshold) * signs)  # [*, K, d]
    return (wrong_side**2).sum(-1).argmin(-1)


# ----------------------------------------------------------------------------------------------
# the flow p(v) on sequences


class ChannelNormal(nn.Module):
    r"""Base of the sequence flows: :math:`z_{t,c} \sim \mathcal{N}(\mu_c, e^{2\lambda_c})`, per-channel mean and scale.

    ``ConvNormal1d`` of ``model/distributions/conv_normal1d.py`` (both start at 0).
    ``log_prob(z [batch, L, d]) -> [batch]``; ``sample(n) -> [n, L, d]``.
    """

    def __init__(self, seq_len: int, dim: int):
        super().__init__()
        self.seq_len, self.dim = seq_len, dim
        self.loc = nn.Parameter(torch.zeros(dim))
        self.log_scale = nn.Parameter(torch.zeros(dim))

    def log_prob(self, z: Tensor, context: Tensor | None = None) -> Tensor:
        eps = (z - self.loc) * torch.exp(-self.log_scale)
        return (-0.5 * (eps**2 + _LOG_2PI) - self.log_scale).flatten(1).sum(-1)

    def from_noise(self, eps: Tensor) -> Tensor:
        """Standard normal ``eps [n, L, d]`` to a sample."""
        return self.loc + torch.exp(self.log_scale) * eps

    def sample(self, n: int, context: Tensor | None = None) -> Tensor:
        eps = torch.randn(n, self.seq_len, self.dim, device=self.loc.device, dtype=self.loc.dtype)
        return self.from_noise(eps)


class ReverseSequence(Transform):
    """Reverse the positions of ``[batch, L, d]`` (``Reverse(L, dim=2)`` in the official flows); ``ldj = 0``."""

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return x.flip(1), x.new_zeros(x.shape[0])

    def inverse(self, z: Tensor, context: Tensor | None = None) -> Tensor:
        return z.flip(1)


class ChannelLinear(Transform):
    r"""The same invertible ``d x d`` matrix at every position: a 1x1 convolution over the sequence.

    ``Conv1x1`` of survae in ``model/coupling/flow.py``; here LU-parametrised
    (:class:`~catlib.flows.linear.LinearLU`, also starting at a random orthogonal matrix), with
    :math:`\log|\det| = L \sum \log|s|`.
    """

    def __init__(self, dim: int, seed: int = 0):
        super().__init__()
        self.linear = LinearLU(dim, seed=seed)

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        z, ldj = self.linear(x.reshape(-1, x.shape[-1]))
        return z.view_as(x), ldj.view(x.shape[0], -1).sum(-1)

    def inverse(self, z: Tensor, context: Tensor | None = None) -> Tensor:
        return self.linear.inverse(z.reshape(-1, z.shape[-1])).view_as(z)


class SequenceMixtureCoupling(Transform):
    r"""Mixture-of-logistics coupling of channels, conditioned along the whole sequence.

    ``CouplingMixtureCDFCoupling`` of ``model/CategoricalNF/flows/autoregressive_coupling2.py``:
    ``v [batch, L, d]`` is split into the first ``d // 2`` channels :math:`v^a` (kept) and the
    rest :math:`v^b`; a bidirectional LSTM over :math:`v^a` of all positions
    (:class:`~catlib.nets.lstm.BiLSTMNet`) gives the parameters of the elementwise map of
    :func:`~catlib.flows.autoregressive.mixture_logistic_transform` for every :math:`v^b_{t,c}`.
    The inverse is one pass of the network and a vectorised root finding (:func:`mixture_logistic_inverse`).
    """

    def __init__(self, dim: int, seq_len: int, num_mixtures: int = 8, lstm_size: int = 512, lstm_layers: int = 2,
                 input_dropout: float = 0.0, inverse_iterations: int = 100):
        super().__init__()
        if dim < 2:
            raise ValueError(f"a coupling layer needs at least 2 channels per position, got dim={dim}")
        self.n_id, self.n_out = dim // 2, dim - dim // 2
        self.params_per_dim = 2 + 3 * check_positive_int("num_mixtures", num_mixtures)
        self.inverse_iterations = inverse_iterations
        self.net = BiLSTMNet(self.n_id, self.n_out * self.params_per_dim, lstm_size, seq_len, lstm_layers,
                             input_dropout)
        self.scaling_factor = nn.Parameter(torch.zeros(self.n_out))
        self.mixture_scaling_factor = nn.Parameter(torch.zeros(self.n_out, num_mixtures))

    def _params(self, fixed: Tensor) -> MixtureParams:
        raw = self.net(fixed).unflatten(-1, (self.n_out, self.params_per_dim))
        return mixture_logistic_params(raw, self.scaling_factor, self.mixture_scaling_factor)

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        fixed, moved = x.split((self.n_id, self.n_out), -1)
        z, ldj = mixture_logistic_transform(moved.double(), self._params(fixed))
        return torch.cat([fixed, z.to(x.dtype)], -1), ldj.flatten(1).sum(-1).to(x.dtype)

    def inverse(self, z: Tensor, context: Tensor | None = None) -> Tensor:
        fixed, moved = z.split((self.n_id, self.n_out), -1)
        x = mixture_logistic_inverse(moved.double(), self._params(fixed), self.inverse_iterations)
        return torch.cat([fixed, x.to(z.dtype)], -1)


def _prior(kind: str, seq_len: int, dim: int, opt: dict) -> Flow:
    sizes = dict(num_mixtures=opt["num_mixtures"], lstm_size=opt["lstm_size"], lstm_layers=opt["lstm_layers"],
                 input_dropout=opt["input_dropout"], inverse_iterations=opt["inverse_iterations"])
    transforms: list[Transform] = []
    for step in range(opt["num_steps"]):
        if step > 0:
            transforms.append(ReverseSequence())
            if kind == "coupling":
                transforms.append(ChannelLinear(dim, seed=step))
        if kind == "ar":
            transforms.append(ARMixtureLogisticFlow(dim, seq_len, **sizes))
        else:
            transforms.append(SequenceMixtureCoupling(dim, seq_len, **sizes))
    return Flow(ChannelNormal(seq_len, dim), transforms)


# ----------------------------------------------------------------------------------------------
# the dequantizing layers q(v|x): forward(x) -> (v, -log q(v|x)); decode(v) -> (x, valid)


class _ConditionalGaussian(nn.Module):
    """``u ~ N(mean(c), exp(log_std(c))^2)`` per position, ``c`` a context of ``x``.

    The official ``ConditionalNormal(nn.Conv1d(context_size, 2 d, kernel_size=1), split_dim=1)``
    (survae's ``survae/distributions/conditional/normal.py``: means first, then log-stds); a
    1x1 convolution over the sequence is a ``Linear`` at every position.
    """

    def __init__(self, context: nn.Module, context_size: int, dim: int):
        super().__init__()
        self.context = context
        self.params = nn.Linear(context_size, 2 * dim)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """``x [batch, L] -> (u [batch, L, d], log q(u|x) [batch])``."""
        mean, log_std = self.params(self.context(x)).chunk(2, -1)
        eps = torch.randn_like(mean)
        return mean + torch.exp(log_std) * eps, (-0.5 * (eps**2 + _LOG_2PI) - log_std).flatten(1).sum(-1)


class BinaryArgmaxLayer(nn.Module):
    r"""Argmax thresholding on the binary Cartesian product: :math:`v = (2b - 1)\,\mathrm{softplus}(u)`.

    .. math:: \log q(v|x) = \log q(u|x) + \sum \mathrm{softplus}(-u)

    (``BinaryEncoder`` of ``model/distributions/binary_encoder.py``; the same maths as
    :class:`catlib.argmax.BinaryThresholdInverse`). ``softplus(u)`` is kept at or above the smallest
    positive float so the sign survives rounding.
    """

    def __init__(self, num_classes: int, context: nn.Module, context_size: int):
        super().__init__()
        self.num_classes = num_classes
        self.dim = CartesianEncoding(num_classes, 2).digits
        self.q = _ConditionalGaussian(context, context_size, self.dim)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        u, log_q = self.q(x)
        sign = (2 * binary_encode(x, self.dim) - 1).to(u.dtype)
        v = sign * F.softplus(u).clamp(min=torch.finfo(u.dtype).tiny)
        return v, -(log_q + F.softplus(-u).flatten(1).sum(-1))

    def decode(self, v: Tensor, nearest: bool = False) -> tuple[Tensor, Tensor]:
        """``v -> (x, valid)`` by the signs; ``valid`` is False at unused codes (``nearest``: :func:`nearest_code`)."""
        x = binary_decode((v > 0).long())
        valid = x < self.num_classes
        if nearest and not valid.all():
            x = torch.where(valid, x, nearest_code(v, self.num_classes))
        return x, valid


class HypercubeLayer(nn.Module):
    r"""Uniform or variational dequantization: :math:`v = h(x) + u`, :math:`u \in [0, 1)^d`.

    ``h`` is the one-hot of ``x`` (``d = K``) or its bits (``d = ceil(log2 K)``). Uniform:
    :math:`\log q = 0`. Variational: :math:`u = \sigma(s)` with :math:`s \sim q(s|x)` a
    diagonal Gaussian per position from a context network of ``x`` (the same family as the
    argmax layer's ``q(u|x)``), so
    :math:`\log q(u|x) = \log q(s|x) + \sum [\mathrm{softplus}(-s) + \mathrm{softplus}(s)]`.
    """

    def __init__(self, num_classes: int, representation: str = "onehot", context: nn.Module | None = None,
                 context_size: int = 0):
        super().__init__()
        check_choice("representation", representation, _REPRESENTATIONS)
        self.num_classes, self.representation = num_classes, representation
        self.dim = num_classes if representation == "onehot" else CartesianEncoding(num_classes, 2).digits
        self.q = _ConditionalGaussian(context, context_size, self.dim) if context is not None else None
        self.register_buffer("_anchor", torch.zeros(()))  # dtype of v (follows .double(), .to())

    def corner(self, x: Tensor) -> Tensor:
        """``h(x) [batch, L, d]``: one-hot or bits, in the layer's dtype."""
        h = F.one_hot(x, self.num_classes) if self.representation == "onehot" else binary_encode(x, self.dim)
        return h.to(self._anchor.dtype)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        h = self.corner(x)
        if self.q is None:
            u, log_q = uniform_open(h.shape, device=h.device).to(h.dtype), h.new_zeros(h.shape[0])
        else:
            s, log_q_s = self.q(x)
            u, log_q = torch.sigmoid(s), log_q_s + (F.softplus(-s) + F.softplus(s)).flatten(1).sum(-1)
        # h + u may round up to h + 1 (u close to 1 in float32): keep v in the cell [h, h + 1)
        return strictly_below(h + u, h + 1), -log_q

    def decode(self, v: Tensor, nearest: bool = False) -> tuple[Tensor, Tensor]:
        """``v -> (x, valid)``: argmax (one-hot, always valid) or bits ``v >= 1`` (as in the argmax layer)."""
        if self.representation == "onehot":
            x = v.argmax(-1)
            return x, torch.ones_like(x, dtype=torch.bool)
        x = binary_decode((v >= 1).long())
        valid = x < self.num_classes
        if nearest and not valid.all():
            x = torch.where(valid, x, nearest_code(v, self.num_classes, threshold=1.0))
        return x, valid


# ----------------------------------------------------------------------------------------------
# the model


@contextlib.contextmanager
def _eval_mode(module: nn.Module) -> Iterator[None]:
    was_training = module.training
    module.eval()
    try:
        yield
    finally:
        module.train(was_training)


class TextFlow(nn.Module):
    r"""A text model: a dequantizing layer ``q(v|x)`` and a flow ``p(v)`` on sequences.

    ``log_prob(x, k=1) -> [batch]``: the ELBO (``k = 1``) or IWBO (``k > 1``) on
    :math:`\log P(x)` in nats per sequence; ``sample(n) -> LongTensor [n, L]``. Build it with
    :func:`build_text_flow`.

    Args:
        layer: :class:`BinaryArgmaxLayer` or :class:`HypercubeLayer`.
        prior: a :class:`~catlib.flows.base.Flow` on ``[batch, L, layer.dim]``.
        seq_len: ``L``.
        num_classes: ``K``.
    """

    def __init__(self, layer: nn.Module, prior: Flow, seq_len: int, num_classes: int):
        super().__init__()
        self.layer, self.prior = layer, prior
        self.seq_len, self.num_classes = seq_len, num_classes
        self.data_shape = (seq_len,)
        self.name = "text-flow"
        self.options: dict = {}
        self.last_invalid_rate: float | None = None
        self.register_buffer("_anchor", torch.zeros(()))

    @property
    def device(self) -> torch.device:
        return self._anchor.device

    @property
    def dim(self) -> int:
        """Numbers per position of ``v``."""
        return self.layer.dim

    def log_weight(self, x: Tensor) -> Tensor:
        """One sample of :math:`\\log p(v) - \\log q(v|x)` per row of checked ``x [b, L]``."""
        v, ldj = self.layer(x)
        return self.prior.log_prob(v) + ldj

    def log_prob(self, x: Tensor, k: int = 1, max_rows: int | None = None) -> Tensor:
        """Lower bound on ``log P(x)`` in nats per sequence, ``[batch]`` (ELBO for ``k = 1``, IWBO for ``k > 1``).

        The ``k`` copies are evaluated in chunks of at most ``max_rows`` rows (default: about
        ``2**18`` numbers of ``v``).
        """
        x = check_classes(x, self.data_shape, self.num_classes).to(self.device)
        rows = (check_positive_int("max_rows", max_rows) if max_rows is not None
                else max(1, 2**18 // (self.seq_len * self.dim)))
        return importance_weighted(self.log_weight, x, k, max_rows=rows)

    def latent_to_v(self, z: Tensor, reference: bool = False) -> Tensor:
        """Invert the flow: ``z [n, L, d] -> v``; ``reference`` uses the slow prefix-recomputing AR inverse."""
        with torch.no_grad():
            for t in reversed(self.prior.transforms):
                z = t.inverse_reference(z) if reference and hasattr(t, "inverse_reference") else t.inverse(z)
        return z

    def decode_latent(self, z: Tensor, reference: bool = False, nearest: bool = True) -> tuple[Tensor, Tensor]:
        """``z [n, L, d] -> (x [n, L], valid [n, L])``; ``valid`` is False at unused binary codes, which
        ``nearest`` decodes to the nearest used code (else they are returned as they are, ``>= K``)."""
        return self.layer.decode(self.latent_to_v(z, reference), nearest)

    @torch.no_grad()
    def sample_latent(self, n: int) -> Tensor:
        """``z [n, L, d]`` from the base distribution."""
        return self.prior.base.sample(check_positive_int("n", n))

    @torch.no_grad()
    def sample(self, n: int, invalid: str = "nearest", reference: bool = False, max_tries: int = 100) -> Tensor:
        """``n`` sequences ``LongTensor [n, L]``, all rows sampled at once (in eval mode: no input dropout).

        Args:
            n: number of sequences.
            invalid: what to do with unused binary codes (``>= K``): ``"nearest"`` decodes them
                to the nearest used code (one pass; ``last_invalid_rate`` is the fraction of
                characters that needed it), ``"redraw"`` redraws every sequence holding one, up
                to ``max_tries`` rounds (``last_invalid_rate``: the fraction of drawn sequences
                that were redrawn).
            reference: invert AR layers by recomputing the prefix for every number (slow; for
                checks and timings).
        """
        n = check_positive_int("n", n)
        max_tries = check_positive_int("max_tries", max_tries)
        if invalid not in ("nearest", "redraw"):
            raise ValueError(f"invalid must be 'nearest' or 'redraw', got {invalid!r}")
        with _eval_mode(self):
            if invalid == "nearest":
                x, valid = self.decode_latent(self.sample_latent(n), reference)
                self.last_invalid_rate = float((~valid).double().mean())
                return x
            out = torch.empty(n, self.seq_len, dtype=torch.long, device=self.device)
            todo = torch.ones(n, dtype=torch.bool, device=self.device)
            drawn = redrawn = 0
            for _ in range(max_tries):
                rows = todo.nonzero()[:, 0]
                x, valid = self.decode_latent(self.sample_latent(len(rows)), reference, nearest=False)
                ok = valid.all(-1)
                drawn, redrawn = drawn + len(ok), redrawn + int((~ok).sum())
                out[rows[ok]] = x[ok]
                todo[rows[ok]] = False
                if not todo.any():
                    break
            else:
                raise RuntimeError(f"after {max_tries} draws {int(todo.sum())} sequences still hold binary codes "
                                   f">= {self.num_classes}; use invalid='nearest' or train the model further")
        self.last_invalid_rate = redrawn / drawn
        return out


def build_text_flow(kind: str, dequantization: str, seq_len: int, num_classes: int, **sizes) -> TextFlow:
    """Build one of the six text models of the paper's Table 2 (see the module docstring).

    Args:
        kind: ``"ar"`` (autoregressive flow) or ``"coupling"``.
        dequantization: ``"argmax"`` (binary thresholding), ``"uniform"`` or ``"variational"``.
        seq_len: ``L``, characters per sequence.
        num_classes: ``K`` (27 for text8, 256 for enwik8).
        sizes: ``num_steps`` (flow layers), ``num_mixtures``, ``lstm_size``, ``lstm_layers``,
            ``input_dropout`` (of the flow's LSTMs); ``context_size``, ``context_hidden``,
            ``context_layers`` (of the context net of ``q``: ``context_lstm_*`` of the official
            AR model, ``context_ff_*`` of the coupling model); ``inverse_iterations`` (at most
            this many Newton or bisection iterations per number); ``representation``
            (``"onehot"`` or ``"binary"``, dequantization twins only).
            Every count and size is checked to be an integer >= 1 (``lstm_size`` >= 8) and
            ``input_dropout`` to be in [0, 1), with a ``ValueError`` naming the option.
            Small defaults; the paper's are in :data:`TEXT8_AR_CONFIG` and its siblings, e.g.
            ``build_text_flow(**TEXT8_AR_CONFIG)``.

    >>> model = build_text_flow("ar", "argmax", seq_len=6, num_classes=27, lstm_size=16)
    >>> x = torch.randint(0, 27, (2, 6))
    >>> model.log_prob(x).shape, model.sample(3).shape, model.dim
    (torch.Size([2]), torch.Size([3, 6]), 5)
    """
    if kind not in TEXT_FLOW_KINDS:
        raise ValueError(f"kind must be one of {TEXT_FLOW_KINDS}, got {kind!r}")
    if dequantization not in TEXT_DEQUANTIZATIONS:
        raise ValueError(f"dequantization must be one of {TEXT_DEQUANTIZATIONS}, got {dequantization!r}")
    seq_len = check_positive_int("seq_len", seq_len)
    num_classes = check_positive_int("num_classes", num_classes, minimum=2)
    allowed = dict(_DEFAULTS[kind])
    if dequantization != "argmax":
        allowed["representation"] = "onehot"
    unknown = sorted(set(sizes) - set(allowed))
    if unknown:
        raise ValueError(f"unknown option(s) {unknown} for a {kind!r} flow with {dequantization!r} "
                         f"dequantization; expected some of {sorted(allowed)}")
    opt = {**allowed, **sizes}
    for key in ("num_steps", "num_mixtures", "lstm_size", "lstm_layers", "context_size", "context_hidden",
                "context_layers", "inverse_iterations"):
        opt[key] = check_positive_int(key, opt[key])
    opt["input_dropout"] = check_float("input_dropout", opt["input_dropout"], 0.0, 1.0, strict_maximum=True)
    if "representation" in opt:
        check_choice("representation", opt["representation"], _REPRESENTATIONS)

    context = None
    if dequantization != "uniform":
        net = IndexContextLSTM if kind == "ar" else IndexContextFF
        context = net(num_classes, opt["context_size"], opt["context_hidden"], opt["context_layers"])
    if dequantization == "argmax":
        layer: nn.Module = BinaryArgmaxLayer(num_classes, context, opt["context_size"])
    else:
        layer = HypercubeLayer(num_classes, opt["representation"], context, opt["context_size"])
    if kind == "coupling" and layer.dim < 2:
        raise ValueError(f"the coupling flow needs at least 2 numbers per position; num_classes={num_classes} "
                         f"gives {layer.dim} with {dequantization!r} dequantization")
    model = TextFlow(layer, _prior(kind, seq_len, layer.dim, opt), seq_len, num_classes)
    model.name = f"text-{kind}-{dequantization}"
    model.options = {"kind": kind, "dequantization": dequantization, "seq_len": seq_len,
                     "num_classes": num_classes, **opt}
    return model


def time_sampling(model: TextFlow, n: int, repeats: int = 1, reference: bool = False) -> float:
    """Mean wall-clock seconds of ``model.sample(n, reference=reference)`` (one pass) over ``repeats`` calls.

    Synchronises CUDA around each call, so GPU timings are complete.

    >>> model = build_text_flow("ar", "argmax", seq_len=4, num_classes=5, lstm_size=8)
    >>> time_sampling(model, 2) > 0
    True
    """
    repeats = check_positive_int("repeats", repeats)
    return sum(timed(lambda: model.sample(n, reference=reference), model.device)[1] for _ in range(repeats)) / repeats

"""Models for categorical data built from a dequantizing layer and a flow, and ``build_model``.

Every model is an ``nn.Module`` with the two verbs the book compares methods by:

- ``log_prob(x, k=1) -> [batch]``: a lower bound on :math:`\\log P(x)` in nats (the ELBO for
  ``k = 1``, the importance-weighted bound IWBO with ``k`` samples for ``k > 1``);
- ``sample(n) -> LongTensor [n, *data_shape]``.
"""
from __future__ import annotations

import math
from functools import partial
from typing import Callable, Sequence

import torch
from torch import Tensor, nn

from catlib.argmax import (ArgmaxSurjection, BinaryThresholdInverse, CartesianEncoding, GumbelInverse,
                           GumbelThresholdInverse, QFlowFactory, ThresholdInverse, conditional_flow)
from catlib.dequantization import UniformDequantization, VariationalDequantization
from catlib.diffusion import build_diffusion
from catlib.masked_diffusion import build_masked_diffusion
from catlib.distributions import StandardNormal
from catlib.encodings import CategoricalEncoding, RejectionStats, rejection_sample
from catlib.flows import COUPLINGS, FlatImageNet, Flow, conditional_image_flow_factory, coupling_stack, image_flow
from catlib.metrics import importance_weighted
from catlib.nets import MLP, DenseNet
from catlib.vae import CategoricalDecoder, VAELayer
from catlib.validation import (check_choice, check_classes, check_data_shape, check_float, check_positive_float,
                               check_positive_int, check_positive_ints, count_check, optional_check)

__all__ = ["CategoricalFlow", "build_model", "MODEL_NAMES", "TEXT_MODEL_NAMES", "ARCHITECTURES", "importance_weighted"]

# importance_weighted lives in catlib.metrics (the diffusion and text models use it too); it is
# re-exported here, where chapter 03 first met it.


class CategoricalFlow(nn.Module):
    r"""A flow :math:`p(v)` on :math:`\mathbb{R}^{dim}` seen through a dequantizing layer.

    .. math:: \log P(x) \ge \mathbb{E}_{q(v|x)}[\log p(v) - \log q(v|x)]

    Args:
        data_shape: shape of one example, e.g. ``(D,)``.
        num_classes: ``K``.
        layer: maps ``x [batch, D']`` to ``(v [batch, dim], -log q(v|x) [batch])`` and back by
            ``layer.inverse(v)``; an argmax surjection or a hypercube dequantization (or a
            :class:`~catlib.vae.VAELayer`, whose second output is ``log p(x|z) - log q(z|x)``
            and whose inverse samples ``p(x|z)``: then ``flow`` is the VAE's prior).
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
        self.last_rejection: RejectionStats | None = None
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
        """Lower bound on ``log P(x)`` in nats, ``[batch]`` (ELBO for k=1, IWBO for k>1).

        The importance samples are drawn in chunks of at most 8192 rows and of at most
        ``2**21`` numbers of ``v`` (1638 rows of 16x16 maps with 5 classes), so that
        ``k = 1000`` on images stays within a few hundred MB.
        """
        x = check_classes(x, self.data_shape, self.num_classes).to(self.device)
        rows = max(1, min(8192, 2**21 // self.layer.dim))
        return importance_weighted(self.log_weight, self._layer_input(x), k, max_rows=rows)

    @torch.no_grad()
    def sample(self, n: int, max_tries: int = 100, rejection: bool = True) -> Tensor:
        """``n`` samples ``[n, *data_shape]``; codes outside ``[0, K)`` are redrawn (Cartesian encodings).

        With a truncated encoding (TRUFL) and ``rejection``, ``z`` is drawn from the prior
        truncated to the union of the dequantizers' supports (:func:`~catlib.encodings.rejection_sample`);
        how many draws that took is in ``last_rejection``. Without ``rejection``, every ``z`` is
        decoded with the supports ignored (the paper's "no rejection sampling" rows).
        """
        n = check_positive_int("n", n)
        max_tries = check_positive_int("max_tries", max_tries)
        if getattr(self.layer, "truncated", False):
            if rejection:
                z, self.last_rejection = rejection_sample(lambda rows: self.flow.sample(len(rows)),
                                                          self.layer.supported, n)
                x = self.layer.inverse(z)
            else:
                x = self.layer.inverse(self.flow.sample(n), truncate=False)
            return x.view(n, *self.data_shape)
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
               "argmax-gumbel", "argmax-gumbel-threshold", "argmax-binary", "vae", "multinomial-diffusion",
               "catnf", "trufl", "masked-diffusion")

#: The text models of Argmax Flows section 6.1 (:func:`catlib.text_flows.build_text_flow`): an
#: autoregressive or coupling flow prior with argmax, uniform or variational dequantization.
TEXT_MODEL_NAMES = tuple(f"text-{k}-{d}" for k in ("ar", "coupling") for d in ("argmax", "uniform", "variational"))

ARCHITECTURES = ("auto", "mlp", "conv")
# options of the flow p(v) (or the VAE prior p(z)) and of the variational q(u|x) (or the VAE
# encoder and decoder), per architecture
_FLOW_OPTIONS = {
    "mlp": {"flow_steps": 4, "hidden": (128, 128), "coupling": "affine", "mixing": "linear"},
    "conv": {"flow_steps": 4, "growth": 32, "depth": 2, "levels": 1},
}
_Q_OPTIONS = {
    "mlp": {"q_flow_steps": 2, "q_hidden": (128,)},
    "conv": {"q_flow_steps": 2, "q_growth": 16, "q_depth": 1},
}
_USES_Q = ("variational-dequantization", "argmax-threshold", "argmax-gumbel-threshold", "argmax-binary", "vae")
_EXTRA_OPTIONS = {"argmax-threshold": {"base": None}, "vae": {"latent_channels": 2},
                  "catnf": {"latent_dim": 2, "init_spread": 1.0},
                  "trufl": {"latent_dim": 2, "init_spread": 1.0, "init_truncation": 2.0,
                            "support_temperature": 0.0}}


# how every option of _FLOW_OPTIONS, _Q_OPTIONS and _EXTRA_OPTIONS is checked (and converted: Python
# ints, tuples of ints, floats): 0 steps is a flow without couplings (a diagonal base), 0 depth a
# DenseNet of one convolution, an empty hidden tuple a linear conditioner
_OPTION_CHECKS: dict[str, Callable] = {
    "flow_steps": count_check(0), "q_flow_steps": count_check(0),
    "hidden": check_positive_ints, "q_hidden": check_positive_ints,
    "coupling": lambda name, value: check_choice(name, value, tuple(COUPLINGS)),
    "mixing": lambda name, value: check_choice(name, value, ("linear", "reverse")),
    "growth": count_check(1), "q_growth": count_check(1),
    "depth": count_check(0), "q_depth": count_check(0), "levels": count_check(1),
    "base": optional_check(count_check(2)),
    "latent_channels": count_check(1), "latent_dim": count_check(1),
    "init_spread": check_positive_float,
    "init_truncation": check_float,
    "support_temperature": lambda name, value: check_float(name, value, 0.0),
}


def _check_options(opt: dict) -> dict:
    """``opt`` with every option checked (``ValueError`` naming the first bad one) and converted."""
    return {key: _OPTION_CHECKS[key](key, value) if key in _OPTION_CHECKS else value for key, value in opt.items()}


def _image_shape(architecture: str, data_shape: tuple[int, ...]) -> tuple[int, int] | None:
    """``(H, W)`` the conv flows see (``(1, D)`` for sequences), or ``None`` for the MLP flows."""
    if architecture not in ARCHITECTURES:
        raise ValueError(f"architecture must be one of {', '.join(map(repr, ARCHITECTURES))}, got {architecture!r}")
    if architecture == "mlp":
        return None
    if len(data_shape) > 2:
        raise ValueError(f"data_shape must be (D,) or (H, W) for architecture {architecture!r}, got {data_shape}; "
                         f"pass architecture='mlp' to model it as a flat vector")
    if architecture == "auto" and len(data_shape) == 1:
        return None
    return (1, *data_shape) if len(data_shape) == 1 else data_shape


def _prior_flow(dim: int, image: tuple[int, int] | None, opt: dict) -> Flow:
    """The density p(v) on ``[batch, dim]``: MLP couplings, or conv couplings on ``dim / (H W)`` channels."""
    if image is None:
        return Flow(StandardNormal(dim), coupling_stack(dim, opt["flow_steps"], opt["hidden"],
                                                        opt["coupling"], mixing=opt["mixing"]))
    height, width = image
    return image_flow(dim // (height * width), height, width, opt["flow_steps"], opt["growth"], opt["depth"],
                      opt["levels"])


def _q_flow(image: tuple[int, int] | None, opt: dict) -> QFlowFactory:
    """The factory ``q_flow(dim, context_dim, base=...)`` of the variational flows."""
    if image is None:
        return partial(conditional_flow, num_steps=opt["q_flow_steps"], hidden=opt["q_hidden"])
    return conditional_image_flow_factory(*image, num_steps=opt["q_flow_steps"], growth=opt["q_growth"],
                                          depth=opt["q_depth"])


def _vae_layer(num_vars: int, num_classes: int, image: tuple[int, int] | None, opt: dict) -> VAELayer:
    """Encoder (conditional flow, normal base) and decoder (MLP or DenseNet of ``z``) with ``latent_channels`` per variable."""
    channels = opt["latent_channels"]
    latent_dim = num_vars * channels
    encoder = _q_flow(image, opt)(latent_dim, num_vars * num_classes, base="normal")
    if image is None:
        net = MLP(latent_dim, num_vars * num_classes, opt["q_hidden"])
    else:
        net = FlatImageNet(DenseNet(channels, num_classes, opt["q_depth"], opt["q_growth"], zero_init=False),
                           channels, *image)
    return VAELayer(encoder, CategoricalDecoder(net, num_vars, num_classes), latent_dim)


def build_model(name: str, data_shape: Sequence[int], num_classes: int, **options) -> nn.Module:
    r"""Build a model for categorical data of shape ``data_shape`` with ``num_classes`` classes.

    Names: ``"uniform-dequantization"``, ``"variational-dequantization"``,
    ``"argmax-threshold"``, ``"argmax-gumbel"``, ``"argmax-gumbel-threshold"``,
    ``"argmax-binary"`` (thresholded binary Cartesian product), and ``"vae"`` (a VAE with a
    flow prior p(z), a flow posterior q(z|x) and a factorised categorical decoder p(x|z),
    :mod:`catlib.vae`; its ``sample`` draws ``z`` from the prior and then *samples* p(x|z)),
    ``"multinomial-diffusion"`` (:func:`catlib.diffusion.build_diffusion`, whose options it takes:
    ``timesteps``, ``schedule``, ``timestep_sampling``, ``network`` and the network's sizes),
    ``"masked-diffusion"`` (:func:`catlib.masked_diffusion.build_masked_diffusion`: ``time``,
    ``schedule``, ``timesteps``, ``network`` and the network's sizes),
    ``"catnf"`` and ``"trufl"`` (learned ``latent_dim``-dimensional embeddings per variable with
    the Bayes-optimal decoder, :mod:`catlib.encodings`; TRUFL samples by rejection sampling), and
    the text models of :data:`TEXT_MODEL_NAMES` (``"text-ar-argmax"``, ``"text-coupling-uniform"``,
    ...; data shape ``(L,)``, options of :func:`catlib.text_flows.build_text_flow`).

    ``architecture``: ``"mlp"`` (vector flows with MLP couplings on the flattened example),
    ``"conv"`` (image flows of :mod:`catlib.flows.image` with DenseNet couplings on ``v``
    viewed as ``[batch, C, H, W]``; a 1-d ``(D,)`` is a ``1 x D`` image) or ``"auto"`` (the
    default: conv for ``data_shape = (H, W)``, MLP for ``(D,)``).

    Options (all have small working defaults), by architecture:

    - the flow p(v) (the VAE's prior p(z)): ``flow_steps``; mlp: ``hidden``, ``coupling``
      (``"affine"`` or ``"mixture"``), ``mixing`` (``"linear"`` or ``"reverse"``); conv:
      ``growth``, ``depth`` (of the DenseNets), ``levels`` (1: one squeeze; L > 1: a multi-scale
      flow of L levels, :func:`~catlib.flows.image_flow`);
    - the variational q(u|x) (the VAE's encoder and decoder nets): ``q_flow_steps``; mlp:
      ``q_hidden``; conv: ``q_growth``, ``q_depth``;
    - ``base`` (an integer M >= 2) for ``"argmax-threshold"`` on base-M digits;
      ``latent_channels`` (latent numbers per variable) for ``"vae"``; ``latent_dim`` and
      ``init_spread`` for ``"catnf"`` and ``"trufl"`` (MLP architecture only), and TRUFL's
      ``init_truncation`` (initial :math:`\tilde s`: 2 starts close to CatNF) and
      ``support_temperature`` (soft support edges in training, :class:`~catlib.encodings.CategoricalEncoding`).

    Every option is checked here, at build time, and a bad one raises ``ValueError`` naming it:
    ``flow_steps``, ``q_flow_steps``, ``depth``, ``q_depth`` are integers >= 0 (0 steps: the
    base distribution alone; depth 0: a DenseNet of one convolution), ``growth``, ``q_growth``, ``levels``,
    ``latent_dim``, ``latent_channels`` integers >= 1, ``base`` an integer >= 2; ``hidden`` and
    ``q_hidden`` tuples of positive integers such as ``(64, 64)`` (``()``: linear conditioners);
    ``init_spread`` a finite number > 0, ``init_truncation`` a finite number,
    ``support_temperature`` a finite number >= 0; ``coupling``, ``mixing`` and ``architecture``
    one of their names. NumPy integers and floats are accepted, and stored in ``model.options``
    as Python numbers.

    >>> model = build_model("argmax-threshold", (3,), 5)
    >>> x = torch.tensor([[0, 4, 2]])
    >>> model.log_prob(x).shape, model.sample(2).shape
    (torch.Size([1]), torch.Size([2, 3]))
    >>> maps = build_model("vae", (4, 6), 3, flow_steps=1, growth=8, q_growth=8)
    >>> maps.sample(2).shape
    torch.Size([2, 4, 6])
    """
    if name in TEXT_MODEL_NAMES:
        from catlib.text_flows import build_text_flow  # imported here: catlib.text_flows imports this module

        shape = check_data_shape(data_shape)
        if len(shape) != 1:
            raise ValueError(f"{name!r} models sequences: data_shape must be (L,), got {shape}")
        _, kind, dequantization = name.split("-")
        return build_text_flow(kind, dequantization, shape[0], num_classes, **options)
    if name not in MODEL_NAMES:
        raise ValueError(f"unknown model {name!r}; expected one of {', '.join(MODEL_NAMES)}")
    if name == "multinomial-diffusion":
        return build_diffusion(data_shape, num_classes, **options)
    if name == "masked-diffusion":
        return build_masked_diffusion(data_shape, num_classes, **options)
    data_shape = check_data_shape(data_shape)
    num_classes = check_positive_int("num_classes", num_classes, minimum=2)
    requested = options.pop("architecture", "auto")
    image = _image_shape(requested, data_shape)
    architecture = "mlp" if image is None else "conv"
    allowed = {**_FLOW_OPTIONS[architecture], **(_Q_OPTIONS[architecture] if name in _USES_Q else {}),
               **_EXTRA_OPTIONS.get(name, {})}
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ValueError(f"unknown option(s) {unknown} for {name!r}; expected some of {sorted(allowed)} "
                         f"(architecture {architecture!r} for data_shape {data_shape})")
    opt = _check_options({**allowed, **options, "architecture": architecture})
    num_vars = math.prod(data_shape)
    q_flow = _q_flow(image, opt) if name in _USES_Q else None

    encoding = None
    if name == "argmax-binary":
        encoding = CartesianEncoding(num_classes, 2)
        layer = ArgmaxSurjection(BinaryThresholdInverse(num_vars * encoding.digits, q_flow=q_flow))
    elif name == "argmax-threshold" and opt["base"] is not None:
        encoding = CartesianEncoding(num_classes, opt["base"])
        layer = ArgmaxSurjection(ThresholdInverse(num_vars * encoding.digits, encoding.base, q_flow=q_flow))
    elif name == "argmax-threshold":
        layer = ArgmaxSurjection(ThresholdInverse(num_vars, num_classes, q_flow=q_flow))
    elif name == "argmax-gumbel":
        layer = ArgmaxSurjection(GumbelInverse(num_vars, num_classes))
    elif name == "argmax-gumbel-threshold":
        layer = ArgmaxSurjection(GumbelThresholdInverse(num_vars, num_classes, q_flow=q_flow))
    elif name == "uniform-dequantization":
        layer = UniformDequantization(num_vars, num_classes)
    elif name == "variational-dequantization":
        layer = VariationalDequantization(num_vars, num_classes, q_flow=q_flow)
    elif name in ("catnf", "trufl"):
        if image is not None:
            raise ValueError(f"{name!r} has only MLP flows so far; pass architecture='mlp' for data_shape {data_shape}")
        extra = ({"init_truncation": opt["init_truncation"], "support_temperature": opt["support_temperature"]}
                 if name == "trufl" else {})
        make = CategoricalEncoding.catnf if name == "catnf" else CategoricalEncoding.trufl
        layer = make(num_vars, num_classes, opt["latent_dim"], init_spread=opt["init_spread"], **extra)
    else:
        layer = _vae_layer(num_vars, num_classes, image, opt)

    model = CategoricalFlow(data_shape, num_classes, layer, _prior_flow(layer.dim, image, opt), encoding)
    model.name = name
    model.options = opt
    return model

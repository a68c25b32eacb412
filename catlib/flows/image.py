r"""Flows on images ``[batch, C, H, W]`` (Glow-style) and their bridge to the flat vectors of the models.

The models of :mod:`catlib.models` see an example as a flat vector. For a map of
``H x W`` categorical variables with ``C`` numbers per variable (``C = K`` for the argmax and
hypercube layers) that vector is laid out pixel-major, channel-minor, ``v [batch, H * W * C]``
(as :func:`catlib.argmax.flat_onehot` writes it), and :func:`to_image` / :func:`to_flat`
convert between that layout and the image ``[batch, C, H, W]`` that convolutions want:

.. math:: v[b,\ (i W + j) C + c] = \mathrm{image}[b, c, i, j].

The transforms here act on images and follow :class:`~catlib.flows.Transform`
(``forward(x, context) -> (z, ldj [batch])``, data to latent): :class:`Squeeze`,
:class:`ActNorm2d`, :class:`Conv1x1` and :class:`AffineCoupling2d` (a DenseNet conditioner,
optionally conditioned on a context image), and :class:`MultiScale`, one level of a
multi-scale flow that factors half of its channels out. :class:`ImageFlowTransform` runs a
list of them on flat vectors, and :func:`image_flow` (a density :math:`p(v)`, single- or
multi-scale) and
:func:`conditional_image_flow` (a variational :math:`q(u \mid x)`) build the two flows the
image models use (Hoogeboom et al., 2021, Sec. 5: affine couplings parametrised by
DenseNets, and a conditional flow of the same structure for the probabilistic inverse).
"""
from __future__ import annotations

from typing import Callable, Iterable

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from catlib.distributions import ConditionalLogistic, ConditionalNormal, StandardNormal
from catlib.flows.base import ConditionalFlow, Flow, Transform
from catlib.flows.linear import ActNorm, LinearLU, Permutation
from catlib.nets import DenseNet
from catlib.validation import check_positive_int

__all__ = [
    "to_image", "to_flat", "Squeeze", "ActNorm2d", "Conv1x1", "AffineCoupling2d", "MultiScale", "ImageFlowTransform",
    "FlatImageNet", "image_flow", "conditional_image_flow", "conditional_image_flow_factory",
]


def to_image(v: Tensor, channels: int, height: int, width: int) -> Tensor:
    """Flat pixel-major vectors ``[batch, H * W * C]`` -> images ``[batch, C, H, W]``.

    >>> to_image(torch.arange(12.0).view(1, 12), 3, 2, 2)[0, :, 0, 1]  # pixel (0, 1)
    tensor([3., 4., 5.])
    """
    if v.dim() != 2 or v.shape[1] != height * width * channels:
        raise ValueError(f"expected flat vectors [batch, {height * width * channels}] (H={height} x W={width} "
                         f"x C={channels}), got shape {list(v.shape)}")
    return v.view(v.shape[0], height, width, channels).permute(0, 3, 1, 2)


def to_flat(image: Tensor) -> Tensor:
    """Images ``[batch, C, H, W]`` -> flat pixel-major vectors ``[batch, H * W * C]`` (inverse of :func:`to_image`)."""
    return image.permute(0, 2, 3, 1).reshape(image.shape[0], -1)


def _fits_squeeze(height: int, width: int) -> bool:
    return height % 2 == 0 and width % 2 == 0


class Squeeze(Transform):
    r"""Space to depth: each 2x2 block of pixels becomes 4 channels (Dinh et al., 2017).

    ``[b, C, H, W] -> [b, 4C, H/2, W/2]`` with output channel :math:`4c + 2i + j` holding
    pixel :math:`(2h + i, 2w + j)` of channel :math:`c` (``F.pixel_unshuffle``); a
    permutation, so ``ldj = 0``. ``H`` and ``W`` must be even.

    >>> z, ldj = Squeeze()(torch.zeros(2, 3, 4, 6))
    >>> z.shape, ldj.shape
    (torch.Size([2, 12, 2, 3]), torch.Size([2]))
    """

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        if x.dim() != 4 or not _fits_squeeze(x.shape[2], x.shape[3]):
            raise ValueError(f"Squeeze needs images [batch, C, H, W] with even H and W, got shape {list(x.shape)}")
        return F.pixel_unshuffle(x, 2), x.new_zeros(x.shape[0])

    def inverse(self, z: Tensor, context: Tensor | None = None) -> Tensor:
        if z.dim() != 4 or z.shape[1] % 4:
            raise ValueError(f"Squeeze.inverse needs images [batch, 4C, H, W], got shape {list(z.shape)}")
        return F.pixel_shuffle(z, 2)


def _per_channel(p: Tensor) -> Tensor:
    return p.view(1, -1, 1, 1)


class ActNorm2d(ActNorm):
    r"""Per-channel affine map :math:`z = (x - b_c)\, e^{-\log s_c}` (Glow's actnorm).

    Like :class:`~catlib.flows.ActNorm`, its first training forward pass sets ``b`` and
    ``log s`` so that the batch has zero mean and unit variance per channel (over batch and
    pixels). ``ldj = -H W \sum_c \log s_c``.

    >>> z, ldj = ActNorm2d(3).eval()(torch.ones(2, 3, 4, 4))
    >>> z.shape, ldj.shape
    (torch.Size([2, 3, 4, 4]), torch.Size([2]))
    """

    @torch.no_grad()
    def _initialize(self, x: Tensor) -> None:
        super()._initialize(x.transpose(0, 1).flatten(1).T)  # one row per (example, pixel)

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        if self.training and not bool(self.initialized):
            self._initialize(x.detach())
        z = (x - _per_channel(self.shift)) * _per_channel(torch.exp(-self.log_scale))
        pixels = x.shape[2] * x.shape[3]
        return z, (-pixels * self.log_scale.sum()).expand(x.shape[0])

    def inverse(self, z: Tensor, context: Tensor | None = None) -> Tensor:
        return z * _per_channel(torch.exp(self.log_scale)) + _per_channel(self.shift)


class Conv1x1(LinearLU):
    r"""Invertible 1x1 convolution (Kingma & Dhariwal, 2018): :class:`~catlib.flows.LinearLU` at every pixel.

    :math:`z_{:, i, j} = W x_{:, i, j}` with the LU-parametrised ``W`` of ``LinearLU`` (it
    starts at a seeded random rotation), so ``ldj = H W \sum \log|s|``.

    >>> z, ldj = Conv1x1(4)(torch.randn(2, 4, 3, 3))
    >>> z.shape, ldj.shape
    (torch.Size([2, 4, 3, 3]), torch.Size([2]))
    """

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        pixels = x.shape[2] * x.shape[3]
        return F.conv2d(x, self.weight()[:, :, None, None]), (pixels * self.log_s.sum()).expand(x.shape[0])

    def inverse(self, z: Tensor, context: Tensor | None = None) -> Tensor:
        return F.conv2d(z, torch.linalg.inv(self.weight())[:, :, None, None])


class AffineCoupling2d(Transform):
    r"""Affine coupling on channels: :math:`z_b = x_b\, e^{s(x_a, c)} + t(x_a, c)`, :math:`z_a = x_a`.

    :math:`x_a` is the first ``channels // 2`` channels, :math:`x_b` the rest; ``s`` and
    ``t`` come from a :class:`~catlib.nets.DenseNet` of :math:`x_a` concatenated with the
    context image ``c`` (if any). The log-scale is softly bounded,
    :math:`s = 3 \tanh(\tilde s / 3)`, as in :class:`~catlib.flows.AffineCoupling`, and the
    net's last convolution starts at zero, so the layer starts as the identity.
    ``ldj = sum(s)`` over channels and pixels.

    Args:
        channels: ``C >= 2``.
        context_channels: channels of the context image (0: unconditional).
        growth, depth: size of the DenseNet.

    Shapes: ``x [batch, C, H, W]``, ``context [batch, context_channels, H, W]``.

    >>> t = AffineCoupling2d(4, context_channels=2, growth=8, depth=1)
    >>> z, ldj = t(torch.randn(3, 4, 2, 2), torch.randn(3, 2, 2, 2))
    >>> z.shape, bool((ldj == 0).all())  # the identity at initialisation
    (torch.Size([3, 4, 2, 2]), True)
    """

    def __init__(self, channels: int, context_channels: int = 0, growth: int = 32, depth: int = 2):
        super().__init__()
        if isinstance(channels, bool) or not isinstance(channels, int) or channels < 2:
            raise ValueError(f"an image coupling layer needs channels >= 2 to split, got {channels!r}")
        self.n_fixed = channels // 2
        self.context_channels = check_positive_int("context_channels", context_channels, minimum=0)
        self.net = DenseNet(self.n_fixed + context_channels, 2 * (channels - self.n_fixed), depth, growth)

    def _scale_shift(self, fixed: Tensor, context: Tensor | None) -> tuple[Tensor, Tensor]:
        if self.context_channels:
            if context is None:
                raise ValueError(f"this coupling is conditional: it needs a context image with "
                                 f"{self.context_channels} channels, got None")
            fixed = torch.cat([fixed, context.to(fixed.dtype)], 1)
        raw_log_s, t = self.net(fixed).chunk(2, 1)
        return 3.0 * torch.tanh(raw_log_s / 3.0), t

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        fixed, moved = x[:, :self.n_fixed], x[:, self.n_fixed:]
        log_s, t = self._scale_shift(fixed, context)
        return torch.cat([fixed, moved * torch.exp(log_s) + t], 1), log_s.flatten(1).sum(-1)

    def inverse(self, z: Tensor, context: Tensor | None = None) -> Tensor:
        fixed, moved = z[:, :self.n_fixed], z[:, self.n_fixed:]
        log_s, t = self._scale_shift(fixed, context)
        return torch.cat([fixed, (moved - t) * torch.exp(-log_s)], 1)


class MultiScale(Transform):
    r"""One level of a multi-scale flow (Dinh et al., 2017; Glow): squeeze, steps, factor half out, recurse.

    ``forward`` on ``x [b, C, H, W]``:

    1. :class:`Squeeze` to ``h [b, 4C, H/2, W/2]`` and run ``steps`` on it;
    2. if there is an ``inner`` level: ``split`` (an :class:`AffineCoupling2d`) moves the last
       :math:`4C - \lfloor 4C/2 \rfloor` channels given the first half, which is the learned
       conditional prior of the factored-out half,
       :math:`z_{out} = h_{out} e^{s(h_{keep})} + t(h_{keep})`; the kept half goes through
       ``inner`` (the next, coarser level) while the factored-out half is left as it is;
    3. unsqueeze, so ``z`` has the shape (and pixel layout) of ``x``.

    The coarse levels see the whole image through few pixels, so their couplings relate
    pixels far apart at little cost. ``ldj`` is the sum of the steps', the split's and the
    inner level's. Unconditional: ``context`` is ignored.

    Args:
        steps: transforms on ``[b, 4C, H/2, W/2]``.
        split: the coupling of the factored-out half on the kept one (``None`` at the last level).
        inner: the next level, on ``[b, floor(4C/2), H/2, W/2]`` (``None`` at the last level).

    >>> inner = MultiScale([AffineCoupling2d(16, growth=4, depth=1)])  # [3, 4, 2, 2] -> [3, 16, 1, 1]
    >>> t = MultiScale([Conv1x1(8)], AffineCoupling2d(8, growth=4, depth=1), inner)
    >>> z, ldj = t(torch.randn(3, 2, 4, 4))
    >>> z.shape, ldj.shape
    (torch.Size([3, 2, 4, 4]), torch.Size([3]))
    """

    def __init__(self, steps: Iterable[Transform], split: Transform | None = None, inner: Transform | None = None):
        super().__init__()
        if (split is None) != (inner is None):
            raise ValueError("a multi-scale level needs both a split coupling and an inner level, or neither")
        self.squeeze, self.steps, self.split, self.inner = Squeeze(), nn.ModuleList(steps), split, inner

    def _kept(self, h: Tensor) -> int:
        return h.shape[1] // 2

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        h, ldj = self.squeeze(x)
        for t in self.steps:
            h, l = t(h)
            ldj = ldj + l
        if self.inner is not None:
            h, l = self.split(h)
            kept, out = h[:, :self._kept(h)], h[:, self._kept(h):]
            kept, l_inner = self.inner(kept)
            h, ldj = torch.cat([kept, out], 1), ldj + l + l_inner
        return self.squeeze.inverse(h), ldj

    def inverse(self, z: Tensor, context: Tensor | None = None) -> Tensor:
        h = self.squeeze(z)[0]
        if self.inner is not None:
            kept, out = h[:, :self._kept(h)], h[:, self._kept(h):]
            h = self.split.inverse(torch.cat([self.inner.inverse(kept), out], 1))
        for t in reversed(self.steps):
            h = t.inverse(h)
        return self.squeeze.inverse(h)


class ImageFlowTransform(Transform):
    r"""Image transforms seen as one :class:`~catlib.flows.Transform` on flat pixel-major vectors.

    ``forward``: ``x [b, H W C]`` -> image ``[b, C, H, W]`` (:func:`to_image`) -> optional
    :class:`Squeeze` -> the transforms in order -> unsqueeze -> flat ``[b, H W C]`` in the
    same layout. The context (flat ``[b, H W C_c]``, e.g. the one-hot of ``x``) is turned
    into an image and squeezed alongside, so every conditional transform sees it at its own
    resolution. ``ldj`` is the sum of the transforms'.

    Args:
        transforms: image transforms working at the (squeezed) resolution.
        channels, height, width: the image before squeezing.
        context_channels: channels of the context image (0: unconditional).
        squeeze: squeeze 2x2 blocks into channels first (``H``, ``W`` even).

    >>> t = ImageFlowTransform([Conv1x1(12), AffineCoupling2d(12, context_channels=8, growth=4, depth=1)],
    ...                        3, 4, 4, context_channels=2, squeeze=True)
    >>> v, c = torch.randn(5, 4 * 4 * 3), torch.randn(5, 4 * 4 * 2)
    >>> z, ldj = t(v, c)
    >>> z.shape, ldj.shape, bool(torch.allclose(t.inverse(z, c), v, atol=1e-5))
    (torch.Size([5, 48]), torch.Size([5]), True)
    """

    def __init__(self, transforms: Iterable[Transform], channels: int, height: int, width: int,
                 context_channels: int = 0, squeeze: bool = False):
        super().__init__()
        self.channels, self.height, self.width = channels, height, width
        self.context_channels = context_channels
        if squeeze and not _fits_squeeze(height, width):
            raise ValueError(f"squeeze needs an even height and width, got {height}x{width}")
        self.squeeze = Squeeze() if squeeze else None
        self.transforms = nn.ModuleList(transforms)

    def _images(self, x: Tensor, context: Tensor | None) -> tuple[Tensor, Tensor | None]:
        h = to_image(x, self.channels, self.height, self.width)
        c = None
        if self.context_channels:
            if context is None:
                raise ValueError(f"this image flow is conditional: it needs a context [batch, "
                                 f"{self.height * self.width * self.context_channels}], got None")
            c = to_image(context, self.context_channels, self.height, self.width)
        if self.squeeze is not None:
            h = self.squeeze(h)[0]
            c = None if c is None else self.squeeze(c)[0]
        return h, c

    def _flat(self, h: Tensor) -> Tensor:
        return to_flat(h if self.squeeze is None else self.squeeze.inverse(h))

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        h, c = self._images(x, context)
        ldj = x.new_zeros(x.shape[0])
        for t in self.transforms:
            h, l = t(h, c)
            ldj = ldj + l
        return self._flat(h), ldj

    def inverse(self, z: Tensor, context: Tensor | None = None) -> Tensor:
        h, c = self._images(z, context)
        for t in reversed(self.transforms):
            h = t.inverse(h, c)
        return self._flat(h)


class FlatImageNet(nn.Module):
    """A conv net applied to flat pixel-major vectors, with flat pixel-major outputs.

    ``[b, H W C_in] -> image -> net -> [b, chunks * C_out, H, W]``, split into ``chunks``
    groups of channels, each flattened pixel-major and concatenated: ``[b, chunks * H W C_out]``.
    With ``chunks=2`` this is the ``(means, log-scales)`` net of a
    :class:`~catlib.distributions.ConditionalNormal` on flat vectors.

    >>> net = FlatImageNet(DenseNet(3, 4, depth=1, growth=4, zero_init=False), 3, 2, 5, chunks=2)
    >>> net(torch.randn(7, 2 * 5 * 3)).shape
    torch.Size([7, 40])
    """

    def __init__(self, net: nn.Module, in_channels: int, height: int, width: int, chunks: int = 1):
        super().__init__()
        self.net, self.in_channels, self.height, self.width, self.chunks = net, in_channels, height, width, chunks

    def forward(self, x: Tensor) -> Tensor:
        y = self.net(to_image(x, self.in_channels, self.height, self.width))
        return torch.cat([to_flat(part) for part in y.chunk(self.chunks, 1)], -1)


def _scale_channels(channels: int, height: int, width: int) -> tuple[bool, int]:
    """Squeeze where it fits; the channels the couplings then see, checked to be >= 2."""
    squeeze = _fits_squeeze(height, width)
    c = 4 * channels if squeeze else channels
    if c < 2:
        raise ValueError(f"an image flow needs at least 2 channels to couple; {channels} channel at "
                         f"{height}x{width} cannot be squeezed (odd size): use even sizes or the MLP flows")
    return squeeze, c


def _glow_steps(channels: int, num_steps: int, growth: int, depth: int, seed: int = 0) -> list[Transform]:
    """``num_steps`` x [:class:`ActNorm2d`, :class:`Conv1x1`, :class:`AffineCoupling2d`] on ``channels``."""
    steps: list[Transform] = []
    for i in range(num_steps):
        steps += [ActNorm2d(channels), Conv1x1(channels, seed=seed + i), AffineCoupling2d(channels, 0, growth, depth)]
    return steps


def _multi_scale(channels: int, levels: int, num_steps: int, growth: int, depth: int, level: int = 0) -> MultiScale:
    """Levels ``level .. levels - 1`` of a :class:`MultiScale` flow on images with ``channels`` channels."""
    c = 4 * channels
    if level == levels - 1:
        return MultiScale(_glow_steps(c, num_steps, growth, depth, seed=level * num_steps))
    return MultiScale(_glow_steps(c, num_steps, growth, depth, seed=level * num_steps),
                      AffineCoupling2d(c, 0, growth, depth),
                      _multi_scale(c // 2, levels, num_steps, growth, depth, level + 1))


def image_flow(channels: int, height: int, width: int, num_steps: int = 4, growth: int = 32,
               depth: int = 2, levels: int = 1) -> Flow:
    r"""A Glow-like density :math:`p(v)` on flat pixel-major vectors ``[batch, H W C]``.

    A standard normal base and one :class:`ImageFlowTransform`. With ``levels=1``: squeeze
    once (when ``H`` and ``W`` are even), then ``num_steps`` x [:class:`ActNorm2d`,
    :class:`Conv1x1`, :class:`AffineCoupling2d`] with DenseNets of ``depth`` layers of
    ``growth`` channels. With ``levels=L > 1``: a multi-scale flow of ``L``
    :class:`MultiScale` levels, each squeezing, running ``num_steps`` such steps and, but for
    the last, factoring half of its channels out (``H`` and ``W`` must be multiples of
    :math:`2^L`); the last level works on ``H / 2^L x W / 2^L`` pixels.

    >>> flow = image_flow(3, 4, 6, num_steps=2, growth=8, depth=1)
    >>> flow.log_prob(torch.randn(5, 4 * 6 * 3)).shape, flow.sample(2).shape
    (torch.Size([5]), torch.Size([2, 72]))
    >>> image_flow(3, 4, 8, num_steps=1, growth=8, depth=1, levels=2).log_prob(torch.randn(5, 96)).shape
    torch.Size([5])
    """
    for name, value in (("channels", channels), ("height", height), ("width", width)):
        check_positive_int(name, value)
    num_steps = check_positive_int("num_steps", num_steps, minimum=0)
    levels = check_positive_int("levels", levels)
    dist = StandardNormal(channels * height * width)
    if levels == 1:
        squeeze, c = _scale_channels(channels, height, width)
        return Flow(dist, [ImageFlowTransform(_glow_steps(c, num_steps, growth, depth), channels, height, width,
                                              squeeze=squeeze)])
    if height % 2 ** levels or width % 2 ** levels:
        raise ValueError(f"a flow of {levels} levels squeezes {levels} times: height and width must be multiples "
                         f"of 2^{levels} = {2 ** levels}, got {height}x{width}")
    return Flow(dist, [ImageFlowTransform([_multi_scale(channels, levels, num_steps, growth, depth)],
                                          channels, height, width)])


def conditional_image_flow(channels: int, context_channels: int, height: int, width: int, num_steps: int = 2,
                           growth: int = 16, depth: int = 1, base: str = "normal") -> ConditionalFlow:
    r"""``q(u | context)`` on flat pixel-major vectors: the image analogue of :func:`catlib.argmax.conditional_flow`.

    A conditional diagonal base whose locations and log-scales come from a DenseNet of the
    context image (:class:`FlatImageNet`), then, squeezed where it fits, ``num_steps`` x
    [mixing, :class:`AffineCoupling2d` conditioned on the squeezed context]. The base net and
    the couplings start at zero, so at initialisation ``q(u | c)`` is exactly the standard
    ``base`` for every context:

    - ``"normal"`` (:class:`~catlib.distributions.ConditionalNormal`): mixing by learned
      :class:`Conv1x1` (random rotations at the start, under which a standard normal is
      unchanged);
    - ``"logistic"`` (:class:`~catlib.distributions.ConditionalLogistic`): mixing by fixed
      channel reversals, under which i.i.d. logistic noise is unchanged; its sigmoid is then
      exactly uniform (variational dequantization starts as uniform dequantization, Gumbel
      thresholding as the Gumbel inverse).

    Args:
        channels: ``C`` of ``u [batch, H W C]``.
        context_channels: ``C_c`` of the context ``[batch, H W C_c]``.
        base: ``"normal"`` or ``"logistic"``.

    >>> q = conditional_image_flow(3, 3, 4, 4, num_steps=1, growth=8)
    >>> u, log_q = q.sample_with_log_prob(torch.zeros(2, 4 * 4 * 3))
    >>> u.shape, log_q.shape
    (torch.Size([2, 48]), torch.Size([2]))
    """
    bases = {"normal": ConditionalNormal, "logistic": ConditionalLogistic}
    if base not in bases:
        raise ValueError(f"base must be one of {sorted(bases)}, got {base!r}")
    for name, value in (("channels", channels), ("context_channels", context_channels), ("height", height),
                        ("width", width)):
        check_positive_int(name, value)
    num_steps = check_positive_int("num_steps", num_steps, minimum=0)
    squeeze, c = _scale_channels(channels, height, width)
    cc = 4 * context_channels if squeeze else context_channels
    steps: list[Transform] = []
    for i in range(num_steps):
        steps.append(Conv1x1(c, seed=i) if base == "normal" else Permutation(c, "reverse"))
        steps.append(AffineCoupling2d(c, cc, growth, depth))
    net = FlatImageNet(DenseNet(context_channels, 2 * channels, depth, growth), context_channels, height, width,
                       chunks=2)
    transforms = [ImageFlowTransform(steps, channels, height, width, context_channels, squeeze)] if steps else []
    return ConditionalFlow(bases[base](net, channels * height * width), transforms)


def conditional_image_flow_factory(height: int, width: int, **options) -> Callable[..., ConditionalFlow]:
    """:func:`conditional_image_flow` on ``H x W`` images as a factory ``q_flow(dim, context_dim, base=...)``.

    That is the signature the learned argmax inverses and the variational dequantizer take
    (:data:`catlib.argmax.QFlowFactory`): sizes of flat vectors, which must be multiples of
    ``H * W`` (``channels = dim / (H W)``). ``options`` go to :func:`conditional_image_flow`.

    >>> make = conditional_image_flow_factory(2, 2, num_steps=1, growth=4)
    >>> make(12, 8, base="logistic").base.dim
    12
    """
    pixels = height * width

    def make(dim: int, context_dim: int, base: str = "normal") -> ConditionalFlow:
        for name, value in (("dim", dim), ("context_dim", context_dim)):
            if value % pixels:
                raise ValueError(f"{name} must be a multiple of H * W = {height} * {width} = {pixels} "
                                 f"(flat images, pixel-major), got {value}")
        return conditional_image_flow(dim // pixels, context_dim // pixels, height, width, base=base, **options)

    return make

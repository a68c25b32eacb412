"""A small convolutional DenseNet, the conditioner of the image coupling layers."""
from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from catlib.validation import check_positive_int

__all__ = ["DenseNet"]


class DenseNet(nn.Module):
    r"""``depth`` 3x3 convolutions whose outputs are concatenated to their inputs, then a 3x3 output conv.

    .. math:: h_0 = x,\qquad h_{i+1} = [h_i,\ \mathrm{GELU}(\mathrm{conv}_i(h_i))],\qquad
              y = \mathrm{conv}_{out}(h_{depth})

    (Huang et al., 2017), the conditioner the argmax-flow paper uses in its coupling layers.
    Every convolution pads by one pixel, so the spatial size is kept.

    Args:
        in_channels: channels of the input.
        out_channels: channels of the output.
        depth: number of densely connected hidden convolutions (0: a single 3x3 conv).
        growth: channels each hidden convolution adds.
        zero_init: start the output convolution at zero, so that a coupling layer built on
            this net begins as the identity (as :class:`~catlib.nets.MLP` does).

    Shapes: ``[batch, in_channels, H, W] -> [batch, out_channels, H, W]``.

    >>> net = DenseNet(3, 4, depth=2, growth=8)
    >>> y = net(torch.ones(2, 3, 5, 6))
    >>> y.shape, bool((y == 0).all())
    (torch.Size([2, 4, 5, 6]), True)
    """

    def __init__(self, in_channels: int, out_channels: int, depth: int = 2, growth: int = 32,
                 zero_init: bool = True):
        super().__init__()
        in_channels = check_positive_int("in_channels", in_channels)
        out_channels = check_positive_int("out_channels", out_channels)
        depth = check_positive_int("depth", depth, minimum=0)
        growth = check_positive_int("growth", growth)
        self.hidden = nn.ModuleList(nn.Conv2d(in_channels + i * growth, growth, 3, padding=1)
                                    for i in range(depth))
        self.out = nn.Conv2d(in_channels + depth * growth, out_channels, 3, padding=1)
        if zero_init:
            nn.init.zeros_(self.out.weight)
            nn.init.zeros_(self.out.bias)

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 4:
            raise ValueError(f"DenseNet expects images [batch, channels, H, W], got shape {list(x.shape)}")
        for conv in self.hidden:
            x = torch.cat([x, F.gelu(conv(x))], 1)
        return self.out(x)

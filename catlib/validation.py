"""Input checks shared by every model: class-index tensors of the right shape and range."""
from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor

__all__ = ["check_classes", "check_data_shape", "check_positive_int"]


def check_positive_int(name: str, value, minimum: int = 1) -> int:
    """Return ``value`` as an int if it is an integer ``>= minimum``, else raise ``ValueError``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return value


def check_data_shape(data_shape) -> tuple[int, ...]:
    """Return ``data_shape`` as a non-empty tuple of positive ints, else raise ``ValueError``.

    >>> check_data_shape([16, 16])
    (16, 16)
    """
    try:
        shape = tuple(data_shape)
    except TypeError:
        raise ValueError(f"data_shape must be a tuple of positive integers, got {data_shape!r}") from None
    if not shape or any(isinstance(d, bool) or not isinstance(d, int) or d < 1 for d in shape):
        raise ValueError(f"data_shape must be a tuple of positive integers, got {data_shape!r}")
    return shape


def check_classes(x, data_shape: Sequence[int], num_classes: int, name: str = "x") -> Tensor:
    """Check that ``x`` is a ``[batch, *data_shape]`` integer tensor with entries in ``[0, K)``.

    Raises ``ValueError`` naming the first bad value, its position and what was expected;
    nothing is clamped or cast silently.

    >>> check_classes(torch.tensor([[1, 2]]), (2,), 3).shape
    torch.Size([1, 2])
    >>> check_classes(torch.tensor([[1, 3]]), (2,), 3)
    Traceback (most recent call last):
    ...
    ValueError: x must hold class indices in [0, 3), got 3 at position (0, 1)
    """
    if not torch.is_tensor(x):
        raise ValueError(f"{name} must be a torch.LongTensor of class indices, got {type(x).__name__}")
    if x.is_floating_point() or x.is_complex():
        nan = torch.isnan(x)
        if nan.any():
            pos = tuple(int(i) for i in nan.nonzero()[0])
            raise ValueError(f"{name} contains NaN at position {pos}; expected class indices in [0, {num_classes})")
        raise ValueError(f"{name} must be an integer tensor of class indices (torch.long), got dtype {x.dtype}")
    if x.dtype == torch.bool:
        raise ValueError(f"{name} must be an integer tensor of class indices (torch.long), got dtype torch.bool")
    expected = tuple(data_shape)
    if x.dim() != len(expected) + 1 or tuple(x.shape[1:]) != expected:
        raise ValueError(f"{name} must have shape [batch, {', '.join(map(str, expected))}], got {list(x.shape)}")
    if x.shape[0] == 0:
        raise ValueError(f"{name} must hold at least one example, got an empty batch of shape {list(x.shape)}")
    bad = (x < 0) | (x >= num_classes)
    if bad.any():
        pos = tuple(int(i) for i in bad.nonzero()[0])
        raise ValueError(f"{name} must hold class indices in [0, {num_classes}), got {int(x[pos])} at position {pos}")
    return x.long()

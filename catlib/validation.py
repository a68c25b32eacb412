"""Input checks shared by every model: integers, class-index tensors of the right shape and range, writable folders."""
from __future__ import annotations

import operator
import os
import uuid
from pathlib import Path
from typing import Sequence

import torch
from torch import Tensor

__all__ = ["as_int", "check_classes", "check_data_shape", "check_positive_int", "check_writable_dir"]


def as_int(value) -> int | None:
    """``value`` as a Python ``int`` if it is an integer (``int``, NumPy integer, 0-d integer tensor), else ``None``.

    Booleans (Python, NumPy or tensor) and floats are not integers here, even ``2.0``.

    >>> import numpy as np
    >>> as_int(3), as_int(np.int64(2)), as_int(torch.tensor(4)), as_int(2.0), as_int(True)
    (3, 2, 4, None, None)
    """
    if isinstance(value, bool) or type(value).__name__ == "bool_":  # bool, numpy.bool_
        return None
    if torch.is_tensor(value):
        if value.dim() != 0 or value.is_floating_point() or value.is_complex() or value.dtype == torch.bool:
            return None
        return int(value.item())
    try:
        return operator.index(value)  # int and NumPy integers; not float, str, ...
    except TypeError:
        return None


def check_positive_int(name: str, value, minimum: int = 1) -> int:
    """Return ``value`` as an ``int`` if it is an integer ``>= minimum`` (NumPy and 0-d tensor integers too), else raise ``ValueError``.

    >>> import numpy as np
    >>> check_positive_int("n", np.int64(2))
    2
    >>> check_positive_int("n", 1.5)
    Traceback (most recent call last):
    ...
    ValueError: n must be an integer >= 1, got 1.5
    """
    number = as_int(value)
    if number is None or number < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return number


def check_writable_dir(path: str | os.PathLike, what: str = "folder") -> Path:
    """Create the folder ``path`` if needed and prove it writable by writing and deleting a file in it.

    Called before long work (training, evaluation) so that a folder that cannot hold its output
    fails at once with its path, not hours later. Raises ``ValueError`` naming ``what`` and the path.

    >>> import tempfile
    >>> check_writable_dir(Path(tempfile.mkdtemp()) / "a" / "b", "checkpoint folder").is_dir()
    True
    """
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except (OSError, ValueError) as err:
        raise ValueError(f"{what} {str(path)!r} cannot be created: {getattr(err, 'strerror', None) or err}") from err
    if not path.is_dir():
        raise ValueError(f"{what} {str(path)!r} is not a folder")
    probe = path / f".catlib-write-test-{uuid.uuid4().hex}"
    try:
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as err:
        raise ValueError(f"{what} {str(path)!r} is not writable: {getattr(err, 'strerror', None) or err}") from err
    return path


def check_data_shape(data_shape) -> tuple[int, ...]:
    """Return ``data_shape`` as a non-empty tuple of positive ints, else raise ``ValueError``.

    >>> check_data_shape([16, 16])
    (16, 16)
    """
    try:
        shape = tuple(data_shape)
    except TypeError:
        raise ValueError(f"data_shape must be a tuple of positive integers, got {data_shape!r}") from None
    dims = tuple(as_int(d) for d in shape)
    if not shape or any(d is None or d < 1 for d in dims):
        raise ValueError(f"data_shape must be a tuple of positive integers, got {data_shape!r}")
    return dims


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

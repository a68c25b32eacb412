"""Input checks shared by every model: integers, class-index tensors of the right shape and range, writable folders."""
from __future__ import annotations

import math
import numbers
import operator
import os
import uuid
from pathlib import Path
from typing import Callable, Sequence, TypeVar

import torch
from torch import Tensor

T = TypeVar("T")

__all__ = ["as_int", "as_float", "count_check", "optional_check", "check_bool", "check_choice", "check_classes",
           "check_data_shape", "check_float", "check_positive_float", "check_positive_int", "check_positive_ints",
           "check_writable_dir"]


def _is_bool(value) -> bool:
    """Whether ``value`` is a Python or NumPy boolean (``numpy.bool_``; named ``numpy.bool`` in NumPy 2)."""
    return isinstance(value, bool) or type(value).__name__ in ("bool_", "bool")


def as_int(value) -> int | None:
    """``value`` as a Python ``int`` if it is an integer (``int``, NumPy integer, 0-d integer tensor), else ``None``.

    Booleans (Python, NumPy or tensor) and floats are not integers here, even ``2.0``.

    >>> import numpy as np
    >>> as_int(3), as_int(np.int64(2)), as_int(torch.tensor(4)), as_int(2.0), as_int(True)
    (3, 2, 4, None, None)
    """
    if _is_bool(value):
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


def count_check(minimum: int) -> Callable[[str, object], int]:
    """A checker ``(name, value) -> int`` of :func:`check_positive_int` with ``minimum``, for tables of options.

    >>> count_check(0)("flow_steps", 0)
    0
    """
    return lambda name, value: check_positive_int(name, value, minimum)


def optional_check(check: Callable[[str, object], T]) -> Callable[[str, object], T | None]:
    """``check`` that lets ``None`` through (an option whose ``None`` means "the default").

    >>> optional_check(count_check(2))("base", None) is None
    True
    """
    return lambda name, value: None if value is None else check(name, value)


def check_positive_ints(name: str, value, allow_empty: bool = True, example: str = "(8,)") -> tuple[int, ...]:
    """Return ``value`` (a tuple, list or 1-d array of integers ``>= 1``) as a tuple of ``int``, else raise ``ValueError``.

    For layer widths such as ``hidden``: a bare integer is refused (``hidden=8`` is not ``(8,)``);
    an empty tuple (no hidden layer) only with ``allow_empty``. ``example`` shows the expected form.

    >>> import numpy as np
    >>> check_positive_ints("hidden", [np.int64(8), 4])
    (8, 4)
    >>> check_positive_ints("hidden", 8)
    Traceback (most recent call last):
    ...
    ValueError: hidden must be a tuple of positive integers such as (8,), got 8
    """
    kind = "tuple" if allow_empty else "non-empty tuple"
    message = f"{name} must be a {kind} of positive integers such as {example}, got {value!r}"
    if not (isinstance(value, (tuple, list)) or getattr(value, "ndim", None) == 1):
        raise ValueError(message)
    sizes = tuple(as_int(v) for v in value)
    if (not sizes and not allow_empty) or any(v is None or v < 1 for v in sizes):
        raise ValueError(message)
    return sizes


def as_float(value) -> float | None:
    """``value`` as a Python ``float`` if it is a real number (``int``, ``float``, NumPy number, 0-d real tensor), else ``None``.

    Booleans are not numbers here; NaN and infinities are returned as they are.

    >>> import numpy as np
    >>> as_float(2), as_float(np.float32(0.5)), as_float(torch.tensor(1.5)), as_float("1"), as_float(np.True_)
    (2.0, 0.5, 1.5, None, None)
    """
    if _is_bool(value):
        return None
    if torch.is_tensor(value):
        if value.dim() != 0 or value.is_complex() or value.dtype == torch.bool:
            return None
        return float(value.item())
    if isinstance(value, numbers.Real):  # int, float, NumPy integers and floats
        return float(value)
    return None


def _interval(minimum: float, maximum: float, strict_minimum: bool, strict_maximum: bool) -> str:
    low, high = f"{minimum:g}", f"{maximum:g}"
    if math.isinf(minimum) and math.isinf(maximum):
        return "a finite number"
    if math.isinf(maximum):
        return f"a finite number {'>' if strict_minimum else '>='} {low}"
    if math.isinf(minimum):
        return f"a finite number {'<' if strict_maximum else '<='} {high}"
    return f"in {'(' if strict_minimum else '['}{low}, {high}{')' if strict_maximum else ']'}"


def check_float(name: str, value, minimum: float = -math.inf, maximum: float = math.inf, *,
                strict_minimum: bool = False, strict_maximum: bool = False) -> float:
    """Return ``value`` as a finite ``float`` within ``[minimum, maximum]`` (ends excluded if ``strict_*``), else raise ``ValueError``.

    >>> check_float("dropout", 0.25, 0.0, 1.0, strict_maximum=True)
    0.25
    >>> check_float("dropout", 1.0, 0.0, 1.0, strict_maximum=True)
    Traceback (most recent call last):
    ...
    ValueError: dropout must be in [0, 1), got 1.0
    >>> check_float("support_temperature", float("inf"), 0.0)
    Traceback (most recent call last):
    ...
    ValueError: support_temperature must be a finite number >= 0, got inf
    """
    number = as_float(value)
    if (number is None or not math.isfinite(number) or number < minimum or number > maximum
            or (strict_minimum and number == minimum) or (strict_maximum and number == maximum)):
        interval = _interval(minimum, maximum, strict_minimum, strict_maximum)
        raise ValueError(f"{name} must be {interval}, got {value!r}")
    return number


def check_positive_float(name: str, value) -> float:
    """Return ``value`` as a ``float`` if it is a finite number ``> 0``, else raise ``ValueError``.

    >>> check_positive_float("init_spread", 2)
    2.0
    >>> check_positive_float("init_spread", -1.0)
    Traceback (most recent call last):
    ...
    ValueError: init_spread must be a finite number > 0, got -1.0
    """
    return check_float(name, value, 0.0, strict_minimum=True)


def check_choice(name: str, value, choices: Sequence[str]) -> str:
    """Return ``value`` if it is one of the strings ``choices``, else raise ``ValueError`` listing them.

    >>> check_choice("coupling", "mixture", ("affine", "mixture"))
    'mixture'
    >>> check_choice("coupling", ["affine"], ("affine", "mixture"))
    Traceback (most recent call last):
    ...
    ValueError: coupling must be one of 'affine', 'mixture', got ['affine']
    """
    if not (isinstance(value, str) and value in choices):
        raise ValueError(f"{name} must be one of {', '.join(map(repr, choices))}, got {value!r}")
    return value


def check_bool(name: str, value) -> bool:
    """Return ``value`` as a ``bool`` if it is one (Python or NumPy), else raise ``ValueError``.

    A string such as ``"no"`` is not taken for ``True``.

    >>> import numpy as np
    >>> check_bool("attention", np.bool_(True))
    True
    >>> check_bool("attention", "no")
    Traceback (most recent call last):
    ...
    ValueError: attention must be True or False, got 'no'
    """
    if not _is_bool(value):
        raise ValueError(f"{name} must be True or False, got {value!r}")
    return bool(value)


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

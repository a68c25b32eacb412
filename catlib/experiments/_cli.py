"""Argument types and checks of the experiments' command lines (not an experiment: the name starts with ``_``).

Each ``type=`` function turns a bad value into :class:`argparse.ArgumentTypeError`, so argparse
reports it as ``error: argument --seed: ...`` with exit status 2 and no traceback.
"""
from __future__ import annotations

import argparse
import math
from pathlib import Path

import torch

from catlib.validation import check_writable_dir

__all__ = ["MAX_SEED", "seed_type", "positive_minutes", "device_type", "writable_dir_or_error", "missing_data_error"]

#: The largest seed the command line takes: the runs seed NumPy (below ``2**32``) with small offsets of it.
MAX_SEED = 2**31 - 1


def seed_type(text: str) -> int:
    """``--seed``: an integer from 0 to :data:`MAX_SEED`.

    >>> seed_type("7")
    7
    >>> seed_type("-1")
    Traceback (most recent call last):
    argparse.ArgumentTypeError: must be an integer from 0 to 2147483647, got '-1'
    """
    try:
        value = int(text)
    except ValueError:
        value = None
    if value is None or not 0 <= value <= MAX_SEED:
        raise argparse.ArgumentTypeError(f"must be an integer from 0 to {MAX_SEED}, got {text!r}")
    return value


def positive_minutes(text: str) -> float:
    """``--checkpoint-minutes``: a finite number of minutes greater than 0.

    >>> positive_minutes("2.5")
    2.5
    >>> positive_minutes("inf")
    Traceback (most recent call last):
    argparse.ArgumentTypeError: must be a finite number of minutes greater than 0, got 'inf'
    """
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a finite number of minutes greater than 0, got {text!r}")
    return value


def _cuda_problem(index: int | None) -> str | None:
    if torch.version.cuda is None and torch.version.hip is None:
        return (f"this torch build ({torch.__version__}) has no CUDA support; install a CUDA build of torch "
                f"or use --device cpu")
    if not torch.cuda.is_available():
        return ("no GPU is visible to torch (torch.cuda.is_available() is False); check the driver and "
                "CUDA_VISIBLE_DEVICES, or use --device cpu")
    count = torch.cuda.device_count()
    if index is not None and index >= count:
        return f"there is no GPU {index}: torch sees {count} GPU(s), cuda:0 to cuda:{count - 1}"
    return None


def _mps_problem(index: int | None) -> str | None:
    if not torch.backends.mps.is_built():
        return "this torch build has no MPS support (Apple GPUs only); use --device cpu"
    if not torch.backends.mps.is_available():
        return "MPS is not available on this machine (it needs macOS 12.3+ and an Apple GPU); use --device cpu"
    if index not in (None, 0):
        return f"there is no MPS device {index}: use mps or mps:0"
    return None


def device_type(text: str) -> torch.device:
    """``--device``: a device string of :class:`torch.device` that this machine can train on.

    ``cpu``; ``cuda`` / ``cuda:N`` only where torch sees that GPU; ``mps`` only where it is
    available; other torch device types only if ``torch.<type>.is_available()`` says so.

    >>> device_type("cpu")
    device(type='cpu')
    >>> device_type("tpu9")
    Traceback (most recent call last):
    argparse.ArgumentTypeError: 'tpu9' is not a device: expected cpu, cuda, cuda:N or mps (torch: Invalid device string: 'tpu9')
    """
    try:
        device = torch.device(text)
    except (RuntimeError, ValueError, TypeError) as err:
        summary = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        if len(summary) > 120:
            summary = summary[:117] + "..."
        raise argparse.ArgumentTypeError(f"{text!r} is not a device: expected cpu, cuda, cuda:N or mps "
                                         f"(torch: {summary})") from None
    if device.type == "cpu":
        problem = None
    elif device.type == "cuda":
        problem = _cuda_problem(device.index)
    elif device.type == "mps":
        problem = _mps_problem(device.index)
    else:
        backend = getattr(torch, device.type, None)
        available = getattr(backend, "is_available", None)
        try:
            ok = bool(available()) if callable(available) else False
        except Exception:  # pragma: no cover - a backend that cannot even answer
            ok = False
        problem = None if ok else (f"device type {device.type!r} is not available on this machine; "
                                   f"use cpu, cuda or mps")
    if problem is not None:
        raise argparse.ArgumentTypeError(f"cannot use device {text!r}: {problem}")
    return device


def writable_dir_or_error(parser: argparse.ArgumentParser, path: str | Path, flag: str, what: str) -> Path:
    """Create the folder ``path`` and test-write it (:func:`catlib.validation.check_writable_dir`),
    before any training; if it cannot be written, exit through ``parser.error`` naming ``flag`` and
    the path (status 2, no traceback)."""
    try:
        return check_writable_dir(path, what)
    except ValueError as err:
        parser.error(f"argument {flag}: {err}")


def missing_data_error(parser: argparse.ArgumentParser, err: FileNotFoundError, data_dir: str | Path,
                       flag: str = "--data-dir") -> None:
    """Exit through ``parser.error`` naming ``flag`` when ``err`` (a corpus or data set that is not
    there, with its fix) is about a file under ``data_dir``; re-raise any other ``err``."""
    if str(Path(data_dir)) in str(err):
        parser.error(f"argument {flag}: {err}")
    raise err

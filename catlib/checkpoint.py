"""Checkpoint files: tensors and plain data only, a SHA-256 of the contents, and a fingerprint of the run.

A checkpoint is a ``dict`` saved with :func:`torch.save`. It may hold tensors, ``dict``,
``list``, ``tuple``, ``str``, ``int``, ``float``, ``bool`` and ``None``, nothing else, and is
read back with ``torch.load(..., weights_only=True)``: loading a file someone hands you cannot
run code, because a pickled object of any other type is refused instead of being rebuilt.
:func:`to_plain` turns NumPy numbers and arrays, paths and dataclasses into those types before
saving and refuses anything it cannot turn.

Each file also records

- ``sha256``: the SHA-256 of its contents (:func:`payload_digest`: every tensor's dtype, shape
  and bytes and every plain value, in a fixed order), checked by :func:`load_checkpoint`; a
  flipped byte inside a tensor is reported as a corrupted file, with its path, instead of
  surfacing as a diverged loss later;
- ``fingerprint``: what defines the run that wrote it (written by :func:`catlib.train.fit`:
  model class and parameter shapes, data, seed, steps, batch size, learning rate and schedule,
  precision, number of processes, and the caller's own settings). :func:`fingerprint_differences`
  lists what differs between two fingerprints, so ``fit`` can refuse to resume another run.

Files written before checksums and fingerprints (no ``format`` key) still load; they are not
verified, and ``fit`` resumes them only when told to ignore the settings.
"""
from __future__ import annotations

import dataclasses
import hashlib
import os
import pickle
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

__all__ = ["CheckpointError", "FORMAT", "load_checkpoint", "save_checkpoint", "payload_digest", "tensor_bytes",
           "to_plain", "fingerprint_differences"]

#: The format written by :func:`save_checkpoint` (files without a ``format`` key are older).
FORMAT = 2


class CheckpointError(ValueError):
    """A checkpoint that cannot be used: damaged, corrupted, unsafe to load, or of another run."""


def to_plain(value: Any, where: str = "value") -> Any:
    """``value`` with NumPy numbers/arrays, paths, sets and dataclasses turned into plain Python data.

    Tensors, ``None``, ``bool``, ``int``, ``float``, ``str``, and dicts, lists and tuples of
    them are kept (tuples stay tuples, so a stored setting compares equal to the original).
    Anything else raises :class:`CheckpointError` naming where it was found: a checkpoint must
    load with ``weights_only=True``.

    >>> import numpy as np
    >>> to_plain({"bits": np.float32(1.5), "hidden": (8, 8), "path": Path("a/b")})
    {'bits': 1.5, 'hidden': (8, 8), 'path': 'a/b'}
    >>> to_plain({"f": print}, "metrics")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    catlib.checkpoint.CheckpointError: metrics['f'] holds a builtin_function_or_method, which a checkpoint cannot store ...
    """
    if value is None or isinstance(value, (bool, int, float, str, Tensor)):
        return value
    if isinstance(value, dict):
        return {to_plain(k, f"{where} key"): to_plain(v, f"{where}[{k!r}]") for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        items = [to_plain(v, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if isinstance(value, tuple) else items
    if isinstance(value, (set, frozenset)):
        return sorted((to_plain(v, where) for v in value), key=repr)
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return to_plain(dataclasses.asdict(value), where)
    if type(value).__module__ == "numpy":
        return to_plain(value.tolist(), where)  # NumPy scalars and arrays
    if isinstance(value, torch.dtype | torch.device):
        return str(value)
    raise CheckpointError(f"{where} holds a {type(value).__name__}, which a checkpoint cannot store "
                          f"(only tensors and plain data: dict, list, tuple, str, int, float, bool, None)")


def tensor_bytes(t: Tensor):
    """The bytes of ``t`` (on the CPU, contiguous) as a NumPy ``uint8`` array over its buffer, for hashing.

    >>> import hashlib
    >>> hashlib.sha256(tensor_bytes(torch.zeros(2))).hexdigest() == hashlib.sha256(bytes(8)).hexdigest()
    True
    """
    return t.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy()


def _feed(h: "hashlib._Hash", value: Any) -> None:
    if isinstance(value, Tensor):
        h.update(f"T{value.dtype}{list(value.shape)}".encode())
        h.update(tensor_bytes(value))  # the buffer itself, not a copy
    elif isinstance(value, dict):
        h.update(b"{")
        for key in sorted(value, key=repr):
            h.update(repr(key).encode() + b":")
            _feed(h, value[key])
        h.update(b"}")
    elif isinstance(value, (list, tuple)):
        h.update(b"[" if isinstance(value, list) else b"(")
        for item in value:
            _feed(h, item)
            h.update(b",")
        h.update(b"]")
    else:
        h.update(f"{type(value).__name__}:{value!r};".encode())


def payload_digest(state: dict) -> str:
    """The SHA-256 (hex) of a checkpoint's contents, leaving out its own ``sha256`` entry.

    Covers every tensor (dtype, shape and bytes) and every plain value, keys in sorted order,
    so it does not depend on how :func:`torch.save` lays the file out.

    >>> a = payload_digest({"w": torch.zeros(3), "step": 1})
    >>> a == payload_digest({"step": 1, "w": torch.zeros(3), "sha256": "x"})
    True
    >>> a == payload_digest({"w": torch.tensor([0.0, 0.0, 1e-45]), "step": 1})
    False
    """
    h = hashlib.sha256()
    _feed(h, {k: v for k, v in state.items() if k != "sha256"})
    return h.hexdigest()


def save_checkpoint(path: str | os.PathLike, state: dict) -> None:
    """Write ``state`` (plain data and tensors; see :func:`to_plain`) to ``path`` with its format and SHA-256.

    The write is atomic: the file is written beside ``path`` and renamed over it, so a session
    lost mid-write keeps the previous checkpoint. Raises ``OSError`` naming the path when the
    folder cannot be written.
    """
    path = Path(path)
    state = {key: to_plain(value, str(key)) for key, value in {**state, "format": FORMAT}.items()}
    state["sha256"] = payload_digest(state)
    tmp = path.with_suffix(path.suffix + ".tmp")
    try:
        torch.save(state, tmp)
        os.replace(tmp, path)
    except OSError as err:
        tmp.unlink(missing_ok=True)
        raise OSError(err.errno, f"could not write checkpoint {path}: {err.strerror or err}") from err


def load_checkpoint(path: str | os.PathLike) -> dict:
    """Load a checkpoint on the CPU, safely (``weights_only=True``) and checked against its SHA-256.

    Raises ``FileNotFoundError`` if there is no file, and :class:`CheckpointError` (a
    ``ValueError``) naming the path if the file is damaged (unreadable), corrupted (its
    contents differ from the SHA-256 it records), holds objects other than tensors and plain
    data (refused, not unpickled: that could run code), or is not a catlib checkpoint.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        if "weights_only" in str(err) or "Weights only" in str(err):
            first = str(err).strip().splitlines()[0]
            raise CheckpointError(f"checkpoint {path} holds objects other than tensors and plain data, which catlib "
                                  f"does not unpickle (that could run code): {first}. Delete it to train from scratch; "
                                  f"catlib's own checkpoints never need this") from None
        raise CheckpointError(f"checkpoint {path} is damaged or not a catlib checkpoint ({err}); "
                              f"delete it to train from scratch") from err
    except Exception as err:  # torch raises several types for truncated files
        raise CheckpointError(f"checkpoint {path} is damaged or not a catlib checkpoint ({err}); "
                              f"delete it to train from scratch") from err
    if not isinstance(state, dict) or "model" not in state:
        raise CheckpointError(f"checkpoint {path} is not a catlib checkpoint (no model state); delete it or pass "
                              f"the right file")
    if "format" in state:
        recorded = state.get("sha256")
        actual = payload_digest(state)
        if recorded != actual:
            raise CheckpointError(f"checkpoint {path} is corrupted: its contents have SHA-256 {actual[:16]}..., "
                                  f"the file records {str(recorded)[:16]}...; restore a good copy or delete it to "
                                  f"train from scratch")
    return state


_MISSING = object()


def _short(value: Any) -> str:
    if value is _MISSING:
        return "(not set)"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def fingerprint_differences(saved: dict, current: dict, prefix: str = "") -> list[str]:
    """One line per setting that differs between two fingerprints: ``"name: saved -> now"``.

    Nested dicts are compared entry by entry (``"settings.lr"``); a missing entry shows as
    ``(not set)``.

    >>> fingerprint_differences({"seed": 0, "data": {"rows": 5}}, {"seed": 1, "data": {"rows": 5}})
    ['seed: 0 in the checkpoint, 1 now']
    """
    lines = []
    for key in sorted(set(saved) | set(current), key=str):
        name = f"{prefix}{key}"
        a, b = saved.get(key, _MISSING), current.get(key, _MISSING)
        if isinstance(a, dict) and isinstance(b, dict):
            lines += fingerprint_differences(a, b, f"{name}.")
        elif a != b:
            lines.append(f"{name}: {_short(a)} in the checkpoint, {_short(b)} now")
    return lines

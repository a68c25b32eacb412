"""Characters as classes: the text8 alphabet (space and a-z, 27 classes) and its index order.

Index 0 is the space, then ``a`` = 1 ... ``z`` = 26, the order of :data:`TEXT8_ALPHABET`.
"""
from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["TEXT8_ALPHABET", "encode_text", "decode_text"]

#: The 27 characters of text8 in index order.
TEXT8_ALPHABET = " abcdefghijklmnopqrstuvwxyz"


def encode_text(text: str, alphabet: str = TEXT8_ALPHABET) -> Tensor:
    """A string to class indices ``[len(text)]``; a character outside ``alphabet`` raises.

    >>> encode_text("ab z").tolist()
    [1, 2, 0, 26]
    """
    index = {ch: i for i, ch in enumerate(alphabet)}
    for pos, ch in enumerate(text):
        if ch not in index:
            raise ValueError(f"text holds {ch!r} at position {pos}, which is not in the alphabet {alphabet!r}")
    return torch.tensor([index[ch] for ch in text], dtype=torch.long)


def decode_text(x: Tensor, alphabet: str = TEXT8_ALPHABET) -> str:
    """Class indices ``[L]`` back to a string.

    >>> decode_text(encode_text("hello world"))
    'hello world'
    """
    if x.dim() != 1:
        raise ValueError(f"x must be one sequence [L] of class indices, got shape {list(x.shape)}")
    bad = (x < 0) | (x >= len(alphabet))
    if bad.any():
        i = int(bad.nonzero()[0])
        raise ValueError(f"x must hold indices in [0, {len(alphabet)}), got {int(x[i])} at position {i}")
    return "".join(alphabet[i] for i in x.tolist())

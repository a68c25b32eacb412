"""The train / valid / test splits of a data set, shared by the real-data containers."""
from __future__ import annotations

from torch import Tensor

__all__ = ["SPLITS", "Splits"]

#: Split names, in file order.
SPLITS = ("train", "valid", "test")


class Splits:
    """Base of the containers with ``self.splits = {"train": ..., "valid": ..., "test": ...}``.

    Gives ``data["train"]`` (an unknown name raises ``KeyError`` naming the valid ones) and the
    attributes ``train``, ``valid`` and ``test``.
    """

    splits: dict[str, Tensor]

    def __getitem__(self, split: str) -> Tensor:
        if split not in self.splits:
            raise KeyError(f"split must be one of {list(SPLITS)}, got {split!r}")
        return self.splits[split]

    @property
    def train(self) -> Tensor:
        return self.splits["train"]

    @property
    def valid(self) -> Tensor:
        return self.splits["valid"]

    @property
    def test(self) -> Tensor:
        return self.splits["test"]

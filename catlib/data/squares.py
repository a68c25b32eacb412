r"""Squares: segmentation maps of coloured squares on a background, with an exact entropy.

The workshop paper's "squares" data set (Hoogeboom et al., 2021, section 4.1) is not published,
so we define our own, designed so that every map has **exactly one** generating configuration:

- the ``H x W`` map is cut into a grid of ``cell x cell`` cells;
- each cell independently is empty (background, class 0) with probability ``p_empty``, or
  holds one square, drawn uniformly: a colour in ``1..num_colors``, a side ``s`` in ``sizes``
  and a top-left corner among the :math:`(c - s + 1)^2` positions that keep the square inside
  its cell.

A square never leaves its cell, so the non-background pixels of a cell are one full square
and the cell's configuration (colour, side, corner) can be read back from its map. Hence the
entropy of a map is the entropy of its configuration, a sum over independent cells:

.. math::
    H = n_{cells}\Big[h(p_{empty}) + (1 - p_{empty})\big(\log n_{colors} + \log |S|
        + \tfrac{1}{|S|}\textstyle\sum_{s \in S} 2 \log (c - s + 1)\big)\Big],

with :math:`h` the binary entropy. :func:`squares_entropy_by_enumeration` checks this on tiny
sizes by drawing every configuration, rendering it and adding up the probabilities of equal
maps. Two squares of one colour in neighbouring cells may touch; the cell grid still tells
them apart.
"""
from __future__ import annotations

import itertools
import math
from collections import defaultdict
from dataclasses import dataclass

import torch
from torch import Tensor

from catlib.validation import check_classes, check_positive_int

__all__ = ["Squares", "enumerate_squares", "squares_entropy_by_enumeration"]


@dataclass(frozen=True)
class Squares:
    """The squares distribution; defaults give 16x16 maps with 5 classes (4 colours + background).

    Args:
        height, width: map size, multiples of ``cell``.
        cell: side of the cells that hold at most one square each.
        sizes: possible sides of a square (each at most ``cell``).
        num_colors: square colours; classes are ``0`` (background) to ``num_colors``.
        p_empty: probability that a cell holds no square.

    >>> sq = Squares()
    >>> sq.data_shape, sq.num_classes, round(sq.entropy_bits, 3), round(sq.entropy_bpd, 4)
    ((16, 16), 5, 27.983, 0.1093)
    >>> x = sq.sample(3, seed=0)
    >>> bool(sq.is_valid(x).all()), sq.log_prob(x).shape
    (True, torch.Size([3]))
    """

    height: int = 16
    width: int = 16
    cell: int = 8
    sizes: tuple[int, ...] = (3, 4, 5, 6)
    num_colors: int = 4
    p_empty: float = 0.25

    def __post_init__(self):
        for name in ("height", "width", "cell", "num_colors"):
            check_positive_int(name, getattr(self, name))
        if self.height % self.cell or self.width % self.cell:
            raise ValueError(f"height and width must be multiples of cell={self.cell}, "
                             f"got {self.height}x{self.width}")
        sizes = tuple(self.sizes)
        if not sizes or len(set(sizes)) != len(sizes) or any(
                isinstance(s, bool) or not isinstance(s, int) or not 1 <= s <= self.cell for s in sizes):
            raise ValueError(f"sizes must be distinct integers in [1, cell={self.cell}], got {self.sizes!r}")
        object.__setattr__(self, "sizes", sizes)
        if not 0.0 <= self.p_empty < 1.0:
            raise ValueError(f"p_empty must be in [0, 1), got {self.p_empty}")

    # ----------------------------------------------------------------------------- sizes
    @property
    def data_shape(self) -> tuple[int, int]:
        return (self.height, self.width)

    @property
    def num_classes(self) -> int:
        return self.num_colors + 1

    @property
    def grid(self) -> tuple[int, int]:
        """Number of cells along the height and the width."""
        return self.height // self.cell, self.width // self.cell

    @property
    def num_cells(self) -> int:
        return self.grid[0] * self.grid[1]

    # ----------------------------------------------------------------------------- entropy
    def cell_entropy_nats(self) -> float:
        """Entropy of one cell's configuration (closed form of the module docstring)."""
        p = self.p_empty
        h_empty = -sum(q * math.log(q) for q in (p, 1 - p) if q > 0)
        h_square = (math.log(self.num_colors) + math.log(len(self.sizes))
                    + sum(2 * math.log(self.cell - s + 1) for s in self.sizes) / len(self.sizes))
        return h_empty + (1 - p) * h_square

    @property
    def entropy_bits(self) -> float:
        """Entropy of one map in bits."""
        return self.num_cells * self.cell_entropy_nats() / math.log(2)

    @property
    def entropy_bpd(self) -> float:
        """Entropy in bits per pixel: the best bpd any model can reach."""
        return self.entropy_bits / (self.height * self.width)

    # ----------------------------------------------------------------------------- sampling
    def sample(self, n: int, seed: int | None = None) -> Tensor:
        """``n`` maps ``[n, H, W]`` (long), seeded by ``seed`` when given."""
        n = check_positive_int("n", n)
        g = torch.Generator().manual_seed(seed) if seed is not None else None
        m = n * self.num_cells
        occupied = torch.rand(m, generator=g, dtype=torch.float64) >= self.p_empty
        color = torch.randint(1, self.num_colors + 1, (m,), generator=g)
        side = torch.tensor(self.sizes)[torch.randint(len(self.sizes), (m,), generator=g)]
        # corner uniform in [0, cell - side] along each axis
        span = (self.cell - side + 1).double()
        top = (torch.rand(m, generator=g, dtype=torch.float64) * span).long()
        left = (torch.rand(m, generator=g, dtype=torch.float64) * span).long()
        return self.render(occupied, color, side, top, left).view(n, self.height, self.width)

    def render(self, occupied: Tensor, color: Tensor, side: Tensor, top: Tensor, left: Tensor) -> Tensor:
        """Draw cell configurations ``[n * num_cells]`` (row-major cells) into maps ``[n, H, W]``."""
        c = self.cell
        r = torch.arange(c)
        rows = (r >= top[:, None]) & (r < (top + side)[:, None])       # [m, c]
        cols = (r >= left[:, None]) & (r < (left + side)[:, None])     # [m, c]
        inside = rows[:, :, None] & cols[:, None, :] & occupied[:, None, None]
        cells = torch.where(inside, color[:, None, None], torch.zeros((), dtype=torch.long))
        gh, gw = self.grid
        n = cells.shape[0] // self.num_cells
        return cells.view(n, gh, gw, c, c).permute(0, 1, 3, 2, 4).reshape(n, self.height, self.width)

    def splits(self, train: int = 20_000, val: int = 1_000, test: int = 1_000, seed: int = 0) -> dict[str, Tensor]:
        """Train / validation / test maps drawn with the seeds ``seed``, ``seed + 1``, ``seed + 2``.

        The splits are independent draws of the same distribution (a map can occur in two
        splits, as it would in any large sample of it).
        """
        sizes = {"train": train, "val": val, "test": test}
        return {name: self.sample(size, seed=seed + i) for i, (name, size) in enumerate(sizes.items())}

    # ----------------------------------------------------------------------------- exact likelihood
    def _cells(self, x: Tensor) -> Tensor:
        """``[n, H, W] -> [n, num_cells, cell, cell]``."""
        gh, gw = self.grid
        c = self.cell
        return x.view(x.shape[0], gh, c, gw, c).permute(0, 1, 3, 2, 4).reshape(x.shape[0], -1, c, c)

    def _cell_side(self, x: Tensor) -> Tensor:
        """Side of the square in each cell ``[n, num_cells]``: 0 if empty, -1 if not one full square."""
        cells = self._cells(x)
        fg = cells > 0
        count = fg.flatten(2).sum(-1)
        idx = torch.arange(self.cell, device=x.device)
        big = self.cell + 1
        rows, cols = fg.any(-1), fg.any(-2)                              # [n, cells, c]
        height = torch.where(rows, idx, big).amin(-1), torch.where(rows, idx, -1).amax(-1)
        width = torch.where(cols, idx, big).amin(-1), torch.where(cols, idx, -1).amax(-1)
        h = height[1] - height[0] + 1
        w = width[1] - width[0] + 1
        color_max = torch.where(fg, cells, 0).flatten(2).amax(-1)
        color_min = torch.where(fg, cells, big).flatten(2).amin(-1)
        allowed = torch.zeros(self.cell + 1, dtype=torch.bool, device=x.device)
        allowed[list(self.sizes)] = True
        square = (h == w) & (count == h * w) & (color_min == color_max) & allowed[h.clamp(0, self.cell)]
        side = torch.where(square, h, -1)
        return torch.where(count == 0, 0, side)

    def is_valid(self, x: Tensor) -> Tensor:
        """``[n]`` bool: can the distribution produce this map (probability > 0)?"""
        x = check_classes(x, self.data_shape, self.num_classes)
        side = self._cell_side(x)
        ok = side >= 0
        if self.p_empty == 0:
            ok &= side != 0
        return ok.all(-1)

    def log_prob(self, x: Tensor) -> Tensor:
        """Exact ``log P(x)`` in nats ``[n]``; ``-inf`` for maps the distribution cannot produce."""
        x = check_classes(x, self.data_shape, self.num_classes)
        side = self._cell_side(x)
        square = side.clamp(min=1)
        log_square = (math.log1p(-self.p_empty) - math.log(self.num_colors) - math.log(len(self.sizes))
                      - 2 * torch.log((self.cell - square + 1).double()))
        log_empty = math.log(self.p_empty) if self.p_empty > 0 else -math.inf
        per_cell = torch.where(side == 0, torch.full_like(log_square, log_empty), log_square)
        per_cell = torch.where(side < 0, torch.full_like(per_cell, -math.inf), per_cell)
        return per_cell.sum(-1)


def enumerate_squares(squares: Squares) -> tuple[Tensor, Tensor]:
    """Every configuration of a tiny :class:`Squares`, rendered: ``(maps [N, H, W], log p [N])``.

    Brute force (``N`` is the number of per-cell configurations to the power ``num_cells``), for
    checking the closed forms on small sizes.
    """
    c = squares.cell
    per_cell = [(math.log(squares.p_empty), (False, 0, 1, 0, 0))] if squares.p_empty > 0 else []
    for color in range(1, squares.num_colors + 1):
        for s in squares.sizes:
            lp = (math.log1p(-squares.p_empty) - math.log(squares.num_colors) - math.log(len(squares.sizes))
                  - 2 * math.log(c - s + 1))
            per_cell += [(lp, (True, color, s, top, left))
                         for top in range(c - s + 1) for left in range(c - s + 1)]
    if len(per_cell) ** squares.num_cells > 2_000_000:
        raise ValueError(f"{len(per_cell)}^{squares.num_cells} configurations are too many to enumerate; "
                         f"use a smaller Squares")
    configs = list(itertools.product(per_cell, repeat=squares.num_cells))
    fields = [torch.tensor([[cell[1][j] for cell in cfg] for cfg in configs]).flatten() for j in range(5)]
    maps = squares.render(fields[0].bool(), *fields[1:])
    log_p = torch.tensor([sum(cell[0] for cell in cfg) for cfg in configs], dtype=torch.float64)
    return maps, log_p


def squares_entropy_by_enumeration(squares: Squares) -> tuple[float, int, int]:
    """Entropy of the map distribution by brute force: add up the probabilities of equal maps.

    Returns ``(entropy in bits, number of configurations, number of distinct maps)``; the two
    counts are equal when each map has one configuration.
    """
    maps, log_p = enumerate_squares(squares)
    mass: dict[bytes, float] = defaultdict(float)
    for row, p in zip(maps.flatten(1).numpy(), log_p.exp().tolist()):
        mass[row.tobytes()] += p
    p = torch.tensor(list(mass.values()), dtype=torch.float64)
    return float(-(p * torch.log2(p)).sum()), len(log_p), len(mass)

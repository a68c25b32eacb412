r"""Graph colouring (Lippe & Gavves, 2020; TRUFL Table 1): random 3-colourable graphs with a colouring.

A model sees a graph and must produce a colouring of its nodes with 3 colours such that no edge
joins two nodes of one colour. We make our own data with the recipe of CatNF's generator
(``experiments/graph_coloring/datasets/graph_coloring_generation.py`` in their code):

1. draw the number of nodes :math:`n` uniformly in ``[10, 20]`` ("small") or ``[25, 50]``
   ("large");
2. draw the edges, each pair independently with probability :math:`p`, then connect the graph:
   while some nodes cannot be reached from node 0, add one edge, drawn uniformly among the
   allowed pairs between the reached and the unreached nodes;
3. keep the graph only if its chromatic number is exactly 3 (it is not bipartite and has a
   3-colouring); otherwise start again from step 1;
4. colour it with OR-Tools CP-SAT (:func:`colour_graph`): the model's variables and constraints
   are declared in a random order and the solver gets a random seed, so that different
   colourings of a graph come out, and the colour names are then permuted at random. Every
   colouring is checked edge by edge.

Two ways to draw the edges (``method``):

- ``"planted"`` (default, fast): a random balanced 3-partition of the nodes is planted and only
  pairs across parts may become edges, so every graph is 3-colourable by construction (the
  solver's colouring is generally not the planted partition). The expected average degree
  :math:`c` is drawn uniformly in ``[2, 3]`` (small) or ``[3, 4]`` (large) and
  :math:`p = c / (\tfrac23 (n - 1))`, which gives average degrees (2.8 and 3.6 after the
  connecting edges) close to those of CatNF's recipe.
- ``"erdos-renyi"`` (CatNF's recipe): any pair may become an edge, with
  :math:`p \sim U(0.1, \min(0.3, 0.2\, n_{max} / n))`; graphs that are not 3-colourable are
  rejected in step 3, which for "large" is about 7 graphs in 8 (so about 8 times slower), and
  favours the smaller graphs (31 nodes on average instead of 37.5).

Each graph comes with one colouring, as in CatNF's data (not all of its colourings, nor a
uniform draw of them). The set is a deterministic function of its arguments for a given
OR-Tools version (the solver runs with one worker). Graphs are drawn in chunks of
:data:`CHUNK` graphs, chunk ``c`` from its own random stream, so that the chunks can be drawn
by several processes (``workers``) and the set does not depend on how many there are.

Graphs are stored padded to the size's maximum number of nodes: ``adjacency [G, n_max, n_max]``
(bool, symmetric, no self loops), ``mask [G, n_max]`` (real nodes first), ``colours [G, n_max]``
(long, 0 at padding) and ``num_nodes [G]``.
"""
from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor
from typing import Sequence

import numpy as np
import torch
from torch import Tensor

from catlib.progress import progress_bar
from catlib.validation import check_positive_int

__all__ = ["GraphColouring", "colour_graph", "conflicting_edges", "is_valid_colouring", "GRAPH_SIZES", "CHUNK"]

#: Range of the number of nodes, ``(n_min, n_max)``, of each size.
GRAPH_SIZES = {"small": (10, 20), "large": (25, 50)}
_PLANTED_DEGREE = {"small": (2.0, 3.0), "large": (3.0, 4.0)}
_METHODS = ("planted", "erdos-renyi")
_SPLITS = ("train", "val", "test")
_FORMAT = "catlib.GraphColouring/2"  # 2: drawn in chunks of CHUNK graphs, one random stream each
#: Graphs per random stream (and per task of the worker processes).
CHUNK = 1000


def _what(x) -> str:
    return f"{x.dtype} of shape {list(x.shape)}" if torch.is_tensor(x) else type(x).__name__


def _check_edges(edges, num_nodes: int) -> np.ndarray:
    t = torch.as_tensor(edges).cpu()
    if t.numel() and (t.dim() != 2 or t.shape[1] != 2 or t.is_floating_point() or t.dtype == torch.bool):
        raise ValueError(f"edges must be integer node pairs [E, 2], got {_what(t)}")
    e = t.long().reshape(-1, 2).numpy()
    checks = {f"hold node indices in [0, {num_nodes})": ((e < 0) | (e >= num_nodes)).any(1),
              "not hold self loops (no colouring exists)": e[:, 0] == e[:, 1]}
    for what, bad in checks.items():
        if bad.any():
            row = int(np.argmax(bad))
            raise ValueError(f"edges must {what}, got {tuple(int(v) for v in e[row])} at row {row}")
    return e


def _solve(e: np.ndarray, n: int, k: int, rng: np.random.Generator, presolve: bool = True) -> np.ndarray | None:
    """CP-SAT colouring with a random declaration order, seed and colour names; None if infeasible.

    Presolve pays off when the graph may have no colouring; on planted graphs it only costs time.
    """
    try:
        from ortools.sat.python import cp_model
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError("graph colouring needs OR-Tools: pip install ortools") from err
    model = cp_model.CpModel()
    x: list = [None] * n
    for i in rng.permutation(n):
        x[i] = model.new_int_var(0, k - 1, f"c{i}")
    for i, j in e[rng.permutation(len(e))]:
        model.add(x[i] != x[j])
    solver = cp_model.CpSolver()
    solver.parameters.num_workers = 1  # one worker: the search, hence the data, is deterministic
    solver.parameters.random_seed = int(rng.integers(2 ** 31 - 1))
    solver.parameters.cp_model_presolve = presolve
    status = solver.solve(model)
    if status == cp_model.INFEASIBLE:
        return None
    if status not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        raise RuntimeError(f"CP-SAT could not decide the {k}-colouring of a graph with {n} nodes "
                           f"({solver.status_name(status)})")
    colours = rng.permutation(k)[np.array([solver.value(v) for v in x], dtype=np.int64)]
    if (colours[e[:, 0]] == colours[e[:, 1]]).any():
        raise RuntimeError("CP-SAT returned a colouring with an edge between equal colours")
    return colours


def colour_graph(edges, num_nodes: int, num_colours: int = 3, seed: int = 0) -> Tensor:
    """A proper colouring of a graph, found by OR-Tools CP-SAT: ``LongTensor [num_nodes]``.

    Args:
        edges: ``[E, 2]`` node index pairs (tensor, array or list; either direction, repeats
            allowed).
        num_nodes: number of nodes (isolated nodes need not appear in ``edges``).
        num_colours: colours ``0 .. num_colours - 1``.
        seed: picks among the colourings (declaration order, solver seed, colour names).

    Raises ``ValueError`` if the graph has no such colouring (or a self loop).

    >>> colour_graph([[0, 1], [1, 2], [2, 3], [3, 4], [4, 0]], 5).shape   # a 5-cycle
    torch.Size([5])
    >>> colour_graph([[0, 1], [0, 2], [0, 3], [1, 2], [1, 3], [2, 3]], 4)  # K4
    Traceback (most recent call last):
    ...
    ValueError: the graph (4 nodes, 6 edges) has no proper colouring with 3 colours
    """
    num_nodes = check_positive_int("num_nodes", num_nodes)
    num_colours = check_positive_int("num_colours", num_colours)
    seed = check_positive_int("seed", seed, minimum=0)
    e = _check_edges(edges, num_nodes)
    colours = _solve(e, num_nodes, num_colours, np.random.default_rng(seed))
    if colours is None:
        raise ValueError(f"the graph ({num_nodes} nodes, {len(e)} edges) has no proper colouring "
                         f"with {num_colours} colours")
    return torch.from_numpy(colours)


def _check_batch(colours: Tensor, adjacency: Tensor, mask: Tensor, num_colours: int) -> None:
    if not torch.is_tensor(colours) or colours.dim() != 2 or colours.is_floating_point() or colours.dtype == torch.bool:
        raise ValueError(f"colours must be an integer tensor [B, N], got {_what(colours)}")
    b, n = colours.shape
    if not torch.is_tensor(adjacency) or adjacency.dtype != torch.bool or tuple(adjacency.shape) != (b, n, n):
        raise ValueError(f"adjacency must be a bool tensor [{b}, {n}, {n}], got {_what(adjacency)}")
    if not torch.is_tensor(mask) or mask.dtype != torch.bool or tuple(mask.shape) != (b, n):
        raise ValueError(f"mask must be a bool tensor [{b}, {n}], got {_what(mask)}")
    bad = mask & ((colours < 0) | (colours >= num_colours))
    if bad.any():
        pos = tuple(int(i) for i in bad.nonzero()[0])
        raise ValueError(f"colours must be in [0, {num_colours}) at real nodes, got {int(colours[pos])} "
                         f"at position {pos}")


def conflicting_edges(colours: Tensor, adjacency: Tensor, mask: Tensor, num_colours: int = 3) -> Tensor:
    """Edges between real nodes of equal colour: bool ``[B, N, N]`` (symmetric when ``adjacency`` is).

    Shapes: ``colours [B, N]`` (long), ``adjacency [B, N, N]`` (bool), ``mask [B, N]`` (bool).

    >>> adj = torch.tensor([[[False, True], [True, False]]])
    >>> conflicting_edges(torch.tensor([[1, 1]]), adj, torch.ones(1, 2, dtype=torch.bool)).sum().item()
    2
    """
    _check_batch(colours, adjacency, mask, num_colours)
    real = mask[:, :, None] & mask[:, None, :]
    return adjacency & real & (colours[:, :, None] == colours[:, None, :])


def is_valid_colouring(colours: Tensor, adjacency: Tensor, mask: Tensor, num_colours: int = 3) -> Tensor:
    """``BoolTensor [B]``: True where no edge joins two real nodes of one colour.

    >>> adj = torch.tensor([[[False, True], [True, False]]]).expand(2, 2, 2)
    >>> is_valid_colouring(torch.tensor([[0, 1], [2, 2]]), adj, torch.ones(2, 2, dtype=torch.bool))
    tensor([ True, False])
    """
    return ~conflicting_edges(colours, adjacency, mask, num_colours).flatten(1).any(1)


# --------------------------------------------------------------------------------- generation
def _depth(a: np.ndarray) -> np.ndarray:
    """Breadth-first depth of every node from node 0 (-1 where it cannot be reached)."""
    depth = np.full(len(a), -1)
    depth[0], frontier, k = 0, np.arange(len(a)) == 0, 0
    while frontier.any():
        k += 1
        frontier = a[frontier].any(0) & (depth < 0)
        depth[frontier] = k
    return depth


def _sample_graph(rng: np.random.Generator, size: str, method: str) -> tuple[np.ndarray, np.ndarray]:
    """One accepted graph: ``(adjacency [n, n] bool, colours [n])`` (steps 1-4 of the module docstring)."""
    n_min, n_max = GRAPH_SIZES[size]
    while True:
        n = int(rng.integers(n_min, n_max + 1))
        allowed = ~np.eye(n, dtype=bool)
        if method == "planted":
            part = rng.permutation(n) % 3
            allowed &= part[:, None] != part[None, :]
            p = min(1.0, rng.uniform(*_PLANTED_DEGREE[size]) / (2 * (n - 1) / 3))
        else:
            p = rng.uniform(0.1, min(0.3, 0.2 * n_max / n))
        upper = np.triu((rng.random((n, n)) < p) & allowed, 1)
        a = upper | upper.T
        while not (reached := _depth(a) >= 0).all():
            pairs = np.argwhere(allowed & reached[:, None] & ~reached[None, :])
            i, j = pairs[rng.integers(len(pairs))]
            a[i, j] = a[j, i] = True
        parity = _depth(a) % 2
        if not (a & (parity[:, None] == parity[None, :])).any():  # connected and bipartite: 2 colours suffice
            continue
        colours = _solve(np.argwhere(np.triu(a, 1)), n, 3, rng, presolve=method != "planted")
        if colours is not None:
            return a, colours
        if method == "planted":  # pragma: no cover - a planted graph is 3-colourable
            raise RuntimeError("CP-SAT found no 3-colouring of a planted 3-colourable graph")


def _draw_chunk(streams: list[int], count: int, size: str, method: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``count`` graphs from the random stream ``streams``, padded: ``(adjacency, colours, num_nodes)``."""
    rng = np.random.default_rng(streams)
    n_max = GRAPH_SIZES[size][1]
    adjacency = np.zeros((count, n_max, n_max), dtype=bool)
    colours = np.zeros((count, n_max), dtype=np.int64)
    num_nodes = np.zeros(count, dtype=np.int64)
    for g in range(count):
        a, c = _sample_graph(rng, size, method)
        n = len(c)
        adjacency[g, :n, :n], colours[g, :n], num_nodes[g] = a, c, n
    return adjacency, colours, num_nodes


def _draw_chunks(tasks: list[tuple], workers: int):
    """:func:`_draw_chunk` of every task in order, in this process or in ``workers`` processes."""
    if workers == 1 or len(tasks) == 1:
        yield from (_draw_chunk(*task) for task in tasks)
        return
    with ProcessPoolExecutor(min(workers, len(tasks))) as pool:
        yield from pool.map(_draw_chunk, *zip(*tasks))


class GraphColouring:
    """A seeded set of 3-colourable graphs with one valid colouring each (see the module docstring).

    Args:
        num_graphs: number of graphs.
        size: ``"small"`` (10-20 nodes) or ``"large"`` (25-50 nodes).
        seed: with ``split``, fixes the whole set.
        split: ``"train"``, ``"val"`` or ``"test"``: independent random streams of one seed, so
            the three splits never share a stream whatever their sizes.
        method: ``"planted"`` or ``"erdos-renyi"`` (CatNF's recipe).
        workers: processes drawing the chunks (1: this process); the set is the same for any number.
        progress: show a progress bar over the chunks (sets of more than one chunk only).

    Attributes: ``adjacency [G, n_max, n_max]`` bool, ``mask [G, n_max]`` bool,
    ``colours [G, n_max]`` long (0 at padding), ``num_nodes [G]`` long.

    >>> data = GraphColouring(4, size="small", seed=0)
    >>> len(data), data.adjacency.shape, bool(data.is_valid(data.colours, data.adjacency, data.mask).all())
    (4, torch.Size([4, 20, 20]), True)
    >>> colours, adjacency, mask = data.batch([0, 2])
    >>> colours.shape[1] == int(data.num_nodes[[0, 2]].max()), data.edges(0).shape[1]
    (True, 2)
    """

    num_colours = 3

    def __init__(self, num_graphs: int, size: str = "small", seed: int = 0, split: str = "train",
                 method: str = "planted", workers: int = 1, progress: bool = True):
        num_graphs = check_positive_int("num_graphs", num_graphs)
        seed = check_positive_int("seed", seed, minimum=0)
        workers = check_positive_int("workers", workers)
        for name, value, allowed in (("size", size, tuple(GRAPH_SIZES)), ("split", split, _SPLITS),
                                     ("method", method, _METHODS)):
            if value not in allowed:
                raise ValueError(f"{name} must be one of {list(allowed)}, got {value!r}")
        self.size, self.seed, self.split, self.method = size, seed, split, method
        streams = [seed, _SPLITS.index(split), _METHODS.index(method), list(GRAPH_SIZES).index(size)]
        tasks = [(streams + [c], min(CHUNK, num_graphs - c * CHUNK), size, method)
                 for c in range((num_graphs + CHUNK - 1) // CHUNK)]
        parts = []
        with progress_bar(total=num_graphs, desc=f"{size} graphs ({split})", unit="graph",
                          disable=not progress or len(tasks) == 1) as bar:
            for task, part in zip(tasks, _draw_chunks(tasks, workers)):
                parts.append(part)
                bar.update(task[1])
        n_max = GRAPH_SIZES[size][1]
        self.adjacency = torch.from_numpy(np.concatenate([p[0] for p in parts]))
        self.colours = torch.from_numpy(np.concatenate([p[1] for p in parts]))
        self.num_nodes = torch.from_numpy(np.concatenate([p[2] for p in parts]))
        self.mask = torch.arange(n_max) < self.num_nodes[:, None]

    @classmethod
    def splits(cls, train: int, val: int, test: int, size: str = "small", seed: int = 0,
               method: str = "planted") -> dict[str, "GraphColouring"]:
        """``{"train": ..., "val": ..., "test": ...}``, each from its own stream of ``seed``."""
        return {name: cls(n, size, seed, name, method) for name, n in (("train", train), ("val", val), ("test", test))}

    def __len__(self) -> int:
        return self.num_nodes.shape[0]

    # ----------------------------------------------------------------------------- access
    def batch(self, indices: Sequence[int] | Tensor, permute_colours: bool = False,
              generator: torch.Generator | None = None) -> tuple[Tensor, Tensor, Tensor]:
        """``(colours [B, n], adjacency [B, n, n], mask [B, n])`` with ``n`` the batch's largest graph.

        ``permute_colours=True`` renames the colours of each graph by a random permutation (the
        augmentation CatNF uses for training: a colouring stays valid under any renaming).
        """
        idx = torch.as_tensor(indices, dtype=torch.long).reshape(-1)
        if idx.numel() == 0 or (idx < 0).any() or (idx >= len(self)).any():
            raise ValueError(f"indices must be a non-empty list of graph indices in [0, {len(self)}), "
                             f"got {idx.tolist()[:10]}")
        n = int(self.num_nodes[idx].max())
        colours = self.colours[idx, :n]
        if permute_colours:
            perms = torch.argsort(torch.rand(len(idx), self.num_colours, generator=generator), -1)
            colours = torch.gather(perms, 1, colours)
        mask = self.mask[idx, :n]
        return colours * mask, self.adjacency[idx, :n, :n], mask

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor, Tensor]:
        """One graph without padding: ``(colours [n], adjacency [n, n], mask [n])``."""
        c, a, m = self.batch([index])
        return c[0], a[0], m[0]

    def edges(self, index: int) -> Tensor:
        """``LongTensor [E, 2]`` of graph ``index``'s edges ``(i, j)`` with ``i < j``, for plots."""
        return torch.triu(self[index][1], 1).nonzero()

    @property
    def num_edges(self) -> Tensor:
        """``[G]`` number of edges of each graph."""
        return self.adjacency.sum((1, 2)) // 2

    @property
    def average_degree(self) -> Tensor:
        """``[G]`` average node degree ``2 E / n`` of each graph."""
        return 2 * self.num_edges / self.num_nodes

    is_valid = staticmethod(is_valid_colouring)
    conflicting_edges = staticmethod(conflicting_edges)

    # ----------------------------------------------------------------------------- caching
    def save(self, path: str | os.PathLike) -> None:
        """Write the set to ``path`` with ``torch.save`` (see :meth:`load`); the write is atomic."""
        tmp = f"{os.fspath(path)}.tmp"
        torch.save({"format": _FORMAT, "size": self.size, "seed": self.seed, "split": self.split,
                    "method": self.method, "adjacency": self.adjacency, "colours": self.colours,
                    "num_nodes": self.num_nodes}, tmp)
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "GraphColouring":
        """Read a set written by :meth:`save`; the graphs and colourings are checked again."""
        if not os.path.isfile(path):
            raise FileNotFoundError(f"no graph colouring data at {path}")
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
            if state.get("format") == "catlib.GraphColouring/1":
                raise KeyError("it was written by an older catlib (format 1, one random stream for the whole "
                               "set); delete it and it is generated again")
            if state.get("format") != _FORMAT:
                raise KeyError(f"format {state.get('format')!r}")
            self = cls.__new__(cls)
            self.size, self.seed, self.split, self.method = (state[k] for k in ("size", "seed", "split", "method"))
            self.adjacency, self.colours, self.num_nodes = state["adjacency"], state["colours"], state["num_nodes"]
            self.mask = torch.arange(self.adjacency.shape[1]) < self.num_nodes[:, None]
        except Exception as err:  # torch raises several types for truncated files
            raise ValueError(f"{path} is damaged or not a catlib graph colouring file ({err})") from err
        a = self.adjacency
        pad_ok = not (a & ~(self.mask[:, :, None] & self.mask[:, None, :])).any()
        if not (torch.equal(a, a.transpose(1, 2)) and not a.diagonal(0, 1, 2).any() and pad_ok
                and bool(is_valid_colouring(self.colours, a, self.mask).all())):
            raise ValueError(f"{path} holds inconsistent graphs (asymmetric, self loops, edges to padding "
                             f"or invalid colourings)")
        return self

    @classmethod
    def load_or_generate(cls, path: str | os.PathLike, num_graphs: int, size: str = "small", seed: int = 0,
                         split: str = "train", method: str = "planted", workers: int = 1,
                         progress: bool = True) -> "GraphColouring":
        """:meth:`load` ``path`` if it exists (its settings must match), else generate (with
        ``workers`` processes and a progress bar) and :meth:`save`."""
        if os.path.isfile(path):
            data = cls.load(path)
            found = (len(data), data.size, data.seed, data.split, data.method)
            if found != (num_graphs, size, seed, split, method):
                raise ValueError(f"{path} holds (num_graphs, size, seed, split, method) = {found}, expected "
                                 f"{(num_graphs, size, seed, split, method)}; delete it or use another path")
            return data
        data = cls(num_graphs, size, seed, split, method, workers, progress)
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        data.save(path)
        return data

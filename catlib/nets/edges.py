r"""A network on the pairs of a padded set of nodes: node states and pair (edge) states updating each other.

Molecules carry categories on their nodes (atoms) *and* on every pair of nodes (no bond, single,
double, triple). A flow over the pair latents needs a network that maps pair inputs to pair
outputs and lets every pair see the nodes and, through them, the other pairs. CatNF's molecule
model (Lippe & Gavves, 2020, section 4.3, its "EdgeGNN") alternates two updates; ours, on dense
symmetric pair tensors ``e [B, N, N, H_e]`` and node states ``h [B, N, H_n]``:

1. pairs to nodes: each node gathers every other real node's state, gated by their pair,

   .. math:: h_i \leftarrow h_i + \mathrm{MLP}\Big(\big[\mathrm{LN}(h_i),\
             \tfrac{1}{n - 1}\textstyle\sum_{j \ne i} \sigma(W_g\,\mathrm{LN}(e_{ij}))
             \odot W_v\,\mathrm{LN}(h_j)\big]\Big),

2. nodes to pairs: each pair is updated from its two ends, symmetrically,

   .. math:: e_{ij} \leftarrow e_{ij} + \mathrm{MLP}\big(\big[\mathrm{LN}(e_{ij}),\
             W_a \mathrm{LN}(h_i) + W_a \mathrm{LN}(h_j),\ W_b \mathrm{LN}(h_i) \odot W_b \mathrm{LN}(h_j)\big]\big).

Both updates are sums over nodes or symmetric in :math:`(i, j)`, so the network is equivariant
to permuting the nodes (with their pairs), keeps ``e`` symmetric, and padded nodes never reach a
real one. The sum over :math:`j` runs over all real nodes, bonded or not: which pairs are bonds
is what the flow is modelling.

Helpers turn the upper triangle of a dense pair tensor into a list of pairs and back
(:func:`pair_index`, :func:`to_pairs`, :func:`to_dense`, :func:`pair_mask`).
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from catlib.validation import check_positive_int

__all__ = ["EdgeNet", "complete_graph", "pair_index", "pair_mask", "to_pairs", "to_dense"]


def pair_index(n: int, device: torch.device | str | None = None) -> tuple[Tensor, Tensor]:
    """``(rows, cols)`` of the ``n (n - 1) / 2`` pairs ``i < j``, row by row.

    >>> [t.tolist() for t in pair_index(3)]
    [[0, 0, 1], [1, 2, 2]]
    """
    rows, cols = torch.triu_indices(n, n, 1, device=device)
    return rows, cols


def complete_graph(mask: Tensor) -> Tensor:
    """``[B, N, N]`` bool: every pair of distinct real nodes is joined.

    >>> complete_graph(torch.tensor([[True, True, False]])).int().tolist()
    [[[0, 1, 0], [1, 0, 0], [0, 0, 0]]]
    """
    eye = torch.eye(mask.shape[1], dtype=torch.bool, device=mask.device)
    return mask[:, :, None] & mask[:, None, :] & ~eye


def pair_mask(mask: Tensor) -> Tensor:
    """``[B, P]`` bool: both ends of pair ``p`` are real nodes (``mask [B, N]``).

    >>> pair_mask(torch.tensor([[True, True, False]])).tolist()
    [[True, False, False]]
    """
    rows, cols = pair_index(mask.shape[1], mask.device)
    return mask[:, rows] & mask[:, cols]


def to_pairs(dense: Tensor) -> Tensor:
    """The upper triangle of ``dense [B, N, N, *]`` as ``[B, P, *]`` (pairs ``i < j``, row by row)."""
    rows, cols = pair_index(dense.shape[1], dense.device)
    return dense[:, rows, cols]


def to_dense(pairs: Tensor, n: int) -> Tensor:
    """Symmetric ``[B, N, N, *]`` from ``pairs [B, P, *]``, zero on the diagonal.

    >>> d = to_dense(torch.tensor([[1, 2, 3]]), 3)
    >>> d[0].tolist(), bool(torch.equal(to_pairs(d), torch.tensor([[1, 2, 3]])))
    ([[0, 1, 2], [1, 0, 3], [2, 3, 0]], True)
    """
    rows, cols = pair_index(n, pairs.device)
    if pairs.shape[1] != rows.numel():
        raise ValueError(f"{n} nodes have {rows.numel()} pairs, got a pair tensor of shape {list(pairs.shape)}")
    out = pairs.new_zeros(pairs.shape[0], n, n, *pairs.shape[2:])
    out[:, rows, cols] = pairs
    out[:, cols, rows] = pairs
    return out


class _EdgeLayer(nn.Module):
    def __init__(self, hidden_nodes: int, hidden_edges: int):
        super().__init__()
        self.node_norm, self.edge_norm = nn.LayerNorm(hidden_nodes), nn.LayerNorm(hidden_edges)
        self.gate = nn.Linear(hidden_edges, hidden_nodes)
        self.value = nn.Linear(hidden_nodes, hidden_nodes)
        self.node_mlp = nn.Sequential(nn.Linear(2 * hidden_nodes, hidden_nodes), nn.GELU(),
                                      nn.Linear(hidden_nodes, hidden_nodes))
        self.ends = nn.Linear(hidden_nodes, 2 * hidden_edges)
        self.edge_mlp = nn.Sequential(nn.Linear(3 * hidden_edges, hidden_edges), nn.GELU(),
                                      nn.Linear(hidden_edges, hidden_edges))

    def forward(self, h: Tensor, e: Tensor, pairs: Tensor, others: Tensor) -> tuple[Tensor, Tensor]:
        # pairs [B, N, N, 1]: real i != j; others [B, N, 1]: number of other real nodes (>= 1)
        x, y = self.node_norm(h), self.edge_norm(e)
        gathered = (torch.sigmoid(self.gate(y)) * self.value(x)[:, None] * pairs).sum(2) / others
        h = h + self.node_mlp(torch.cat([x, gathered], -1))
        a, b = self.ends(self.node_norm(h)).chunk(2, -1)
        both = torch.cat([y, a[:, :, None] + a[:, None], b[:, :, None] * b[:, None]], -1)
        return h, e + self.edge_mlp(both)


class EdgeNet(nn.Module):
    """Pair outputs from node and pair inputs (see the module docstring).

    Args:
        node_in, edge_in: input features per node and per pair.
        edge_out: output features per pair.
        hidden_nodes, hidden_edges: widths of the node and pair states.
        layers: number of (pairs to nodes, nodes to pairs) layers.
        zero_init: start the output layer at zero (a coupling on the net starts as the identity).

    ``forward(nodes [B, N, node_in], edges [B, N, N, edge_in] (symmetric), mask [B, N] bool)``
    returns ``[B, N, N, edge_out]``, symmetric, 0 on the diagonal and wherever an end is padded.

    >>> net = EdgeNet(2, 3, 4, hidden_nodes=8, hidden_edges=8, layers=1)
    >>> e = to_dense(torch.randn(1, 3, 3), 3)
    >>> out = net(torch.randn(1, 3, 2), e, torch.tensor([[True, True, False]]))
    >>> out.shape, bool(torch.equal(out, out.transpose(1, 2))), out[0, 2].abs().sum().item()
    (torch.Size([1, 3, 3, 4]), True, 0.0)
    """

    def __init__(self, node_in: int, edge_in: int, edge_out: int, hidden_nodes: int = 64, hidden_edges: int = 64,
                 layers: int = 3, zero_init: bool = False):
        super().__init__()
        self.node_in = check_positive_int("node_in", node_in)
        self.edge_in = check_positive_int("edge_in", edge_in)
        edge_out = check_positive_int("edge_out", edge_out)
        hidden_nodes = check_positive_int("hidden_nodes", hidden_nodes)
        hidden_edges = check_positive_int("hidden_edges", hidden_edges)
        layers = check_positive_int("layers", layers, minimum=0)
        self.embed_nodes = nn.Linear(node_in, hidden_nodes)
        self.embed_edges = nn.Linear(edge_in, hidden_edges)
        self.layers = nn.ModuleList(_EdgeLayer(hidden_nodes, hidden_edges) for _ in range(layers))
        self.norm = nn.LayerNorm(hidden_edges)
        self.out = nn.Linear(hidden_edges, edge_out)
        if zero_init:
            nn.init.zeros_(self.out.weight)
            nn.init.zeros_(self.out.bias)

    def forward(self, nodes: Tensor, edges: Tensor, mask: Tensor) -> Tensor:
        b, n = mask.shape if torch.is_tensor(mask) and mask.dim() == 2 else (-1, -1)
        if not torch.is_tensor(mask) or mask.dtype != torch.bool or mask.dim() != 2:
            raise ValueError(f"mask must be a bool tensor [B, N], got {getattr(mask, 'dtype', type(mask).__name__)} "
                             f"of shape {list(getattr(mask, 'shape', []))}")
        if not torch.is_tensor(nodes) or tuple(nodes.shape) != (b, n, self.node_in) or not nodes.is_floating_point():
            raise ValueError(f"nodes must be a float tensor [{b}, {n}, {self.node_in}], got "
                             f"{list(getattr(nodes, 'shape', []))}")
        if not torch.is_tensor(edges) or tuple(edges.shape) != (b, n, n, self.edge_in) or not edges.is_floating_point():
            raise ValueError(f"edges must be a float tensor [{b}, {n}, {n}, {self.edge_in}], got "
                             f"{list(getattr(edges, 'shape', []))}")
        zero = torch.zeros((), dtype=nodes.dtype, device=nodes.device)
        real = mask.unsqueeze(-1)
        pairs = complete_graph(mask).unsqueeze(-1)
        others = (pairs.sum(2)).clamp(min=1).to(nodes.dtype)
        h = torch.where(real, self.embed_nodes(torch.where(real, nodes, zero)), zero)
        e = torch.where(pairs, self.embed_edges(torch.where(pairs, edges, zero)), zero)
        for layer in self.layers:
            h, e = layer(h, e, pairs, others)
            h, e = torch.where(real, h, zero), torch.where(pairs, e, zero)
        return torch.where(pairs, self.out(self.norm(e)), zero)

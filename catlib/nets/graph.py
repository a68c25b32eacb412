r"""A masked message-passing network on padded batches of graphs (GIN / GraphSAGE style).

Each layer updates every node from itself and the sum and mean of its neighbours,

.. math:: h_i \leftarrow h_i + \mathrm{MLP}\Big(\big[\,\mathrm{LN}(h_i),\ \textstyle\sum_{j \in N(i)}
          \mathrm{LN}(h_j),\ \tfrac{1}{\max(1, |N(i)|)} \sum_{j \in N(i)} \mathrm{LN}(h_j)\,\big]\Big),

with the neighbourhoods :math:`N(i)` read from ``adjacency`` restricted to real nodes. Every
operation is per node or a sum over neighbours, so the network is equivariant to any
permutation of the nodes, and padded nodes never reach a real node. References: Xu et al.
(2019), *How powerful are graph neural networks?* (GIN); Hamilton et al. (2017) (GraphSAGE).
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from catlib.validation import check_positive_int

__all__ = ["GraphNet", "check_graph_batch"]


def check_graph_batch(adjacency: Tensor, mask: Tensor, batch: int | None = None, nodes: int | None = None) -> None:
    """Raise ``ValueError`` unless ``adjacency [B, N, N]`` and ``mask [B, N]`` are bool and agree.

    ``batch`` and ``nodes`` optionally fix ``B`` and ``N`` (from the node tensor they go with).

    >>> check_graph_batch(torch.zeros(2, 3, 3, dtype=torch.bool), torch.ones(2, 3))
    Traceback (most recent call last):
    ...
    ValueError: mask must be a bool tensor [B, N] = [2, 3], got torch.float32 of shape [2, 3]
    """
    if not torch.is_tensor(adjacency) or adjacency.dtype != torch.bool or adjacency.dim() != 3 \
            or adjacency.shape[1] != adjacency.shape[2]:
        raise ValueError(f"adjacency must be a bool tensor [B, N, N], got "
                         f"{getattr(adjacency, 'dtype', type(adjacency).__name__)} of shape "
                         f"{list(getattr(adjacency, 'shape', []))}")
    b, n = adjacency.shape[:2]
    if (batch is not None and batch != b) or (nodes is not None and nodes != n):
        raise ValueError(f"adjacency must have shape [{batch}, {nodes}, {nodes}] to match the node tensor, "
                         f"got {list(adjacency.shape)}")
    if not torch.is_tensor(mask) or mask.dtype != torch.bool or tuple(mask.shape) != (b, n):
        raise ValueError(f"mask must be a bool tensor [B, N] = [{b}, {n}], got "
                         f"{getattr(mask, 'dtype', type(mask).__name__)} of shape {list(getattr(mask, 'shape', []))}")


class _MessageLayer(nn.Module):
    def __init__(self, hidden: int):
        super().__init__()
        self.norm = nn.LayerNorm(hidden)
        self.mlp = nn.Sequential(nn.Linear(3 * hidden, hidden), nn.GELU(), nn.Linear(hidden, hidden))

    def forward(self, h: Tensor, adj: Tensor, degree: Tensor) -> Tensor:
        x = self.norm(h)
        total = adj @ x
        return h + self.mlp(torch.cat([x, total, total / degree.clamp(min=1)], -1))


class GraphNet(nn.Module):
    """Node-wise outputs of a masked message-passing network: ``[B, N, in_dim] -> [B, N, out_dim]``.

    Args:
        in_dim: input features per node.
        out_dim: output features per node.
        hidden: width of the node states.
        layers: number of message-passing layers (each node sees ``layers`` hops).
        zero_init: start the output layer at zero, so that a coupling built on the net starts
            as the identity.

    ``forward(h [B, N, in_dim], adjacency [B, N, N] bool, mask [B, N] bool)``: only edges between
    real nodes (``mask``) carry messages; outputs at padded nodes are 0.

    >>> net = GraphNet(2, 3, hidden=8, layers=2)
    >>> adj = torch.tensor([[[False, True, False], [True, False, False], [False, False, False]]])
    >>> out = net(torch.randn(1, 3, 2), adj, torch.tensor([[True, True, False]]))
    >>> out.shape, out[0, 2].abs().sum().item()
    (torch.Size([1, 3, 3]), 0.0)
    """

    def __init__(self, in_dim: int, out_dim: int, hidden: int = 64, layers: int = 3, zero_init: bool = False):
        super().__init__()
        self.in_dim = check_positive_int("in_dim", in_dim)
        self.out_dim = check_positive_int("out_dim", out_dim)
        hidden = check_positive_int("hidden", hidden)
        layers = check_positive_int("layers", layers, minimum=0)
        self.embed = nn.Linear(in_dim, hidden)
        self.layers = nn.ModuleList(_MessageLayer(hidden) for _ in range(layers))
        self.norm = nn.LayerNorm(hidden)
        self.out = nn.Linear(hidden, out_dim)
        if zero_init:
            nn.init.zeros_(self.out.weight)
            nn.init.zeros_(self.out.bias)

    def forward(self, h: Tensor, adjacency: Tensor, mask: Tensor) -> Tensor:
        if not torch.is_tensor(h) or h.dim() != 3 or h.shape[-1] != self.in_dim or not h.is_floating_point():
            raise ValueError(f"h must be a float tensor [B, N, {self.in_dim}], got "
                             f"{getattr(h, 'dtype', type(h).__name__)} of shape {list(getattr(h, 'shape', []))}")
        check_graph_batch(adjacency, mask, h.shape[0], h.shape[1])
        keep = mask.unsqueeze(-1)
        adj = (adjacency & keep & mask.unsqueeze(-2)).to(h.dtype)
        degree = adj.sum(-1, keepdim=True)
        x = torch.where(keep, self.embed(torch.where(keep, h, torch.zeros((), dtype=h.dtype))),
                        torch.zeros((), dtype=h.dtype))
        for layer in self.layers:
            x = torch.where(keep, layer(x, adj, degree), torch.zeros((), dtype=h.dtype))
        return torch.where(keep, self.out(self.norm(x)), torch.zeros((), dtype=h.dtype))

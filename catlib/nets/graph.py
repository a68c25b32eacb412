r"""Masked graph networks on padded batches of graphs: message passing (GIN / GraphSAGE style) or attention.

A ``"message"`` layer updates every node from itself and the sum and mean of its neighbours,

.. math:: h_i \leftarrow h_i + \mathrm{MLP}\Big(\big[\,\mathrm{LN}(h_i),\ \textstyle\sum_{j \in N(i)}
          \mathrm{LN}(h_j),\ \tfrac{1}{\max(1, |N(i)|)} \sum_{j \in N(i)} \mathrm{LN}(h_j)\,\big]\Big),

with the neighbourhoods :math:`N(i)` read from ``adjacency`` restricted to real nodes. Every
operation is per node or a sum over neighbours, so the network is equivariant to any
permutation of the nodes, and padded nodes never reach a real node. References: Xu et al.
(2019), *How powerful are graph neural networks?* (GIN); Hamilton et al. (2017) (GraphSAGE).

An ``"attention"`` layer (graph attention, Velickovic et al., 2018, in the relational form of
CatNF's graph colouring prior, Lippe & Gavves, 2020) lets each node weigh its neighbours and
itself. With :math:`x = \mathrm{LN}(h)`, per head a query :math:`q_i = W_q x_i`, a message
:math:`m_j = W_e x_j` from a neighbour and :math:`m^{self}_i = W_s x_i` from the node itself,

.. math:: \alpha_{ij} = \operatorname{softmax}_{j \in N(i) \cup \{i\}}
          \mathrm{LeakyReLU}_{0.2}\big(a^\top q_i + b^\top m_j\big),\qquad
          h_i \leftarrow h_i + W_o\, \mathrm{GELU}\Big(\sum_{j \in N(i)} \alpha_{ij} m_j
          + \alpha_{ii} m^{self}_i\Big),

with the heads concatenated before :math:`W_o` (the self term uses :math:`m^{self}_i` in both
places). Sums over neighbours and a softmax over them keep the layer equivariant.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from catlib.validation import check_positive_int

__all__ = ["GraphNet", "GRAPH_LAYERS", "check_graph_batch", "node_degree"]

#: The layer kinds :class:`GraphNet` builds.
GRAPH_LAYERS = ("message", "attention")


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


def node_degree(adjacency: Tensor, mask: Tensor) -> Tensor:
    """Each node's number of neighbours among the real nodes, ``[B, N]`` (long); 0 at padded nodes.

    >>> adj = torch.tensor([[[False, True, True], [True, False, False], [True, False, False]]])
    >>> node_degree(adj, torch.tensor([[True, True, False]]))
    tensor([[1, 1, 0]])
    """
    return (adjacency & mask[:, :, None] & mask[:, None, :]).sum(-1)


class _MessageLayer(nn.Module):
    def __init__(self, hidden: int):
        super().__init__()
        self.norm = nn.LayerNorm(hidden)
        self.mlp = nn.Sequential(nn.Linear(3 * hidden, hidden), nn.GELU(), nn.Linear(hidden, hidden))

    def forward(self, h: Tensor, adj: Tensor, degree: Tensor) -> Tensor:
        x = self.norm(h)
        total = adj @ x
        return h + self.mlp(torch.cat([x, total, total / degree.clamp(min=1)], -1))


class _AttentionLayer(nn.Module):
    def __init__(self, hidden: int, heads: int):
        super().__init__()
        if hidden % heads:
            raise ValueError(f"an attention layer splits hidden={hidden} into heads={heads}: hidden must be a "
                             f"multiple of heads")
        self.heads, self.head_dim = heads, hidden // heads
        self.norm = nn.LayerNorm(hidden)
        self.query = nn.Linear(hidden, hidden)
        self.messages = nn.Linear(hidden, 2 * hidden)  # from a neighbour, from the node itself
        self.score = nn.Parameter(torch.empty(2, heads, self.head_dim))
        nn.init.xavier_uniform_(self.score, gain=1.414)
        self.out = nn.Sequential(nn.GELU(), nn.Linear(hidden, hidden))

    def forward(self, h: Tensor, adj: Tensor, degree: Tensor) -> Tensor:
        b, n, _ = h.shape
        x = self.norm(h)
        q = self.query(x).view(b, n, self.heads, self.head_dim)
        m = self.messages(x).view(b, n, 2, self.heads, self.head_dim)
        recv = (q * self.score[0]).sum(-1)  # [b, n, heads]
        send = (m * self.score[1]).sum(-1)  # [b, n, 2, heads]
        act = nn.functional.leaky_relu
        edge = act(recv[:, :, None] + send[:, None, :, 0], 0.2)  # [b, i, j, heads]
        edge = edge.masked_fill(adj[..., None] == 0, float("-inf"))
        itself = act(recv + send[:, :, 1], 0.2)  # [b, n, heads]
        alpha = torch.softmax(torch.cat([edge, itself[:, :, None]], 2), 2)  # over j and the node itself
        mixed = torch.einsum("bijh,bjhd->bihd", alpha[:, :, :n], m[:, :, 0]) + alpha[:, :, n, :, None] * m[:, :, 1]
        return h + self.out(mixed.reshape(b, n, -1))


class GraphNet(nn.Module):
    """Node-wise outputs of a masked message-passing network: ``[B, N, in_dim] -> [B, N, out_dim]``.

    Args:
        in_dim: input features per node.
        out_dim: output features per node.
        hidden: width of the node states.
        layers: number of message-passing layers (each node sees ``layers`` hops).
        zero_init: start the output layer at zero, so that a coupling built on the net starts
            as the identity.
        kind: ``"message"`` (sums and means of neighbours) or ``"attention"`` (see the module
            docstring).
        heads: attention heads (``hidden`` must be a multiple of it); ``"attention"`` only.

    ``forward(h [B, N, in_dim], adjacency [B, N, N] bool, mask [B, N] bool)``: only edges between
    real nodes (``mask``) carry messages; outputs at padded nodes are 0.

    >>> net = GraphNet(2, 3, hidden=8, layers=2)
    >>> adj = torch.tensor([[[False, True, False], [True, False, False], [False, False, False]]])
    >>> out = net(torch.randn(1, 3, 2), adj, torch.tensor([[True, True, False]]))
    >>> out.shape, out[0, 2].abs().sum().item()
    (torch.Size([1, 3, 3]), 0.0)
    >>> GraphNet(2, 3, hidden=8, layers=1, kind="attention", heads=2)(torch.randn(1, 3, 2), adj,
    ...                                                               torch.tensor([[True, True, False]])).shape
    torch.Size([1, 3, 3])
    """

    def __init__(self, in_dim: int, out_dim: int, hidden: int = 64, layers: int = 3, zero_init: bool = False,
                 kind: str = "message", heads: int = 4):
        super().__init__()
        self.in_dim = check_positive_int("in_dim", in_dim)
        self.out_dim = check_positive_int("out_dim", out_dim)
        hidden = check_positive_int("hidden", hidden)
        layers = check_positive_int("layers", layers, minimum=0)
        if kind not in GRAPH_LAYERS:
            raise ValueError(f"kind must be one of {list(GRAPH_LAYERS)}, got {kind!r}")
        heads = check_positive_int("heads", heads)
        self.embed = nn.Linear(in_dim, hidden)
        make = (lambda: _MessageLayer(hidden)) if kind == "message" else (lambda: _AttentionLayer(hidden, heads))
        self.layers = nn.ModuleList(make() for _ in range(layers))
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

r"""CatNF's autoregressive baseline for graph colouring: colour the nodes one by one, largest first.

Lippe & Gavves (2020, section 5.2) compare their graph prior with an autoregressive model that
colours the nodes of a graph in a fixed order, each colour predicted by a graph network from
the graph and the colours already chosen. The order is *largest first*: by degree, highest
first (ties: lower node index first, so that a graph has one order and the likelihood is exact).
With :math:`\pi` that order and :math:`x_{<t}` the colours of its first :math:`t` nodes,

.. math:: \log P(x \mid G) = \sum_{t=1}^{n} \log p\big(x_{\pi_t} \mid x_{\pi_{<t}}, G\big),

each conditional a softmax over the ``K`` colours read at node :math:`\pi_t` from a
:class:`~catlib.nets.GraphNet` (graph attention, as CatNF's) whose input at every node is the
one-hot of its colour if already chosen, of an extra "not yet" class otherwise, and
:math:`\log(1 + \deg)`. As in CatNF the network is not told which node comes next: it predicts
a colour at every node, and the order decides which prediction counts.

- ``log_prob`` is exact: ``n`` network passes, batched as ``B n`` graphs.
- ``log_prob_estimate`` is what training uses: one uniformly drawn position per graph,
  :math:`n \log p(x_{\pi_t} \mid x_{\pi_{<t}}, G)`, an unbiased estimate of :math:`\log P(x \mid G)`
  at the cost of one pass (CatNF trains on one position per graph too).
- ``sample`` colours the nodes in order, ``n`` passes.

The class has the contract of :class:`catlib.graph_models.GraphColouringModel` that the graph
colouring experiment uses (``log_prob(colours, adjacency, mask, k)``, ``sample``, ``truncated``,
``last_rejection``), so it is trained and evaluated the same way; its "bound" is the exact
likelihood for every ``k``.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from catlib.graph_models import check_colours
from catlib.nets.graph import GraphNet, check_graph_batch, node_degree
from catlib.validation import check_positive_int

__all__ = ["GraphColouringRNN", "largest_first"]


def largest_first(adjacency: Tensor, mask: Tensor) -> Tensor:
    """The largest-first order of each graph's nodes: ``LongTensor [B, N]`` of node indices.

    Real nodes by degree, highest first, ties by lower index; padded nodes last.

    >>> adj = torch.tensor([[[0, 1, 0, 0], [1, 0, 1, 1], [0, 1, 0, 0], [0, 1, 0, 0]]]).bool()
    >>> largest_first(adj, torch.tensor([[True, True, True, False]]))
    tensor([[1, 0, 2, 3]])
    """
    check_graph_batch(adjacency, mask)
    degree = node_degree(adjacency, mask)
    key = torch.where(mask, degree, torch.full_like(degree, -1))
    return torch.argsort(-key, dim=-1, stable=True)


def _reorder(order: Tensor, colours: Tensor, adjacency: Tensor, mask: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Colours, adjacency and mask with the nodes of each graph in ``order`` (real nodes then come first)."""
    rows = order[:, :, None].expand(-1, -1, adjacency.shape[-1])
    a = torch.gather(torch.gather(adjacency, 1, rows), 2, order[:, None, :].expand(-1, adjacency.shape[1], -1))
    return torch.gather(colours, 1, order), a, torch.gather(mask, 1, order)


class GraphColouringRNN(nn.Module):
    """CatNF's autoregressive colouring baseline (see the module docstring).

    Args:
        num_colours: ``K``.
        hidden, gnn_layers: width and depth of the :class:`~catlib.nets.GraphNet`.
        net, heads: its layer kind (``"attention"``, CatNF's, or ``"message"``) and heads.

    Shapes: ``colours [B, N]`` long, ``adjacency [B, N, N]`` bool, ``mask [B, N]`` bool.

    >>> from catlib.data.graphs import GraphColouring
    >>> colours, adjacency, mask = GraphColouring(2, seed=0).batch([0, 1])
    >>> model = GraphColouringRNN(hidden=8, gnn_layers=1, heads=2)
    >>> model.log_prob(colours, adjacency, mask).shape, model.sample(adjacency, mask).shape == colours.shape
    (torch.Size([2]), True)
    """

    name = "rnn-largest-first"
    truncated = False  # every colour sequence is a colouring: nothing to reject

    def __init__(self, num_colours: int = 3, hidden: int = 64, gnn_layers: int = 3, net: str = "attention",
                 heads: int = 4):
        super().__init__()
        self.num_colours = check_positive_int("num_colours", num_colours, minimum=2)
        # input per node: one-hot of colour + 1 (0: not yet coloured), log(1 + degree)
        self.net = GraphNet(num_colours + 2, num_colours, hidden, gnn_layers, kind=net, heads=heads)
        self.last_rejection = None

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def _log_probs(self, colours: Tensor, known: Tensor, adjacency: Tensor, mask: Tensor) -> Tensor:
        """``log p(colour | known colours, G)`` at every node, ``[B, N, K]``; ``known [B, N]`` bool."""
        state = torch.where(known & mask, colours + 1, torch.zeros_like(colours))
        degree = node_degree(adjacency, mask).unsqueeze(-1)
        dtype = next(self.parameters()).dtype
        h = torch.cat([F.one_hot(state, self.num_colours + 1).to(dtype), torch.log1p(degree.to(dtype))], -1)
        return torch.log_softmax(self.net(h, adjacency, mask), -1)

    def _ordered(self, colours: Tensor, adjacency: Tensor, mask: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        colours = check_colours(colours, adjacency, mask, self.num_colours)
        return _reorder(largest_first(adjacency, mask), colours, adjacency, mask)

    def log_prob(self, colours: Tensor, adjacency: Tensor, mask: Tensor, k: int = 1) -> Tensor:
        r"""Exact :math:`\log P(x \mid G)` in nats, ``[B]`` (``k``, the importance samples of the
        latent models' bounds, changes nothing here)."""
        check_positive_int("k", k)
        c, a, m = self._ordered(colours, adjacency, mask)
        b, n = c.shape
        steps = torch.arange(n, device=c.device)
        rep = lambda t: t.repeat_interleave(n, 0)  # noqa: E731  # graph g, step t at row g n + t
        known = (steps[None, :] < steps[:, None]).repeat(b, 1)  # [B n, N]: the first t nodes
        lp = self._log_probs(rep(c), known, rep(a), rep(m))  # [B n, N, K]
        at_step = lp.view(b, n, n, -1).diagonal(0, 1, 2).transpose(1, 2)  # [B, N(step = node), K]
        term = torch.gather(at_step, -1, c.unsqueeze(-1)).squeeze(-1)
        return torch.where(m, term, torch.zeros((), dtype=term.dtype, device=term.device)).sum(-1)

    def log_prob_estimate(self, colours: Tensor, adjacency: Tensor, mask: Tensor,
                          generator: torch.Generator | None = None) -> Tensor:
        r"""Unbiased one-pass estimate of :math:`\log P(x \mid G)`, ``[B]``: ``n`` times one
        conditional at a uniformly drawn step (what training uses)."""
        c, a, m = self._ordered(colours, adjacency, mask)
        n_real = m.sum(-1)
        u = torch.rand(n_real.shape, generator=generator, device=generator.device if generator else c.device)
        t = (u.to(c.device) * n_real).long().clamp(max=c.shape[1] - 1)
        known = torch.arange(c.shape[1], device=c.device)[None, :] < t[:, None]
        lp = self._log_probs(c, known, a, m)
        term = lp[torch.arange(len(t), device=c.device), t].gather(-1, c.gather(1, t[:, None])).squeeze(-1)
        return n_real.to(term.dtype) * term

    @torch.no_grad()
    def sample(self, adjacency: Tensor, mask: Tensor, rejection: bool = True, greedy: bool = False,
               generator: torch.Generator | None = None) -> Tensor:
        """One colouring per graph, ``[B, N]`` long (0 at padded nodes): the nodes coloured in the
        largest-first order, each from its conditional (``greedy``: the most likely colour).
        ``rejection`` is accepted for the common contract and changes nothing."""
        check_graph_batch(adjacency, mask)
        order = largest_first(adjacency, mask)
        zeros = torch.zeros(mask.shape, dtype=torch.long, device=mask.device)
        c, a, m = _reorder(order, zeros, adjacency, mask)
        steps = torch.arange(c.shape[1], device=c.device)
        for t in range(int(m.sum(-1).max())):
            probs = self._log_probs(c, steps[None, :] < t, a, m)[:, t].exp()
            if greedy:
                x = probs.argmax(-1)
            else:
                on_cpu = generator is not None and generator.device.type == "cpu"
                x = torch.multinomial(probs.cpu() if on_cpu else probs, 1, generator=generator).squeeze(-1)
            c[:, t] = torch.where(m[:, t], x.to(c.device), torch.zeros_like(x.to(c.device)))
        return torch.zeros_like(c).scatter(1, order, c)  # back to the graph's own node order

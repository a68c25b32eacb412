r"""Graph-conditioned models of colourings: a categorical layer per node and a :class:`GraphFlow` prior.

A colouring :math:`x \in \{0..K-1\}^n` of a graph :math:`G` with ``n`` nodes is lifted node by
node to latents :math:`z \in \mathbb{R}^{n \times d}` by one of three layers, and the latents are
modelled by the graph-conditioned flow :math:`p(z \mid G)` of :mod:`catlib.flows.graph`:

.. math::
    \log P(x \mid G) \ge \mathbb{E}_{q(z|x)}\Big[\log p(z \mid G)
        + \sum_{i\ \mathrm{real}} \big(\log p(x_i \mid z_i) - \log q(z_i \mid x_i)\big)\Big].

- ``"catnf"``: CatNF's logistic dequantizer with the Bayes-optimal decoder
  (:meth:`catlib.encodings.CategoricalEncoding.catnf`), ``d = latent_dim``;
- ``"trufl"``: TRUFL's truncated dequantizer (:meth:`~catlib.encodings.CategoricalEncoding.trufl`),
  ``d = latent_dim``; sampled with or without rejection sampling (Tan et al., 2022, section 3.2);
- ``"argmax-threshold"``: the argmax surjection with the thresholding inverse
  (:class:`catlib.argmax.ThresholdInverse`), ``d = K`` numbers per node and
  :math:`\log p(x_i \mid z_i) = 0`.

**Padding.** Graphs of a batch are padded to its largest graph (``mask [B, N]`` marks the real
nodes). Every layer here acts on each node on its own, so we apply it to all ``B * N`` nodes
as if each were a one-variable example (the encodings' ``sample_q`` / ``log_q_all`` take any
number of positions; the threshold inverse is built with ``num_vars=1``, a conditional flow on
the ``K`` numbers of one node given its one-hot colour) and drop the padded nodes' terms with
the mask. Padded colours are replaced by 0 before encoding, so whatever a batch holds there
changes nothing; :class:`GraphFlow` ignores padded latents. ``q(z|x)`` therefore does not see
the graph: each node's embedding depends on its own colour only, as in CatNF and TRUFL, where
the graph enters through the prior.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from catlib.encodings import RejectionStats, rejection_sample
from catlib.flows.graph import GraphFlow
from catlib.nets.graph import check_graph_batch
from catlib.position_layers import decode_positions, latent_size, make_position_layer, position_supported, position_terms
from catlib.validation import check_float, check_positive_float, check_positive_int, check_positive_ints

__all__ = ["GraphColouringModel", "GRAPH_MODELS", "bits_per_node", "check_colours"]

#: The model names :class:`GraphColouringModel` accepts.
GRAPH_MODELS = ("catnf", "argmax-threshold", "trufl")


def bits_per_node(log_prob: Tensor, mask: Tensor) -> Tensor:
    """Bits per node of each graph, ``-log_prob / (ln 2 * n_real)``: ``[B]`` from nats ``[B]`` and ``mask [B, N]``.

    >>> float(bits_per_node(torch.tensor([-4 * math.log(2.0)]), torch.tensor([[True, True, False]])))
    2.0
    """
    return -log_prob / (math.log(2.0) * mask.sum(-1).to(log_prob.dtype))


def check_colours(colours: Tensor, adjacency: Tensor, mask: Tensor, num_colours: int) -> Tensor:
    """Raise ``ValueError`` unless ``colours [B, N]`` (long) hold colours ``0 .. num_colours - 1`` at the real
    nodes of a valid graph batch; returns ``colours`` with 0 at padded nodes (whatever they held).

    >>> check_colours(torch.tensor([[2, 7]]), torch.zeros(1, 2, 2, dtype=torch.bool), torch.tensor([[True, False]]), 3)
    tensor([[2, 0]])
    """
    if not torch.is_tensor(colours) or colours.dtype != torch.long or colours.dim() != 2:
        raise ValueError(f"colours must be a LongTensor [B, N] of colour indices, got "
                         f"{getattr(colours, 'dtype', type(colours).__name__)} of shape "
                         f"{list(getattr(colours, 'shape', []))}")
    check_graph_batch(adjacency, mask, *colours.shape)
    bad = mask & ((colours < 0) | (colours >= num_colours))
    if bad.any():
        where = tuple(int(i) for i in bad.nonzero()[0])
        raise ValueError(f"colours must hold colour indices in [0, {num_colours}) at real nodes, "
                         f"got {int(colours[where])} at position {where}")
    return torch.where(mask, colours, torch.zeros_like(colours))


class GraphColouringModel(nn.Module):
    r"""A colouring model :math:`P(x \mid G)` (see the module docstring).

    Args:
        name: ``"catnf"``, ``"trufl"`` or ``"argmax-threshold"``.
        num_colours: ``K``.
        latent_dim: ``d >= 2`` of CatNF and TRUFL (argmax uses ``K`` numbers per node).
        flow_steps, hidden, gnn_layers: size of the :class:`GraphFlow` prior (``hidden`` an integer
            width, ``gnn_layers >= 0``).
        coupling, num_mixtures, net, heads: the prior's couplings (``"affine"``, or CatNF's
            ``"mixture"`` of ``num_mixtures`` logistics) and their graph networks (``"message"``,
            or CatNF's ``"attention"`` with ``heads`` heads), see :class:`GraphFlow`.
        q_flow_steps, q_hidden: size of the threshold inverse's conditional flow ``q(u|x)``.
        init_spread: spread of the encodings' initial class shifts.
        init_truncation, support_temperature: TRUFL's, see :class:`~catlib.encodings.CategoricalEncoding`.
        seed: seeds the layers' initialisation.

    Shapes: ``colours [B, N]`` long, ``adjacency [B, N, N]`` bool, ``mask [B, N]`` bool.

    >>> from catlib.data.graphs import GraphColouring
    >>> colours, adjacency, mask = GraphColouring(2, seed=0).batch([0, 1])
    >>> model = GraphColouringModel("trufl", flow_steps=1, hidden=8, gnn_layers=1)
    >>> model.log_prob(colours, adjacency, mask, k=2).shape, model.sample(adjacency, mask).shape == colours.shape
    (torch.Size([2]), True)
    """

    def __init__(self, name: str, num_colours: int = 3, latent_dim: int = 2, flow_steps: int = 6,
                 hidden: int = 64, gnn_layers: int = 3, q_flow_steps: int = 2, q_hidden: tuple[int, ...] = (64,),
                 init_spread: float = 1.0, init_truncation: float = 2.0, support_temperature: float = 0.0,
                 seed: int = 0, coupling: str = "affine", num_mixtures: int = 8, net: str = "message", heads: int = 4):
        super().__init__()
        if name not in GRAPH_MODELS:
            raise ValueError(f"name must be one of {list(GRAPH_MODELS)}, got {name!r}")
        self.name = name
        self.num_colours = num_colours = check_positive_int("num_colours", num_colours, minimum=2)
        latent_dim = check_positive_int("latent_dim", latent_dim, minimum=2)  # a graph coupling splits d >= 2
        flow_steps = check_positive_int("flow_steps", flow_steps)
        hidden = check_positive_int("hidden", hidden)
        gnn_layers = check_positive_int("gnn_layers", gnn_layers, minimum=0)
        q_flow_steps = check_positive_int("q_flow_steps", q_flow_steps, minimum=0)
        q_hidden = check_positive_ints("q_hidden", q_hidden)
        init_spread = check_positive_float("init_spread", init_spread)
        init_truncation = check_float("init_truncation", init_truncation)
        support_temperature = check_float("support_temperature", support_temperature, 0.0)
        self.layer = make_position_layer(name, num_colours, latent_dim, q_flow_steps, q_hidden, init_spread,
                                         init_truncation, support_temperature, seed)
        d = latent_size(self.layer)
        self.d = d
        self.flow = GraphFlow(d, num_steps=flow_steps, hidden=hidden, gnn_layers=gnn_layers, seed=seed,
                              coupling=coupling, num_mixtures=num_mixtures, net=net, heads=heads)
        self.last_rejection: RejectionStats | None = None

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    @property
    def truncated(self) -> bool:
        """True for TRUFL: some latents decode to no colour, so rejection sampling applies."""
        return self.name == "trufl"

    # --- checks ------------------------------------------------------------------------------
    def _check(self, colours: Tensor, adjacency: Tensor, mask: Tensor) -> Tensor:
        colours = check_colours(colours, adjacency, mask, self.num_colours)  # padded colours: 0, never used
        if not mask.any(-1).all():
            raise ValueError("every graph needs at least one real node (a row of mask is all False)")
        return colours

    # --- q(z|x) and the bound ------------------------------------------------------------------
    def node_terms(self, colours: Tensor, mask: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        r"""One latent per node and its per-node terms, zero at padded nodes
        (:func:`catlib.position_layers.position_terms`).

        Returns ``z [B, N, d]`` from :math:`q(z|x)`, :math:`\log p(x_i|z_i)` ``[B, N]`` and
        :math:`\log q(z_i|x_i)` ``[B, N]``.
        """
        return position_terms(self.layer, colours, mask)

    def log_weights(self, colours: Tensor, adjacency: Tensor, mask: Tensor) -> dict[str, Tensor]:
        r"""One-sample terms of the bound, each ``[B]``: ``log_pz`` :math:`\log p(z|G)`, ``log_px_z``,
        ``log_q`` and ``log_w`` = log_pz + log_px_z - log_q."""
        colours = self._check(colours, adjacency, mask)
        z, log_px_z, log_q = self.node_terms(colours, mask)
        log_pz = self.flow.log_prob(z, adjacency, mask)
        log_px_z, log_q = log_px_z.sum(-1), log_q.sum(-1)
        return {"log_pz": log_pz, "log_px_z": log_px_z, "log_q": log_q, "log_w": log_pz + log_px_z - log_q}

    def log_prob(self, colours: Tensor, adjacency: Tensor, mask: Tensor, k: int = 1) -> Tensor:
        r"""Lower bound on :math:`\log P(x \mid G)` in nats, ``[B]``: the ELBO (``k = 1``) or the
        IWBO with ``k`` importance samples, :math:`\log \frac1k \sum_j w_j`."""
        k = check_positive_int("k", k)
        if k == 1:
            return self.log_weights(colours, adjacency, mask)["log_w"]
        b = colours.shape[0] if torch.is_tensor(colours) and colours.dim() == 2 else 0
        rep = lambda t: t.repeat_interleave(k, 0)  # noqa: E731
        self._check(colours, adjacency, mask)
        log_w = self.log_weights(rep(colours), rep(adjacency), rep(mask))["log_w"].view(b, k)
        return torch.logsumexp(log_w, -1) - math.log(k)

    # --- sampling ------------------------------------------------------------------------------
    def supported(self, z: Tensor, mask: Tensor) -> Tensor:
        """``[B]`` bool: every real node's latent lies in the support of some colour (always True
        for CatNF and argmax)."""
        if not self.truncated:
            return torch.ones(z.shape[0], dtype=torch.bool, device=z.device)
        return self.node_supported(z).logical_or(~mask).all(-1)

    def node_supported(self, z: Tensor) -> Tensor:
        """``[B, N]`` bool: the node's latent lies in some colour's support."""
        return position_supported(self.layer, z)

    @torch.no_grad()
    def decode(self, z: Tensor, mask: Tensor, truncate: bool = True, greedy: bool = False,
               generator: torch.Generator | None = None) -> Tensor:
        """Colours ``[B, N]`` from latents ``z [B, N, d]`` (0 at padded nodes), by
        :func:`catlib.position_layers.decode_positions`: the argmax for argmax thresholding, a
        draw from the optimal decoder (``greedy``: its most likely colour) for CatNF and TRUFL;
        ``truncate=False`` decodes TRUFL with its densities continued outside their supports."""
        return decode_positions(self.layer, z, mask, truncate, greedy, generator)

    @torch.no_grad()
    def sample_latents(self, adjacency: Tensor, mask: Tensor, rejection: bool = True,
                       generator: torch.Generator | None = None, max_rounds: int = 1000
                       ) -> tuple[Tensor, RejectionStats | None]:
        """``z [B, N, d]`` from the prior; for TRUFL with ``rejection`` from the prior truncated to
        the union of supports at every real node (with the :class:`RejectionStats` of the draws)."""
        check_graph_batch(adjacency, mask)
        if not (rejection and self.truncated):
            return self.flow.sample(adjacency, mask, generator=generator), None
        return self._rejection(adjacency, mask, generator, max_rounds)

    def _rejection(self, adjacency: Tensor, mask: Tensor, generator: torch.Generator | None,
                   max_rounds: int) -> tuple[Tensor, RejectionStats]:
        state = {}

        def draw(rows: Tensor) -> Tensor:
            rows = rows.to(mask.device)
            state["mask"] = mask[rows]
            return self.flow.sample(adjacency[rows], state["mask"], generator=generator)

        def accept(z: Tensor) -> Tensor:
            return self.supported(z, state["mask"])

        return rejection_sample(draw, accept, mask.shape[0], max_rounds=max_rounds)

    @torch.no_grad()
    def sample(self, adjacency: Tensor, mask: Tensor, rejection: bool = True, greedy: bool = False,
               generator: torch.Generator | None = None) -> Tensor:
        """One colouring per graph, ``[B, N]`` long (0 at padded nodes).

        TRUFL with ``rejection`` samples the truncated prior and decodes with the truncated
        densities; its :class:`RejectionStats` are kept in ``last_rejection``. TRUFL without
        rejection decodes one prior draw with the untruncated densities (``truncate=False``).
        """
        z, stats = self.sample_latents(adjacency, mask, rejection, generator)
        self.last_rejection = stats
        return self.decode(z, mask, truncate=rejection, greedy=greedy, generator=generator)

    @torch.no_grad()
    def support_rate(self, adjacency: Tensor, mask: Tensor, draws: int = 4,
                     generator: torch.Generator | None = None) -> dict[str, float]:
        """Acceptance of plain prior draws: ``draws`` per graph, no redrawing.

        Returns the graph-level ``rejection_rate`` (a draw is rejected if any real node is
        outside every support), ``log_z`` (the log of the mean acceptance, i.e. of the average
        normaliser :math:`Z(G)` over the graphs), its standard error, and ``node_rejection_rate``.
        """
        rep = lambda t: t.repeat_interleave(draws, 0)  # noqa: E731
        a, m = rep(adjacency), rep(mask)
        z = self.flow.sample(a, m, generator=generator)
        node_ok = self.node_supported(z)
        ok = (node_ok | ~m).all(-1)
        stats = RejectionStats(int(ok.numel()), int(ok.sum()))
        return {"rejection_rate": stats.rejection_rate, "log_z": stats.log_z, "log_z_stderr": stats.log_z_stderr,
                "node_rejection_rate": float((~node_ok & m).sum() / m.sum())}

r"""A graph-conditioned flow prior :math:`p(z \mid G)` over node latents ``z [B, N, d]`` of padded graphs.

CatNF's graph colouring prior (Lippe & Gavves, 2020), in the simple form we use: each node
carries ``d >= 2`` latent numbers; the base is a standard normal at every real node, and each of
``num_steps`` steps applies, from data to latent,

1. a per-channel actnorm shared by all nodes (Glow; initialised on the first training batch to
   zero mean and unit variance over the real nodes, as :class:`catlib.flows.ActNorm`),
2. an invertible ``d x d`` linear map at every node (LU-parametrised, :class:`catlib.flows.LinearLU`),
3. an affine coupling across the channels of every node: half of the channels stay fixed, the
   others are scaled and shifted by a :class:`catlib.nets.GraphNet` that sees the fixed
   channels of *all* nodes and the node features, so nodes exchange information along edges:

.. math:: z_b \leftarrow z_b\, e^{s} + t,\quad (s, t) = \mathrm{GNN}(z_a, \text{features}, G),\quad
          s = 3\tanh(\tilde s / 3),

   with the GNN's last layer at zero, so every coupling starts as the identity;
   or (``coupling="mixture"``, CatNF's choice) a mixture-of-logistics CDF coupling
   (:class:`GraphMixtureCoupling`, Flow++), whose parameters come from the same kind of GNN.

The GNN passes messages (``net="message"``) or attends over neighbours (``net="attention"``,
CatNF's relational graph attention); see :class:`catlib.nets.GraphNet`.

The node features always include :math:`\log(1 + \deg)` computed from ``adjacency``;
``feature_dim > 0`` adds user features ``node_features [B, N, feature_dim]``. Every part acts
per node or through the equivariant GraphNet, so :math:`p(z \mid G)` is invariant to permuting
nodes (with their edges). Padded entries are set to 0 on the way in and out and are ignored by
the log-density: ``log_prob`` sums over real nodes only.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from catlib.flows.autoregressive import mixture_logistic_inverse, mixture_logistic_params, mixture_logistic_transform
from catlib.flows.coupling import checkerboard_mask
from catlib.flows.linear import LinearLU
from catlib.nets.graph import GraphNet, check_graph_batch, node_degree
from catlib.validation import check_positive_int

__all__ = ["GraphFlow", "NodeActNorm", "NodeLinear", "GraphAffineCoupling", "GraphMixtureCoupling", "GRAPH_COUPLINGS"]

#: The coupling layers :class:`GraphFlow` builds.
GRAPH_COUPLINGS = ("affine", "mixture")


def _masked(z: Tensor, mask: Tensor) -> Tensor:
    """``z`` with every padded node set to 0 (NaN or inf there are dropped too)."""
    return torch.where(mask.unsqueeze(-1), z, torch.zeros((), dtype=z.dtype, device=z.device))


class NodeActNorm(nn.Module):
    """Per-channel ``z = (x - b) exp(-log s)`` at every real node; ``ldj = -n_real sum(log s)``."""

    def __init__(self, d: int):
        super().__init__()
        self.shift = nn.Parameter(torch.zeros(d))
        self.log_scale = nn.Parameter(torch.zeros(d))
        self.register_buffer("initialized", torch.tensor(False))

    @torch.no_grad()
    def _initialize(self, x: Tensor, mask: Tensor) -> None:
        real = x[mask]  # [n_real, d]
        if real.shape[0] > 0:
            self.shift.copy_(real.mean(0))
            std = real.std(0) if real.shape[0] > 1 else torch.ones_like(real[0])
            self.log_scale.copy_(torch.log(std.clamp(min=1e-3)))
        self.initialized.fill_(True)

    def forward(self, x: Tensor, adjacency: Tensor, mask: Tensor, features: Tensor) -> tuple[Tensor, Tensor]:
        if self.training and not bool(self.initialized):
            self._initialize(x.detach(), mask)
        z = _masked((x - self.shift) * torch.exp(-self.log_scale), mask)
        return z, -self.log_scale.sum() * mask.sum(-1).to(x.dtype)

    def inverse(self, z: Tensor, adjacency: Tensor, mask: Tensor, features: Tensor) -> Tensor:
        return _masked(z * torch.exp(self.log_scale) + self.shift, mask)


class NodeLinear(nn.Module):
    """The same invertible ``d x d`` map ``z = W x`` at every real node; ``ldj = n_real log|det W|``."""

    def __init__(self, d: int, seed: int = 0):
        super().__init__()
        self.linear = LinearLU(d, seed=seed)

    def forward(self, x: Tensor, adjacency: Tensor, mask: Tensor, features: Tensor) -> tuple[Tensor, Tensor]:
        z = _masked(x @ self.linear.weight().T, mask)
        return z, self.linear.log_s.sum() * mask.sum(-1).to(x.dtype)

    def inverse(self, z: Tensor, adjacency: Tensor, mask: Tensor, features: Tensor) -> Tensor:
        return _masked(torch.linalg.solve(self.linear.weight(), z.reshape(-1, z.shape[-1]).T).T.reshape(z.shape), mask)


class GraphAffineCoupling(nn.Module):
    """Affine coupling across node channels, conditioned through a GraphNet (module docstring, step 3).

    Args:
        d: channels per node (``>= 2``).
        parity: channels ``i`` with ``i % 2 == parity`` stay fixed.
        feature_dim: node features the GraphNet sees besides the fixed channels.
        hidden, gnn_layers, net, heads: the GraphNet's width, depth, kind and attention heads.
    """

    params_per_channel = 2

    def __init__(self, d: int, parity: int = 0, feature_dim: int = 1, hidden: int = 64, gnn_layers: int = 3,
                 net: str = "message", heads: int = 4):
        super().__init__()
        self.register_buffer("fixed", checkerboard_mask(d, parity))
        self._parity = parity if parity in (0, 1) else None  # the mask as a strided slice (no index kernels)
        n_fixed = int(self.fixed.sum())
        self.n_moved = d - n_fixed
        self.net = self._make_net(n_fixed, feature_dim, self.params_per_channel * self.n_moved, hidden, gnn_layers,
                                  net, heads)

    def _make_net(self, n_fixed: int, feature_dim: int, out_dim: int, hidden: int, layers: int, net: str,
                  heads: int) -> nn.Module:
        """The conditioning network, its last layer at zero (a subclass may build another kind)."""
        return GraphNet(n_fixed + feature_dim, out_dim, hidden, layers, zero_init=True, kind=net, heads=heads)

    def _fixed(self, x: Tensor) -> Tensor:
        """``x[..., fixed]``, the channels that stay fixed."""
        return x[..., self.fixed] if self._parity is None else x[..., self._parity::2]

    def _moved(self, x: Tensor) -> Tensor:
        """``x[..., ~fixed]``, the channels the coupling moves."""
        return x[..., ~self.fixed] if self._parity is None else x[..., 1 - self._parity::2]

    def _net_out(self, x: Tensor, adjacency: Tensor, mask: Tensor, features: Tensor) -> Tensor:
        """The GraphNet of the fixed channels and the node features: ``[B, N, params_per_channel * n_moved]``."""
        return self.net(torch.cat([self._fixed(x), features.to(x.dtype)], -1), adjacency, mask)

    def _scale_shift(self, x: Tensor, adjacency: Tensor, mask: Tensor, features: Tensor) -> tuple[Tensor, Tensor]:
        log_s, t = self._net_out(x, adjacency, mask, features).chunk(2, -1)
        return 3.0 * torch.tanh(log_s / 3.0), t  # both 0 at padded nodes (GraphNet output)

    def _merge(self, x: Tensor, moved: Tensor) -> Tensor:
        out = x.clone()
        if self._parity is None:
            out[..., ~self.fixed] = moved
        else:
            out[..., 1 - self._parity::2] = moved
        return out

    def forward(self, x: Tensor, adjacency: Tensor, mask: Tensor, features: Tensor) -> tuple[Tensor, Tensor]:
        log_s, t = self._scale_shift(x, adjacency, mask, features)
        return self._merge(x, self._moved(x) * torch.exp(log_s) + t), log_s.sum((1, 2))

    def inverse(self, z: Tensor, adjacency: Tensor, mask: Tensor, features: Tensor) -> Tensor:
        log_s, t = self._scale_shift(z, adjacency, mask, features)
        return self._merge(z, (self._moved(z) - t) * torch.exp(-log_s))


class GraphMixtureCoupling(GraphAffineCoupling):
    r"""Mixture-of-logistics CDF coupling across node channels (Flow++; CatNF's graph prior).

    Each moved channel goes through
    :math:`z_b = \big(\operatorname{logit} F(x_b) + t\big) e^{a}` with
    :math:`F = \sum_{j=1}^{M} \pi_j \sigma\big((x_b - \mu_j)/s_j\big)`, every parameter a function
    of the fixed channels of all nodes through the GraphNet
    (:func:`catlib.flows.mixture_logistic_params`: learned soft bounds on both log-scales;
    computed in float64). The net's last layer starts at zero, where :math:`F` is one standard
    logistic's CDF and the layer is the identity. The inverse solves :math:`F` by safeguarded
    Newton steps (:func:`catlib.flows.mixture_logistic_inverse`). ``ldj`` sums the elementwise
    log-derivatives over the real nodes.

    Args: as :class:`GraphAffineCoupling`, and ``num_mixtures`` (``M``).

    >>> layer = GraphMixtureCoupling(4, num_mixtures=3, hidden=8, gnn_layers=1)
    >>> x, adj = torch.randn(2, 3, 4), torch.ones(2, 3, 3, dtype=torch.bool)
    >>> mask, feats = torch.ones(2, 3, dtype=torch.bool), torch.zeros(2, 3, 1)
    >>> z, ldj = layer(x, adj, mask, feats)
    >>> bool(torch.allclose(z, x, atol=1e-6)), ldj.shape  # the identity at initialisation
    (True, torch.Size([2]))
    """

    def __init__(self, d: int, parity: int = 0, feature_dim: int = 1, hidden: int = 64, gnn_layers: int = 3,
                 net: str = "message", heads: int = 4, num_mixtures: int = 8):
        self.num_mixtures = check_positive_int("num_mixtures", num_mixtures)
        self.params_per_channel = 2 + 3 * num_mixtures
        super().__init__(d, parity, feature_dim, hidden, gnn_layers, net, heads)
        self.scaling_factor = nn.Parameter(torch.zeros(self.n_moved))
        self.mixture_scaling_factor = nn.Parameter(torch.zeros(self.n_moved, num_mixtures))

    def _params(self, x: Tensor, adjacency: Tensor, mask: Tensor, features: Tensor):
        raw = self._net_out(x, adjacency, mask, features)
        raw = raw.view(*raw.shape[:2], self.n_moved, self.params_per_channel)
        return mixture_logistic_params(raw, self.scaling_factor, self.mixture_scaling_factor)

    def forward(self, x: Tensor, adjacency: Tensor, mask: Tensor, features: Tensor) -> tuple[Tensor, Tensor]:
        p = self._params(x, adjacency, mask, features)
        moved, log_d = mixture_logistic_transform(self._moved(x).double(), p)
        ldj = torch.where(mask.unsqueeze(-1), log_d, torch.zeros((), dtype=log_d.dtype)).sum((1, 2))
        return _masked(self._merge(x, moved.to(x.dtype)), mask), ldj.to(x.dtype)

    def inverse(self, z: Tensor, adjacency: Tensor, mask: Tensor, features: Tensor) -> Tensor:
        p = self._params(z, adjacency, mask, features)
        return _masked(self._merge(z, mixture_logistic_inverse(self._moved(z).double(), p).to(z.dtype)), mask)


class GraphFlow(nn.Module):
    r"""Flow prior over node latents conditioned on the graph (see the module docstring).

    .. math:: \log p(z \mid G) = \sum_{i\ \mathrm{real}} \log \mathcal N(u_i; 0, I_d)
              + \log|\det \partial u / \partial z|, \quad u = f(z; G)

    Args:
        d: latent numbers per node (``>= 2``: a coupling splits the channels of a node).
        num_steps: number of (actnorm, linear, coupling) steps.
        hidden, gnn_layers: width and depth of each coupling's GraphNet.
        feature_dim: size of extra node features ``node_features [B, N, feature_dim]``
            (0: only the degree feature).
        actnorm: include the actnorm layers.
        seed: seeds the initial rotations of the linear layers.
        coupling: ``"affine"`` (:class:`GraphAffineCoupling`) or ``"mixture"``
            (:class:`GraphMixtureCoupling` with ``num_mixtures`` logistics).
        net, heads: the couplings' GraphNet kind (``"message"`` or ``"attention"``) and heads.

    Shapes: ``z, u [B, N, d]``, ``adjacency [B, N, N]`` (bool), ``mask [B, N]`` (bool, real nodes),
    ``ldj``, ``log_prob [B]``.

    >>> flow = GraphFlow(2, num_steps=2, hidden=16, gnn_layers=1)
    >>> adj = torch.tensor([[[False, True, False], [True, False, False], [False, False, False]]])
    >>> mask = torch.tensor([[True, True, False]])
    >>> z = flow.sample(adj, mask, generator=torch.Generator().manual_seed(0))
    >>> z.shape, z[0, 2].abs().sum().item(), flow.log_prob(z, adj, mask).shape
    (torch.Size([1, 3, 2]), 0.0, torch.Size([1]))
    """

    def __init__(self, d: int, num_steps: int = 6, hidden: int = 64, gnn_layers: int = 3, feature_dim: int = 0,
                 actnorm: bool = True, seed: int = 0, coupling: str = "affine", num_mixtures: int = 8,
                 net: str = "message", heads: int = 4):
        super().__init__()
        self.d = check_positive_int("d", d, minimum=2)
        check_positive_int("num_steps", num_steps)
        self.feature_dim = check_positive_int("feature_dim", feature_dim, minimum=0)
        if coupling not in GRAPH_COUPLINGS:
            raise ValueError(f"coupling must be one of {list(GRAPH_COUPLINGS)}, got {coupling!r}")
        net_options = {"net": net, "heads": heads}
        if coupling == "mixture":
            net_options["num_mixtures"] = num_mixtures
        make = GraphAffineCoupling if coupling == "affine" else GraphMixtureCoupling
        steps: list[nn.Module] = []
        for i in range(num_steps):
            if actnorm:
                steps.append(NodeActNorm(d))
            steps.append(NodeLinear(d, seed=seed + i))
            steps.append(make(d, i % 2, feature_dim + 1, hidden, gnn_layers, **net_options))
        self.steps = nn.ModuleList(steps)

    def _prepare(self, z: Tensor, adjacency: Tensor, mask: Tensor, node_features: Tensor | None,
                 name: str) -> tuple[Tensor, Tensor]:
        if not torch.is_tensor(z) or not z.is_floating_point() or z.dim() != 3 or z.shape[-1] != self.d:
            raise ValueError(f"{name} must be a float tensor [B, N, {self.d}], got "
                             f"{getattr(z, 'dtype', type(z).__name__)} of shape {list(getattr(z, 'shape', []))}")
        b, n = z.shape[:2]
        check_graph_batch(adjacency, mask, b, n)
        degree = node_degree(adjacency, mask).unsqueeze(-1)
        features = torch.log1p(degree.to(z.dtype))
        if self.feature_dim:
            if not torch.is_tensor(node_features) or tuple(node_features.shape) != (b, n, self.feature_dim):
                raise ValueError(f"node_features must be a tensor [{b}, {n}, {self.feature_dim}] "
                                 f"(feature_dim={self.feature_dim}), got "
                                 f"{list(node_features.shape) if torch.is_tensor(node_features) else node_features!r}")
            features = torch.cat([features, node_features.to(z.dtype)], -1)
        elif node_features is not None:
            raise ValueError("node_features must be None for a GraphFlow built with feature_dim=0, got a tensor "
                             f"of shape {list(node_features.shape)}")
        return _masked(z, mask), _masked(features, mask)

    def forward(self, z: Tensor, adjacency: Tensor, mask: Tensor,
                node_features: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Data to base: ``(u [B, N, d], ldj [B])``, ``ldj = log|det du/dz|`` over real nodes."""
        x, features = self._prepare(z, adjacency, mask, node_features, "z")
        ldj = torch.zeros(x.shape[0], dtype=x.dtype, device=x.device)
        for step in self.steps:
            x, l = step(x, adjacency, mask, features)
            ldj = ldj + l
        return x, ldj

    def inverse(self, u: Tensor, adjacency: Tensor, mask: Tensor, node_features: Tensor | None = None) -> Tensor:
        """Base to data: ``z [B, N, d]`` (0 at padded nodes)."""
        x, features = self._prepare(u, adjacency, mask, node_features, "u")
        for step in reversed(self.steps):
            x = step.inverse(x, adjacency, mask, features)
        return x

    def log_prob(self, z: Tensor, adjacency: Tensor, mask: Tensor, node_features: Tensor | None = None) -> Tensor:
        """``log p(z | G) [B]`` in nats, a sum over the real nodes (padded entries are ignored)."""
        u, ldj = self(z, adjacency, mask, node_features)
        n_real = mask.sum(-1).to(u.dtype)
        return -0.5 * (u ** 2).sum((1, 2)) - 0.5 * self.d * math.log(2 * math.pi) * n_real + ldj

    @torch.no_grad()
    def sample(self, adjacency: Tensor, mask: Tensor, node_features: Tensor | None = None,
               generator: torch.Generator | None = None) -> Tensor:
        """``z [B, N, d]`` for the given graphs, 0 at padded nodes."""
        check_graph_batch(adjacency, mask)
        p = next(self.parameters())
        device = generator.device if generator is not None else p.device
        u = torch.randn(*mask.shape, self.d, generator=generator, dtype=p.dtype, device=device)
        return self.inverse(u.to(p.device), adjacency, mask, node_features)

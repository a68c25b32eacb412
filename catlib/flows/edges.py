r"""A flow prior over the latents of the pairs of a padded node set, conditioned on the nodes: :math:`p(z_E \mid V)`.

For molecules the bonds are categories on *pairs* of atoms. Each pair ``i < j`` of real nodes
carries ``d >= 2`` latent numbers, listed row by row as ``z [B, P, d]`` with
``P = N (N - 1) / 2`` (:func:`catlib.nets.edges.pair_index`). The flow is :class:`GraphFlow`'s
recipe on pairs instead of nodes: the base is a standard normal at every real pair, and each of
``num_steps`` steps applies, from data to latent,

1. an actnorm per channel shared by all pairs (:class:`~catlib.flows.graph.NodeActNorm` on the
   pair list),
2. the same invertible ``d x d`` linear map at every pair (:class:`~catlib.flows.graph.NodeLinear`),
3. a coupling across the channels of every pair: half of them stay fixed; the others are moved
   by an affine map or (``coupling="mixture"``, CatNF's choice) a mixture-of-logistics CDF
   whose parameters an :class:`~catlib.nets.edges.EdgeNet` computes from the fixed channels of
   *all* pairs and the node features (for molecules, the atom types), so every pair sees the
   whole graph.

Every part acts per pair or through the permutation-equivariant EdgeNet, so
:math:`p(z_E \mid V)` does not change when the nodes are renumbered (with their pairs), and
padded pairs (an end that is not a real node) are set to 0 and left out of ``log_prob``.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from catlib.flows.graph import GRAPH_COUPLINGS, GraphAffineCoupling, GraphMixtureCoupling, NodeActNorm, NodeLinear
from catlib.nets.edges import EdgeNet, pair_index, pair_mask, to_dense, to_pairs
from catlib.validation import check_positive_int

__all__ = ["EdgeFlow", "EdgeAffineCoupling", "EdgeMixtureCoupling"]


class _OnPairs:
    """Couplings of :mod:`catlib.flows.graph` with an EdgeNet: ``(x [B, P, d], node_mask [B, N],
    pair_mask [B, P], node_features [B, N, F])`` take the places of ``(x, adjacency, mask, features)``."""

    def _make_net(self, n_fixed, feature_dim, out_dim, hidden, layers, net, heads) -> nn.Module:
        return EdgeNet(feature_dim, n_fixed, out_dim, hidden_nodes=hidden, hidden_edges=hidden, layers=layers,
                       zero_init=True)

    def _net_out(self, x: Tensor, node_mask: Tensor, pairs: Tensor, features: Tensor) -> Tensor:
        n = node_mask.shape[1]
        dense = to_dense(self._fixed(x), n)
        return to_pairs(self.net(features.to(x.dtype), dense, node_mask))


class EdgeAffineCoupling(_OnPairs, GraphAffineCoupling):
    """Affine coupling across the channels of every pair (module docstring, step 3)."""


class EdgeMixtureCoupling(_OnPairs, GraphMixtureCoupling):
    """Mixture-of-logistics CDF coupling across the channels of every pair (module docstring, step 3)."""


class EdgeFlow(nn.Module):
    r"""Flow prior over pair latents given the nodes (see the module docstring).

    .. math:: \log p(z \mid V) = \sum_{\text{real pairs}} \log \mathcal N(u_p; 0, I_d)
              + \log|\det \partial u / \partial z|, \quad u = f(z; V)

    Args:
        d: latent numbers per pair (``>= 2``).
        node_dim: features per node the couplings see (``node_features [B, N, node_dim]``).
        num_steps: number of (actnorm, linear, coupling) steps.
        hidden, layers: width and depth of each coupling's EdgeNet.
        coupling: ``"affine"`` or ``"mixture"`` (``num_mixtures`` logistics).
        actnorm: include the actnorm layers.
        seed: seeds the initial rotations of the linear layers.

    Shapes: ``z, u [B, P, d]`` with ``P = N (N - 1) / 2``, ``node_features [B, N, node_dim]``,
    ``mask [B, N]`` (bool, real nodes), ``ldj``, ``log_prob [B]``.

    >>> flow = EdgeFlow(2, node_dim=3, num_steps=2, hidden=8, layers=1)
    >>> feats, mask = torch.randn(1, 3, 3), torch.tensor([[True, True, False]])
    >>> z = flow.sample(feats, mask, generator=torch.Generator().manual_seed(0))
    >>> z.shape, z[0, 1:].abs().sum().item(), flow.log_prob(z, feats, mask).shape  # pairs (0, 2), (1, 2) padded
    (torch.Size([1, 3, 2]), 0.0, torch.Size([1]))
    """

    def __init__(self, d: int, node_dim: int, num_steps: int = 6, hidden: int = 64, layers: int = 3,
                 coupling: str = "affine", num_mixtures: int = 8, actnorm: bool = True, seed: int = 0):
        super().__init__()
        self.d = check_positive_int("d", d, minimum=2)
        self.node_dim = check_positive_int("node_dim", node_dim)
        check_positive_int("num_steps", num_steps)
        if coupling not in GRAPH_COUPLINGS:
            raise ValueError(f"coupling must be one of {list(GRAPH_COUPLINGS)}, got {coupling!r}")
        options = {"num_mixtures": num_mixtures} if coupling == "mixture" else {}
        make = EdgeAffineCoupling if coupling == "affine" else EdgeMixtureCoupling
        steps: list[nn.Module] = []
        for i in range(num_steps):
            if actnorm:
                steps.append(NodeActNorm(d))
            steps.append(NodeLinear(d, seed=seed + i))
            steps.append(make(d, i % 2, node_dim, hidden, layers, **options))
        self.steps = nn.ModuleList(steps)

    def _prepare(self, z: Tensor, node_features: Tensor, mask: Tensor, name: str) -> tuple[Tensor, Tensor, Tensor]:
        if not torch.is_tensor(mask) or mask.dtype != torch.bool or mask.dim() != 2:
            raise ValueError(f"mask must be a bool tensor [B, N], got {getattr(mask, 'dtype', type(mask).__name__)} "
                             f"of shape {list(getattr(mask, 'shape', []))}")
        b, n = mask.shape
        p = n * (n - 1) // 2
        if not torch.is_tensor(z) or not z.is_floating_point() or tuple(z.shape) != (b, p, self.d):
            raise ValueError(f"{name} must be a float tensor [B, P, d] = [{b}, {p}, {self.d}] for {n} nodes, got "
                             f"{getattr(z, 'dtype', type(z).__name__)} of shape {list(getattr(z, 'shape', []))}")
        if not torch.is_tensor(node_features) or tuple(node_features.shape) != (b, n, self.node_dim):
            raise ValueError(f"node_features must be a tensor [{b}, {n}, {self.node_dim}], got "
                             f"{list(getattr(node_features, 'shape', []))}")
        pairs = pair_mask(mask)
        zero = torch.zeros((), dtype=z.dtype, device=z.device)
        feats = torch.where(mask.unsqueeze(-1), node_features.to(z.dtype), zero)
        return torch.where(pairs.unsqueeze(-1), z, zero), feats, pairs

    def forward(self, z: Tensor, node_features: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        """Data to base: ``(u [B, P, d], ldj [B])`` over the real pairs."""
        x, feats, pairs = self._prepare(z, node_features, mask, "z")
        ldj = torch.zeros(x.shape[0], dtype=x.dtype, device=x.device)
        for step in self.steps:
            x, l = step(x, mask, pairs, feats)
            ldj = ldj + l
        return x, ldj

    def inverse(self, u: Tensor, node_features: Tensor, mask: Tensor) -> Tensor:
        """Base to data: ``z [B, P, d]`` (0 at padded pairs)."""
        x, feats, pairs = self._prepare(u, node_features, mask, "u")
        for step in reversed(self.steps):
            x = step.inverse(x, mask, pairs, feats)
        return x

    def log_prob(self, z: Tensor, node_features: Tensor, mask: Tensor) -> Tensor:
        """``log p(z | V) [B]`` in nats, a sum over the real pairs."""
        u, ldj = self(z, node_features, mask)
        n_real = pair_mask(mask).sum(-1).to(u.dtype)
        return -0.5 * (u ** 2).sum((1, 2)) - 0.5 * self.d * math.log(2 * math.pi) * n_real + ldj

    @torch.no_grad()
    def sample(self, node_features: Tensor, mask: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """``z [B, P, d]`` for the given nodes, 0 at padded pairs."""
        param = next(self.parameters())
        device = generator.device if generator is not None else param.device
        p = pair_index(mask.shape[1])[0].numel()
        u = torch.randn(mask.shape[0], p, self.d, generator=generator, dtype=param.dtype, device=device)
        return self.inverse(u.to(param.device), node_features, mask)

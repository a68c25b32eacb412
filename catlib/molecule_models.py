r"""Molecule models: atoms first, then bonds given the atoms, with a categorical layer at every atom and pair.

A molecule with ``n`` heavy atoms is a graph with a category on every node (its atom type,
:data:`catlib.data.molecules.ATOM_TYPES`) and on every pair of nodes (no bond, single, double or
triple, :data:`~catlib.data.molecules.BOND_TYPES`). Like CatNF's molecule model (Lippe & Gavves,
2020, section 4.3) we lift both to continuous latents and model them with flows; we split the
joint into the atoms and the bonds given the atoms,

.. math::
    \log P(a, b \mid n) \ge \mathbb{E}_{q}\Big[\log p(z_V \mid n)
        + \sum_{i} \big(\log p(a_i \mid z_i) - \log q(z_i \mid a_i)\big)
        + \log p(z_E \mid a)
        + \sum_{i < j} \big(\log p(b_{ij} \mid z_{ij}) - \log q(z_{ij} \mid b_{ij})\big)\Big],

- the atoms' prior :math:`p(z_V \mid n)` is a :class:`~catlib.flows.graph.GraphFlow` on the
  *complete* graph of the ``n`` atoms (attention over all of them: which atoms are bonded is not
  known yet), and
- the bonds' prior :math:`p(z_E \mid a)` is an :class:`~catlib.flows.edges.EdgeFlow` over the
  ``n (n - 1) / 2`` pairs that sees the atom types (one-hot), so a pair's bond can depend on
  what its two atoms are and, through the EdgeNet, on every other pair.

The categorical layer at every atom and pair is one of :data:`catlib.position_layers.POSITION_LAYERS`
(CatNF, TRUFL, argmax thresholding), the same kind for both. CatNF's own model differs in how
it orders the parts (its flows see the bonds when they transform the atoms, and a separate
decoder tells bonds from non-bonds); the bound above is the one we compute and test.

**Bits per node** are :math:`-\log P(a, b \mid n) / (n \ln 2)` as CatNF reports them: the
number of atoms is modelled apart (:attr:`MoleculeModel.size_log_prob`, the training set's
frequencies, used for sampling) and left out of the bits.

**Sampling** draws ``n`` from the size distribution, atom latents from the atoms' prior,
decodes the atoms, then pair latents given the atoms and decodes the bonds. TRUFL with
``rejection`` redraws each part until every atom (then every pair) lies in some category's
support (TRUFL's Algorithm 2 applied to each prior in turn).
"""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from catlib.encodings import RejectionStats, rejection_sample
from catlib.flows.edges import EdgeFlow
from catlib.flows.graph import GraphFlow
from catlib.nets.edges import complete_graph, pair_mask, to_dense, to_pairs
from catlib.position_layers import (POSITION_LAYERS, decode_positions, latent_size, make_position_layer,
                                    position_supported, position_terms)
from catlib.validation import check_positive_int

__all__ = ["MoleculeModel", "complete_graph", "check_molecules"]


def check_molecules(atoms: Tensor, bonds: Tensor, mask: Tensor, num_atom_types: int,
                    num_bond_types: int) -> tuple[Tensor, Tensor]:
    """Raise ``ValueError`` unless ``atoms [B, N]`` and ``bonds [B, N, N]`` (long) hold valid
    categories at real atoms and pairs, ``bonds`` symmetric with an empty diagonal; returns both
    with 0 at padding (whatever they held)."""
    if not torch.is_tensor(mask) or mask.dtype != torch.bool or mask.dim() != 2:
        raise ValueError(f"mask must be a bool tensor [B, N], got {getattr(mask, 'dtype', type(mask).__name__)} "
                         f"of shape {list(getattr(mask, 'shape', []))}")
    b, n = mask.shape
    for name, t, shape in (("atoms", atoms, (b, n)), ("bonds", bonds, (b, n, n))):
        if not torch.is_tensor(t) or t.dtype != torch.long or tuple(t.shape) != shape:
            raise ValueError(f"{name} must be a LongTensor of shape {list(shape)}, got "
                             f"{getattr(t, 'dtype', type(t).__name__)} of shape {list(getattr(t, 'shape', []))}")
    if not mask.any(-1).all():
        raise ValueError("every molecule needs at least one atom (a row of mask is all False)")
    pairs = complete_graph(mask)
    if (mask & ((atoms < 0) | (atoms >= num_atom_types))).any():
        raise ValueError(f"atoms must hold atom types in [0, {num_atom_types}) at real atoms")
    if (pairs & ((bonds < 0) | (bonds >= num_bond_types))).any():
        raise ValueError(f"bonds must hold bond types in [0, {num_bond_types}) between real atoms")
    if not torch.equal(bonds * pairs, (bonds * pairs).transpose(1, 2)):
        raise ValueError("bonds must be symmetric (bonds[b, i, j] == bonds[b, j, i])")
    return atoms * mask, bonds * pairs


class MoleculeModel(nn.Module):
    r"""A molecule model :math:`P(a, b \mid n)` (see the module docstring).

    Args:
        name: the categorical layer, ``"catnf"``, ``"trufl"`` or ``"argmax-threshold"``.
        num_atom_types, num_bond_types: categories of atoms and of pairs (bond types including
            "no bond" as 0).
        atom_dim, bond_dim: latent numbers per atom and per pair for CatNF and TRUFL (``>= 2``;
            argmax uses one number per category).
        atom_flow_steps, atom_hidden, atom_layers, atom_mixtures: the atoms' prior: its steps, the
            width and depth of its attention networks and the logistics of its couplings.
        bond_flow_steps, bond_hidden, bond_layers, bond_mixtures: the same for the bonds' prior.
        coupling, heads: ``"affine"`` or ``"mixture"`` couplings; the atoms' attention heads.
        q_flow_steps, q_hidden, init_spread, init_truncation, support_temperature: the
            categorical layers' options (:func:`~catlib.position_layers.make_position_layer`).
        size_counts: number of training molecules with ``n`` atoms at index ``n`` (for sampling
            sizes); ``None``: uniform over ``1 .. max_atoms``.
        max_atoms: largest molecule (length of the size distribution is ``max_atoms + 1``).
        seed: seeds the layers' initialisation.

    Shapes: ``atoms [B, N]`` long, ``bonds [B, N, N]`` long, ``mask [B, N]`` bool; bounds ``[B]``.

    >>> from catlib.data.molecules import MoleculeGraphs
    >>> atoms, bonds, mask = MoleculeGraphs.from_smiles(["CCO", "C=CC#N"], progress=False).batch([0, 1])
    >>> model = MoleculeModel("trufl", atom_flow_steps=1, bond_flow_steps=1, atom_hidden=8, bond_hidden=8,
    ...                       atom_layers=1, bond_layers=1, max_atoms=6)
    >>> model.log_prob(atoms, bonds, mask, k=2).shape
    torch.Size([2])
    >>> a, b, m = model.sample(3, generator=torch.Generator().manual_seed(0))
    >>> a.shape[0], b.shape[1:] == (a.shape[1], a.shape[1]), bool(torch.equal(b, b.transpose(1, 2)))
    (3, True, True)
    """

    def __init__(self, name: str, num_atom_types: int = 7, num_bond_types: int = 4, atom_dim: int = 6,
                 bond_dim: int = 2, atom_flow_steps: int = 4, atom_hidden: int = 64, atom_layers: int = 3,
                 atom_mixtures: int = 8, bond_flow_steps: int = 6, bond_hidden: int = 64, bond_layers: int = 3,
                 bond_mixtures: int = 8, coupling: str = "mixture", heads: int = 4,
                 q_flow_steps: int = 2, q_hidden: tuple[int, ...] = (64,), init_spread: float = 1.0,
                 init_truncation: float = 2.0, support_temperature: float = 0.0,
                 size_counts: Tensor | None = None, max_atoms: int = 27, seed: int = 0):
        super().__init__()
        if name not in POSITION_LAYERS:
            raise ValueError(f"name must be one of {list(POSITION_LAYERS)}, got {name!r}")
        self.name = name
        self.num_atom_types = check_positive_int("num_atom_types", num_atom_types, minimum=2)
        self.num_bond_types = check_positive_int("num_bond_types", num_bond_types, minimum=2)
        for label, dim in (("atom_dim", atom_dim), ("bond_dim", bond_dim)):
            check_positive_int(label, dim, minimum=2)  # a coupling splits the channels
        max_atoms = check_positive_int("max_atoms", max_atoms)
        options = dict(q_flow_steps=q_flow_steps, q_hidden=q_hidden, init_spread=init_spread,
                       init_truncation=init_truncation, support_temperature=support_temperature, seed=seed)
        self.atom_layer = make_position_layer(name, num_atom_types, atom_dim, **options)
        self.bond_layer = make_position_layer(name, num_bond_types, bond_dim, **options)
        self.atom_flow = GraphFlow(latent_size(self.atom_layer), atom_flow_steps, atom_hidden, atom_layers, seed=seed,
                                   coupling=coupling, num_mixtures=atom_mixtures, net="attention", heads=heads)
        self.bond_flow = EdgeFlow(latent_size(self.bond_layer), num_atom_types, bond_flow_steps, bond_hidden,
                                  bond_layers, coupling=coupling, num_mixtures=bond_mixtures, seed=seed)
        counts = torch.ones(max_atoms + 1) if size_counts is None else torch.as_tensor(size_counts, dtype=torch.float)
        if counts.dim() != 1 or counts.numel() < 2 or (counts < 0).any() or counts[1:].sum() <= 0:
            raise ValueError("size_counts must be a 1-d tensor of non-negative counts per number of atoms, "
                             "with some molecule of at least one atom")
        counts = counts.clone()
        counts[0] = 0
        #: ``[max_atoms + 1]`` log-frequencies of the numbers of atoms (``-inf`` where none).
        self.register_buffer("size_log_prob", counts.log() - counts.sum().log())
        self.last_rejection: dict[str, RejectionStats | None] = {}

    @property
    def truncated(self) -> bool:
        """True for TRUFL: some latents decode to no category, so rejection sampling applies."""
        return self.name == "trufl"

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def _one_hot(self, atoms: Tensor, mask: Tensor, dtype: torch.dtype) -> Tensor:
        return F.one_hot(atoms, self.num_atom_types).to(dtype) * mask.unsqueeze(-1)

    # --- the bound -----------------------------------------------------------------------------
    def log_weights(self, atoms: Tensor, bonds: Tensor, mask: Tensor) -> dict[str, Tensor]:
        r"""One-sample terms of the bound, each ``[B]``: ``log_p_atoms`` :math:`\log p(z_V|n)`,
        ``log_p_bonds`` :math:`\log p(z_E|a)`, ``log_px_z`` and ``log_q`` (both parts summed) and
        ``log_w``, their total."""
        atoms, bonds = check_molecules(atoms, bonds, mask, self.num_atom_types, self.num_bond_types)
        z_v, px_v, q_v = position_terms(self.atom_layer, atoms, mask)
        log_p_atoms = self.atom_flow.log_prob(z_v, complete_graph(mask), mask)
        pairs = pair_mask(mask)
        z_e, px_e, q_e = position_terms(self.bond_layer, to_pairs(bonds), pairs)
        log_p_bonds = self.bond_flow.log_prob(z_e, self._one_hot(atoms, mask, z_e.dtype), mask)
        log_px_z = px_v.sum(-1) + px_e.sum(-1)
        log_q = q_v.sum(-1) + q_e.sum(-1)
        return {"log_p_atoms": log_p_atoms, "log_p_bonds": log_p_bonds, "log_px_z": log_px_z, "log_q": log_q,
                "log_w": log_p_atoms + log_p_bonds + log_px_z - log_q}

    def log_prob(self, atoms: Tensor, bonds: Tensor, mask: Tensor, k: int = 1) -> Tensor:
        r"""Lower bound on :math:`\log P(a, b \mid n)` in nats, ``[B]``: the ELBO (``k = 1``) or
        the IWBO with ``k`` importance samples."""
        k = check_positive_int("k", k)
        if k == 1:
            return self.log_weights(atoms, bonds, mask)["log_w"]
        check_molecules(atoms, bonds, mask, self.num_atom_types, self.num_bond_types)
        rep = lambda t: t.repeat_interleave(k, 0)  # noqa: E731
        log_w = self.log_weights(rep(atoms), rep(bonds), rep(mask))["log_w"].view(-1, k)
        return torch.logsumexp(log_w, -1) - math.log(k)

    # --- sampling ------------------------------------------------------------------------------
    def _prior_draw(self, draw, layer: nn.Module, mask: Tensor, rejection: bool,
                    max_rounds: int) -> tuple[Tensor, RejectionStats | None]:
        """Latents from ``draw(rows)``; for TRUFL with ``rejection`` redrawn until every real
        position of a row lies in some support."""
        if not (rejection and self.truncated):
            return draw(torch.arange(mask.shape[0])), None

        state = {}

        def draw_rows(rows: Tensor) -> Tensor:
            state["rows"] = rows.to(mask.device)
            return draw(state["rows"])

        def accept(z: Tensor) -> Tensor:
            return (position_supported(layer, z) | ~mask[state["rows"]]).all(-1)

        return rejection_sample(draw_rows, accept, mask.shape[0], max_rounds=max_rounds)

    @torch.no_grad()
    def sample(self, num: int, sizes: Tensor | None = None, rejection: bool = True, greedy: bool = False,
               generator: torch.Generator | None = None, max_rounds: int = 1000) -> tuple[Tensor, Tensor, Tensor]:
        """``num`` molecules: ``(atoms [num, N], bonds [num, N, N], mask [num, N])``, ``N`` the largest size.

        ``sizes [num]`` fixes the numbers of atoms (default: drawn from ``size_log_prob``). TRUFL
        with ``rejection`` keeps the :class:`RejectionStats` of both parts in ``last_rejection``.
        """
        num = check_positive_int("num", num)
        device = self.device
        if sizes is None:
            probs = self.size_log_prob.exp().cpu()
            sizes = torch.multinomial(probs, num, replacement=True,
                                      generator=generator if generator is None or generator.device.type == "cpu" else None)
        sizes = torch.as_tensor(sizes, dtype=torch.long).reshape(-1).cpu()
        if sizes.numel() != num or (sizes < 1).any():
            raise ValueError(f"sizes must hold {num} numbers of atoms >= 1, got {sizes.tolist()[:10]}")
        mask = (torch.arange(int(sizes.max())) < sizes[:, None]).to(device)
        complete = complete_graph(mask)
        z_v, stats_v = self._prior_draw(
            lambda rows: self.atom_flow.sample(complete[rows], mask[rows], generator=generator),
            self.atom_layer, mask, rejection, max_rounds)
        atoms = decode_positions(self.atom_layer, z_v, mask, truncate=rejection, greedy=greedy, generator=generator)
        one_hot = self._one_hot(atoms, mask, z_v.dtype)
        pairs = pair_mask(mask)
        z_e, stats_e = self._prior_draw(
            lambda rows: self.bond_flow.sample(one_hot[rows], mask[rows], generator=generator),
            self.bond_layer, pairs, rejection, max_rounds)
        bonds = decode_positions(self.bond_layer, z_e, pairs, truncate=rejection, greedy=greedy, generator=generator)
        self.last_rejection = {"atoms": stats_v, "bonds": stats_e}
        return atoms, to_dense(bonds, mask.shape[1]), mask

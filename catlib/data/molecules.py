r"""Molecules as graphs: the MOSES benchmark (Polykovskiy et al., 2020) for CatNF's molecule experiment.

A molecule is a graph whose nodes are heavy atoms and whose edges are bonds; hydrogens are left
implicit (RDKit adds them back from the valences). As in CatNF's MOSES setting we use

- node categories :data:`ATOM_TYPES` = C, N, O, F, S, Cl, Br (indices 0-6), and
- edge categories :data:`BOND_TYPES` = none, single, double, triple (indices 0-3) between every
  pair of atoms, in the *kekulized* form: an aromatic ring is written with alternating single
  and double bonds, so that four edge categories describe every molecule of the set.

MOSES holds no charged atoms, no stereochemistry and at most 27 heavy atoms per molecule
(:data:`MAX_ATOMS`), so the graph determines the molecule and ``SMILES -> graph -> SMILES`` is
exact on canonical SMILES (:func:`smiles_to_graph`, :func:`graph_to_smiles`; tested on every
molecule of a sample of the test split).

**Where the data come from.** The MOSES splits ship inside the PyPI wheel ``molsets`` 0.3.1
(``moses/dataset/data/{train,test,test_scaffolds}.csv.gz``: 1,584,663 / 176,074 / 176,226
SMILES). We read the files through :mod:`importlib.metadata`, which finds an installed
distribution's files without importing it: importing ``moses`` itself needs packages with old
pins (``fcd_torch``, ``pomegranate``), so install the wheel without them,
``pip install --no-deps molsets==0.3.1`` (:data:`MOLSETS_INSTALL`).

**Metrics** (:func:`molecule_metrics`), as CatNF computes them for its MOSES row:

- *validity*: the fraction of generated graphs that RDKit sanitises (valences, kekulization)
  and that are connected (one molecule, no "." in the SMILES);
- *validity of sub-graphs*: the same for the largest connected piece of each graph
  (:func:`largest_fragment`), which is how CatNF's "+ sub-graphs" rows are counted;
- *uniqueness*: distinct canonical SMILES among the valid molecules, over the valid molecules;
- *novelty*: the fraction of valid molecules whose canonical SMILES is not in the training set.
  CatNF compares the SMILES of its unsanitised molecule (written in kekulé form) with MOSES's
  aromatic training SMILES, which never match; we compare canonical SMILES on both sides.

Graphs are stored padded to the set's largest molecule: ``atoms [G, n_max]`` (long, 0 at
padding), ``bonds [G, n_max, n_max]`` (uint8, symmetric, 0 on the diagonal and at padding),
``num_atoms [G]`` and ``mask [G, n_max]`` (real atoms first).
"""
from __future__ import annotations

import contextlib
import gzip
import importlib.metadata
import os
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import torch
from torch import Tensor

from catlib.progress import progress_bar
from catlib.validation import check_positive_int

__all__ = ["ATOM_TYPES", "BOND_TYPES", "MAX_ATOMS", "MOSES_SPLITS", "MOLSETS_INSTALL", "RDKIT_INSTALL",
           "moses_smiles", "smiles_to_graph", "graph_to_molecule", "graph_to_smiles", "canonical_smiles",
           "largest_fragment", "graph_faults", "MAX_VALENCE", "molecule_metrics", "MoleculeGraphs", "load_moses"]

#: Node categories: the heavy-atom types of MOSES, in CatNF's order.
ATOM_TYPES = ("C", "N", "O", "F", "S", "Cl", "Br")
#: Edge categories between two atoms (kekulized bond orders).
BOND_TYPES = ("none", "single", "double", "triple")
#: The most bonds each atom type takes without a charge, a double bond counting twice (RDKit's
#: largest default valence: sulphur 6 as in a sulfone, the halogens 1), in the order of :data:`ATOM_TYPES`.
MAX_VALENCE = (4, 3, 2, 1, 6, 1, 1)
#: Largest number of heavy atoms of a MOSES molecule (CatNF's ``max_num_nodes``).
MAX_ATOMS = 27
#: The MOSES splits shipped in the ``molsets`` wheel.
MOSES_SPLITS = ("train", "test", "test_scaffolds")
MOLSETS_INSTALL = "pip install --no-deps molsets==0.3.1"
RDKIT_INSTALL = "pip install rdkit==2026.9.1"
_FORMAT = "catlib.MoleculeGraphs/1"


def _chem():
    """``rdkit.Chem``, or an ImportError that says how to install RDKit."""
    try:
        from rdkit import Chem
    except ImportError as err:
        raise ImportError(f"molecules need RDKit: {RDKIT_INSTALL}") from err
    return Chem


@contextlib.contextmanager
def _quiet_rdkit():
    """Silence RDKit's error log (it prints one line per molecule that fails to sanitise)."""
    from rdkit import RDLogger
    RDLogger.DisableLog("rdApp.*")
    try:
        yield
    finally:
        RDLogger.EnableLog("rdApp.*")


# --------------------------------------------------------------------------------- the MOSES files
def _moses_file(split: str) -> Path:
    if split not in MOSES_SPLITS:
        raise ValueError(f"split must be one of {list(MOSES_SPLITS)}, got {split!r}")
    try:
        files = importlib.metadata.files("molsets") or []
    except importlib.metadata.PackageNotFoundError as err:
        raise ImportError(f"the MOSES data ship in the molsets wheel, which is not installed: "
                          f"{MOLSETS_INSTALL}") from err
    for f in files:
        if str(f).replace("\\", "/").endswith(f"moses/dataset/data/{split}.csv.gz"):
            path = Path(f.locate())
            if path.is_file():
                return path
    raise FileNotFoundError(f"molsets is installed but holds no {split}.csv.gz; reinstall it: {MOLSETS_INSTALL}")


def moses_smiles(split: str = "train") -> list[str]:
    """The SMILES of one MOSES split, in the file's order (its header line dropped).

    >>> smiles = moses_smiles("test")
    >>> len(smiles), smiles[0]
    (176074, 'CC1C2CCC(C2)C1CN(CCO)C(=O)c1ccc(Cl)cc1')
    """
    with gzip.open(_moses_file(split), "rt") as f:
        lines = f.read().split()
    if not lines or lines[0] != "SMILES":
        raise ValueError(f"{split}.csv.gz of molsets does not start with a SMILES header")
    return lines[1:]


# --------------------------------------------------------------------------------- graph <-> molecule
def smiles_to_graph(smiles: str, max_atoms: int = MAX_ATOMS, where: str = "") -> tuple[Tensor, Tensor]:
    """``(atoms [n], bonds [n, n])`` of a SMILES string, kekulized, hydrogens implicit.

    ``atoms`` indexes :data:`ATOM_TYPES`, ``bonds`` :data:`BOND_TYPES` (symmetric, 0 on the
    diagonal). ``where`` (for example ``"line 12 of train.csv.gz"``) is named in the errors.

    >>> atoms, bonds = smiles_to_graph("C=CO")
    >>> atoms.tolist(), bonds.tolist()
    ([0, 0, 2], [[0, 2, 0], [2, 0, 1], [0, 1, 0]])
    >>> smiles_to_graph("c1ccccc1")[1].sum(1).tolist()  # kekulized benzene: each atom has 1 + 2
    [3, 3, 3, 3, 3, 3]
    """
    Chem = _chem()
    at = f" ({where})" if where else ""
    with _quiet_rdkit():
        mol = Chem.MolFromSmiles(smiles) if isinstance(smiles, str) else None
    if mol is None:
        raise ValueError(f"RDKit cannot parse the SMILES {smiles!r}{at}")
    Chem.Kekulize(mol, clearAromaticFlags=True)
    n = mol.GetNumAtoms()
    if n > max_atoms:
        raise ValueError(f"{smiles!r}{at} has {n} heavy atoms, more than max_atoms={max_atoms}")
    atoms = torch.zeros(n, dtype=torch.long)
    for a in mol.GetAtoms():
        if a.GetSymbol() not in ATOM_TYPES:
            raise ValueError(f"atom {a.GetSymbol()!r} of {smiles!r}{at} is not one of the atom types {list(ATOM_TYPES)}")
        if a.GetFormalCharge() != 0:
            raise ValueError(f"atom {a.GetSymbol()}{a.GetFormalCharge():+d} of {smiles!r}{at} is charged; "
                             f"the graphs hold neutral atoms only")
        atoms[a.GetIdx()] = ATOM_TYPES.index(a.GetSymbol())
    bonds = torch.zeros(n, n, dtype=torch.long)
    orders = {Chem.BondType.SINGLE: 1, Chem.BondType.DOUBLE: 2, Chem.BondType.TRIPLE: 3}
    for b in mol.GetBonds():
        if b.GetBondType() not in orders:
            raise ValueError(f"bond {b.GetBondType()} of {smiles!r}{at} is not single, double or triple")
        i, j = b.GetBeginAtomIdx(), b.GetEndAtomIdx()
        bonds[i, j] = bonds[j, i] = orders[b.GetBondType()]
    return atoms, bonds


def _check_graph(atoms: Tensor, bonds: Tensor) -> tuple[np.ndarray, np.ndarray]:
    atoms, bonds = np.asarray(torch.as_tensor(atoms)), np.asarray(torch.as_tensor(bonds))
    n = atoms.shape[0] if atoms.ndim == 1 else -1
    if atoms.ndim != 1 or bonds.shape != (n, n):
        raise ValueError(f"expected atoms [n] and bonds [n, n], got {tuple(atoms.shape)} and {tuple(bonds.shape)}")
    if n and (atoms.min() < 0 or atoms.max() >= len(ATOM_TYPES)):
        raise ValueError(f"atom categories must lie in [0, {len(ATOM_TYPES)}), got {atoms.min()}..{atoms.max()}")
    if n and (bonds.min() < 0 or bonds.max() >= len(BOND_TYPES)):
        raise ValueError(f"bond categories must lie in [0, {len(BOND_TYPES)}), got {bonds.min()}..{bonds.max()}")
    if not (bonds == bonds.T).all() or np.diagonal(bonds).any():
        raise ValueError("bonds must be symmetric with an empty diagonal")
    return atoms, bonds


def graph_to_molecule(atoms: Tensor, bonds: Tensor):
    """An unsanitised RDKit ``RWMol`` with one atom per node and one bond per nonzero edge."""
    Chem = _chem()
    atoms, bonds = _check_graph(atoms, bonds)
    mol = Chem.RWMol()
    for a in atoms:
        mol.AddAtom(Chem.Atom(ATOM_TYPES[int(a)]))
    kinds = (None, Chem.BondType.SINGLE, Chem.BondType.DOUBLE, Chem.BondType.TRIPLE)
    for i, j in zip(*np.nonzero(np.triu(bonds, 1))):
        mol.AddBond(int(i), int(j), kinds[int(bonds[i, j])])
    return mol


def _pieces(bonds: np.ndarray) -> list[list[int]]:
    """The connected pieces of a graph as sorted node lists, in the order of their smallest node."""
    unseen, pieces = set(range(len(bonds))), []
    while unseen:
        stack = [min(unseen)]
        piece = set(stack)
        while stack:
            i = stack.pop()
            for j in np.nonzero(bonds[i])[0].tolist():
                if j not in piece:
                    piece.add(j)
                    stack.append(j)
        unseen -= piece
        pieces.append(sorted(piece))
    return pieces


def largest_fragment(atoms: Tensor, bonds: Tensor) -> tuple[Tensor, Tensor]:
    """The connected piece of the graph with the most atoms (the first such piece on ties).

    >>> bonds = torch.zeros(5, 5, dtype=torch.long)
    >>> bonds[0, 1] = bonds[1, 0] = bonds[2, 3] = bonds[3, 2] = bonds[3, 4] = bonds[4, 3] = 1
    >>> largest_fragment(torch.tensor([0, 0, 1, 0, 2]), bonds)[0].tolist()
    [1, 0, 2]
    """
    _, b = _check_graph(atoms, bonds)
    pieces = _pieces(b)
    best = max(pieces, key=len) if pieces else []
    idx = torch.tensor(best, dtype=torch.long)
    return torch.as_tensor(atoms)[idx], torch.as_tensor(bonds)[idx][:, idx]


def graph_faults(atoms: Tensor, bonds: Tensor) -> dict[str, int]:
    r"""What can keep a graph from being one molecule: ``pieces``, its number of connected pieces
    (a valid molecule has 1), ``over_valence``, the number of atoms whose bond orders sum above
    :data:`MAX_VALENCE` (each makes the graph invalid: RDKit cannot sanitise it), and ``bonds``,
    the number of bonds.

    With :math:`o(b) \in \{0, 1, 2, 3\}` the order of bond category ``b``, atom ``i`` is over its
    valence when :math:`\sum_j o(b_{ij}) > v_{\max}(a_i)`.

    >>> faults = graph_faults(torch.tensor([0, 3, 0]), torch.tensor([[0, 1, 0], [1, 0, 1], [0, 1, 0]]))
    >>> faults  # C-F-C: one piece, but the fluorine carries two bonds
    {'pieces': 1, 'over_valence': 1, 'bonds': 2}
    """
    a, b = _check_graph(atoms, bonds)
    excess = b.sum(1) > np.asarray(MAX_VALENCE)[a] if len(a) else np.zeros(0, dtype=bool)
    return {"pieces": len(_pieces(b)), "over_valence": int(excess.sum()), "bonds": int(np.count_nonzero(np.triu(b, 1)))}


def graph_to_smiles(atoms: Tensor, bonds: Tensor, fragments: bool = False) -> str | None:
    """Canonical SMILES of the molecule the graph describes, or ``None`` if it is not valid.

    Valid means RDKit sanitises it (every valence allowed) and, unless ``fragments=True``, it is
    connected; ``fragments=True`` keeps the largest connected piece first (CatNF's
    "+ sub-graphs").

    >>> graph_to_smiles(*smiles_to_graph("OC=C"))
    'C=CO'
    >>> bonds = torch.tensor([[0, 2], [2, 0]])  # F=F: fluorine takes one bond only
    >>> graph_to_smiles(torch.tensor([3, 3]), bonds) is None
    True
    """
    Chem = _chem()
    if fragments:
        atoms, bonds = largest_fragment(atoms, bonds)
    if len(atoms) == 0:
        return None
    mol = graph_to_molecule(atoms, bonds)
    with _quiet_rdkit():
        try:
            Chem.SanitizeMol(mol)
        except Exception:  # RDKit raises several types (valence, kekulization)
            return None
        again = Chem.MolFromSmiles(Chem.MolToSmiles(mol))
    if again is None:
        return None
    smiles = Chem.MolToSmiles(again)
    return None if "." in smiles else smiles


def canonical_smiles(smiles: str) -> str:
    """RDKit's canonical form of a SMILES string (ValueError if RDKit cannot parse it)."""
    Chem = _chem()
    with _quiet_rdkit():
        mol = Chem.MolFromSmiles(smiles)
    if mol is None:
        raise ValueError(f"RDKit cannot parse the SMILES {smiles!r}")
    return Chem.MolToSmiles(mol)


def molecule_metrics(graphs: Iterable[tuple[Tensor, Tensor]], train_smiles: set[str] | frozenset[str]) -> dict:
    """Validity, validity of sub-graphs, uniqueness and novelty of generated graphs (see the module).

    ``graphs`` yields ``(atoms [n], bonds [n, n])`` without padding; ``train_smiles`` holds the
    canonical SMILES of the training set. Uniqueness and novelty are over the valid molecules
    (``None`` when there are none: a fraction of nothing is undefined, and 0 would read as "all
    duplicates"), for whole graphs and, prefixed ``fragments_``, for the largest pieces.

    >>> benzene = smiles_to_graph("c1ccccc1")
    >>> bad = (torch.tensor([3, 3]), torch.tensor([[0, 2], [2, 0]]))
    >>> two = (torch.tensor([0, 0, 2]), torch.tensor([[0, 1, 0], [1, 0, 0], [0, 0, 0]]))
    >>> m = molecule_metrics([benzene, benzene, bad, two], train_smiles={"c1ccccc1"})
    >>> m["validity"], m["fragments_validity"], m["uniqueness"], m["novelty"], m["fragments_novelty"]
    (0.5, 0.75, 0.5, 0.0, 0.3333333333333333)
    """
    out, count = {}, 0
    whole, pieces = [], []
    for atoms, bonds in graphs:
        whole.append(graph_to_smiles(atoms, bonds))
        pieces.append(graph_to_smiles(atoms, bonds, fragments=True))
        count += 1
    if count == 0:
        raise ValueError("molecule_metrics needs at least one graph")
    for prefix, smiles in (("", whole), ("fragments_", pieces)):
        valid = [s for s in smiles if s is not None]
        out[f"{prefix}validity"] = len(valid) / count
        out[f"{prefix}uniqueness"] = len(set(valid)) / len(valid) if valid else None
        out[f"{prefix}novelty"] = sum(s not in train_smiles for s in valid) / len(valid) if valid else None
    out["count"] = count
    return out


# --------------------------------------------------------------------------------- a padded data set
class MoleculeGraphs:
    """Molecules as padded graphs (see the module docstring), with their canonical SMILES.

    >>> data = MoleculeGraphs.from_smiles(["c1ccccc1", "CCO", "OC(=O)C#N"], progress=False)
    >>> len(data), data.atoms.shape, data.num_atoms.tolist(), data.smiles[1]
    (3, torch.Size([3, 6]), [6, 3, 5], 'CCO')
    >>> atoms, bonds, mask = data.batch([1, 2])
    >>> atoms.shape, bonds.shape, mask.sum(1).tolist()
    (torch.Size([2, 5]), torch.Size([2, 5, 5]), [3, 5])
    >>> data.to_smiles(2)
    'N#CC(=O)O'
    """

    def __init__(self, atoms: Tensor, bonds: Tensor, num_atoms: Tensor, smiles: Sequence[str]):
        self.atoms, self.bonds, self.num_atoms = atoms, bonds, num_atoms
        self.smiles = list(smiles)
        self.mask = torch.arange(atoms.shape[1]) < num_atoms[:, None]
        if not (len(self.smiles) == atoms.shape[0] == bonds.shape[0] == num_atoms.shape[0]):
            raise ValueError("atoms, bonds, num_atoms and smiles must hold the same number of molecules")

    @classmethod
    def from_smiles(cls, smiles: Sequence[str], max_atoms: int = MAX_ATOMS, progress: bool = True,
                    source: str = "", lines: Sequence[int] | None = None) -> "MoleculeGraphs":
        """Convert SMILES strings (with a progress bar). An error names the string and where it
        came from: its line ``lines[i]`` of the file ``source``, else its position ``i``."""
        if len(smiles) == 0:
            raise ValueError("from_smiles needs at least one SMILES string")
        if lines is not None and len(lines) != len(smiles):
            raise ValueError(f"lines holds {len(lines)} numbers for {len(smiles)} SMILES strings")
        graphs, canon = [], []
        Chem = _chem()
        bar = progress_bar(smiles, desc="SMILES -> graphs", unit="mol", disable=not progress, mininterval=1)
        for i, s in enumerate(bar):
            where = f"line {lines[i]} of {source}" if lines is not None else f"item {i}"
            atoms, bonds = smiles_to_graph(s, max_atoms, where=where)
            graphs.append((atoms, bonds))
            canon.append(Chem.MolToSmiles(Chem.MolFromSmiles(s)))
        n_max = max(len(a) for a, _ in graphs)
        atoms = torch.zeros(len(graphs), n_max, dtype=torch.long)
        bonds = torch.zeros(len(graphs), n_max, n_max, dtype=torch.uint8)
        for g, (a, b) in enumerate(graphs):
            atoms[g, :len(a)] = a
            bonds[g, :len(a), :len(a)] = b
        return cls(atoms, bonds, torch.tensor([len(a) for a, _ in graphs]), canon)

    def __len__(self) -> int:
        return self.num_atoms.shape[0]

    def batch(self, indices: Sequence[int] | Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """``(atoms [B, n], bonds [B, n, n] long, mask [B, n])`` with ``n`` the batch's largest molecule."""
        idx = torch.as_tensor(indices, dtype=torch.long).reshape(-1)
        if idx.numel() == 0 or (idx < 0).any() or (idx >= len(self)).any():
            raise ValueError(f"indices must be a non-empty list of molecule indices in [0, {len(self)}), "
                             f"got {idx.tolist()[:10]}")
        n = int(self.num_atoms[idx].max())
        return self.atoms[idx, :n], self.bonds[idx, :n, :n].long(), self.mask[idx, :n]

    def graph(self, index: int) -> tuple[Tensor, Tensor]:
        """``(atoms [n], bonds [n, n])`` of one molecule, without padding."""
        n = int(self.num_atoms[index])
        return self.atoms[index, :n], self.bonds[index, :n, :n].long()

    def to_smiles(self, index: int) -> str | None:
        """Canonical SMILES rebuilt from the graph (equal to ``smiles[index]`` for every MOSES molecule)."""
        return graph_to_smiles(*self.graph(index))

    def save(self, path: str | os.PathLike) -> None:
        """Write the set to ``path`` with ``torch.save`` (atomic); see :meth:`load`."""
        tmp = f"{os.fspath(path)}.tmp"
        torch.save({"format": _FORMAT, "atoms": self.atoms, "bonds": self.bonds, "num_atoms": self.num_atoms,
                    "smiles": self.smiles}, tmp)
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "MoleculeGraphs":
        """Read a set written by :meth:`save` (ValueError if the file is damaged or of another kind)."""
        if not os.path.isfile(path):
            raise FileNotFoundError(f"no molecule data at {path}")
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
            if state.get("format") != _FORMAT:
                raise KeyError(f"format {state.get('format')!r}")
            return cls(state["atoms"], state["bonds"], state["num_atoms"], state["smiles"])
        except Exception as err:  # torch raises several types for truncated files
            raise ValueError(f"{path} is damaged or not a catlib molecule file ({err})") from err


def load_moses(split: str = "train", count: int | None = None, seed: int = 0, data_dir: str | os.PathLike = "data",
               progress: bool = True) -> MoleculeGraphs:
    """One MOSES split as graphs, cached under ``data_dir/moses/``.

    ``count`` molecules drawn without replacement by a permutation seeded with ``seed`` (all of
    the split, in the file's order, if ``None``). The first call converts them (progress bar) and
    writes ``{split}_{count}_seed{seed}.pt`` (``{split}_all.pt`` for the whole split); later
    calls read that file.
    """
    smiles_count = None if count is None else check_positive_int("count", count)
    name = f"{split}_all.pt" if count is None else f"{split}_{count}_seed{check_positive_int('seed', seed, minimum=0)}.pt"
    if split not in MOSES_SPLITS:
        raise ValueError(f"split must be one of {list(MOSES_SPLITS)}, got {split!r}")
    path = Path(data_dir) / "moses" / name
    if path.is_file():
        return MoleculeGraphs.load(path)
    smiles = moses_smiles(split)
    lines = np.arange(len(smiles))
    if smiles_count is not None:
        if smiles_count > len(smiles):
            raise ValueError(f"count={smiles_count} is more than the {len(smiles)} molecules of MOSES's {split} split")
        lines = np.sort(np.random.default_rng(seed).permutation(len(smiles))[:smiles_count])
    data = MoleculeGraphs.from_smiles([smiles[i] for i in lines], progress=progress, source=f"{split}.csv.gz",
                                      lines=(lines + 2).tolist())  # line 1 is the header
    path.parent.mkdir(parents=True, exist_ok=True)
    data.save(path)
    return data

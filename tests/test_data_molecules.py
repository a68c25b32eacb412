"""MOSES molecules as graphs: the round trip SMILES -> graph -> SMILES, the metrics on hand-made
molecules, the cache and the errors on bad input."""
import importlib.metadata

import numpy as np
import pytest
import torch

from catlib.data import molecules
from catlib.data.molecules import (ATOM_TYPES, MoleculeGraphs, canonical_smiles, graph_faults, graph_to_smiles,
                                   largest_fragment, load_moses, molecule_metrics, moses_smiles, smiles_to_graph)


@pytest.fixture(scope="module")
def test_smiles():
    return moses_smiles("test")


def test_round_trip_is_exact_on_a_sample_of_the_test_split(test_smiles):
    picked = torch.randperm(len(test_smiles), generator=torch.Generator().manual_seed(0))[:400].tolist()
    for i in picked:
        s = test_smiles[i]
        atoms, bonds = smiles_to_graph(s, where=f"line {i + 2}")
        assert graph_to_smiles(atoms, bonds) == canonical_smiles(s), s
        assert graph_to_smiles(atoms, bonds, fragments=True) == canonical_smiles(s), s


def test_graph_encodes_kekulized_bonds_and_atom_types():
    atoms, bonds = smiles_to_graph("Clc1ccc(Br)cc1C#N")
    assert [ATOM_TYPES[a] for a in atoms.tolist()] == ["Cl", "C", "C", "C", "C", "Br", "C", "C", "C", "N"]
    assert torch.equal(bonds, bonds.T) and not bonds.diagonal().any()
    ring = bonds[1:8][:, 1:8]
    assert sorted(bonds[bonds > 0].tolist()).count(2) == 2 * 3  # three double bonds in the ring, both directions
    assert bonds[8, 9] == 3 and ring.max() == 2


def test_metrics_on_hand_made_molecules():
    ethanol = smiles_to_graph("CCO")
    pentavalent = (torch.tensor([0, 2, 2, 2, 2, 2]), torch.tensor(  # carbon with five single bonds
        [[0, 1, 1, 1, 1, 1]] + [[1, 0, 0, 0, 0, 0]] * 5))
    disconnected = (torch.tensor([0, 0, 0, 2]), torch.tensor(  # propane plus a lone water: largest piece valid
        [[0, 1, 0, 0], [1, 0, 1, 0], [0, 1, 0, 0], [0, 0, 0, 0]]))
    assert graph_to_smiles(*pentavalent) is None
    assert graph_to_smiles(*disconnected) is None and graph_to_smiles(*disconnected, fragments=True) == "CCC"
    m = molecule_metrics([ethanol, ethanol, pentavalent, disconnected], train_smiles={"CCO"})
    assert m["count"] == 4
    assert m["validity"] == 0.5 and m["uniqueness"] == 0.5 and m["novelty"] == 0.0
    assert m["fragments_validity"] == 0.75 and m["fragments_uniqueness"] == pytest.approx(2 / 3)
    assert m["fragments_novelty"] == pytest.approx(1 / 3)
    nothing = molecule_metrics([pentavalent], train_smiles=set())
    assert nothing["validity"] == 0 and nothing["uniqueness"] is None and nothing["novelty"] is None


def test_graph_faults_count_pieces_and_atoms_over_their_valence(test_smiles):
    for s in test_smiles[:200]:  # real molecules: one piece, no atom over its valence
        assert graph_faults(*smiles_to_graph(s))["pieces"] == 1
        assert graph_faults(*smiles_to_graph(s))["over_valence"] == 0
    sulfone = smiles_to_graph("CS(=O)(=O)C")  # sulphur with six bonds is allowed
    assert graph_faults(*sulfone) == {"pieces": 1, "over_valence": 0, "bonds": 4}
    assert graph_to_smiles(*sulfone) == "CS(C)(=O)=O"
    pentavalent = (torch.tensor([0, 2, 2, 2, 2, 2]), torch.tensor([[0, 1, 1, 1, 1, 1]] + [[1, 0, 0, 0, 0, 0]] * 5))
    assert graph_faults(*pentavalent) == {"pieces": 1, "over_valence": 1, "bonds": 5}
    assert graph_faults(*smiles_to_graph("CC=O.N#N")) == {"pieces": 2, "over_valence": 0, "bonds": 3}
    assert graph_faults(torch.tensor([], dtype=torch.long), torch.zeros(0, 0, dtype=torch.long))["pieces"] == 0
    # any atom over its valence makes a graph invalid, whole and as a largest piece containing it
    gen = torch.Generator().manual_seed(0)
    seen = 0
    for _ in range(300):
        n = int(torch.randint(2, 7, (1,), generator=gen))
        atoms = torch.randint(len(ATOM_TYPES), (n,), generator=gen)
        upper = torch.randint(4, (n, n), generator=gen).triu(1) * (torch.rand(n, n, generator=gen) < 0.4)
        bonds = upper + upper.T
        if graph_faults(atoms, bonds)["over_valence"]:
            seen += 1
            assert graph_to_smiles(atoms, bonds) is None
    assert seen > 50


def test_largest_fragment_keeps_bonds_inside_the_piece():
    atoms, bonds = smiles_to_graph("CC=O.N#N")
    a, b = largest_fragment(atoms, bonds)
    assert a.tolist() == [0, 0, 2] and b.tolist() == [[0, 1, 0], [1, 0, 2], [0, 2, 0]]


def test_bad_inputs_say_what_is_wrong():
    with pytest.raises(ValueError, match=r"cannot parse the SMILES 'C1CC' \(line 7 of x.csv\)"):
        smiles_to_graph("C1CC", where="line 7 of x.csv")
    with pytest.raises(ValueError, match="atom 'P'.*not one of the atom types"):
        smiles_to_graph("CCP")
    with pytest.raises(ValueError, match=r"N\+1 .*charged"):
        smiles_to_graph("C[N+](C)(C)C")
    with pytest.raises(ValueError, match="more than max_atoms=3"):
        smiles_to_graph("CCCC", max_atoms=3)
    with pytest.raises(ValueError, match="symmetric"):
        graph_to_smiles(torch.tensor([0, 0]), torch.tensor([[0, 1], [0, 0]]))
    with pytest.raises(ValueError, match=r"atom categories must lie in \[0, 7\)"):
        graph_to_smiles(torch.tensor([0, 9]), torch.tensor([[0, 1], [1, 0]]))
    with pytest.raises(ValueError, match=r"line 3 of s.csv"):
        MoleculeGraphs.from_smiles(["CC", "C(C"], progress=False, source="s.csv", lines=[2, 3])
    with pytest.raises(ValueError, match="split must be one of"):
        moses_smiles("valid")
    with pytest.raises(ValueError, match="more than the 176074 molecules"):
        load_moses("test", count=200_000)


def test_missing_molsets_says_how_to_install_it(monkeypatch):
    def missing(name):
        raise importlib.metadata.PackageNotFoundError(name)
    monkeypatch.setattr(molecules.importlib.metadata, "files", missing)
    with pytest.raises(ImportError, match=r"pip install --no-deps molsets==0\.3\.1"):
        moses_smiles("train")


def test_load_moses_caches_a_seeded_sample(tmp_path, test_smiles):
    data = load_moses("test", count=50, seed=3, data_dir=tmp_path, progress=False)
    again = load_moses("test", count=50, seed=3, data_dir=tmp_path, progress=False)
    assert (tmp_path / "moses" / "test_50_seed3.pt").is_file()
    assert torch.equal(data.atoms, again.atoms) and torch.equal(data.bonds, again.bonds) and data.smiles == again.smiles
    lines = np.sort(np.random.default_rng(3).permutation(len(test_smiles))[:50])  # the documented sample
    assert data.smiles == [canonical_smiles(test_smiles[i]) for i in lines]
    assert all(data.to_smiles(i) == data.smiles[i] for i in range(len(data)))
    other = load_moses("test", count=50, seed=4, data_dir=tmp_path, progress=False)
    assert other.smiles != data.smiles
    atoms, bonds, mask = data.batch(range(len(data)))
    assert not (bonds * ~(mask[:, :, None] & mask[:, None, :])).any() and not (atoms * ~mask).any()
    (tmp_path / "moses" / "test_50_seed3.pt").write_bytes(b"not a torch file")
    with pytest.raises(ValueError, match="damaged or not a catlib molecule file"):
        load_moses("test", count=50, seed=3, data_dir=tmp_path)

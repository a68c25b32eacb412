"""The molecule experiment at the smoke profile: rows, metrics, checkpoints, the paper profile."""
import pytest
import torch

from catlib.experiments import check_profile, paper_mismatches
from catlib.experiments import molecules as exp
from catlib.molecule_models import MoleculeModel


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    root = tmp_path_factory.mktemp("molecules")
    rows = exp.run_molecules("smoke", root / "ck", root / "data", progress=False)
    return root, rows


def test_smoke_rows_hold_every_metric_in_range(smoke):
    _, rows = smoke
    assert [r["key"] for r in rows] == ["argmax-threshold", "catnf", "trufl", "trufl-rs"]
    for r in rows:
        assert 0 < r["elbo_bpn"] < 100 and r["iwbo_bpn"] <= r["elbo_bpn"] + 0.5
        assert r["steps"] == exp.PROFILES["smoke"].steps and r["curve"][-1]["step"] == r["steps"]
        if r.get("failed"):  # 40 steps can leave TRUFL's prior with almost no mass inside the supports
            assert r["key"] == "trufl-rs" and "rejection sampling" in r["failed"] and r["validity"] is None
            continue
        for key in ("validity", "uniqueness", "novelty", "fragments_validity", "fragments_uniqueness",
                    "fragments_novelty"):
            if r[key] is None:  # uniqueness and novelty of no valid molecule are undefined
                assert key.endswith(("uniqueness", "novelty")), (r["key"], key)
                assert r[key.replace("uniqueness", "validity").replace("novelty", "validity")] == 0
                continue
            assert 0 <= r[key] <= 1, (r["key"], key)
        assert r["fragments_validity"] >= r["validity"]  # a valid molecule is its own largest piece
        assert len(r["smiles"]) == exp.PROFILES["smoke"].samples
    assert rows[-1]["paper"]["validity"] == 0.8501 and rows[1]["paper"]["fragments_validity"] == 0.9635


def test_rejection_sampling_draws_until_every_atom_and_pair_is_supported(smoke):
    root, _ = smoke
    config = exp.PROFILES["smoke"]
    data = exp.load_data(config, root / "data", progress=False)
    torch.manual_seed(0)
    model = exp.build("trufl", config, data["train"]).eval()  # untrained: about 9 draws in 10 accepted
    out = exp.evaluate_samples(model, 32, frozenset(), rejection=True, per_batch=16)
    assert "failed" not in out and out["accepted"] == 64 and out["drawn"] >= 64  # atoms and bonds of 32
    assert out["novelty"] == 1.0 or out["validity"] == 0  # nothing is in an empty training set
    narrow = MoleculeModel("trufl", atom_flow_steps=1, bond_flow_steps=1, atom_hidden=8, bond_hidden=8,
                           atom_layers=1, bond_layers=1, init_truncation=-6.0).eval()  # supports: 0.25% each
    failed = exp.evaluate_samples(narrow, 8, frozenset(), rejection=True, max_rounds=2)
    assert set(failed) == {"count", "failed"} and "still rejected after 2 rounds" in failed["failed"]


def test_finished_runs_are_read_back_not_retrained(smoke, monkeypatch):
    root, rows = smoke
    monkeypatch.setattr(exp, "fit", lambda *a, **k: pytest.fail("a finished run was trained again"))
    again = exp.run_molecules("smoke", root / "ck", root / "data", progress=False, names=["catnf"])
    assert again[0]["elbo_bpn"] == rows[1]["elbo_bpn"] and again[0]["validity"] == rows[1]["validity"]
    model = exp.load_model("catnf", "smoke", exp.load_data(exp.PROFILES["smoke"], root / "data", progress=False),
                           root / "ck")
    assert not model.training and model.name == "catnf"


def test_paper_profile_is_catnf_moses_setting_and_cpu_is_a_smaller_run_of_the_same_recipe():
    paper = exp.PROFILES["paper"]
    assert paper_mismatches(exp.PAPER_SETTINGS, paper) == []
    assert (paper.steps, paper.batch_size, paper.lr, paper.model["atom_dim"], paper.model["bond_dim"]) == \
        (150_000, 96, 5e-4, 6, 2)
    cpu = check_profile("cpu", exp.PROFILES)
    assert (cpu.optimizer, cpu.lr, cpu.lr_decay, cpu.grad_clip) == (paper.optimizer, paper.lr, paper.lr_decay,
                                                                     paper.grad_clip)
    assert cpu.steps * cpu.batch_size < paper.steps * paper.batch_size and cpu.train_size < 1_584_663
    assert set(cpu.model) == set(paper.model)
    with pytest.raises(ValueError, match="unknown model"):
        exp.run_molecules("smoke", None, names=["gumbel"])

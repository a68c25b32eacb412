"""The Table 4 runner: every row, finite bounds, metrics reused from checkpoints, the paper's constants."""
import dataclasses
import math

import pytest

from catlib.experiments import cityscapes as experiment

TINY = dataclasses.replace(
    experiment.PROFILES["smoke"], size=(16, 32), stand_in_sizes=(16, 4, 4),
    training={"steps": 2, "batch_size": 8, "lr": 1e-3, "warmup": 1},
    diffusion_training={"steps": 2, "batch_size": 8, "lr": 1e-3, "warmup": 1},
    models={**experiment.PROFILES["smoke"].models,
            "multinomial-diffusion": {"timesteps": 4, "channels": 8, "channel_mults": (1, 2)}},
    test_size=4, iwbo_size=2, iwbo_k=2, diffusion_test_size=2, eval_batch=4, num_samples=2)


def test_tiny_run_gives_every_row_and_reuses_checkpoints(tmp_path, monkeypatch):
    monkeypatch.setitem(experiment.PROFILES, "smoke", TINY)
    rows = experiment.run_cityscapes("smoke", tmp_path, data_dir=tmp_path / "none", progress=False)
    assert [r["name"] for r in rows] == list(experiment.NAMES)
    for r in rows:
        assert r["stand_in"] and "not Cityscapes" in r["data"]
        assert math.isfinite(r["elbo_bpp"]) and r["elbo_bpp"] > 0
        assert (r["iwbo_bpp"] is None) == (r["name"] == "multinomial-diffusion")
        assert len(r["samples"]) == 2 and len(r["samples"][0]) == 16 and len(r["samples"][0][0]) == 32
    again = experiment.run_cityscapes("smoke", tmp_path, names=["argmax-gumbel", "multinomial-diffusion"],
                                      train=False, progress=False)
    by = {r["name"]: r for r in rows}
    assert [r["elbo_bpp"] for r in again] == [by["argmax-gumbel"]["elbo_bpp"], by["multinomial-diffusion"]["elbo_bpp"]]
    assert [r["train_seconds"] for r in again] == [by[r["name"]]["train_seconds"] for r in again]  # read, not retrained
    out = experiment.results_rows(rows, "smoke")
    assert all(r["paper"] is None and "stand-in, not Cityscapes" in r["metric"] for r in out if r["ours"] is not None)
    assert {r["paper"] for r in out if r["ours"] is None} >= {1.010, 0.930, 0.303, 0.287, 0.305}
    assert all(r["status"] == ("smoke" if r["ours"] is not None else "not run") for r in out)
    cpu = experiment.results_rows(rows, "cpu")
    assert {r["status"] for r in cpu if r["ours"] is None} == {"not run"}
    assert {r["status"] for r in cpu if r["ours"] is not None} == {"different data"}
    assert [r["budget_ratio"] for r in cpu if r["ours"] is not None and "diffusion" in r["method"]] == [
        experiment.run_budget_ratio(TINY, "multinomial-diffusion")]
    model = experiment.load_model("argmax-threshold", "smoke", tmp_path)
    assert model.sample(1).shape == (1, 16, 32)


def test_paper_profile_matches_the_paper():
    assert [(n, e, i) for n, _, e, i in experiment.TABLE4] == [
        ("uniform-dequantization", 1.010, 0.930), ("variational-dequantization", 0.334, 0.315),
        ("argmax-threshold", 0.303, 0.290), ("argmax-gumbel", 0.365, 0.341),
        ("argmax-gumbel-threshold", 0.307, 0.287), ("multinomial-diffusion", 0.305, None)]
    assert experiment.PAPER_DIFFUSION_FIXED == 0.304
    full = experiment.PROFILES["paper"]
    assert full.data == "real" and full.size == (32, 64) and full.iwbo_k == 1000
    assert full.test_size is None and full.iwbo_size is None and full.diffusion_test_size is None
    diffusion = full.options("multinomial-diffusion")
    assert diffusion["timesteps"] == 4000 and diffusion["channels"] == 64
    assert diffusion["channel_mults"] == (1, 2, 4, 8) and diffusion["dropout"] == 0.1
    d = full.diffusion_training
    assert (d["batch_size"], d["lr"], d["epochs"]) == (64, 1e-4, 500)
    assert d["steps"] == 500 * math.ceil(2500 / 64)
    assert full.estimate is True
    assert "model" not in full.options("multinomial-diffusion") and full.options("argmax-gumbel")["flow_steps"] == 8


def test_missing_data_gives_the_fix(tmp_path):
    with pytest.raises(FileNotFoundError, match="gtFine_trainvaltest.zip"):
        experiment.run_cityscapes("paper", tmp_path / "ck", data_dir=tmp_path, names=["argmax-gumbel"], progress=False)
    # nothing finished, nothing trained: an empty table, no error
    assert experiment.run_cityscapes("full", tmp_path / "ck", data_dir=tmp_path, train=False) == []


def test_bad_arguments_are_rejected():
    with pytest.raises(ValueError, match="profile must be one of"):
        experiment.run_cityscapes("huge", checkpoint_dir=None)
    with pytest.raises(ValueError, match="unknown model"):
        experiment.run_cityscapes("smoke", checkpoint_dir=None, names=["argmax-gumble"])


def test_command_line_runs_the_smoke_profile(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(experiment.PROFILES, "smoke", TINY)
    experiment.main(["--profile", "smoke", "--checkpoint-dir", str(tmp_path), "--only", "argmax-gumbel"])
    out = capsys.readouterr().out
    assert "STAND-IN DATA, NOT CITYSCAPES" in out and "Argmax / Gumbel distribution" in out


def test_cpu_profile_is_the_stand_in_at_the_papers_size_and_says_its_budget():
    cpu, paper = experiment.PROFILES["cpu"], experiment.PROFILES["paper"]
    assert cpu.data == "stand-in" and cpu.size == paper.size and cpu.split_sizes == paper.split_sizes
    assert cpu.options("multinomial-diffusion")["timesteps"] == 4000
    assert experiment.run_budget_ratio(cpu, "multinomial-diffusion") == pytest.approx(8000 * 32 / (20_000 * 64))
    assert experiment.run_budget_ratio(cpu) is None   # the paper gives no schedule for the flows
    assert experiment.run_budget_ratio(paper, "argmax-threshold") == 1.0

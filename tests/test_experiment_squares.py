"""The Table 3 runner: every row, finite bounds, graded samples, metrics reused from checkpoints."""
import math

import pytest
import torch

from catlib.data import Squares
from catlib.experiments import squares as experiment


def test_smoke_run_gives_every_row_and_reuses_checkpoints(tmp_path):
    rows = experiment.run_squares("smoke", checkpoint_dir=tmp_path, progress=False)
    assert [r["name"] for r in rows] == [name for name, *_ in experiment.TABLE3]
    for r in rows:
        assert math.isfinite(r["elbo_bpd"]) and math.isfinite(r["iwbo_bpd"])
        # the bounds are on the maps' exact NLL, never below it (bar the bound's own noise)
        assert r["iwbo_bpd"] > r["iwbo_maps_nll_bpd"] - 0.01
        assert r["elbo_bpd"] > r["elbo_maps_nll_bpd"] - 0.01
        assert 0.0 <= r["valid"] <= 1.0 and len(r["samples"]) == experiment.PROFILES["smoke"].num_samples
    again = experiment.run_squares("smoke", checkpoint_dir=tmp_path, progress=False,
                                   names=["vae", "multinomial-diffusion"])
    assert [r["elbo_bpd"] for r in again] == [r["elbo_bpd"] for r in rows[-2:]]  # read, not retrained
    model = experiment.load_model("multinomial-diffusion", "smoke", tmp_path)
    assert model.sample(2, steps=3).shape == (2, 8, 8)


def test_sample_quality_grades_maps_exactly():
    sq = Squares(height=8, width=8, cell=4, sizes=(2, 3))
    good = sq.sample(10, seed=0)
    bad = good.clone()
    bad[:, 0, 0] = 1
    bad[:, 0, 1] = 2  # two colours in one cell: impossible
    q = experiment.sample_quality(sq, torch.cat([good, bad]))
    assert q["valid"] == pytest.approx(0.5)
    assert q["nll_bpd"] == pytest.approx(float(-sq.log_prob(good).mean()) / (math.log(2) * 64))
    assert experiment.sample_quality(sq, bad)["nll_bpd"] is None


def test_bad_arguments_are_rejected():
    with pytest.raises(ValueError, match="profile must be one of"):
        experiment.run_squares("huge", checkpoint_dir=None)
    with pytest.raises(ValueError, match="unknown model"):
        experiment.run_squares("smoke", checkpoint_dir=None, names=["argmax-gumble"])


def test_speed_benchmark_runs_and_reports_every_model(tmp_path):
    import importlib.util
    import json
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "speed_squares.py"
    spec = importlib.util.spec_from_file_location("speed_squares", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    out = tmp_path / "speed.json"
    bench.main(["--profile", "smoke", "--repeats", "1", "--train-steps", "2", "--samples", "2", "--json", str(out)])
    report = json.loads(out.read_text())
    assert {r["model"] for r in report["results"]} == set(bench.MODELS)
    assert all(r["train_steps_per_second"] > 0 and r["samples_per_second"] > 0 for r in report["results"])
    assert report["environment"]["torch"] == torch.__version__

"""Chapter 14's runner: a tiny run of every pair stores and reuses its metrics, the results rows
carry entropies and gaps, the toy's Bayes-optimal denoiser is what the kernels say, and the
masking trajectories of the figures are one chain."""
from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from catlib.experiments import masking as E
from catlib.masked_diffusion import MASKING_SCHEDULES
from catlib.viz.masking import masking_trajectory


def tiny_config() -> E.MaskingConfig:
    smoke = E.PROFILES["smoke"]
    runs = {name: dataclasses.replace(run, steps=4, sample_steps=(4, 2), num_samples=8, test_size=8, steps_size=4,
                                      iwbo_size=4)
            for name, run in smoke.runs.items()}
    runs["two-variable"] = dataclasses.replace(runs["two-variable"], timesteps=6)
    return E.MaskingConfig(runs=runs)


def test_tiny_runs_store_and_reuse_metrics(tmp_path, monkeypatch):
    monkeypatch.setitem(E.PROFILES, "smoke", tiny_config())
    rows = E.run_masking("smoke", tmp_path, device="cpu", progress=False)
    assert [r["name"] for r in rows] == list(E.NAMES)
    for r in rows:
        assert r["steps"] == 4 and math.isfinite(r["elbo_bpd"]) and r["entropy_bpd"] > 0
        assert [s["steps"] for s in r["by_steps"]] == [4, 2]
        assert all(s["network_calls"] <= s["steps"] for s in r["by_steps"])
        assert (r["iwbo_bpd"] is None) == (r["iwbo_k"] == 0)
    toy = {r["model"]: r for r in rows if r["dataset"] == "two-variable"}
    # the toy's test set is every outcome with its probability: exact bounds, no standard error
    assert all(r["elbo_se"] is None and r["test_nll_bpd"] == pytest.approx(r["entropy_bpd"]) for r in toy.values())
    assert all(r["elbo_bpd"] >= r["entropy_bpd"] for r in toy.values())

    def no_training(*args, **kwargs):
        raise AssertionError("a finished run must not train again")

    monkeypatch.setattr(E, "fit", no_training)
    again = E.run_masking("smoke", tmp_path, device="cpu", progress=False, names=["squares.masked-diffusion"])
    assert again[0]["elbo_bpd"] == next(r for r in rows if r["name"] == "squares.masked-diffusion")["elbo_bpd"]
    model = E.load_model("two-variable.masked-diffusion", "smoke", tmp_path, device="cpu")
    assert model.sample(3).shape == (3, 2)

    results = E.results_rows(rows, "cpu", E.PROFILES["smoke"])
    ours = [row for row in results if row["ours"] is not None]
    assert all(row["status"] == "ours only" and row["gap_to_entropy"] == pytest.approx(row["ours"] - row["entropy"])
               for row in ours)
    not_run = [row for row in results if row["ours"] is None]
    assert [row["paper"] for row in not_run] == [E.MULTINOMIAL_TEXT8_BPC, E.MD4_TEXT8_BPC]
    assert all(row["status"] == "not run" for row in not_run)
    with pytest.raises(ValueError, match="unknown run"):
        E.run_masking("smoke", tmp_path, names=["squares.nosuch"])


def test_denoiser_error_is_zero_for_the_optimal_denoiser():
    """A network that returns the Bayes-optimal logits has KL 0, and the masked optimum ignores time."""
    toy_model = E.build("two-variable.masked-diffusion", E.PROFILES["smoke"])
    errors = E.denoiser_error(toy_model, [0.2, 0.7])
    for e in errors:
        sums = torch.tensor(e["optimal"], dtype=torch.float64).sum(-1)
        assert torch.allclose(sums, torch.ones_like(sums))
    optimal = {tuple(s): o for s, o in zip(errors[0]["states"], errors[0]["optimal"])}

    class Optimal(torch.nn.Module):
        def forward(self, x_t, t):                      # the first variable's optimum, for both variables
            rows = [optimal.get(tuple(x.tolist()), [0.25] * 4) for x in x_t]
            return torch.tensor(rows).log()[:, None, :].expand(-1, 2, -1).clone()

    toy_model.denoise_fn = Optimal()
    e = E.denoiser_error(toy_model, [0.2])[0]
    assert torch.tensor(e["learned"]) == pytest.approx(torch.tensor(e["optimal"]), abs=1e-6)
    masked_state = errors[0]["states"].index([4, 0])
    assert errors[0]["optimal"][masked_state] == pytest.approx(errors[1]["optimal"][errors[1]["states"].index([4, 0])])


def test_masking_trajectory_is_one_chain():
    x0 = torch.randint(5, (4, 8, 8))
    times = [0.0, 0.25, 0.5, 0.75, 1.0]
    chain = masking_trajectory(x0, 5, times, MASKING_SCHEDULES["cosine"][0], seed=1)
    masked = [chain[t] == 5 for t in times]
    assert not masked[0].any() and masked[-1].all()
    assert all(bool((a <= b).all()) for a, b in zip(masked, masked[1:]))      # once masked, masked for good
    assert all(torch.equal(chain[t][~m], x0[~m]) for t, m in zip(times, masked))
    big = masking_trajectory(torch.zeros(20000, dtype=torch.long), 3, [0.5], MASKING_SCHEDULES["cosine"][0])
    share = float((big[0.5] == 3).double().mean())
    assert share == pytest.approx(1 - float(MASKING_SCHEDULES["cosine"][0](torch.tensor(0.5))), abs=0.015)


def test_bad_names_and_data_sets():
    with pytest.raises(ValueError, match="run name must be one of"):
        E.build("squares.flow", E.PROFILES["smoke"])
    with pytest.raises(ValueError, match="data set must be one of"):
        E.PROFILES["smoke"].run("mnist")

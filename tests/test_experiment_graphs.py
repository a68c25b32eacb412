"""Graph colouring models (catlib.graph_models) and the Table 1 experiment (catlib.experiments.graphs)."""
from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch

from catlib.data.graphs import GraphColouring
from catlib.experiments import graphs as exp
from catlib.graph_models import GRAPH_MODELS, GraphColouringModel, bits_per_node

SMALL = {"flow_steps": 2, "hidden": 8, "gnn_layers": 1, "q_flow_steps": 1, "q_hidden": (8,)}


@pytest.fixture(scope="module")
def graphs():
    return GraphColouring(6, size="small", seed=3)


def make(name, **options):
    torch.manual_seed(0)
    return GraphColouringModel(name, **{**SMALL, **options})


@pytest.mark.parametrize("name", GRAPH_MODELS)
@pytest.mark.parametrize("k", [1, 3])
def test_log_prob_shape_finite_and_below_zero_on_average(graphs, name, k):
    c, a, m = graphs.batch(range(6))
    lp = make(name).log_prob(c, a, m, k=k)
    assert lp.shape == (6,) and torch.isfinite(lp).all()


@pytest.mark.parametrize("name", GRAPH_MODELS)
def test_padding_values_and_padding_width_do_not_matter(graphs, name):
    model = make(name)
    c, a, m = graphs.batch([0, 1])
    # garbage in the padded colours: the same bound with the same random numbers
    garbage = torch.where(m, c, torch.full_like(c, 2))
    torch.manual_seed(1)
    ref = model.log_prob(c, a, m)
    torch.manual_seed(1)
    assert torch.allclose(model.log_prob(garbage, a, m), ref)
    # per-node terms are exactly zero at padded nodes
    z, log_px_z, log_q = model.node_terms(c, m)
    assert (log_px_z[~m] == 0).all() and (log_q[~m] == 0).all() and z.shape == (*c.shape, model.d)
    # extra padded columns: the prior of fixed real latents is unchanged
    z = torch.randn(*c.shape, model.d)
    wide_z = torch.cat([z, torch.randn(2, 3, model.d)], 1)
    wide_a = torch.nn.functional.pad(a, (0, 3, 0, 3))
    wide_m = torch.nn.functional.pad(m, (0, 3))
    assert torch.allclose(model.flow.log_prob(wide_z, wide_a, wide_m), model.flow.log_prob(z, a, m), atol=1e-5)


def test_iwbo_is_at_least_the_mean_elbo_on_average(graphs):
    model = make("catnf").double()
    c, a, m = graphs.batch(range(4))
    torch.manual_seed(0)
    elbo = torch.stack([model.log_prob(c, a, m) for _ in range(64)]).mean(0)
    torch.manual_seed(0)
    iwbo = torch.stack([model.log_prob(c, a, m, k=16) for _ in range(8)]).mean(0)
    assert (iwbo > elbo - 0.05).all()


@pytest.mark.parametrize("name", GRAPH_MODELS)
def test_gradients_reach_every_parameter(graphs, name):
    model = make(name)
    c, a, m = graphs.batch(range(4))
    model.train()
    model.log_prob(c, a, m).mean().backward()  # actnorm initialises on this pass
    model.zero_grad()
    model.log_prob(c, a, m).mean().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not missing
    assert all(float(p.grad.abs().sum()) > 0 for n, p in model.named_parameters() if "flow" in n and "net" not in n)


def test_bad_inputs_raise(graphs):
    model = make("trufl")
    c, a, m = graphs.batch([0])
    with pytest.raises(ValueError, match=r"colour indices in \[0, 3\)"):
        model.log_prob(torch.where(m, torch.full_like(c, 3), c), a, m)
    with pytest.raises(ValueError, match="LongTensor"):
        model.log_prob(c.float(), a, m)
    with pytest.raises(ValueError, match="name must be one of"):
        GraphColouringModel("vae")


def test_trufl_rejection_samples_are_supported_and_plain_samples_valid_shapes(graphs):
    model = make("trufl")
    with torch.no_grad():  # narrow supports: many prior draws fall outside them
        model.layer.s_logit.fill_(1.0)
    c, a, m = graphs.batch(range(6))
    z, stats = model.sample_latents(a, m, rejection=True, generator=torch.Generator().manual_seed(0))
    assert model.supported(z, m).all() and stats.drawn >= 6 and stats.accepted == 6
    rate = model.support_rate(a, m, draws=8, generator=torch.Generator().manual_seed(0))
    assert 0 < rate["rejection_rate"] < 1 and math.isfinite(rate["log_z"])
    for rejection in (False, True):
        x = model.sample(a, m, rejection=rejection, generator=torch.Generator().manual_seed(0))
        assert x.shape == c.shape and (x[~m] == 0).all() and ((x >= 0) & (x < 3)).all()
    assert model.last_rejection is not None
    # CatNF and argmax never reject
    for name in ("catnf", "argmax-threshold"):
        z, stats = make(name).sample_latents(a, m, rejection=True)
        assert stats is None


def test_bits_per_node():
    lp = torch.tensor([-10 * math.log(2.0), -3 * math.log(2.0)])
    mask = torch.tensor([[True] * 5 + [False], [True] * 3 + [False] * 3])
    assert torch.allclose(bits_per_node(lp, mask), torch.tensor([2.0, 1.0]))


def test_table1_constants():
    keys = [row[0] for row in exp.TABLE1]
    assert {key for key, _, _ in exp.ROWS} <= set(keys)
    assert dict((r[0], r[2]) for r in exp.TABLE1)["trufl-rs"] == 0.9590


def test_tiny_run_writes_metrics_and_reuses_them(tmp_path, monkeypatch):
    tiny = dataclasses.replace(exp.PROFILES["smoke"], steps=6, train_size=8, test_size=6, batch_size=4,
                               iwbo_k=2, iwbo_size=4, rejection_every=3, rejection_graphs=4, model=SMALL)
    monkeypatch.setitem(exp.PROFILES, "tiny", tiny)
    rows = exp.run_graphs("tiny", tmp_path, progress=False)
    assert [r["key"] for r in rows] == [key for key, _, _ in exp.ROWS]
    for r in rows:
        assert 0 <= r["validity"] <= 1 and math.isfinite(r["elbo_bpn"]) and math.isfinite(r["iwbo_bpn"])
        assert r["steps"] == 6 and len(r["samples"]) == 6 and r["size"] == "small"
    for r in rows:  # the learning curve: at the start and the end of the run (every 20 steps otherwise)
        assert [c["step"] for c in r["curve"]] == [0, 6] and r["curve"][-1]["graphs_seen"] == 6 * 4
        assert all(0 <= c["validity"] <= 1 and math.isfinite(c["elbo_bpn"]) for c in r["curve"])
    rnn = rows[0]
    assert rnn["name"] == exp.RNN and rnn["exact"] and rnn["iwbo_k"] == 1 and rnn["elbo_bpn"] == rnn["iwbo_bpn"]
    assert not any(r["exact"] for r in rows[1:])
    trufl = rows[-1]
    assert trufl["rejection"] and trufl["accepted"] >= 6 and [t["step"] for t in trufl["rejection_trace"]] == [0, 3, 6]
    assert (tmp_path / "tiny" / "trufl.pt").exists()

    def no_training(*args, **kwargs):
        raise AssertionError("a finished run must not train again")

    monkeypatch.setattr(exp, "fit", no_training)
    again = exp.run_graphs("tiny", tmp_path, progress=False)
    assert [r["validity"] for r in again] == [r["validity"] for r in rows]
    model = exp.load_model("trufl", "tiny", tmp_path)
    c, a, m = GraphColouring(2, seed=9).batch([0, 1])
    assert torch.isfinite(model.log_prob(c, a, m)).all()


def test_seeds_live_side_by_side_on_the_same_graphs(tmp_path, monkeypatch):
    tiny = dataclasses.replace(exp.PROFILES["smoke"], steps=4, train_size=8, test_size=6, batch_size=4, iwbo_k=2,
                               iwbo_size=4, curve_every=0, model=SMALL)
    monkeypatch.setitem(exp.PROFILES, "tiny", tiny)
    first = exp.run_graphs("tiny", tmp_path, seed=0, names=[exp.RNN], progress=False)[0]
    second = exp.run_graphs("tiny", tmp_path, seed=1, names=[exp.RNN], progress=False)[0]
    assert exp.checkpoint_path(tmp_path, "tiny", exp.RNN, 1) == tmp_path / "tiny" / "seed1" / f"{exp.RNN}.pt"
    assert exp.checkpoint_path(tmp_path, "tiny", exp.RNN, 1).exists()
    assert exp.checkpoint_path(tmp_path, "tiny", exp.RNN, 0).exists()  # seed 1 did not replace seed 0's run
    assert first["losses"] != second["losses"]  # another training run ...
    data = exp.load_data(tiny, progress=False)  # ... on the graphs of data seed 0
    first_colours = [len(s) for s in first["samples"]]
    assert first_colours == [len(s) for s in second["samples"]] == data["test"].num_nodes.tolist()
    monkeypatch.setattr(exp, "fit", lambda *a, **k: (_ for _ in ()).throw(AssertionError("trained again")))
    assert exp.run_graphs("tiny", tmp_path, seed=0, names=[exp.RNN], progress=False)[0]["losses"] == first["losses"]


@pytest.mark.parametrize("name", ["trufl", exp.RNN])
def test_measuring_during_training_does_not_change_the_run(tmp_path, name):
    tiny = dataclasses.replace(exp.PROFILES["smoke"], steps=5, train_size=8, test_size=6, batch_size=4, iwbo_k=2,
                               iwbo_size=4, rejection_every=2, curve_every=0, model=SMALL)
    data = exp.load_data(tiny, progress=False)
    quiet = exp.run_one(name, tiny, None, progress=False, data=data)
    measured = exp.run_one(name, dataclasses.replace(tiny, curve_every=2, curve_graphs=4), None, progress=False,
                           data=data)
    assert measured["losses"] == quiet["losses"] and measured["elbo_bpn"] == quiet["elbo_bpn"]
    assert [c["step"] for c in measured["curve"]] == [0, 2, 4, 5] and quiet["curve"] == []


def test_budget_ratio_is_graphs_seen_over_the_papers_and_sets_the_status():
    cpu = exp.PROFILES["cpu"]
    assert exp.run_budget_ratio(cpu, exp.RNN) == pytest.approx(10_000 * 64 / (100_000 * 128))
    assert exp.run_budget_ratio(cpu) == pytest.approx(10_000 * 64 / (200_000 * 384))
    assert exp.run_budget_ratio(dataclasses.replace(cpu, size="large")) == pytest.approx(10_000 * 64 / (200_000 * 128))
    assert exp.result_fields("validity", 0.95, 0.9456, "cpu", cpu)["status"] == "reproduced"
    assert exp.result_fields("validity", 0.366, 0.9456, "cpu", cpu)["status"] == "undertrained"
    assert exp.result_fields("bits", 0.69, 0.67, "cpu", cpu)["status"] == "reproduced"
    assert exp.result_fields("bits", 0.927, 0.67, "cpu", cpu) == {"status": "undertrained",
                                                                  "budget_ratio": exp.run_budget_ratio(cpu)}
    assert exp.result_fields("bits", 0.84, None, "cpu", cpu)["status"] == "ours only"


def test_the_paper_profiles_are_catnf_and_trufl_settings():
    from catlib.experiments import paper_mismatches

    small, large = exp.PROFILES["paper"], exp.PROFILES["paper-large"]
    assert paper_mismatches(exp.PAPER_SETTINGS, small) == []
    assert paper_mismatches(exp.PAPER_SETTINGS_LARGE, large) == []
    assert (small.steps, small.batch_size, small.train_size, small.size) == (200_000, 384, 192_000, "small")
    assert (large.batch_size, large.train_size, large.test_size, large.size) == (128, 450_000, 30_000, "large")
    # CatNF's own row on large graphs keeps CatNF's setting; TRUFL's rows use TRUFL's appendix C.2
    assert large.training("catnf") == {"steps": 200_000, "batch_size": 128, "lr": 7.5e-4}
    assert large.training("trufl")["lr"] == 3e-4
    assert {**large.model, **large.encoding["catnf"]}["latent_dim"] == 6 and large.model["latent_dim"] == 2
    assert large.training(exp.RNN) == {"steps": 100_000, "batch_size": 128, "lr": 7.5e-4}
    # every profile has a large sibling, and the paper's large column is read for it
    for name in ("smoke", "cpu", "paper"):
        assert exp.PROFILES[f"{name}-large"].size == "large" and exp.PROFILES[name].size == "small"
    assert exp.paper_columns("large") == (4, 5)
    models = {name: exp.build(name, large) for name in ("catnf", "trufl")}
    assert models["catnf"].d == 6 and models["trufl"].d == 2


def test_curve_trend_is_the_slope_per_doubling_of_the_last_points():
    curve = [{"graphs_seen": 0, "validity": 0.0}] + [{"graphs_seen": 64 * 2 ** k, "validity": min(0.05 * k, 0.2)}
                                                     for k in range(8)]
    assert exp.curve_trend(curve, points=3) == pytest.approx(0.0)  # flat at the end
    assert exp.curve_trend(curve[:5], points=4) == pytest.approx(0.05)
    # against numpy's least squares on uneven spacing
    seen, val = [100, 300, 1000, 5000], [0.1, 0.3, 0.35, 0.6]
    expected = np.polyfit(np.log2(seen), val, 1)[0]
    assert exp.curve_trend([{"graphs_seen": s, "elbo": v} for s, v in zip(seen, val)], "elbo") == pytest.approx(expected)
    assert math.isnan(exp.curve_trend(curve[:2]))  # one point with graphs seen
    with pytest.raises(ValueError, match="points"):
        exp.curve_trend(curve, points=1)

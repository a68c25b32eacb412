"""The text8 runner (Argmax Flows Table 2): stand-in runs store and reuse metrics, the paper profile is the paper's."""
import math

import pytest
import torch

from catlib.data.text_corpora import TEXT8, synthetic_text_corpus
from catlib.experiments import text8 as experiment
from catlib.results import read_results, write_results
from catlib.text_flows import (ENWIK8_AR_CONFIG, ENWIK8_COUPLING_CONFIG, PAPER_TRAINING, TEXT8_AR_CONFIG,
                               TEXT8_COUPLING_CONFIG, build_text_flow)
from catlib.train import load_checkpoint

_TINY_MODEL = {"num_mixtures": 2, "lstm_layers": 1, "lstm_size": 8, "context_size": 4, "context_hidden": 8,
               "inverse_iterations": 20}
TINY = experiment.TextConfig(
    corpus="stand-in", chunk_len=8, stand_in_sizes=(8 * 64, 8 * 8, 8 * 8),
    models={"text8-ar": {**_TINY_MODEL, "num_steps": 1}, "text8-coupling": {**_TINY_MODEL, "num_steps": 1}},
    training={"text8-ar": {"batch_size": 8, "steps": 4, "lr": 1e-3, "warmup": 1},
              "text8-coupling": {"batch_size": 8, "steps": 3, "lr": 1e-3, "warmup": 1}},
    eval_batch=8, iwbo_k=2, iwbo_chunks=4, num_samples=2, reference_timing=("argmax",), checkpoint_every=100)


@pytest.fixture
def tiny(monkeypatch):
    monkeypatch.setitem(experiment.PROFILES, "tiny", TINY)
    return TINY


def test_tiny_run_stores_metrics_and_reuses_them(tiny, tmp_path, monkeypatch):
    rows = experiment.run_text8("tiny", checkpoint_dir=tmp_path, data_dir=tmp_path / "no-data", progress=False)
    assert [r["name"] for r in rows] == list(experiment.NAMES["text8"])
    entropy = synthetic_text_corpus(TINY.stand_in_sizes, chunk_len=8).entropy_bits_per_char
    for r in rows:
        assert r["stand_in"] and "not text8" in r["data"] and r["entropy_bits"] == pytest.approx(entropy)
        assert math.isfinite(r["elbo_bits"]) and math.isfinite(r["iwbo_bits"])
        assert r["elbo_bits"] > entropy  # an untrained bound is far above the truth
        assert r["steps"] == TINY.training[f"text8-{r['kind']}"]["steps"]
        assert len(r["samples"]) == 2 and all(len(s) == 8 for s in r["samples"])
        stored = load_checkpoint(tmp_path / "tiny" / f"text8-{r['name']}.pt")["metrics"]
        assert stored["elbo_bits"] == r["elbo_bits"] and stored["run"]["seed"] == 0
    by = {r["name"]: r for r in rows}
    assert by["ar-argmax"]["reference_matches"] is True and by["ar-argmax"]["reference_seconds"] > 0
    assert by["ar-uniform"]["reference_seconds"] is None and by["coupling-argmax"]["reference_seconds"] is None

    def no_training(*args, **kwargs):
        raise AssertionError("a finished run was trained again")

    monkeypatch.setattr(experiment, "fit", no_training)
    again = experiment.run_text8("tiny", checkpoint_dir=tmp_path, data_dir=tmp_path / "no-data", progress=False)
    assert [r["elbo_bits"] for r in again] == [r["elbo_bits"] for r in rows]
    assert [r["samples"] for r in again] == [r["samples"] for r in rows]
    only = experiment.run_text8("tiny", checkpoint_dir=tmp_path, names=["coupling-argmax"], train=False)
    assert [r["iwbo_bits"] for r in only] == [by["coupling-argmax"]["iwbo_bits"]]
    assert experiment.run_text8("tiny", checkpoint_dir=tmp_path / "empty", train=False) == []
    assert not (tmp_path / "empty").exists()  # train=False touches nothing

    model = experiment.load_model("ar-argmax", "tiny", tmp_path)
    assert model.sample(3).shape == (3, 8)

    # the scoreboard's rows: the paper's numbers stand alone, stand-in numbers say so and carry no paper number
    result_rows = experiment.results_rows(rows, "smoke")
    paper_rows = [x for x in result_rows if x["ours"] is None]
    assert sorted(x["paper"] for x in paper_rows) == sorted(p for d, _, _, p in experiment.TABLE2 if d == "text8")
    ours = [x for x in result_rows if x["ours"] is not None]
    assert len(ours) == 2 * 6 + 1 and all("stand-in, not text8" in x["method"] and x["paper"] is None for x in ours)
    write_results("10_text8", result_rows, "smoke", tmp_path / "results")
    assert len(read_results(tmp_path / "results")["10_text8"]) == len(result_rows)


def test_changed_settings_retrain(tiny, tmp_path):
    first = experiment.run_text8("tiny", checkpoint_dir=tmp_path, names=["coupling-argmax"], progress=False)
    other = experiment.run_text8("tiny", checkpoint_dir=tmp_path, names=["coupling-argmax"], progress=False, seed=1)
    assert other[0]["elbo_bits"] != first[0]["elbo_bits"]


def test_paper_profile_is_the_papers_configuration():
    full = experiment.PROFILES["paper"]
    assert full.corpus == "real" and full.chunk_len is None and set(full.datasets) == {"text8", "enwik8"}
    for key, paper in {"text8-ar": TEXT8_AR_CONFIG, "text8-coupling": TEXT8_COUPLING_CONFIG,
                       "enwik8-ar": ENWIK8_AR_CONFIG, "enwik8-coupling": ENWIK8_COUPLING_CONFIG}.items():
        dataset, kind = key.split("-")
        sizes = {k: v for k, v in paper.items() if k not in ("kind", "dequantization", "seq_len", "num_classes")}
        assert full.models[key] == sizes
        model_name = f"{kind}-argmax"
        settings = experiment.run_settings(full, dataset, model_name, 0)
        assert settings["seq_len"] == paper["seq_len"]
        training = full.training[key]
        assert training["batch_size"] == PAPER_TRAINING[key]["batch_size"]
        assert training["epochs"] == PAPER_TRAINING[key]["epochs"]
        chunks = {"text8": 351_562 + 19_531, "enwik8": 281_250 + 15_625}[dataset]
        assert training["steps"] == training["epochs"] * math.ceil(chunks / training["batch_size"])
        if PAPER_TRAINING[key]["lr"] is not None:
            assert training["lr"] == PAPER_TRAINING[key]["lr"] and training["warmup"] == PAPER_TRAINING[key]["warmup"]
    # the built model is the paper's: same options as build_text_flow(**TEXT8_AR_CONFIG)
    with torch.device("meta"):
        ours = experiment.build("ar-argmax", full, "text8")
        paper = build_text_flow(**TEXT8_AR_CONFIG)
    assert ours.options == paper.options and ours.seq_len == 256 and ours.num_classes == TEXT8.num_classes
    assert experiment.count_parameters("ar-argmax", full) == sum(p.numel() for p in paper.parameters())
    assert {(d, n): p for d, n, _, p in experiment.TABLE2} == {
        ("text8", "ar-uniform"): 1.90, ("text8", "ar-variational"): 1.43, ("text8", "ar-argmax"): 1.38,
        ("text8", "coupling-uniform"): 2.01, ("text8", "coupling-variational"): 2.08,
        ("text8", "coupling-argmax"): 1.82, ("enwik8", "ar-argmax"): 1.42, ("enwik8", "coupling-argmax"): 1.93}


@pytest.mark.parametrize("dataset", ["text8", "enwik8"])
def test_paper_profile_without_data_raises_the_clear_error(tmp_path, dataset):
    with pytest.raises(FileNotFoundError, match=rf"{dataset} not found at .*download_text_corpus\('{dataset}'"):
        experiment.run_text8("paper", checkpoint_dir=tmp_path, data_dir=tmp_path / "no-data", dataset=dataset,
                             names=["ar-argmax"], progress=False)


def test_bad_arguments_are_rejected(tmp_path):
    with pytest.raises(ValueError, match="profile must be one of"):
        experiment.run_text8("huge", checkpoint_dir=None)
    with pytest.raises(ValueError, match="enwik8 rows run only at the profile"):
        experiment.run_text8("smoke", checkpoint_dir=None, dataset="enwik8")
    with pytest.raises(ValueError, match="unknown model name"):
        experiment.run_text8("smoke", checkpoint_dir=None, names=["ar-gumbel"])
    with pytest.raises(ValueError, match="unknown model name"):
        experiment.run_text8("paper", checkpoint_dir=None, dataset="enwik8", names=["ar-uniform"])


def test_ar_terms_of_earlier_positions_ignore_later_characters():
    torch.manual_seed(0)
    x = torch.randint(0, 27, (3, 6))
    y = x.clone()
    y[:, 4:] = (y[:, 4:] + 5) % 27
    for dequantization in ("argmax", "uniform"):
        model = build_text_flow("ar", dequantization, 6, 27, lstm_size=8, num_mixtures=2).eval()
        with torch.no_grad():
            v, w = experiment.character_points(model, x), experiment.character_points(model, y)
            a, b = experiment.position_log_densities(model, v), experiment.position_log_densities(model, w)
            assert torch.equal(a[:, :4], b[:, :4]) and not torch.allclose(a[:, 4:], b[:, 4:])
            assert torch.allclose(a.sum(-1), model.prior.log_prob(v).double(), atol=1e-4)
    coupling = build_text_flow("coupling", "argmax", 6, 27, lstm_size=8, num_mixtures=2, num_steps=1)
    with pytest.raises(ValueError, match="one-layer AR flow"):
        experiment.position_log_densities(coupling, experiment.character_points(coupling, x))


def test_main_labels_the_stand_in(tiny, tmp_path, capsys):
    experiment.main(["--profile", "tiny", "--checkpoint-dir", str(tmp_path), "--only", "ar-argmax"])
    out = capsys.readouterr().out
    assert "STAND-IN DATA, NOT TEXT8" in out and "AR flow / argmax" in out and "on stand-in" in out


def test_cpu_profile_is_the_stand_in_at_texts_length_and_says_its_budget():
    cpu, paper = experiment.PROFILES["cpu"], experiment.PROFILES["paper"]
    assert cpu.corpus == "stand-in" and cpu.seq_lens["text8"] == paper.seq_lens["text8"] == 256
    assert experiment.run_budget_ratio(cpu) == pytest.approx(6000 * 32 / (231_960 * 64))
    assert experiment.run_budget_ratio(cpu, "coupling-argmax") == pytest.approx(10_000 * 16 / (927_760 * 16))
    assert experiment.run_budget_ratio(paper, "ar-argmax", "enwik8") == 1.0
    assert experiment.run_budget_ratio(cpu, "ar-argmax", "enwik8") is None   # no enwik8 run at cpu
    with torch.device("meta"):
        assert experiment.count_parameters("ar-argmax", cpu) < 2_000_000


def test_results_rows_say_status_budget_and_gap(tiny, tmp_path):
    rows = experiment.run_text8("tiny", checkpoint_dir=tmp_path, names=["ar-argmax"], progress=False)
    for profile, status in (("smoke", "smoke"), ("cpu", "different data")):
        out = experiment.results_rows(rows, profile)
        ours = [x for x in out if x["ours"] is not None and x["device"] != "exact"]
        assert ours and all(x["status"] == status and x["gap_to_entropy"] == pytest.approx(x["ours"] - x["entropy"])
                            for x in ours)
        assert all(x["budget_ratio"] == rows[0]["budget_ratio"] for x in ours)
        paper_only = [x for x in out if x["ours"] is None]
        assert paper_only and all(x["status"] == "not run"  # at every profile, smoke too
                                  and x["budget_ratio"] is None for x in paper_only)
        write_results("10_text8", out, profile, tmp_path / "results")

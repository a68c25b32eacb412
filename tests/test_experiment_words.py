"""Figure 4's runner: trains both models, stores and reuses metrics, samples embeddings where they belong."""
import math

import pytest
import torch

from catlib.data.words import WordCorpus, generated_corpus
from catlib.encodings import within_group_std
from catlib.experiments import words as experiment
from catlib.train import load_checkpoint

TINY = experiment.WordsConfig(steps=15, num_sentences=300, prefer_text8=False, batch_size=16, test_windows=20,
                              iwbo_windows=5, iwbo_k=2, samples_per_word=20, wgsd_words=30, perplexity=5.0,
                              model={"flow_steps": 1, "hidden": (16,)})


@pytest.fixture
def tiny(monkeypatch):
    monkeypatch.setitem(experiment.PROFILES, "tiny", TINY)
    return TINY


def test_tiny_run_trains_stores_metrics_and_reuses_them(tiny, tmp_path, monkeypatch):
    out = experiment.run_words("tiny", checkpoint_dir=tmp_path, data_dir=tmp_path / "no-data", progress=False)
    assert out["source"] == "generated stand-in"
    assert [r["name"] for r in out["rows"]] == list(experiment.NAMES)
    n_words = len(out["words"])
    assert n_words == 10 and not out["substitutes"]
    for r in out["rows"]:
        assert math.isfinite(r["elbo_bpw"]) and math.isfinite(r["iwbo_bpw"]) and math.isfinite(r["wgsd"])
        assert r["latent_dim"] == experiment.latent_dim_for(out["corpus"].num_classes)
        assert r["samples"].shape == (n_words, tiny.samples_per_word, r["latent_dim"])
        assert r["tsne"].shape == (n_words * tiny.samples_per_word, 2)
        assert load_checkpoint(tmp_path / "tiny" / f"{r['name']}.pt")["metrics"]["elbo_bpw"] == r["elbo_bpw"]
    assert out["rows"][1]["reconstruction"] == 0.0  # the argmax flow decodes exactly

    def no_training(*args, **kwargs):
        raise AssertionError("a finished run was trained again")

    monkeypatch.setattr(experiment, "fit", no_training)
    again = experiment.run_words("tiny", checkpoint_dir=tmp_path, data_dir=tmp_path / "no-data", progress=False,
                                 names=["argmax-binary"])
    assert again["rows"][0]["elbo_bpw"] == out["rows"][1]["elbo_bpw"]
    assert torch.equal(again["rows"][0]["samples"], out["rows"][1]["samples"])  # seeded sampling


def test_tsne_helper_shape_and_wgsd_of_samples_finite():
    corpus = generated_corpus(200, seed=0)
    torch.manual_seed(0)
    model = experiment.build("trufl", TINY, corpus.num_classes).eval()
    ids = list(range(5))
    samples = experiment.word_samples(model, corpus, ids, 200, TINY.window, seed=0)
    assert samples.shape == (5, 200, experiment.latent_dim_for(corpus.num_classes))
    assert experiment.tsne_embedding(samples, seed=0).shape == (5 * 200, 2)
    assert math.isfinite(within_group_std(samples))
    distances, within = experiment.centroid_distances(samples)
    assert distances.shape == (5, 5) and within > 0


def test_samples_lie_in_their_support():
    corpus = generated_corpus(200, seed=0)
    ids = [0, 5, 17, corpus.num_classes - 1]
    torch.manual_seed(0)
    binary = experiment.build("argmax-binary", TINY, corpus.num_classes).eval()
    v = experiment.word_samples(binary, corpus, ids, 50, TINY.window, seed=1)
    bits = binary.encoding.encode(torch.tensor(ids))
    assert torch.equal((v > 0).long(), bits[:, None, :].expand_as(v))  # each word's own orthant
    trufl = experiment.build("trufl", TINY, corpus.num_classes).eval()
    z = experiment.word_samples(trufl, corpus, ids, 50, TINY.window, seed=1)
    log_q = trufl.layer.log_q_all(z)  # [words, n, K]: truncated densities of every word
    assert torch.isfinite(log_q[torch.arange(len(ids)), :, ids]).all()


def test_word_windows_hold_the_word_at_the_stated_position():
    corpus = generated_corpus(200, seed=0)
    word = corpus.word_to_index["Canada"]
    windows, positions = experiment.word_windows(corpus, word, 100, 8, torch.Generator().manual_seed(0))
    assert windows.shape == (100, 8)
    assert (windows[torch.arange(100), positions] == word).all()
    assert positions.min() >= 0 and positions.max() < 8
    unseen = WordCorpus(torch.tensor([0, 1, 0, 1]), ["a", "b", "c"])  # "c" never occurs
    windows, positions = experiment.word_windows(unseen, 2, 5, 3)
    assert (windows == 2).all() and (positions == 0).all()


def test_pick_words_substitutes_a_number_for_n_in_lowercase_text():
    corpus = WordCorpus.from_words("one two three four canada singapore walk fly walked flew n".split())
    words, substitutes = experiment.pick_words(corpus)
    assert substitutes == {"N": "four"}
    assert "four (for N)" in words and words["Canada"] == "canada" and len(words) == 10


def test_bad_arguments_are_rejected():
    with pytest.raises(ValueError, match="profile must be one of"):
        experiment.run_words("huge", checkpoint_dir=None)
    with pytest.raises(ValueError, match="unknown model"):
        experiment.run_words("smoke", checkpoint_dir=None, names=["catnf"])


def test_paper_profile_gives_trufl_the_papers_twelve_numbers_per_word():
    paper, cpu = experiment.PROFILES["paper"], experiment.PROFILES["cpu"]
    assert paper.trufl_latent_dim == 12 and cpu.trufl_latent_dim == "ceil(log2 K)"
    windows = torch.zeros(2, paper.window, dtype=torch.long)
    z, _ = experiment.build("trufl", paper, 100).layer.sample_q(windows)
    assert z.shape == (2, paper.window, 12)
    z, _ = experiment.build("trufl", cpu, 100).layer.sample_q(windows)
    assert z.shape[-1] == experiment.latent_dim_for(100) == 7


def test_every_row_is_different_data_and_the_budget_is_not_known():
    cpu = experiment.PROFILES["cpu"]
    assert experiment.run_budget_ratio(cpu) is None
    assert experiment.result_fields(0.66, 0.66, "cpu", cpu) == {"status": "different data", "budget_ratio": None}
    assert experiment.result_fields(5.17, None, "paper", experiment.PROFILES["paper"])["status"] == "different data"
    assert experiment.result_fields(5.17, None, "smoke", experiment.PROFILES["smoke"])["status"] == "smoke"

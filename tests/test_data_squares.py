"""The squares data set: exact entropy against brute force, validity, exact likelihood, splits."""
import math

import pytest
import torch

from catlib.data import (Squares, TwoVariableToy, decode_text, encode_text, enumerate_squares,
                         squares_entropy_by_enumeration)

TINY = [
    Squares(height=3, width=6, cell=3, sizes=(1, 2), num_colors=2, p_empty=0.3),
    Squares(height=4, width=4, cell=2, sizes=(1, 2), num_colors=1, p_empty=0.5),
    Squares(height=4, width=2, cell=2, sizes=(1,), num_colors=3, p_empty=0.0),
]


@pytest.mark.parametrize("sq", TINY, ids=["3x6", "4x4", "4x2-no-empty"])
def test_entropy_closed_form_matches_enumeration(sq):
    bits, configs, maps = squares_entropy_by_enumeration(sq)
    assert configs == maps  # every map has exactly one configuration
    assert bits == pytest.approx(sq.entropy_bits, abs=1e-9)


@pytest.mark.parametrize("sq", TINY, ids=["3x6", "4x4", "4x2-no-empty"])
def test_log_prob_is_the_configuration_probability(sq):
    maps, log_p = enumerate_squares(sq)
    assert torch.allclose(sq.log_prob(maps), log_p, atol=1e-12)
    assert float(log_p.exp().sum()) == pytest.approx(1.0, abs=1e-12)
    assert bool(sq.is_valid(maps).all())


def test_sample_frequencies_match_log_prob():
    sq = TINY[0]
    x = sq.sample(40000, seed=1)
    distinct, counts = torch.unique(x, dim=0, return_counts=True)
    expected = sq.log_prob(distinct).exp() * len(x)
    chi2 = float(((counts - expected) ** 2 / expected).sum())
    dof = len(distinct) - 1
    # mean dof, sd sqrt(2 dof): 6 sd is far beyond chance
    assert chi2 < dof + 6 * math.sqrt(2 * dof)


def test_default_maps_are_valid_and_mean_nll_matches_entropy():
    sq = Squares()
    x = sq.sample(20000, seed=2)
    assert x.shape == (20000, 16, 16) and x.dtype == torch.long
    assert int(x.min()) == 0 and int(x.max()) == 4
    assert bool(sq.is_valid(x).all())
    nll_bits = float(-sq.log_prob(x).mean()) / math.log(2)
    assert nll_bits == pytest.approx(sq.entropy_bits, abs=0.1)


@pytest.mark.parametrize("edit", ["extra pixel", "two colours", "rectangle", "size not allowed", "across cells"])
def test_invalid_maps_have_zero_probability(edit):
    sq = Squares(p_empty=0.0)
    x = torch.zeros(1, 16, 16, dtype=torch.long)
    for r, c in [(0, 0), (0, 8), (8, 0), (8, 8)]:
        x[0, r:r + 3, c:c + 3] = 1
    assert bool(sq.is_valid(x).all())
    if edit == "extra pixel":
        x[0, 5, 5] = 2
    elif edit == "two colours":
        x[0, 0, 0] = 2
    elif edit == "rectangle":
        x[0, 3, 0:3] = 1
    elif edit == "size not allowed":
        x[0, 0:2, 8:16] = 0
        x[0, 0:2, 8:10] = 1
    else:
        x[0, 7:9, 7:9] = 3
    assert not bool(sq.is_valid(x)[0])
    assert float(sq.log_prob(x)[0]) == -math.inf


def test_splits_are_seeded_and_sized():
    sq = Squares()
    a, b = sq.splits(train=50, val=10, test=20, seed=3), sq.splits(train=50, val=10, test=20, seed=3)
    assert {k: len(v) for k, v in a.items()} == {"train": 50, "val": 10, "test": 20}
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["val"], a["test"][:10])


@pytest.mark.parametrize("kwargs, message", [
    ({"height": 10}, "multiples of cell=8"),
    ({"sizes": (3, 9)}, "sizes must be distinct integers in [1, cell=8]"),
    ({"p_empty": 1.0}, "p_empty must be in [0, 1)"),
    ({"num_colors": 0}, "num_colors must be an integer >= 1"),
])
def test_bad_configuration_raises(kwargs, message):
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("(", r"\(").replace(")", r"\)")):
        Squares(**kwargs)


def test_log_prob_checks_its_input():
    sq = Squares()
    with pytest.raises(ValueError, match="class indices in \\[0, 5\\), got 5"):
        sq.log_prob(torch.full((1, 16, 16), 5))
    with pytest.raises(ValueError, match="shape \\[batch, 16, 16\\]"):
        sq.is_valid(torch.zeros(1, 8, 8, dtype=torch.long))


def test_two_variable_toy_matches_its_table():
    toy = TwoVariableToy()
    assert float(toy.probs.sum()) == pytest.approx(1.0)
    assert toy.entropy_nats == pytest.approx(1.906, abs=5e-4)
    x = toy.sample(16000, seed=0)
    freq = torch.zeros(4, 4, dtype=torch.float64)
    freq.index_put_((x[:, 0], x[:, 1]), torch.ones(len(x), dtype=torch.float64), accumulate=True)
    assert torch.allclose(freq / len(x), toy.joint, atol=0.015)
    assert float(freq[toy.joint == 0].sum()) == 0.0


def test_text_round_trip_and_errors():
    assert decode_text(encode_text("the quick brown fox")) == "the quick brown fox"
    with pytest.raises(ValueError, match="'Q' at position 4"):
        encode_text("the Quick")
    with pytest.raises(ValueError, match="got 27 at position 1"):
        decode_text(torch.tensor([1, 27]))

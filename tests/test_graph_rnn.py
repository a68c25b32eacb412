"""CatNF's autoregressive colouring baseline: a normalised exact likelihood, its sampler, its estimate."""
import itertools

import pytest
import torch

from catlib.graph_rnn import GraphColouringRNN, largest_first
from helpers import randomize

# a path 0-1-2 plus node 3 joined to 1 (degrees 1, 3, 1, 1), and a padded node 4
ADJ = torch.zeros(1, 5, 5, dtype=torch.bool)
for i, j in ((0, 1), (1, 2), (1, 3)):
    ADJ[0, i, j] = ADJ[0, j, i] = True
MASK = torch.tensor([[True, True, True, True, False]])


def make_model(seed=0):
    torch.manual_seed(seed)
    return randomize(GraphColouringRNN(3, hidden=8, gnn_layers=2, heads=2), std=0.5, seed=seed).double().eval()


def all_colourings(n_real=4, n=5, k=3):
    rows = [list(c) + [0] * (n - n_real) for c in itertools.product(range(k), repeat=n_real)]
    return torch.tensor(rows)


def test_largest_first_orders_by_degree_then_index_with_padding_last():
    assert largest_first(ADJ, MASK).tolist() == [[1, 0, 2, 3, 4]]
    # an edge to a padded node does not count
    adj = ADJ.clone()
    adj[0, 0, 4] = adj[0, 4, 0] = True
    assert largest_first(adj, MASK).tolist() == [[1, 0, 2, 3, 4]]


def test_the_likelihood_is_normalised_over_every_colouring():
    model = make_model()
    x = all_colourings()
    with torch.no_grad():
        lp = model.log_prob(x, ADJ.expand(len(x), -1, -1), MASK.expand(len(x), -1))
    assert abs(float(torch.logsumexp(lp, 0))) < 1e-10


def test_the_likelihood_is_the_sum_of_the_conditionals_in_largest_first_order():
    """An independent loop: colour the ordered nodes one at a time, the net sees only the earlier ones."""
    model = make_model(1)
    x = torch.tensor([[2, 0, 1, 1, 0]])
    expected = 0.0
    order = [1, 0, 2, 3]
    with torch.no_grad():
        for t, node in enumerate(order):
            known = torch.zeros(1, 5, dtype=torch.bool)
            known[0, order[:t]] = True
            lp = model._log_probs(x, known, ADJ, MASK)  # in the graph's own node order
            expected += float(lp[0, node, x[0, node]])
        assert abs(float(model.log_prob(x, ADJ, MASK)) - expected) < 1e-10


def test_padding_changes_nothing():
    model = make_model(2)
    x = torch.tensor([[1, 2, 0, 1, 0]])
    with torch.no_grad():
        lp = model.log_prob(x, ADJ, MASK)
        x2, adj2 = x.clone(), ADJ.clone()
        x2[0, 4] = 2
        adj2[0, 2, 4] = adj2[0, 4, 2] = True
        assert torch.allclose(model.log_prob(x2, adj2, MASK), lp, atol=1e-12)
        assert torch.allclose(model.log_prob(x[:, :4], ADJ[:, :4, :4], MASK[:, :4]), lp, atol=1e-12)


def test_the_one_position_estimate_is_unbiased():
    model = make_model(3)
    x = torch.tensor([[0, 1, 2, 2, 0]]).expand(4000, -1)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        est = model.log_prob_estimate(x, ADJ.expand(4000, -1, -1), MASK.expand(4000, -1), generator=g)
        exact = float(model.log_prob(x[:1], ADJ, MASK))
    assert abs(float(est.mean()) - exact) < 4 * float(est.std()) / 4000 ** 0.5
    assert est.std() > 0  # the positions differ


def test_samples_follow_the_likelihood():
    model = make_model(4)
    n = 20000
    g = torch.Generator().manual_seed(0)
    s = model.sample(ADJ.expand(n, -1, -1), MASK.expand(n, -1), generator=g)
    assert not s[:, 4].any()
    x = all_colourings()
    with torch.no_grad():
        p = model.log_prob(x, ADJ.expand(len(x), -1, -1), MASK.expand(len(x), -1)).exp()
    codes = (s[:, :4] * torch.tensor([27, 9, 3, 1])).sum(-1)
    freq = torch.bincount(codes, minlength=81).double() / n
    assert float((freq - p).abs().max()) < 5 * float((p * (1 - p) / n).sqrt().max())
    greedy = model.sample(ADJ, MASK, greedy=True)
    assert greedy.shape == (1, 5)


def test_errors():
    model = make_model()
    with pytest.raises(ValueError, match=r"colours must be a LongTensor \[B, N\]"):
        model.log_prob(torch.zeros(1, 5), ADJ, MASK)
    with pytest.raises(ValueError, match=r"colours must hold colour indices in \[0, 3\) at real nodes, got 3"):
        model.log_prob(torch.tensor([[0, 3, 0, 0, 0]]), ADJ, MASK)
    with pytest.raises(ValueError, match="adjacency must be a bool tensor"):
        model.log_prob(torch.zeros(1, 5, dtype=torch.long), ADJ.float(), MASK)
    with pytest.raises(ValueError, match="num_colours must be"):
        GraphColouringRNN(1)

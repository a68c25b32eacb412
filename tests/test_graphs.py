"""Graph colouring data, the masked GraphNet and the graph-conditioned flow prior."""
import pytest
import torch

from catlib.data.graphs import GRAPH_SIZES, GraphColouring, colour_graph, conflicting_edges, is_valid_colouring
from catlib.flows.graph import GraphFlow, NodeLinear
from catlib.nets.graph import GraphNet
from helpers import randomize


@pytest.fixture(scope="module")
def small():
    return GraphColouring(40, "small", seed=0)


def random_graphs(b=3, n=6, seed=0, dtype=torch.float64):
    """Padded random graphs with real nodes scattered among padded ones (not only a prefix)."""
    g = torch.Generator().manual_seed(seed)
    mask = torch.rand(b, n, generator=g) < 0.7
    mask[:, 0] = True
    upper = torch.triu(torch.rand(b, n, n, generator=g) < 0.5, 1)
    adj = (upper | upper.transpose(1, 2)) & mask[:, :, None] & mask[:, None, :]
    return adj, mask, torch.randn(b, n, 2, generator=g, dtype=dtype)


# ------------------------------------------------------------------------------------------- data
@pytest.mark.parametrize("size,method", [("small", "planted"), ("large", "planted"), ("small", "erdos-renyi")])
def test_generated_graphs_are_well_formed_and_validly_coloured(size, method):
    data = GraphColouring(12, size, seed=1, method=method)
    lo, hi = GRAPH_SIZES[size]
    a, m, c = data.adjacency, data.mask, data.colours
    assert a.shape == (12, hi, hi) and m.shape == (12, hi) and c.dtype == torch.long
    assert ((data.num_nodes >= lo) & (data.num_nodes <= hi)).all()
    assert torch.equal(m.sum(1), data.num_nodes) and torch.equal(a, a.transpose(1, 2))
    assert not a.diagonal(0, 1, 2).any() and not (a & ~(m[:, :, None] & m[:, None, :])).any()
    assert ((c >= 0) & (c < 3)).all() and not (c * ~m).any()
    assert is_valid_colouring(c, a, m).all() and not conflicting_edges(c, a, m).any()
    assert (a.sum(2)[m] >= 1).all()  # connected graphs: no isolated node
    for i in range(len(data)):
        e = data.edges(i)
        assert len(e) == data.num_edges[i] and (e[:, 0] < e[:, 1]).all()
        assert (c[i, e[:, 0]] != c[i, e[:, 1]]).all()
        assert len(c[i, m[i]].unique()) == 3  # chromatic number 3: never 2-colourable


def test_same_seed_same_data_and_splits_differ(small):
    again = GraphColouring(40, "small", seed=0)
    assert torch.equal(small.adjacency, again.adjacency) and torch.equal(small.colours, again.colours)
    other = GraphColouring(40, "small", seed=1)
    val = GraphColouring(40, "small", seed=0, split="val")
    for d in (other, val):
        assert not torch.equal(small.adjacency, d.adjacency)
    splits = GraphColouring.splits(2, 3, 4, seed=0)
    assert [len(splits[k]) for k in ("train", "val", "test")] == [2, 3, 4]
    assert torch.equal(splits["train"].adjacency, small.adjacency[:2])  # a split does not depend on the others


def test_chunks_drawn_by_several_processes_give_the_same_set(monkeypatch):
    import catlib.data.graphs as graphs

    monkeypatch.setattr(graphs, "CHUNK", 4)
    one = GraphColouring(10, "small", seed=2, method="erdos-renyi", progress=False)
    two = GraphColouring(10, "small", seed=2, method="erdos-renyi", workers=2, progress=False)
    for name in ("adjacency", "colours", "num_nodes"):
        assert torch.equal(getattr(one, name), getattr(two, name)), name
    # each chunk has its own stream: the first chunk of a longer set is the set of one chunk
    first = GraphColouring(4, "small", seed=2, method="erdos-renyi", progress=False)
    assert torch.equal(first.adjacency, one.adjacency[:4]) and not torch.equal(one.colours[:4], one.colours[4:8])


def test_planted_average_degree_is_in_catnf_range(small):
    assert 2.3 < small.average_degree.mean() < 3.4


def test_batch_trims_padding_and_permutes_colours(small):
    idx = [3, 7, 11]
    c, a, m = small.batch(idx)
    n = int(small.num_nodes[idx].max())
    assert c.shape == (3, n) and a.shape == (3, n, n) and m.shape == (3, n)
    c2, _, _ = small.batch(idx, permute_colours=True, generator=torch.Generator().manual_seed(0))
    assert is_valid_colouring(c2, a, m).all() and not (c2 * ~m).any()
    for i in range(3):  # a renaming: equal colours stay equal
        same, same2 = (c[i, :, None] == c[i, None, :]), (c2[i, :, None] == c2[i, None, :])
        assert torch.equal(same & m[i] & m[i, :, None], same2 & m[i] & m[i, :, None])
    colours, adjacency, mask = small[5]
    assert mask.all() and len(colours) == small.num_nodes[5]
    with pytest.raises(ValueError, match=r"indices must be .* in \[0, 40\), got \[40\]"):
        small.batch([40])


def test_colour_graph_on_a_cycle_and_k4():
    cycle = torch.tensor([[i, (i + 1) % 5] for i in range(5)])
    colouring = colour_graph(cycle, 5, seed=3)
    assert (colouring[cycle[:, 0]] != colouring[cycle[:, 1]]).all() and ((colouring >= 0) & (colouring < 3)).all()
    seen = {tuple(colour_graph(cycle, 5, seed=s).tolist()) for s in range(30)}
    assert len(seen) > 5  # different seeds give different colourings
    k4 = torch.combinations(torch.arange(4))
    with pytest.raises(ValueError, match="no proper colouring with 3 colours"):
        colour_graph(k4, 4)
    assert colour_graph(k4, 4, num_colours=4).unique().numel() == 4
    with pytest.raises(ValueError, match=r"self loops .* got \(2, 2\) at row 1"):
        colour_graph([[0, 1], [2, 2]], 3)
    with pytest.raises(ValueError, match=r"in \[0, 3\), got \(0, 3\)"):
        colour_graph([[0, 3]], 3)


def test_validity_checks_and_errors():
    adj = torch.zeros(1, 3, 3, dtype=torch.bool)
    adj[0, 0, 1] = adj[0, 1, 0] = adj[0, 1, 2] = adj[0, 2, 1] = True
    mask = torch.tensor([[True, True, False]])
    assert is_valid_colouring(torch.tensor([[0, 1, 1]]), adj, mask).item()  # the edge to padding is ignored
    assert not is_valid_colouring(torch.tensor([[1, 1, 0]]), adj, mask).item()
    with pytest.raises(ValueError, match=r"colours must be in \[0, 3\) at real nodes, got 3 at position \(0, 1\)"):
        is_valid_colouring(torch.tensor([[0, 3, 0]]), adj, mask)
    with pytest.raises(ValueError, match="adjacency must be a bool tensor"):
        is_valid_colouring(torch.tensor([[0, 1, 0]]), adj.long(), mask)


def test_argument_errors():
    with pytest.raises(ValueError, match="size must be one of \\['small', 'large'\\], got 'huge'"):
        GraphColouring(2, "huge")
    with pytest.raises(ValueError, match="num_graphs must be an integer >= 1, got 0"):
        GraphColouring(0)
    with pytest.raises(ValueError, match="split must be one of"):
        GraphColouring(2, split="training")


def test_save_load_round_trip_and_bad_files(tmp_path, small):
    path = tmp_path / "graphs.pt"
    small.save(path)
    loaded = GraphColouring.load(path)
    assert torch.equal(loaded.adjacency, small.adjacency) and torch.equal(loaded.colours, small.colours)
    assert torch.equal(loaded.mask, small.mask) and (loaded.size, loaded.seed) == ("small", 0)
    assert torch.equal(GraphColouring.load_or_generate(path, 40, "small", 0).colours, small.colours)
    with pytest.raises(ValueError, match="delete it or use another path"):
        GraphColouring.load_or_generate(path, 40, "small", seed=5)
    fresh = GraphColouring.load_or_generate(tmp_path / "sub" / "g.pt", 3, "small", seed=2)
    assert (tmp_path / "sub" / "g.pt").is_file() and len(fresh) == 3
    with pytest.raises(FileNotFoundError, match="no graph colouring data"):
        GraphColouring.load(tmp_path / "missing.pt")
    (tmp_path / "bad.pt").write_bytes(path.read_bytes()[:100])
    with pytest.raises(ValueError, match="damaged or not a catlib graph colouring file"):
        GraphColouring.load(tmp_path / "bad.pt")
    state = torch.load(path, weights_only=True)
    c, a = state["colours"], state["adjacency"]
    j = int(a[0, 0].nonzero()[0])
    c[0, 0] = c[0, j]
    torch.save(state, tmp_path / "invalid.pt")
    with pytest.raises(ValueError, match="invalid colourings"):
        GraphColouring.load(tmp_path / "invalid.pt")


# ------------------------------------------------------------------------------------------- GraphNet
@pytest.mark.parametrize("kind", ["message", "attention"])
def test_graphnet_is_permutation_equivariant_and_ignores_padding(kind):
    torch.manual_seed(0)
    net = randomize(GraphNet(2, 3, hidden=16, layers=3, kind=kind).double())
    adj, mask, h = random_graphs()
    out = net(h, adj, mask)
    assert out.shape == (3, 6, 3) and not out[~mask].any() and out[mask].abs().min() > 0
    perm = torch.randperm(6)
    out_p = net(h[:, perm], adj[:, perm][:, :, perm], mask[:, perm])
    assert torch.allclose(out_p, out[:, perm], atol=1e-12)
    h2, adj2 = h.clone(), adj.clone()
    h2[~mask] = float("nan")  # values at padded nodes
    adj2 |= ~mask[:, None, :]  # edges from every node to padded nodes
    assert torch.allclose(net(h2, adj2, mask), out, atol=1e-12)


def test_graphnet_zero_init_and_errors():
    adj, mask, h = random_graphs(dtype=torch.float32)
    assert not GraphNet(2, 4, hidden=8, zero_init=True)(h, adj, mask).any()
    net = GraphNet(2, 4, hidden=8)
    with pytest.raises(ValueError, match=r"h must be a float tensor \[B, N, 2\], got torch.float32 of shape \[3, 6, 3"):
        net(torch.randn(3, 6, 3), adj, mask)
    with pytest.raises(ValueError, match="adjacency must be a bool tensor"):
        net(h, adj.float(), mask)
    with pytest.raises(ValueError, match=r"mask must be a bool tensor \[B, N\] = \[3, 6\]"):
        net(h, adj, mask[:, :5])
    with pytest.raises(ValueError, match="kind must be one of \\['message', 'attention'\\], got 'gcn'"):
        GraphNet(2, 4, kind="gcn")
    with pytest.raises(ValueError, match="hidden=10 into heads=4: hidden must be a multiple of heads"):
        GraphNet(2, 4, hidden=10, kind="attention", heads=4)


def test_graph_attention_weighs_neighbours_and_itself():
    """An attention layer's weights over a node's neighbours and itself sum to one: with equal
    scores and messages the update is the same at every node whatever its degree."""
    torch.manual_seed(0)
    net = GraphNet(2, 3, hidden=8, layers=1, kind="attention", heads=2).double()
    layer = net.layers[0]
    with torch.no_grad():
        layer.score.zero_()  # equal scores: a uniform average over the neighbours and the node
    adj, mask, _ = random_graphs(seed=5)
    h = torch.ones(3, 6, 2, dtype=torch.float64)  # every node alike: every message alike
    with torch.no_grad():
        layer.messages.weight[8:].copy_(layer.messages.weight[:8])  # self message = neighbour message
        layer.messages.bias[8:].copy_(layer.messages.bias[:8])
    out = net(h, adj, mask)
    assert torch.allclose(out[mask], out[mask][:1].expand(int(mask.sum()), 3), atol=1e-12)


# ------------------------------------------------------------------------------------------- GraphFlow
#: GraphFlow variants: our first prior, and CatNF's mixture couplings over graph attention
VARIANTS = {"affine-message": {}, "mixture-attention": {"coupling": "mixture", "net": "attention", "num_mixtures": 4}}


def make_flow(d=2, **kw):
    torch.manual_seed(0)
    flow = GraphFlow(d, num_steps=3, hidden=16, gnn_layers=2, **kw).double()
    return randomize(flow, 0.2).eval()


@pytest.mark.parametrize("variant", sorted(VARIANTS))
@pytest.mark.parametrize("d", [2, 3])
def test_flow_round_trip_and_log_det_matches_autograd(d, variant):
    flow = make_flow(d, **VARIANTS[variant])
    adj, mask, _ = random_graphs(seed=1)
    z = torch.randn(3, 6, d, dtype=torch.float64) * 1.5
    u, ldj = flow(z, adj, mask)
    assert u.shape == z.shape and ldj.shape == (3,) and not u[~mask].any()
    assert torch.allclose(flow.inverse(u, adj, mask), z * mask[..., None], atol=1e-10)
    for b in range(3):
        real = mask[b]
        zb = z[b:b + 1].clone()

        def f(x):
            full = zb.clone()
            full[0, real] = x.view(-1, d)
            return flow(full, adj[b:b + 1], mask[b:b + 1])[0][0, real].flatten()

        jac = torch.autograd.functional.jacobian(f, z[b, real].flatten())
        assert torch.allclose(torch.linalg.slogdet(jac)[1], ldj[b], atol=1e-9)


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_flow_log_prob_ignores_padding_and_is_permutation_invariant(variant):
    flow = make_flow(**VARIANTS[variant])
    adj, mask, z = random_graphs(seed=2)
    lp = flow.log_prob(z, adj, mask)
    z2 = z.clone()
    z2[~mask] = float("nan")
    assert torch.allclose(flow.log_prob(z2, adj | ~mask[:, None, :], mask), lp, atol=1e-12)
    perm = torch.randperm(6, generator=torch.Generator().manual_seed(1))
    assert torch.allclose(flow.log_prob(z[:, perm], adj[:, perm][:, :, perm], mask[:, perm]), lp, atol=1e-10)
    # the graph matters: removing the edges changes the density
    assert not torch.allclose(flow.log_prob(z, torch.zeros_like(adj), mask), lp)


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_flow_density_of_a_single_node_integrates_to_one(variant):
    flow = make_flow(**VARIANTS[variant])
    g = torch.linspace(-12, 12, 401, dtype=torch.float64)
    xx, yy = torch.meshgrid(g, g, indexing="ij")
    z = torch.stack([xx.flatten(), yy.flatten()], -1)[:, None, :]  # [grid, 1 node, 2]
    adj, mask = torch.zeros(len(z), 1, 1, dtype=torch.bool), torch.ones(len(z), 1, dtype=torch.bool)
    with torch.no_grad():
        p = flow.log_prob(z, adj, mask).exp().view(401, 401)
    assert abs(float(torch.trapezoid(torch.trapezoid(p, g, dim=1), g)) - 1.0) < 1e-3


def test_flow_starts_at_identity_couplings_and_actnorm_initialises_on_real_nodes():
    torch.manual_seed(0)
    flow = GraphFlow(2, num_steps=2, hidden=8, gnn_layers=1, actnorm=False).double()
    adj, mask, z = random_graphs(seed=3)
    u, ldj = flow(z, adj, mask)  # only the orthogonal linear layers act: |det| = 1 (float32 start)
    # The couplings add exactly nothing: ldj is the linear layers' log|det W| per real node (float64, exact).
    # log|det W| itself is a few float32 ulps of the float32 QR start, which LAPACK rounds differently
    # on other processors; 1e-5 allows 12 node-steps of that, while a coupling off the identity adds ~0.1.
    linear = sum(m.linear.log_s.sum() for m in flow.steps if isinstance(m, NodeLinear)) * mask.sum(1)
    torch.testing.assert_close(ldj, linear, rtol=0, atol=1e-12)
    assert float(ldj.detach().abs().max()) < 1e-5
    flow = GraphFlow(2, num_steps=1, hidden=8, gnn_layers=1).double().train()
    z = z * 3 + 5
    z[~mask] = 1e6  # padding must not enter the initialisation
    u, _ = flow(z, adj, mask)
    assert torch.allclose(u[mask].mean(0), torch.zeros(2, dtype=torch.float64), atol=1e-9)


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_flow_gradients_reach_every_parameter_and_sample_shapes(variant):
    flow = GraphFlow(2, num_steps=2, hidden=8, gnn_layers=2, feature_dim=1, **VARIANTS[variant])
    adj, mask, z = random_graphs(seed=4, dtype=torch.float32)
    feats = torch.randn(3, 6, 1)
    flow(z, adj, mask, feats)  # actnorm initialisation
    randomize(flow, 0.1)
    flow.log_prob(z, adj, mask, feats).sum().backward()
    for name, p in flow.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    s = flow.sample(adj, mask, feats, generator=torch.Generator().manual_seed(0))
    assert s.shape == (3, 6, 2) and torch.isfinite(s).all() and not s[~mask].any()
    again = flow.sample(adj, mask, feats, generator=torch.Generator().manual_seed(0))
    assert torch.equal(s, again)


def test_flow_argument_errors():
    with pytest.raises(ValueError, match="d must be an integer >= 2, got 1"):
        GraphFlow(1)
    with pytest.raises(ValueError, match="coupling must be one of \\['affine', 'mixture'\\], got 'spline'"):
        GraphFlow(2, coupling="spline")
    with pytest.raises(ValueError, match="num_mixtures must be"):
        GraphFlow(2, coupling="mixture", num_mixtures=0)
    flow = GraphFlow(2, num_steps=1, hidden=8, gnn_layers=1)
    adj, mask, z = random_graphs(dtype=torch.float32)
    with pytest.raises(ValueError, match=r"z must be a float tensor \[B, N, 2\]"):
        flow.log_prob(z[..., :1], adj, mask)
    with pytest.raises(ValueError, match=r"adjacency must have shape \[3, 5, 5\]"):
        flow.log_prob(z[:, :5], adj, mask)
    with pytest.raises(ValueError, match="node_features must be None"):
        flow.log_prob(z, adj, mask, torch.zeros(3, 6, 1))
    with pytest.raises(ValueError, match=r"node_features must be a tensor \[3, 6, 2\]"):
        GraphFlow(2, num_steps=1, hidden=8, gnn_layers=1, feature_dim=2).log_prob(z, adj, mask)

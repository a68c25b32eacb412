"""EdgeNet and EdgeFlow: pair latents given the nodes (the bond part of a molecule model)."""
import pytest
import torch
from helpers import randomize

from catlib.flows.edges import EdgeFlow
from catlib.nets.edges import EdgeNet, pair_index, pair_mask, to_dense, to_pairs

VARIANTS = {"affine": {}, "mixture": {"coupling": "mixture", "num_mixtures": 4}}


def batch(seed=0, n=5, d=2, node_dim=3):
    """Three node sets padded to ``n``: 5, 3 and 2 real nodes; features and pair latents."""
    g = torch.Generator().manual_seed(seed)
    mask = torch.arange(n) < torch.tensor([5, 3, 2])[:, None]
    feats = torch.randn(3, n, node_dim, generator=g, dtype=torch.float64)
    z = torch.randn(3, n * (n - 1) // 2, d, generator=g, dtype=torch.float64) * 1.5
    return feats, mask, z * pair_mask(mask)[..., None]


def permute_pairs(z, perm):
    """Pair latents ``z [B, P, d]`` after renumbering the nodes: node ``perm[k]`` becomes node ``k``."""
    return to_pairs(to_dense(z, len(perm))[:, perm][:, :, perm])


def make_flow(variant, d=2):
    torch.manual_seed(0)
    return randomize(EdgeFlow(d, node_dim=3, num_steps=3, hidden=16, layers=2, **VARIANTS[variant]).double(), 0.2).eval()


def test_pair_helpers_round_trip():
    rows, cols = pair_index(4)
    assert (rows < cols).all() and rows.numel() == 6
    p = torch.arange(12.0).view(1, 6, 2)
    dense = to_dense(p, 4)
    assert torch.equal(dense, dense.transpose(1, 2)) and not dense.diagonal(0, 1, 2).any()
    assert torch.equal(to_pairs(dense), p)
    with pytest.raises(ValueError, match="4 nodes have 6 pairs"):
        to_dense(torch.zeros(1, 5), 4)


def test_edgenet_is_symmetric_equivariant_and_ignores_padding():
    torch.manual_seed(0)
    net = randomize(EdgeNet(3, 2, 4, hidden_nodes=8, hidden_edges=8, layers=2).double(), 0.2)
    feats, mask, z = batch(seed=1)
    e = to_dense(z, 5)
    out = net(feats, e, mask)
    assert torch.equal(out, out.transpose(1, 2)) and not out.diagonal(0, 1, 2).any()
    padded = ~(mask[:, :, None] & mask[:, None, :])
    assert not out[padded].any()
    perm = torch.randperm(5, generator=torch.Generator().manual_seed(2))
    moved = net(feats[:, perm], e[:, perm][:, :, perm], mask[:, perm])
    assert torch.allclose(moved, out[:, perm][:, :, perm], atol=1e-12)
    junk_feats, junk_e = feats.clone(), e.clone()
    junk_feats[~mask] = 1e3
    junk_e[padded] = -7.0
    assert torch.allclose(net(junk_feats, junk_e, mask), out, atol=1e-12)
    # the net does look at the nodes and at the other pairs
    assert not torch.allclose(net(feats + 1, e, mask), out)
    e2 = e.clone()
    e2[0, 0, 1] = e2[0, 1, 0] = e[0, 0, 1] + 1
    assert not torch.allclose(net(feats, e2, mask)[0, 2, 3], out[0, 2, 3])


@pytest.mark.parametrize("variant", sorted(VARIANTS))
@pytest.mark.parametrize("d", [2, 3])
def test_flow_round_trip_and_log_det_matches_autograd(variant, d):
    flow = make_flow(variant, d)
    feats, mask, z = batch(seed=3, d=d)
    u, ldj = flow(z, feats, mask)
    pairs = pair_mask(mask)
    assert u.shape == z.shape and not u[~pairs].any()
    assert torch.allclose(flow.inverse(u, feats, mask), z, atol=1e-9)
    for b in range(3):
        real = pairs[b]

        def f(x):
            full = z[b:b + 1].clone()
            full[0, real] = x.view(-1, d)
            return flow(full, feats[b:b + 1], mask[b:b + 1])[0][0, real].flatten()

        jac = torch.autograd.functional.jacobian(f, z[b, real].flatten())
        assert torch.allclose(torch.linalg.slogdet(jac)[1], ldj[b], atol=1e-9)


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_flow_log_prob_ignores_padding_is_permutation_invariant_and_sees_the_nodes(variant):
    flow = make_flow(variant)
    feats, mask, z = batch(seed=4)
    lp = flow.log_prob(z, feats, mask)
    junk_z, junk_feats = z.clone(), feats.clone()
    junk_z[~pair_mask(mask)] = float("nan")
    junk_feats[~mask] = 5.0
    assert torch.allclose(flow.log_prob(junk_z, junk_feats, mask), lp, atol=1e-12)
    perm = torch.randperm(5, generator=torch.Generator().manual_seed(5))
    assert torch.allclose(flow.log_prob(permute_pairs(z, perm), feats[:, perm], mask[:, perm]), lp, atol=1e-10)
    assert not torch.allclose(flow.log_prob(z, feats.flip(1), mask), lp)


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_flow_density_of_a_single_pair_integrates_to_one(variant):
    flow = make_flow(variant)
    g = torch.linspace(-30, 30, 801, dtype=torch.float64)  # the randomised affine flow has wide tails
    xx, yy = torch.meshgrid(g, g, indexing="ij")
    z = torch.stack([xx.flatten(), yy.flatten()], -1)[:, None, :]  # [grid, 1 pair, 2]
    feats = torch.tensor([[0.3, -1.0, 0.5], [1.2, 0.1, -0.4]], dtype=torch.float64).expand(len(z), 2, 3)
    mask = torch.ones(len(z), 2, dtype=torch.bool)
    with torch.no_grad():
        p = flow.log_prob(z, feats, mask).exp().view(801, 801)
    assert abs(float(torch.trapezoid(torch.trapezoid(p, g, dim=1), g)) - 1.0) < 1e-4


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_flow_gradients_reach_every_parameter_and_sampling_is_seeded(variant):
    flow = EdgeFlow(2, node_dim=3, num_steps=2, hidden=8, layers=2, **VARIANTS[variant])
    feats, mask, z = (t.float() if t.is_floating_point() else t for t in batch(seed=6))
    flow(z, feats, mask)  # actnorm initialisation
    randomize(flow, 0.1)
    flow.log_prob(z, feats, mask).sum().backward()
    for name, p in flow.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    s = flow.sample(feats, mask, generator=torch.Generator().manual_seed(0))
    assert s.shape == z.shape and torch.isfinite(s).all() and not s[~pair_mask(mask)].any()
    assert torch.equal(s, flow.sample(feats, mask, generator=torch.Generator().manual_seed(0)))


def test_errors_name_the_expected_shapes():
    flow = EdgeFlow(2, node_dim=3, num_steps=1, hidden=8, layers=1)
    feats, mask, z = batch()
    with pytest.raises(ValueError, match=r"z must be a float tensor \[B, P, d\] = \[3, 10, 2\] for 5 nodes"):
        flow.log_prob(z[:, :6].float(), feats.float(), mask)
    with pytest.raises(ValueError, match=r"node_features must be a tensor \[3, 5, 3\]"):
        flow.log_prob(z.float(), feats[..., :2].float(), mask)
    with pytest.raises(ValueError, match="mask must be a bool tensor"):
        flow.log_prob(z.float(), feats.float(), mask.float())
    with pytest.raises(ValueError, match="d must be an integer >= 2, got 1"):
        EdgeFlow(1, node_dim=3)
    with pytest.raises(ValueError, match="coupling must be one of"):
        EdgeFlow(2, node_dim=3, coupling="spline")
    with pytest.raises(ValueError, match=r"edges must be a float tensor \[1, 2, 2, 2\]"):
        EdgeNet(3, 2, 1)(torch.zeros(1, 2, 3), torch.zeros(1, 2, 2, 3), torch.ones(1, 2, dtype=torch.bool))

"""Argmax inverses: support, log-densities against autograd and closed forms, base-M encodings."""
import math

import pytest
import torch
from torch.nn import functional as F

from catlib.argmax import (BinaryThresholdInverse, CartesianEncoding, GumbelInverse, GumbelThresholdInverse,
                           ThresholdInverse, cartesian_tradeoffs, conditional_flow, gumbel_argmax_transform, log_softplus,
                           threshold)
from catlib.distributions import Gumbel


def test_threshold_log_det_matches_autograd(float64):
    torch.manual_seed(0)
    u = torch.randn(5, 2, 4) * 3
    x = torch.randint(0, 4, (5, 2))
    v, ldj = threshold(u, x)
    for b in range(5):
        jac = torch.autograd.functional.jacobian(lambda a: threshold(a.view(1, 2, 4), x[b:b + 1])[0].flatten(), u[b].flatten())
        assert torch.allclose(torch.linalg.slogdet(jac)[1], ldj[b], atol=1e-10)


def test_gumbel_transform_density_is_the_conditioned_gumbel(float64):
    """log q(v|x) = sum_i log Gumbel(v_i; phi_i) - log softmax(phi)_x, and equals -log|dv/du|."""
    torch.manual_seed(1)
    phi = torch.randn(3, 5).expand(6, 3, 5)
    x = torch.randint(0, 5, (6, 3))
    u = torch.rand(6, 3, 5)
    v, log_density = gumbel_argmax_transform(phi, torch.log(-torch.log(u)), x)
    closed = Gumbel(phi).log_prob(v).sum((1, 2)) - torch.log_softmax(phi, -1).gather(-1, x.unsqueeze(-1)).sum((1, 2))
    assert torch.allclose(log_density, closed, atol=1e-9)
    assert (v.argmax(-1) == x).all()
    for b in range(6):
        f = lambda a: gumbel_argmax_transform(phi[b:b + 1], torch.log(-torch.log(a.view(1, 3, 5))), x[b:b + 1])[0].flatten()
        jac = torch.autograd.functional.jacobian(f, u[b].flatten())
        assert torch.allclose(torch.linalg.slogdet(jac)[1], -log_density[b], atol=1e-8)


def test_gumbel_threshold_with_uniform_noise_is_the_gumbel_inverse(float64):
    """With s ~ Logistic(0, 1), sigmoid(s) is uniform and q(v|x) reduces to the Gumbel inverse's."""
    torch.manual_seed(2)
    phi = torch.randn(2, 4).expand(3, 2, 4)
    s = torch.randn(3, 2, 4)
    x = torch.randint(0, 4, (3, 2))
    log_w_density = (F.logsigmoid(s) + F.logsigmoid(-s)).flatten(1).sum(-1)  # log Logistic(s)
    v, log_density = gumbel_argmax_transform(phi, log_softplus(-s), x)
    log_q = log_w_density + (F.softplus(-s) + F.softplus(s)).flatten(1).sum(-1) + log_density
    closed = Gumbel(phi).log_prob(v).sum((1, 2)) - torch.log_softmax(phi, -1).gather(-1, x.unsqueeze(-1)).sum((1, 2))
    assert torch.allclose(log_q, closed, atol=1e-9)


def test_gumbel_locations_start_at_first_batch_frequencies():
    inv = GumbelInverse(1, 3).train()
    x = torch.tensor([[0]] * 6 + [[1]] * 3 + [[2]] * 1)
    inv.sample(x)
    p = torch.softmax(inv.locations.phi.detach(), -1)[0]
    assert torch.allclose(p, torch.tensor([6.5, 3.5, 1.5]) / 11.5, atol=1e-6)
    inv.sample(torch.tensor([[2]] * 10))  # only the first batch initialises
    assert torch.allclose(torch.softmax(inv.locations.phi.detach(), -1)[0], p)


def _extreme(inverse, spread):
    """Extreme but finite q: means of u spread by ``spread * 20``, scales from e^-5 to e^5."""
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        if hasattr(inverse, "locations"):
            inverse.locations.phi.copy_(torch.randn(inverse.locations.phi.shape, generator=g) * spread)
        flow = getattr(inverse, "q_u", None) or getattr(inverse, "q_s", None)
        if flow is not None:
            for p in flow.transforms.parameters():
                p.add_(torch.randn(p.shape, generator=g) * 0.3)
            last = flow.base.net[-1]
            last.weight.copy_(torch.randn(last.weight.shape, generator=g) * spread * 20)
            dim = last.bias.numel() // 2
            last.bias[:dim] = torch.randn(dim, generator=g) * spread * 20
            last.bias[dim:] = torch.rand(dim, generator=g) * 10 - 5
            last.weight[dim:] = 0
    return inverse


@pytest.mark.parametrize("make", [
    lambda: _extreme(ThresholdInverse(1, 6, flow_steps=1, hidden=(8,)), 5.0),
    lambda: _extreme(GumbelInverse(1, 6), 20.0),
    lambda: _extreme(GumbelThresholdInverse(1, 6, flow_steps=1, hidden=(8,)), 5.0),
], ids=["threshold", "gumbel", "gumbel-threshold"])
def test_argmax_constraint_for_100k_samples_at_extreme_parameters(make):
    torch.manual_seed(3)
    inv = make().eval()
    x = torch.randint(0, 6, (100_000, 1))
    with torch.no_grad():
        v, log_q = inv.sample(x)
    assert (v.argmax(-1) == x).all()
    assert torch.isfinite(v).all() and torch.isfinite(log_q).all()


def test_threshold_constraint_with_huge_gaps():
    torch.manual_seed(4)
    u = torch.randn(100_000, 1, 5) * 1e3
    x = torch.randint(0, 5, (100_000, 1))
    v, ldj = threshold(u, x)
    assert (v.argmax(-1) == x).all() and torch.isfinite(ldj).all()


def test_binary_inverse_signs_and_density():
    torch.manual_seed(5)
    inv = _extreme(BinaryThresholdInverse(4, flow_steps=1, hidden=(8,)), 5.0)
    b = torch.randint(0, 2, (100_000, 4))
    with torch.no_grad():
        v, log_q = inv.sample(b)
    assert (inv.decode(v) == b).all() and torch.isfinite(log_q).all()


@pytest.mark.parametrize("num_classes", [2, 3, 27, 50, 256, 2000])
@pytest.mark.parametrize("base", [2, 3, 16])
def test_cartesian_encoding_round_trips(num_classes, base):
    enc = CartesianEncoding(num_classes, base)
    assert base ** enc.digits >= num_classes > base ** (enc.digits - 1) or enc.digits == 1
    x = torch.arange(num_classes)
    digits = enc.encode(x)
    assert digits.shape == (num_classes, enc.digits) and digits.min() >= 0 and digits.max() < base
    back, valid = enc.decode(digits)
    assert torch.equal(back, x) and valid.all()
    codes = torch.arange(base ** enc.digits)
    all_digits = enc.encode(codes)
    assert len({tuple(r) for r in all_digits.tolist()}) == base ** enc.digits  # injective
    assert int((~enc.decode(all_digits)[1]).sum()) == base ** enc.digits - num_classes


def test_cartesian_tradeoffs_reproduce_paper_table5():
    rows = cartesian_tradeoffs(2000, [2000, 45, 13, 2])
    assert [r["digits"] for r in rows] == [1, 2, 3, 11]
    assert [r["total_dimensions"] for r in rows] == [2000, 90, 39, 22]
    assert rows[-1]["binary_sign_dimensions"] == 11
    assert rows[0]["neighbours_per_digit"] == 1999


def test_log_softplus_is_stable():
    y = torch.tensor([-1000.0, -30.0, -5.0, 0.0, 30.0])
    out = log_softplus(y)
    assert torch.isfinite(out).all()
    assert torch.allclose(out[2:], torch.log(F.softplus(y[2:])))
    assert math.isclose(float(out[0]), -1000.0)


def test_gumbel_thresholding_starts_as_the_gumbel_inverse():
    # q(s|x) is a logistic base under identity couplings at initialisation, so w = sigmoid(s) is
    # uniform and log q(v|x) must be the Gumbel inverse's closed form
    torch.manual_seed(0)
    q = GumbelThresholdInverse(3, 5)
    x = torch.randint(0, 5, (2000, 3))
    with torch.no_grad():
        v, log_q = q.sample(x)
        phi = q.locations(x).expand_as(v)
    closed = Gumbel(phi).log_prob(v).sum(-1) - torch.log_softmax(phi, -1).gather(-1, x.unsqueeze(-1)).squeeze(-1)
    assert torch.allclose(log_q, closed.sum(-1), atol=1e-3)
    assert bool((v.argmax(-1) == x).all())


def test_conditional_flow_rejects_an_unknown_base():
    with pytest.raises(ValueError, match="base must be one of .*'gaussian'"):
        conditional_flow(2, 2, base="gaussian")

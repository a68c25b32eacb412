"""Densities of catlib.distributions against independent computations."""
import math

import pytest
import torch

from catlib.distributions import (ConditionalLogistic, Gumbel, Logistic, TruncatedGumbel, log_expm1, log_neg_log_uniform,
                                 uniform_open)


def trapezoid_mass(log_prob, lo, hi, n=400_001):
    grid = torch.linspace(lo, hi, n, dtype=torch.float64)
    return float(torch.trapezoid(log_prob(grid).exp(), grid))


def test_log_expm1_matches_float64_direct():
    y = torch.tensor([1e-6, 1e-3, 0.5, 3.0, 19.0, 21.0, 60.0], dtype=torch.float64)
    expected = torch.log(torch.expm1(y))
    assert torch.allclose(log_expm1(y), expected, rtol=1e-12)
    assert torch.isfinite(log_expm1(torch.tensor([500.0]))).all()


def test_uniform_open_excludes_endpoints_without_tail_atoms():
    u = uniform_open((1_000_000,), generator=torch.Generator().manual_seed(0))
    assert u.dtype == torch.float64 and (u > 0).all() and (u < 1).all()
    ell = log_neg_log_uniform((1_000_000,), dtype=torch.float32, generator=torch.Generator().manual_seed(0))
    # float64 noise: log(-log u) <= log(54 ln 2) = 3.62 even for the clamped zero, and no infinities
    assert torch.isfinite(ell).all() and float(ell.max()) < 3.62 and ell.dtype == torch.float32


def test_gumbel_matches_torch_and_integrates():
    d = Gumbel(torch.tensor(0.7, dtype=torch.float64))
    x = torch.linspace(-5, 10, 50, dtype=torch.float64)
    ref = torch.distributions.Gumbel(torch.tensor(0.7, dtype=torch.float64), torch.tensor(1.0, dtype=torch.float64))
    assert torch.allclose(d.log_prob(x), ref.log_prob(x), atol=1e-12)
    assert trapezoid_mass(d.log_prob, -10, 40) == pytest.approx(1.0, abs=1e-6)


@pytest.mark.parametrize("loc,upper", [(0.0, 0.0), (0.0, 2.0), (3.0, -2.0), (-4.0, 1.0)])
def test_truncated_gumbel_integrates_to_one(loc, upper):
    d = TruncatedGumbel(torch.tensor(loc, dtype=torch.float64), torch.tensor(upper, dtype=torch.float64))
    # substitute g = T - e^t: the mass can sit within 1e-3 of T, which a linear grid would miss
    mass = trapezoid_mass(lambda t: d.log_prob(upper - torch.exp(t)) + t, -40.0, 6.0)
    assert mass == pytest.approx(1.0, abs=1e-6)


def test_truncated_gumbel_is_the_conditional_gumbel():
    loc, upper = torch.tensor(1.0, dtype=torch.float64), torch.tensor(0.5, dtype=torch.float64)
    x = torch.linspace(-4, 0.49, 30, dtype=torch.float64)
    full = Gumbel(loc)
    expected = full.log_prob(x) - torch.log(full.cdf(upper))
    assert torch.allclose(TruncatedGumbel(loc, upper).log_prob(x), expected, atol=1e-10)
    assert torch.isinf(TruncatedGumbel(loc, upper).log_prob(torch.tensor(0.6, dtype=torch.float64)))


def test_truncated_gumbel_samples_follow_the_cdf():
    torch.manual_seed(0)
    loc, upper = torch.tensor(1.0, dtype=torch.float64), torch.tensor(0.5, dtype=torch.float64)
    s = TruncatedGumbel(loc, upper).sample((200_000,))
    assert (s < upper).all()
    # Kolmogorov-Smirnov distance to F(g) = Gumbel_cdf(g) / Gumbel_cdf(T)
    s = s.sort().values
    cdf = Gumbel(loc).cdf(s) / Gumbel(loc).cdf(upper)
    emp = torch.arange(1, len(s) + 1, dtype=torch.float64) / len(s)
    assert float((cdf - emp).abs().max()) < 1.63 / math.sqrt(len(s))  # 1% KS level


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_truncated_gumbel_extreme_parameters(dtype):
    torch.manual_seed(1)
    loc = torch.tensor([80.0, -80.0, 0.0, 30.0], dtype=dtype)
    upper = torch.tensor([-80.0, 80.0, 1e-3, 29.9999], dtype=dtype)
    d = TruncatedGumbel(loc, upper)
    s, log_p = d.rsample_with_log_prob((100_000,))
    assert (s < upper).all()
    assert torch.isfinite(s).all() and torch.isfinite(log_p).all()


def test_log_prob_from_noise_equals_log_prob_of_sample():
    torch.manual_seed(3)
    d = TruncatedGumbel(torch.tensor([2.0, -1.0, 0.0], dtype=torch.float64), torch.tensor([0.0, 1.0, -0.5], dtype=torch.float64))
    s, log_p = d.rsample_with_log_prob((1000,))
    assert torch.allclose(log_p, d.log_prob(s), atol=1e-9)
    g = Gumbel(torch.tensor(0.3, dtype=torch.float64))
    ell = torch.randn(100, dtype=torch.float64)
    s, log_p = g.icdf_with_log_prob(ell)
    assert torch.allclose(log_p, g.log_prob(s), atol=1e-12)


def test_logistic_matches_scipy():
    scipy_stats = pytest.importorskip("scipy.stats")
    d = Logistic(torch.tensor(0.3, dtype=torch.float64), torch.tensor(1.7, dtype=torch.float64))
    x = torch.linspace(-30, 30, 41, dtype=torch.float64)
    ref = scipy_stats.logistic(loc=0.3, scale=1.7)
    assert torch.allclose(d.log_prob(x), torch.from_numpy(ref.logpdf(x.numpy())), atol=1e-10)
    assert torch.allclose(d.icdf(d.cdf(x[10:30])), x[10:30], atol=1e-8)


def test_gumbel_histogram_matches_density():
    torch.manual_seed(2)
    d = Gumbel(torch.tensor(-1.0, dtype=torch.float64))
    s = d.sample((400_000,))
    edges = torch.linspace(-4, 5, 31, dtype=torch.float64)
    hist = torch.histogram(s, edges).hist / len(s)
    expected = d.cdf(edges[1:]) - d.cdf(edges[:-1])
    assert torch.allclose(hist, expected, atol=3e-3)


def test_conditional_logistic_density_integrates_and_matches_its_samples():
    torch.manual_seed(0)
    net = torch.nn.Linear(2, 2)  # one variable: location and log-scale from a 2-d context
    q = ConditionalLogistic(net, 1)
    context = torch.tensor([[0.3, -1.0]])
    s, log_q = q.sample_with_log_prob(context.expand(1000, 2))
    assert torch.allclose(q.log_prob(s, context.expand(1000, 2)), log_q, atol=1e-5)
    grid = torch.linspace(-60, 60, 200_001)
    with torch.no_grad():
        density = q.log_prob(grid.unsqueeze(1), context.expand(len(grid), 2)).double().exp()
    assert float(torch.trapezoid(density, grid.double())) == pytest.approx(1.0, abs=1e-4)


def test_sigmoid_of_a_standard_conditional_logistic_is_uniform():
    torch.manual_seed(0)
    net = torch.nn.Linear(3, 8)
    torch.nn.init.zeros_(net.weight)
    torch.nn.init.zeros_(net.bias)  # location 0, log-scale 0 for every context
    with torch.no_grad():
        s, log_q = ConditionalLogistic(net, 4).sample_with_log_prob(torch.randn(50_000, 3))
    w = torch.sigmoid(s.double()).flatten().sort().values
    ks = float((w - torch.arange(1, len(w) + 1, dtype=torch.float64) / len(w)).abs().max())
    assert ks < 1.63 / math.sqrt(len(w))  # 1% KS level against U(0, 1)
    # the density of w = sigmoid(s) is q(s) / sigmoid'(s) = 1 exactly
    log_q_w = log_q.double() + (torch.nn.functional.softplus(-s) + torch.nn.functional.softplus(s)).double().sum(-1)
    assert torch.allclose(log_q_w, torch.zeros_like(log_q_w), atol=1e-4)


def _backward_node_names(t):
    names, stack, seen = set(), [t.grad_fn], set()
    while stack:
        node = stack.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        names.add(type(node).__name__)
        stack.extend(n for n, _ in node.next_functions)
    return names


def test_float_guards_need_no_derivative_of_nextafter():
    """torch.nextafter has no derivative in some versions (2.11 on CUDA raised NotImplementedError)."""
    from catlib.argmax import strictly_below
    from catlib.distributions import next_below

    torch.manual_seed(0)
    loc, upper = torch.randn(6, requires_grad=True), torch.randn(6, requires_grad=True)
    for out in (strictly_below(loc, upper), TruncatedGumbel(loc, upper).rsample(), next_below(upper)):
        names = _backward_node_names(out.sum())
        assert names and not any("Nextafter" in n for n in names), names
    g, = torch.autograd.grad(next_below(upper).sum(), upper)
    assert torch.equal(g, torch.ones(6))
    assert torch.equal(next_below(upper), torch.nextafter(upper, torch.full_like(upper, -math.inf)))

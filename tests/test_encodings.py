"""CatNF / TRUFL encodings: the truncated logistic, the special cases, the optimal decoder, rejection sampling."""
import math

import pytest
import torch

from catlib.distributions import TruncatedLogistic
from catlib.encodings import CategoricalEncoding, RejectionStats, elbo_breakdown, rejection_sample, within_group_std
from catlib.models import build_model


@pytest.mark.parametrize("m,s", [(0.5, 1.0), (0.3, 0.4), (0.8, 0.3), (0.25, 0.5), (0.05, 0.02)])
def test_truncated_logistic_integrates_to_one_and_samples_stay_inside(m, s):
    d = TruncatedLogistic(torch.tensor(m, dtype=torch.float64), torch.tensor(s, dtype=torch.float64))
    lo, hi = max(float(d.low), -60.0), min(float(d.high), 60.0)
    grid = torch.linspace(lo, hi, 200001, dtype=torch.float64)
    mass = torch.trapezoid(d.log_prob(grid).exp(), grid)
    assert abs(float(mass) - 1.0) < 1e-6
    torch.manual_seed(0)
    z = d.sample((20000,))
    assert bool(d.contains(z).all()) and bool(torch.isfinite(d.log_prob(z)).all())
    # the CDF values of the samples are uniform on (m - s/2, m + s/2)
    u = torch.sigmoid(z)
    assert abs(float(u.mean()) - m) < 0.01 * s + 1e-9 and abs(float(u.var()) - s**2 / 12) < 0.05 * s**2 / 12


def test_truncated_logistic_rejects_bad_parameters():
    with pytest.raises(ValueError, match="m - s/2"):
        TruncatedLogistic(torch.tensor(0.2), torch.tensor(0.6))


def test_gradient_through_the_truncation_matches_finite_differences():
    """d/dm and d/ds of E[z] by the reparametrisation (appendix A.1) against the exact expectation."""
    def exact_mean(m, s):  # E[z] = (1/s) * integral of logit(u) du over (m - s/2, m + s/2)
        def antideriv(u):
            return u * math.log(u) + (1 - u) * math.log(1 - u)
        return (antideriv(m + s / 2) - antideriv(m - s / 2)) / s

    m = torch.tensor(0.4, dtype=torch.float64, requires_grad=True)
    s = torch.tensor(0.3, dtype=torch.float64, requires_grad=True)
    u0 = (torch.arange(200000, dtype=torch.float64) + 0.5) / 200000  # quadrature nodes of U(0,1)
    TruncatedLogistic(m, s).icdf(u0).mean().backward()
    eps = 1e-6
    dm = (exact_mean(0.4 + eps, 0.3) - exact_mean(0.4 - eps, 0.3)) / (2 * eps)
    ds = (exact_mean(0.4, 0.3 + eps) - exact_mean(0.4, 0.3 - eps)) / (2 * eps)
    assert float(m.grad) == pytest.approx(dm, rel=1e-4) and float(s.grad) == pytest.approx(ds, rel=1e-4)


def _encoding_pair():
    torch.manual_seed(0)
    trufl = CategoricalEncoding.trufl(3, 5, latent_dim=2)
    catnf = CategoricalEncoding.catnf(3, 5, latent_dim=2)
    return trufl, catnf


def test_trufl_with_no_truncation_is_catnf_exactly():
    trufl, catnf = _encoding_pair()
    with torch.no_grad():
        trufl.m_logit.zero_()
        trufl.s_logit.fill_(40.0)  # s = 2 min(m, 1 - m) sigmoid(40) = 1 to float precision
        catnf.shift.copy_(trufl.shift)
        catnf.log_scale.copy_(torch.randn(5, 2) * 0.3)
        trufl.log_scale.copy_(catnf.log_scale)
    m, s = trufl.truncation_params()
    assert torch.equal(m, torch.full((5, 2), 0.5)) and torch.allclose(s, torch.ones(5, 2))
    z = torch.randn(7, 3, 2) * 4
    assert torch.allclose(trufl.log_q_all(z), catnf.log_q_all(z), atol=1e-6)
    x = torch.randint(5, (7, 3))
    torch.manual_seed(1)
    a = trufl.terms(x)
    torch.manual_seed(1)
    b = catnf.terms(x)
    for ta, tb in zip(a, b):
        assert torch.allclose(ta, tb, atol=1e-5)


def test_catnf_density_is_a_scaled_shifted_logistic():
    _, catnf = _encoding_pair()
    z = torch.randn(4, 3, 2, dtype=torch.float64)
    k = 2
    loc, scale = catnf.shift[k].double(), catnf.log_scale[k].double().exp()
    expected = torch.distributions.TransformedDistribution(
        torch.distributions.Uniform(torch.zeros(2, dtype=torch.float64), torch.ones(2, dtype=torch.float64)),
        [torch.distributions.transforms.SigmoidTransform().inv,
         torch.distributions.transforms.AffineTransform(loc, scale)]).log_prob(z).sum(-1)
    got = catnf.double().log_q_all(z)[..., k]
    assert torch.allclose(got, expected, atol=1e-9)


@pytest.mark.parametrize("num_classes", [4, 5, 8])
def test_orthant_special_case_has_the_argmax_binary_support(num_classes):
    enc = CategoricalEncoding.orthants(2, num_classes)
    d = enc.latent_dim
    assert d == math.ceil(math.log2(num_classes))
    x = torch.arange(num_classes).repeat(2, 1).T.contiguous()  # [K, 2]
    torch.manual_seed(0)
    z, log_px_z, _ = enc.terms(x.repeat(50, 1))
    z = z.view(-1, 2, d)
    bits = (z > 0).long()
    decoded = (bits << torch.arange(d)).sum(-1)  # binary decode of the orthant, as argmax-binary does
    assert torch.equal(decoded, x.repeat(50, 1))
    assert torch.equal(log_px_z, torch.zeros_like(log_px_z))  # decoding is deterministic
    assert torch.equal(enc.inverse(z.flatten(1)), x.repeat(50, 1))
    # each class's density is 2^d times the logistic on its orthant
    logistic = (-torch.nn.functional.softplus(-z) - torch.nn.functional.softplus(z)).sum(-1)
    log_q = enc.log_q_all(z).gather(-1, decoded.unsqueeze(-1)).squeeze(-1)
    assert torch.allclose(log_q, logistic + d * math.log(2), atol=1e-5)


def test_optimal_decoder_sums_to_one_and_true_class_term_reuses_forward_value():
    trufl, _ = _encoding_pair()
    torch.manual_seed(0)
    x = torch.randint(5, (64, 3))
    z, log_q = trufl.sample_q(x)
    probs = trufl.decoder_log_probs(z.flatten(1)).exp()
    assert torch.allclose(probs.sum(-1), torch.ones(64, 3), atol=1e-5)
    recomputed = trufl.log_q_all(z).gather(-1, x.unsqueeze(-1)).squeeze(-1)
    assert torch.allclose(recomputed, log_q, atol=1e-4)


def test_decoder_is_deterministic_when_supports_are_disjoint():
    m = torch.tensor([[0.1], [0.3], [0.5], [0.7]])  # CDF intervals of width 0.1: disjoint
    enc = CategoricalEncoding(4, 4, latent_dim=1, truncation="fixed", affine=False, m=m, s=torch.full_like(m, 0.1))
    torch.manual_seed(0)
    x = torch.randint(4, (100, 4))
    z, log_px_z, _ = enc.terms(x)
    assert torch.equal(log_px_z, torch.zeros(100))
    probs = enc.decoder_log_probs(z).exp()
    assert torch.equal(probs.argmax(-1), x) and bool((probs.max(-1).values == 1).all())


def test_rejection_sampling_never_returns_unsupported_points():
    m = torch.tensor([[0.1], [0.3], [0.5], [0.7]])
    enc = CategoricalEncoding(2, 4, latent_dim=1, truncation="fixed", affine=False, m=m, s=torch.full_like(m, 0.1))
    torch.manual_seed(0)
    z, stats = rejection_sample(lambda rows: 3 * torch.randn(len(rows), 2), enc.supported, 500)
    assert bool(enc.supported(z).all())
    z0 = z.view(-1)
    inside = torch.zeros_like(z0, dtype=torch.bool)
    for k in range(4):
        inside |= TruncatedLogistic(m[k, 0], torch.tensor(0.1)).contains(z0)
    assert bool(inside.all())
    # the acceptance rate estimates Z = P(both coordinates in the union), computed by the normal CDF
    normal = torch.distributions.Normal(0.0, 3.0)
    p_one = sum(float(normal.cdf(TruncatedLogistic(m[k, 0], torch.tensor(0.1)).high)
                      - normal.cdf(TruncatedLogistic(m[k, 0], torch.tensor(0.1)).low)) for k in range(4))
    assert stats.drawn > 500 and abs(stats.acceptance_rate - p_one**2) < 4 * math.sqrt(p_one**2 / stats.drawn)
    assert stats.log_z == pytest.approx(math.log(stats.accepted / stats.drawn))


def test_rejection_sample_gives_up_with_a_clear_error():
    with pytest.raises(RuntimeError, match="still rejected"):
        rejection_sample(lambda rows: torch.zeros(len(rows), 1), lambda z: z[:, 0] > 1, 3, max_rounds=2)


def test_rejection_stats():
    stats = RejectionStats(drawn=100, accepted=25)
    assert stats.rejection_rate == 0.75 and stats.log_z == pytest.approx(math.log(0.25))
    assert stats.log_z_stderr == pytest.approx(math.sqrt(0.75 / 25))


@pytest.mark.parametrize("name", ["catnf", "trufl"])
def test_models_follow_the_contract(name):
    torch.manual_seed(0)
    model = build_model(name, (3,), 5, latent_dim=2)
    x = torch.randint(5, (16, 3))
    assert model.log_prob(x).shape == (16,) and model.log_prob(x, k=4).shape == (16,)
    samples = model.sample(32)
    assert samples.shape == (32, 3) and samples.dtype == torch.long and bool(((samples >= 0) & (samples < 5)).all())
    if name == "trufl":
        assert model.last_rejection is not None and model.last_rejection.accepted == 32
        assert model.sample(8, rejection=False).shape == (8, 3)
    loss = -model.log_prob(x).mean()
    loss.backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert not missing
    with pytest.raises(ValueError, match="class indices"):
        model.log_prob(torch.tensor([[0, 5, 1]]))


def test_build_model_rejects_conv_for_encodings():
    with pytest.raises(ValueError, match="architecture='mlp'"):
        build_model("trufl", (4, 4), 3)


def test_elbo_breakdown_adds_up():
    torch.manual_seed(0)
    model = build_model("catnf", (2,), 4)
    x = torch.randint(4, (200, 2))
    b = elbo_breakdown(model, x, samples=2)
    assert b["elbo"] == pytest.approx(b["reconstruction"] - b["kl"]) and b["reconstruction"] < 0
    argmax = build_model("argmax-binary", (2,), 4)
    assert elbo_breakdown(argmax, x)["reconstruction"] == 0.0


def test_set_class_prior_counts():
    enc = CategoricalEncoding.catnf(2, 3)
    probs = enc.set_class_prior(torch.tensor([[0, 0], [0, 1]]), smoothing=0.0)
    assert torch.allclose(probs, torch.tensor([0.75, 0.25, 0.0], dtype=torch.float64))


def test_within_group_std():
    tight = torch.randn(10, 1, 2).repeat(1, 200, 1) + 0.01 * torch.randn(10, 200, 2)
    assert within_group_std(tight) < 0.05
    with pytest.raises(ValueError, match="groups"):
        within_group_std(torch.randn(10, 2))


def test_soft_log_indicator_is_zero_inside_and_tends_to_the_hard_indicator():
    d = TruncatedLogistic(torch.tensor(0.3), torch.tensor(0.2))
    z = torch.linspace(-6, 6, 2001)
    inside = d.contains(z)
    for tau in (0.1, 0.01, 1e-4):
        soft = d.soft_log_indicator(z, tau)
        assert torch.equal(soft[inside], torch.zeros(int(inside.sum())))
        assert bool((soft[~inside] < 0).all())
    # far outside, the soft indicator vanishes as tau -> 0; a point 0.05 CDF units out: exp(-0.05 / tau)
    out = torch.logit(torch.tensor(0.45))
    assert math.isclose(float(d.soft_log_indicator(out, 0.01)), -5.0, rel_tol=1e-4)
    with pytest.raises(ValueError, match="temperature"):
        d.soft_log_indicator(z, 0.0)


def test_soft_support_edges_give_a_lower_bound_in_training_and_the_exact_elbo_in_eval():
    kwargs = dict(num_vars=3, num_classes=4, latent_dim=2, init_spread=0.5, init_truncation=0.0, seed=1)
    soft = CategoricalEncoding.trufl(support_temperature=0.05, **kwargs)
    hard = CategoricalEncoding.trufl(**kwargs)
    x = torch.randint(4, (256, 3), generator=torch.Generator().manual_seed(0))
    for mode in ("train", "eval"):
        getattr(soft, mode)(), getattr(hard, mode)()
        torch.manual_seed(0)
        _, px_soft, q_soft = soft.variable_terms(x)
        torch.manual_seed(0)
        _, px_hard, q_hard = hard.variable_terms(x)
        assert torch.equal(q_soft, q_hard)
        if mode == "train":  # more density in the denominator: never above the exact term, below it somewhere
            assert bool((px_soft <= px_hard + 1e-6).all()) and bool((px_soft < px_hard - 1e-3).any())
        else:
            assert torch.equal(px_soft, px_hard)
    # two classes whose supports are disjoint but 0.05 CDF units apart: the exact decoder is
    # certain, so its gradient cannot push the supports apart; the soft edges' gradient does
    for tau, expect_gradient in ((0.05, True), (0.0, False)):
        enc = CategoricalEncoding.trufl(1, 2, latent_dim=1, affine=False, support_temperature=tau)
        with torch.no_grad():  # m = 0.3 / 0.75, s = 0.4 / 0.4: CDF intervals [0.1, 0.5] and [0.55, 0.95]
            enc.m_logit.copy_(torch.logit(torch.tensor([[0.3], [0.75]])))
            enc.s_logit.copy_(torch.logit(torch.tensor([[0.4 / 0.6], [0.4 / 0.5]])))
        torch.manual_seed(0)
        _, log_px_z, _ = enc.variable_terms(torch.randint(2, (512, 1), generator=torch.Generator().manual_seed(1)))
        log_px_z.sum().backward()
        assert (float(log_px_z.detach().sum()) < 0) == expect_gradient
        assert bool((enc.s_logit.grad.abs() > 1e-6).all()) == expect_gradient
    with pytest.raises(ValueError, match="support_temperature"):
        CategoricalEncoding.catnf(3, 4, support_temperature=0.1)

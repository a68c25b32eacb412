"""Text flows (Argmax Flows section 6.1): shapes, autoregressive structure, log-determinants, the cached sampler."""
import itertools

import pytest
import torch

import catlib
import catlib.models
from catlib.argmax import CartesianEncoding
from catlib.flows.autoregressive import (ARMixtureLogisticFlow, mixture_logistic_inverse, mixture_logistic_params,
                                         mixture_logistic_transform)
from catlib.nets.lstm import MaskedFeedforward
from catlib.text_flows import (ENWIK8_AR_CONFIG, ENWIK8_COUPLING_CONFIG, TEXT8_AR_CONFIG, TEXT8_COUPLING_CONFIG,
                               ChannelLinear, ReverseSequence, SequenceMixtureCoupling, TextFlow, binary_decode,
                               binary_encode, build_text_flow, nearest_code, time_sampling)
from helpers import randomize

pytestmark = pytest.mark.usefixtures("float64")

KINDS = ("ar", "coupling")
DEQUANTIZATIONS = ("argmax", "uniform", "variational")
TINY = {"lstm_size": 8, "context_hidden": 8, "context_size": 4, "num_mixtures": 3}


def tiny(kind, dequantization, seq_len=4, num_classes=7, **extra):
    """3 bits for 7 classes: one unused code, so sampling redraws now and then."""
    torch.manual_seed(0)
    steps = {"num_steps": 2}
    return build_text_flow(kind, dequantization, seq_len, num_classes, **{**TINY, **steps, **extra})


def jacobian_check(transform, v):
    """``ldj`` equals the autograd Jacobian's log-determinant, row by row; returns the Jacobians."""
    z, ldj = transform(v)
    jacs = []
    for b in range(v.shape[0]):
        jac = torch.autograd.functional.jacobian(lambda a: transform(a.unsqueeze(0))[0][0].flatten(),
                                                 v[b]).reshape(z[0].numel(), v[0].numel())
        assert torch.allclose(torch.linalg.slogdet(jac)[1], ldj[b], atol=1e-8)
        jacs.append(jac)
    return jacs


# ------------------------------------------------------------------------------------------ models


@pytest.mark.parametrize("kind,dequantization", list(itertools.product(KINDS, DEQUANTIZATIONS)))
def test_shapes_dtypes_and_finite_bounds(kind, dequantization):
    model = tiny(kind, dequantization)
    x = torch.randint(0, 7, (3, 4), generator=torch.Generator().manual_seed(1))
    for k in (1, 3):
        lp = model.log_prob(x, k=k)
        assert lp.shape == (3,) and lp.dtype == torch.float64 and torch.isfinite(lp).all()
    s = model.sample(4)
    assert s.shape == (4, 4) and s.dtype == torch.long and ((s >= 0) & (s < 7)).all()
    assert model.name == f"text-{kind}-{dequantization}"
    assert model.options["kind"] == kind and model.options["num_steps"] == 2
    expected_dim = 3 if dequantization == "argmax" else 7
    assert model.dim == expected_dim
    assert torch.isfinite(model.log_prob(s)).all()


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("dequantization", ["uniform", "variational"])
def test_binary_representation_twins(kind, dequantization):
    model = tiny(kind, dequantization, num_classes=27, representation="binary")
    assert model.dim == 5
    x = torch.randint(0, 27, (2, 4), generator=torch.Generator().manual_seed(2))
    assert torch.isfinite(model.log_prob(x)).all()
    assert model.sample(3).shape == (3, 4)


@pytest.mark.parametrize("kind,dequantization", list(itertools.product(KINDS, DEQUANTIZATIONS)))
def test_gradients_reach_every_parameter(kind, dequantization):
    model = tiny(kind, dequantization).train()
    x = torch.randint(0, 7, (6, 4), generator=torch.Generator().manual_seed(3))
    (-model.log_prob(x).mean()).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, name


@pytest.mark.parametrize("kind", KINDS)
def test_iwbo_is_above_the_elbo_on_average(kind):
    model = tiny(kind, "argmax").eval()
    x = torch.randint(0, 7, (16, 4), generator=torch.Generator().manual_seed(4))
    torch.manual_seed(5)
    with torch.no_grad():
        elbo = torch.stack([model.log_prob(x) for _ in range(8)]).mean()
        iwbo = model.log_prob(x, k=32).mean()
    assert iwbo > elbo


def test_paper_configurations_are_accepted_and_match_the_paper():
    assert TEXT8_AR_CONFIG["num_classes"] == 27 and ENWIK8_AR_CONFIG["num_classes"] == 256
    assert TEXT8_COUPLING_CONFIG["num_steps"] == 8 and ENWIK8_COUPLING_CONFIG["lstm_size"] == 768
    shrink = {"seq_len": 6, "lstm_size": 8, "context_hidden": 8, "context_size": 4, "num_steps": 1}
    for config, bits in ((TEXT8_AR_CONFIG, 5), (ENWIK8_AR_CONFIG, 8), (TEXT8_COUPLING_CONFIG, 5),
                         (ENWIK8_COUPLING_CONFIG, 8)):
        torch.manual_seed(0)
        model = build_text_flow(**{**config, **shrink})
        assert model.dim == bits  # binary Cartesian product: ceil(log2 K)
        assert model.options["num_mixtures"] == config["num_mixtures"]
        assert torch.isfinite(model.log_prob(torch.randint(0, config["num_classes"], (2, 6)))).all()


def test_prior_layout_follows_the_official_flows():
    ar = tiny("ar", "argmax", num_steps=3)
    assert [type(t).__name__ for t in ar.prior.transforms] == [
        "ARMixtureLogisticFlow", "ReverseSequence", "ARMixtureLogisticFlow", "ReverseSequence",
        "ARMixtureLogisticFlow"]
    coupling = tiny("coupling", "argmax", num_steps=2)
    assert [type(t).__name__ for t in coupling.prior.transforms] == [
        "SequenceMixtureCoupling", "ReverseSequence", "ChannelLinear", "SequenceMixtureCoupling"]


# ------------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("bad,message", [
    (torch.zeros(2, 4), "integer tensor"),
    (torch.tensor([[0, 1, 2, float("nan")]]), r"NaN at position \(0, 3\)"),
    (torch.zeros(2, 4, dtype=torch.bool), "torch.bool"),
    (torch.zeros(2, 5, dtype=torch.long), r"shape \[batch, 4\], got \[2, 5\]"),
    (torch.zeros(4, dtype=torch.long), r"shape \[batch, 4\]"),
    (torch.tensor([[0, 1, 7, 2]]), r"in \[0, 7\), got 7 at position \(0, 2\)"),
    (torch.tensor([[0, -1, 1, 2]]), r"got -1 at position \(0, 1\)"),
    ([[0, 1, 2, 3]], "torch.LongTensor"),
])
def test_bad_x_raises_a_clear_error(bad, message):
    model = tiny("ar", "argmax")
    with pytest.raises(ValueError, match=message):
        model.log_prob(bad)


def test_bad_options_raise():
    with pytest.raises(ValueError, match="kind must be one of"):
        build_text_flow("transformer", "argmax", 4, 5)
    with pytest.raises(ValueError, match="dequantization must be one of"):
        build_text_flow("ar", "gumbel", 4, 5)
    with pytest.raises(ValueError, match=r"unknown option\(s\) \['representation'\]"):
        build_text_flow("ar", "argmax", 4, 5, representation="binary")
    with pytest.raises(ValueError, match="representation must be one of"):
        build_text_flow("ar", "uniform", 4, 5, representation="ternary")
    with pytest.raises(ValueError, match="lstm_size must be at least 8"):
        build_text_flow("ar", "argmax", 4, 5, lstm_size=4)
    with pytest.raises(ValueError, match="at least 2 numbers per position"):
        build_text_flow("coupling", "argmax", 4, 2)
    with pytest.raises(ValueError, match="input_dropout"):
        build_text_flow("ar", "argmax", 4, 5, input_dropout=1.5)
    with pytest.raises(ValueError, match="seq_len must be an integer >= 1, got 0"):
        build_text_flow("ar", "argmax", 0, 5)
    with pytest.raises(ValueError, match=r"v must have shape \[batch, 4, 3\]"):
        ARMixtureLogisticFlow(3, 4, 2, 8, 1)(torch.zeros(2, 4, 2))


# ------------------------------------------------------------------------------- encodings


def test_binary_encoding_round_trips_and_is_most_significant_first():
    x = torch.arange(256)
    b = binary_encode(x, 8)
    assert torch.equal(binary_decode(b), x)
    assert torch.equal(b, CartesianEncoding(256, 2).encode(x).flip(-1))  # independent: catlib's LSB-first digits
    assert b[1].tolist() == [0, 0, 0, 0, 0, 0, 0, 1] and b[128].tolist() == [1, 0, 0, 0, 0, 0, 0, 0]


@pytest.mark.parametrize("num_classes,dequantization,representation", [
    (27, "argmax", None), (256, "argmax", None), (27, "uniform", "onehot"), (27, "variational", "onehot"),
    (27, "uniform", "binary"), (256, "variational", "binary")])
def test_decoding_the_lifted_v_recovers_every_class(num_classes, dequantization, representation):
    extra = {} if representation is None else {"representation": representation}
    model = randomize(build_text_flow("ar", dequantization, 1, num_classes, **TINY, **extra), 1.0)
    x = torch.arange(num_classes).unsqueeze(1).repeat(20, 1)  # every class, 20 draws each
    v, _ = model.layer(x)
    decoded, valid = model.layer.decode(v)
    assert torch.equal(decoded, x) and valid.all()
    if dequantization == "argmax":  # v's signs are the bits, most significant first
        assert torch.equal((v > 0).long(), binary_encode(x, model.dim))


def test_unused_binary_codes_are_invalid_or_moved_to_the_nearest_used_code():
    layer = tiny("ar", "argmax", num_classes=5).layer  # 3 bits: codes 5, 6, 7 unused
    v = torch.tensor([[[1.0, -1.0, 0.3], [1.0, 0.5, -1.0], [-1.0, -1.0, 1.0]]])
    x, valid = layer.decode(v)
    assert x.tolist() == [[5, 6, 1]] and valid.tolist() == [[False, False, True]]
    x, valid = layer.decode(v, nearest=True)  # 101 -> 100 (flip the 0.3), 110 -> 100 (flip the 0.5)
    assert x.tolist() == [[4, 4, 1]] and valid.tolist() == [[False, False, True]]


@pytest.mark.parametrize("threshold", [0.0, 1.0])
def test_nearest_code_is_the_closest_used_region_by_brute_force(threshold):
    g = torch.Generator().manual_seed(0)
    v = torch.randn(2000, 5, generator=g) * 2 + threshold
    x = nearest_code(v, 27, threshold)
    bits = (v > threshold).long()
    used = binary_decode(bits) < 27
    assert torch.equal(x[used], binary_decode(bits)[used])  # used codes decode as they are
    # brute force: the distance to code c's region is the distance to v with its wrong-side entries set to the threshold
    codes = binary_encode(torch.arange(27), 5).bool()
    dist = torch.stack([(torch.where((v > threshold) == c, v, torch.full_like(v, threshold)) - v).norm(dim=-1)
                        for c in codes], -1)
    assert torch.equal(x, dist.argmin(-1)) and (~used).sum() > 100


# --------------------------------------------------------------------- flows: log-dets, structure


def test_mixture_logistic_inverse_solves_the_transform():
    g = torch.Generator().manual_seed(0)
    raw = torch.randn(50, 3, 2 + 3 * 4, generator=g) * 2
    p = mixture_logistic_params(raw, torch.zeros(3), torch.zeros(3, 4))
    x = torch.randn(50, 3, generator=g) * 10
    z, ldj = mixture_logistic_transform(x, p)
    assert torch.allclose(mixture_logistic_inverse(z, p), x, atol=1e-9)
    xs = x.clone().requires_grad_(True)  # the elementwise log-derivative against autograd
    (grad,) = torch.autograd.grad(mixture_logistic_transform(xs, p)[0].sum(), xs)
    assert torch.allclose(torch.log(grad), ldj, atol=1e-10)


def test_masked_feedforward_output_c_depends_on_earlier_coordinates_only():
    net = randomize(MaskedFeedforward(4, 2, 12), 0.5)
    f, v = torch.randn(1, 12), torch.randn(4)
    jac = torch.autograd.functional.jacobian(lambda a: net(f, a.unsqueeze(0))[0], v)  # [4, 2, 4]
    dep = jac.abs().sum(1) > 0  # [output coordinate, input coordinate]
    assert torch.equal(dep, torch.tril(torch.ones(4, 4, dtype=torch.bool), -1))


TRANSFORMS = {
    "ar": lambda: ARMixtureLogisticFlow(2, 3, num_mixtures=3, lstm_size=8, lstm_layers=2),
    "coupling": lambda: SequenceMixtureCoupling(3, 3, num_mixtures=3, lstm_size=8, lstm_layers=1),
    "linear": lambda: ChannelLinear(3, seed=2),
    "reverse": lambda: ReverseSequence(),
}


@pytest.mark.parametrize("name", sorted(TRANSFORMS))
def test_log_det_matches_autograd_and_inverse_round_trips(name):
    torch.manual_seed(0)
    t = randomize(TRANSFORMS[name]()).eval()
    d = 2 if name == "ar" else 3
    v = torch.randn(3, 3, d) * 2
    jacobian_check(t, v)
    z, _ = t(v)
    assert torch.allclose(t.inverse(z), v, atol=1e-8)


def test_ar_flow_jacobian_is_triangular_in_position_then_channel_order():
    """z[t, c] depends on v[t', c'] only for (t', c') <= (t, c): the flow is autoregressive."""
    torch.manual_seed(0)
    t = randomize(ARMixtureLogisticFlow(3, 4, num_mixtures=2, lstm_size=8, lstm_layers=1)).eval()
    v = torch.randn(2, 4, 3)
    for jac in jacobian_check(t, v):
        assert torch.count_nonzero(torch.triu(jac, 1)) == 0
        assert (torch.diagonal(jac) > 0).all()
        assert torch.count_nonzero(torch.tril(jac, -1)) > 0  # and earlier numbers do matter


def test_ar_model_log_density_of_a_position_ignores_later_positions():
    """Per-position terms of log p(v) (base density + log-derivatives) do not move when later positions change."""
    model = randomize(tiny("ar", "argmax", seq_len=5, num_steps=1)).eval()
    flow, base = model.prior.transforms[0], model.prior.base
    v = torch.randn(2, 5, 3)
    w = v.clone()
    w[:, 3:] = torch.randn(2, 2, 3) * 3

    def per_position(u):
        p = flow._params(flow.net(u))
        z, ldj = mixture_logistic_transform(u, p)
        eps = (z - base.loc) * torch.exp(-base.log_scale)
        return (-0.5 * (eps**2 + torch.log(torch.tensor(2 * torch.pi))) - base.log_scale + ldj).sum(-1)

    a, b = per_position(v), per_position(w)
    assert torch.allclose(a[:, :3], b[:, :3], atol=1e-12) and not torch.allclose(a[:, 3:], b[:, 3:])
    assert torch.allclose(a.sum(-1), model.prior.log_prob(v), atol=1e-10)  # they add up to log p(v)


@pytest.mark.parametrize("kind", KINDS)
def test_whole_prior_log_density_matches_autograd(kind):
    model = randomize(tiny(kind, "argmax", seq_len=3, num_steps=2)).eval()
    v = torch.randn(2, 3, 3)
    z, ldj = model.prior(v)
    jacs = jacobian_check(model.prior, v)
    log_base = torch.distributions.Normal(model.prior.base.loc, model.prior.base.log_scale.exp()).log_prob(z)
    for b, jac in enumerate(jacs):
        expected = log_base[b].sum() + torch.linalg.slogdet(jac)[1]
        assert torch.allclose(model.prior.log_prob(v)[b], expected, atol=1e-8)


@pytest.mark.parametrize("kind,seq_len,dim", [("ar", 2, 1), ("coupling", 1, 2)])
def test_prior_density_integrates_to_one(kind, seq_len, dim):
    """Mass of p(v) on a 2-d grid (trapezoid rule) is one: an independent check of the log-density."""
    torch.manual_seed(0)
    flow = ARMixtureLogisticFlow(dim, seq_len, num_mixtures=3, lstm_size=8, lstm_layers=1) if kind == "ar" else \
        SequenceMixtureCoupling(dim, seq_len, num_mixtures=3, lstm_size=8, lstm_layers=1)
    randomize(flow, 0.2).eval()
    from catlib.flows.base import Flow
    from catlib.text_flows import ChannelNormal
    prior = Flow(ChannelNormal(seq_len, dim), [flow])
    g = torch.linspace(-16, 16, 321)
    xx, yy = torch.meshgrid(g, g, indexing="ij")
    v = torch.stack([xx.flatten(), yy.flatten()], -1).view(-1, seq_len, dim)
    with torch.no_grad():
        p = prior.log_prob(v).exp().view(321, 321)
        z, _ = prior(v)
        without_ldj = prior.base.log_prob(z).exp().view(321, 321)

    def mass(density):
        return float(torch.trapezoid(torch.trapezoid(density, g, dim=1), g))

    assert mass(p) == pytest.approx(1.0, abs=1e-3)
    assert abs(mass(without_ldj) - 1.0) > 0.05  # the flow is far from volume preserving: the check has teeth


# ------------------------------------------------------------------------------------- sampling


def test_cached_sampler_equals_the_prefix_recomputing_reference():
    model = randomize(tiny("ar", "argmax", seq_len=6, num_steps=2)).eval()
    torch.manual_seed(7)
    z = model.sample_latent(5)
    v_fast = model.latent_to_v(z)
    v_ref = model.latent_to_v(z, reference=True)
    assert torch.allclose(v_fast, v_ref, atol=1e-9)
    assert torch.equal(model.layer.decode(v_fast)[0], model.layer.decode(v_ref)[0])
    # rows are sampled independently: one row alone gives the same numbers
    assert torch.allclose(model.latent_to_v(z[2:3]), v_fast[2:3], atol=1e-9)
    # and the samples invert exactly: flowing them forward gives the latent back
    z_back, _ = model.prior(v_fast)
    assert torch.allclose(z_back, z, atol=1e-7)


def test_sampler_with_the_same_seed_is_deterministic_and_samples_score_finite():
    model = randomize(tiny("ar", "argmax", seq_len=5)).eval()
    torch.manual_seed(3)
    a = model.sample(6)
    torch.manual_seed(3)
    b = model.sample(6)
    torch.manual_seed(3)
    c = model.sample(6, reference=True)
    assert torch.equal(a, b) and torch.equal(a, c)
    assert torch.isfinite(model.log_prob(a)).all()
    assert 0.0 <= model.last_invalid_rate < 1.0


def test_redraw_returns_only_sequences_free_of_unused_codes():
    model = randomize(tiny("ar", "argmax", seq_len=3, num_steps=1)).eval()
    torch.manual_seed(4)
    z = model.sample_latent(40)
    raw, valid = model.decode_latent(z, nearest=False)
    assert (~valid).any() and (raw[~valid] >= 7).all()  # the untrained model does draw unused codes
    torch.manual_seed(4)
    x = model.sample(40, invalid="redraw")
    assert ((x >= 0) & (x < 7)).all() and 0.0 < model.last_invalid_rate < 1.0
    # a sequence kept from the first round is exactly the decoded first draw
    first = valid.all(-1)
    assert torch.equal(x[first], raw[first])
    with pytest.raises(ValueError, match="invalid must be 'nearest' or 'redraw', got 'drop'"):
        model.sample(2, invalid="drop")


def test_sample_restores_training_mode_and_time_sampling_returns_seconds():
    model = tiny("ar", "uniform", seq_len=3, input_dropout=0.5, num_steps=1).train()
    model.sample(2)
    assert model.training
    assert isinstance(model, TextFlow) and time_sampling(model, 2) > 0
    assert time_sampling(model, 2, reference=True) > 0


@pytest.mark.parametrize("kind", KINDS)
def test_save_load_round_trip(kind, tmp_path):
    model = randomize(tiny(kind, "variational")).eval()
    torch.save(model.state_dict(), tmp_path / "m.pt")
    torch.manual_seed(99)
    other = build_text_flow(kind, "variational", 4, 7, **{**TINY, "num_steps": 2}).eval()
    other.load_state_dict(torch.load(tmp_path / "m.pt"))
    x = torch.randint(0, 7, (3, 4), generator=torch.Generator().manual_seed(8))
    torch.manual_seed(1)
    a = model.log_prob(x)
    torch.manual_seed(1)
    assert torch.equal(other.log_prob(x), a)


@pytest.mark.parametrize("name", catlib.models.TEXT_MODEL_NAMES)
def test_build_model_builds_every_text_model(name):
    torch.manual_seed(0)
    model = catlib.build_model(name, (8,), 5)
    x = torch.randint(5, (3, 8))
    assert model.log_prob(x).shape == (3,) and model.sample(2).shape == (2, 8)
    with pytest.raises(ValueError, match=r"data_shape must be \(L,\)"):
        catlib.build_model(name, (2, 4), 5)


# --------------------------------------------------------------------- the fast inverse and sampler


def test_newton_inverse_is_exact_on_hard_cases_and_needs_few_iterations():
    """Extreme targets, very narrow and very wide components, many mixtures: the root to float64 round-off."""
    g = torch.Generator().manual_seed(1)
    m = 27
    raw = torch.randn(400, 2 + 3 * m, generator=g, dtype=torch.float64) * 3
    raw[:, 2 + 2 * m:] = torch.empty(400, m, dtype=torch.float64).uniform_(-7, 3, generator=g)  # log-scales
    p = mixture_logistic_params(raw, torch.zeros(()), torch.full((m,), 1.5))
    x = torch.cat([torch.randn(200, generator=g, dtype=torch.float64) * 3,
                   torch.randn(200, generator=g, dtype=torch.float64) * 300])
    z, _ = mixture_logistic_transform(x, p)
    solved = mixture_logistic_inverse(z, p)
    z_back, ldj = mixture_logistic_transform(solved, p)
    torch.testing.assert_close(z_back, z, rtol=1e-12, atol=1e-9)
    # x itself to the precision the problem allows: an error in z of ~1e-12 |z| over the slope dz/dx
    assert ((solved - x).abs() * torch.exp(ldj) <= 1e-10 * z.abs().clamp(min=1.0)).all()
    # 20 iterations are enough on these hard cases (measured: after 16 iterations one of the 400 is
    # unsolved, after 20 none), where bisection of the same bracket needs 51 halvings to float64 round-off
    z20, _ = mixture_logistic_transform(mixture_logistic_inverse(z, p, max_iterations=20), p)
    torch.testing.assert_close(z20, z, rtol=1e-12, atol=1e-9)
    z2, _ = mixture_logistic_transform(mixture_logistic_inverse(z, p, max_iterations=2), p)
    assert not torch.allclose(z2, z, rtol=1e-12, atol=1e-9)


def test_float32_ar_flow_round_trips_to_float32_tolerance():
    """The sampler works in the model's float32: inverse(forward(v)) == v to float32 tolerance."""
    torch.manual_seed(0)
    flow = randomize(ARMixtureLogisticFlow(5, 16, num_mixtures=27, lstm_size=32, lstm_layers=2)).float().eval()
    v = torch.randn(8, 16, 5, dtype=torch.float32) * 2
    with torch.no_grad():
        z, _ = flow(v)
        back = flow.inverse(z)
        z_again, _ = flow(back)
    assert back.dtype == torch.float32
    torch.testing.assert_close(back, v, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(z_again, z, rtol=1e-4, atol=1e-4)
    assert torch.backends.mkldnn.enabled  # the sampler turns oneDNN off only while it runs


def test_sample_frequencies_follow_the_model():
    """Sequences sampled by the cached Newton sampler appear as often as the model's density says.

    Two positions of a 2-class model (one number per position, class = [v > 0]): P(x) is the
    prior density integrated over a quadrant, computed on a 600 x 600 grid (the whole density
    integrates to one on it), an independent path through the flow's forward direction.
    """
    model = randomize(tiny("ar", "argmax", seq_len=2, num_classes=2), std=0.3, seed=2).eval()
    edges = torch.linspace(-15, 15, 601)
    mid, h = 0.5 * (edges[1:] + edges[:-1]), float(edges[1] - edges[0])
    a, b = torch.meshgrid(mid, mid, indexing="ij")
    v = torch.stack([a.flatten(), b.flatten()], -1).unsqueeze(-1)  # [360000, L=2, d=1]
    with torch.no_grad():
        mass = torch.exp(model.prior.log_prob(v)) * h * h
    assert abs(float(mass.sum()) - 1.0) < 1e-6
    bits = (v[..., 0] > 0).long()
    probs = torch.bincount(bits[:, 0] * 2 + bits[:, 1], weights=mass, minlength=4)
    assert torch.equal(model.layer.decode(v[:5])[0], bits[:5])  # class = [v > 0], as assumed
    assert probs.min() > 0.15  # far from a single dominant sequence
    torch.manual_seed(1)
    samples = model.sample(20_000)
    freq = torch.bincount(samples[:, 0] * 2 + samples[:, 1], minlength=4).double() / len(samples)
    assert 0.5 * float((freq - probs).abs().sum()) < 0.015  # total variation; measured 0.005 (sampling noise)

"""The absorbing (masking) kernel against its transition matrices multiplied out by hand."""
import itertools
import math

import pytest
import torch

from catlib.diffusion import cosine_schedule, linear_schedule
from catlib.masked_diffusion import absorbing_log_marginal, absorbing_log_posterior, absorbing_schedule

K, T = 3, 6


def transition_matrix(alpha: float) -> torch.Tensor:
    """``Q[i, j] = q(x_t = j | x_{t-1} = i)`` over the K + 1 states, the mask last."""
    q = torch.zeros(K + 1, K + 1, dtype=torch.float64)
    for i in range(K):
        q[i, i], q[i, K] = alpha, 1 - alpha
    q[K, K] = 1.0
    return q


SCHEDULES = {"cosine": cosine_schedule, "linear": linear_schedule, "absorbing": absorbing_schedule}


@pytest.fixture(params=list(SCHEDULES))
def alphas(request):
    return SCHEDULES[request.param](T)


def test_absorbing_schedule_masks_linearly_and_completely():
    abar = absorbing_schedule(T).cumprod(0)
    assert torch.allclose(abar, 1 - torch.arange(1, T + 1, dtype=torch.float64) / T, atol=1e-15) and abar[-1] == 0
    masked_at_T = absorbing_log_marginal(torch.arange(K), K, absorbing_schedule(T).log().sum()).exp()
    assert torch.allclose(masked_at_T[:, K], torch.ones(K, dtype=torch.float64))  # the prior "all masked" is exact


def marginals(alphas: torch.Tensor) -> list[torch.Tensor]:
    """``[Q_1 ... Q_t for t = 0..T]``: row ``x_0`` is q(x_t | x_0)."""
    out = [torch.eye(K + 1, dtype=torch.float64)]
    for a in alphas.tolist():
        out.append(out[-1] @ transition_matrix(a))
    return out


def test_marginals_are_the_matrix_products(alphas):
    log_abar = alphas.log().cumsum(0)
    qs = marginals(alphas)
    x0 = torch.arange(K)
    for t in range(1, T + 1):
        got = absorbing_log_marginal(x0, K, log_abar[t - 1]).exp()
        assert torch.allclose(got, qs[t][:K], atol=1e-12), t
        assert torch.allclose(got.sum(-1), torch.ones(K, dtype=torch.float64))


def test_posteriors_are_bayes_rule(alphas):
    log_abar = torch.cat([torch.zeros(1, dtype=torch.float64), alphas.log().cumsum(0)])
    qs = marginals(alphas)
    for t, x0, xt in itertools.product(range(1, T + 1), range(K), range(K + 1)):
        joint = qs[t - 1][x0] * transition_matrix(alphas[t - 1].item())[:, xt]  # q(x_{t-1}, x_t | x_0)
        if joint.sum() == 0:
            continue  # x_t impossible given x_0
        want = joint / joint.sum()
        log_x0 = torch.full((1, K), -1e4, dtype=torch.float64)
        log_x0[0, x0] = 0.0
        got = absorbing_log_posterior(log_x0, torch.tensor([xt]), log_abar[t - 1], log_abar[t]).exp()[0]
        assert torch.allclose(got, want, atol=1e-12), (t, x0, xt)


def test_the_reverse_model_mixes_the_posteriors_of_each_x0(alphas):
    log_abar = torch.cat([torch.zeros(1, dtype=torch.float64), alphas.log().cumsum(0)])
    p0 = torch.softmax(torch.randn(4, K, generator=torch.Generator().manual_seed(0), dtype=torch.float64), -1)
    masked = torch.full((4,), K)
    for t in range(1, T + 1):
        got = absorbing_log_posterior(p0.log(), masked, log_abar[t - 1], log_abar[t]).exp()
        want = sum(p0[:, k, None] * absorbing_log_posterior(
            torch.eye(K, dtype=torch.float64)[k].clamp_min(1e-300).log().expand(4, K), masked,
            log_abar[t - 1], log_abar[t]).exp() for k in range(K))
        assert torch.allclose(got, want, atol=1e-12) and torch.allclose(got.sum(-1), torch.ones(4, dtype=torch.float64))
    kept = absorbing_log_posterior(p0.log(), torch.tensor([0, 1, 2, 0]), log_abar[2], log_abar[3]).exp()
    assert torch.equal(kept.argmax(-1), torch.tensor([0, 1, 2, 0])) and torch.allclose(kept.max(-1).values,
                                                                                        torch.ones(4, dtype=torch.float64))


def test_masking_cannot_shrink():
    with pytest.raises(ValueError, match="masking only ever grows"):
        absorbing_log_posterior(torch.zeros(1, K), torch.tensor([K]), torch.tensor(0.5).log(), 0.0)


# ----------------------------------------------------------------------------- the model

from catlib.diffusion import categorical_kl  # noqa: E402
from catlib.masked_diffusion import MaskedDiffusion  # noqa: E402
from catlib.nets import TimeMLP  # noqa: E402


def tiny_model(D=2, K=2, T=3, seed=0):
    torch.manual_seed(seed)
    net = TimeMLP(D, K + 1, hidden=(16,))
    with torch.no_grad():
        for p in net.parameters():
            p.add_(torch.randn(p.shape) * 0.5)  # away from a uniform prediction
    return MaskedDiffusion((D,), K, net, timesteps=T).double()


def test_closed_form_term_is_the_kl_of_the_posteriors():
    model = tiny_model(D=3, K=3, T=5)
    x0 = torch.tensor([[0, 2, 1], [1, 1, 0]])
    for t_now in range(1, 6):
        t = torch.full((2,), t_now)
        x_t = torch.tensor([[3, 2, 3], [3, 3, 3]])
        got = model._loss_given_xt(x0, x_t, t)
        prev, now = model.log_alpha_bar[t_now - 1], model.log_alpha_bar[t_now]
        log_q = absorbing_log_posterior(torch.eye(3, dtype=torch.float64)[x0].clamp_min(1e-300).log(), x_t, prev, now)
        log_p = absorbing_log_posterior(model.p_log_x0(x_t, t).double(), x_t, prev, now)
        if t_now == 1:  # the decoder: -log p(x_0 | x_1)
            want = -log_p.gather(-1, x0[..., None])[..., 0].sum(1)
        else:
            want = categorical_kl(log_q, log_p).sum(1)
        assert torch.allclose(got, want, atol=1e-9), t_now


def trajectory_elbo(model, x0):
    """E_q[log p(x_{0:T}) - log q(x_{1:T} | x_0)] by enumerating every trajectory of every position."""
    K, D, T = model.num_classes, x0.numel(), model.num_timesteps
    total = 0.0
    for path in itertools.product(range(K + 1), repeat=D * T):
        xs = [x0] + [torch.tensor(path[i * D:(i + 1) * D]) for i in range(T)]  # x_1 .. x_T
        log_q = 0.0
        for t in range(1, T + 1):  # q(x_t | x_{t-1}), position by position
            a = math.exp(model.log_alpha_bar[t] - model.log_alpha_bar[t - 1]) if model.log_alpha_bar[t] > -math.inf else 0.0
            for prev, now in zip(xs[t - 1].tolist(), xs[t].tolist()):
                p = (1.0 if now == K else 0.0) if prev == K else (a if now == prev else (1 - a) if now == K else 0.0)
                log_q = log_q + (math.log(p) if p > 0 else -math.inf)
        if log_q == -math.inf:
            continue
        log_p = 0.0 if bool((xs[T] == K).all()) else -math.inf  # the prior: all masked
        for t in range(T, 0, -1):
            tt = torch.tensor([t])
            step = absorbing_log_posterior(model.p_log_x0(xs[t][None], tt).double(), xs[t][None],
                                           model.log_alpha_bar[t - 1], model.log_alpha_bar[t])[0]
            log_p = log_p + step.gather(-1, xs[t - 1][:, None]).sum().item()
        total += math.exp(log_q) * (log_p - log_q)
    return total



def test_exact_bound_is_the_sum_over_all_trajectories():
    model = tiny_model(D=2, K=2, T=3)
    for x0 in ([0, 1], [1, 1]):
        x = torch.tensor([x0])
        assert model.log_prob(x, exact=True).item() == pytest.approx(trajectory_elbo(model, x[0]), abs=1e-9)


def test_bounds_of_all_outcomes_sum_to_at_most_one():
    model = tiny_model(D=2, K=3, T=4, seed=1)
    xs = torch.tensor(list(itertools.product(range(3), repeat=2)))
    total = model.log_prob(xs, exact=True).exp().sum().item()
    assert 0.2 < total <= 1.0 + 1e-12


def test_sampled_terms_average_to_the_exact_ones():
    model = tiny_model(D=2, K=2, T=3)
    x = torch.tensor([[0, 1]]).repeat(4000, 1)
    torch.manual_seed(0)
    sampled = model.elbo_terms(x).mean(0)
    exact = model.elbo_terms(x[:1], exact=True)[0]
    assert torch.allclose(sampled, exact, atol=0.05)


def test_sampler_calls_the_network_only_when_something_unmasks():
    model = tiny_model(D=3, K=2, T=200)
    calls = []
    model.denoise_fn.register_forward_hook(lambda *args: calls.append(1))
    x = model.sample(1)
    assert ((x >= 0) & (x < 2)).all() and model.last_sample_calls == len(calls) <= 3  # one call per unmasking jump
    assert model.sample(5, steps=2).shape == (5, 3) and model.last_sample_calls <= 2


def test_bad_inputs():
    with pytest.raises(ValueError, match="alpha_bar_T = 0"):
        MaskedDiffusion((2,), 2, TimeMLP(2, 3), timesteps=5, schedule="cosine")
    model = MaskedDiffusion((2,), 3, lambda x, t: torch.zeros(x.shape[0], 2, 7), timesteps=5)
    with pytest.raises(ValueError, match="logits of shape"):
        model.log_prob(torch.tensor([[0, 1]]))
    with pytest.raises(ValueError):
        tiny_model().log_prob(torch.tensor([[0, 5]]))  # a class outside [0, K)


# ----------------------------------------------------------------------------- continuous time

from catlib.masked_diffusion import MASKING_SCHEDULES, ContinuousMaskedDiffusion  # noqa: E402


class TimeBlind(torch.nn.Module):
    """Logits from x_t alone, so one network serves discrete and continuous time alike."""

    def __init__(self, D, K, seed=0):
        super().__init__()
        torch.manual_seed(seed)
        self.net = TimeMLP(D, K + 1, hidden=(16,))
        with torch.no_grad():
            for p in self.net.parameters():
                p.add_(torch.randn(p.shape) * 0.5)

    def forward(self, x_t, t):
        return self.net(x_t, torch.zeros(x_t.shape[0], dtype=torch.long))


def test_continuous_bound_is_the_limit_of_the_discrete_one():
    net = TimeBlind(2, 3).double()
    x = torch.tensor([[0, 2], [1, 1]])
    continuous = ContinuousMaskedDiffusion((2,), 3, net, "linear").double().log_prob(x, exact=True)
    gaps = []
    for T in (4, 32, 256):
        discrete = MaskedDiffusion((2,), 3, net, timesteps=T).double().log_prob(x, exact=True)
        gaps.append((continuous - discrete).abs().max().item())
    assert gaps[0] > gaps[1] > gaps[2] and gaps[2] < 0.02, gaps


def test_masking_schedules_and_their_derivatives():
    t = torch.linspace(0.01, 0.99, 50, dtype=torch.float64, requires_grad=True)
    for name, (alpha, alpha_prime) in MASKING_SCHEDULES.items():
        assert alpha(torch.tensor(0.0)) == pytest.approx(1) and alpha(torch.tensor(1.0)) == pytest.approx(0, abs=1e-12)
        grad, = torch.autograd.grad(alpha(t).sum(), t)
        assert torch.allclose(grad, alpha_prime(t.detach())), name


@pytest.mark.parametrize("schedule", list(MASKING_SCHEDULES))
def test_continuous_bounds_of_all_outcomes_sum_to_at_most_one(schedule):
    model = ContinuousMaskedDiffusion((2,), 3, TimeBlind(2, 3, seed=1), schedule).double()
    xs = torch.tensor(list(itertools.product(range(3), repeat=2)))
    total = model.log_prob(xs, exact=True).exp().sum().item()
    assert 0.2 < total <= 1.0


def test_stratified_times_and_the_sampled_bound():
    model = ContinuousMaskedDiffusion((2,), 3, TimeBlind(2, 3)).double()
    torch.manual_seed(0)
    times = model.stratified_times(8)
    assert sorted((times * 8).floor().long().tolist()) == list(range(8))
    x = torch.tensor([[0, 2]])
    estimate = model.log_prob(x.repeat(2000, 1), times=4).mean()
    assert estimate.item() == pytest.approx(model.log_prob(x, exact=True).item(), abs=0.05)
    assert model.sample(3, steps=10).shape == (3, 2) and model.last_sample_calls <= 10


@pytest.mark.parametrize("schedule", list(MASKING_SCHEDULES))
def test_the_count_estimate_is_unbiased_with_a_smaller_variance(schedule):
    model = ContinuousMaskedDiffusion((4,), 3, TimeBlind(4, 3, seed=2), schedule).double()
    x = torch.tensor([[0, 2, 1, 1]])
    torch.manual_seed(0)
    with torch.no_grad():
        by_count = torch.cat([model.loss_given_count(x.repeat(4, 1), torch.arange(1, 5)) for _ in range(3000)])
        by_time = model.loss_at(x.repeat(12000, 1), torch.rand(12000, dtype=torch.float64))
        exact = -model.log_prob(x, exact=True).item()
    se = by_count.std().item() / math.sqrt(len(by_count))
    assert abs(by_count.mean().item() - exact) < 4 * se            # unbiased (enumerated: equal to 1e-8)
    assert by_count.var().item() < by_time.var().item() / 2


# ----------------------------------------------------------------------------- whole trajectories

def test_masking_times_follow_the_schedules():
    torch.manual_seed(0)
    x = torch.zeros(20000, 2, dtype=torch.long)
    discrete = MaskedDiffusion((2,), 3, TimeMLP(2, 4), timesteps=5)
    m = discrete.masking_times(x)
    assert m.min() >= 1 and m.max() <= 5
    for t in range(1, 6):
        share = (m <= t).double().mean().item()
        assert share == pytest.approx(1 - discrete.log_alpha_bar[t].exp().item(), abs=0.01)
    for name, (alpha, _) in MASKING_SCHEDULES.items():
        m = ContinuousMaskedDiffusion((2,), 3, TimeMLP(2, 4), name).masking_times(x)
        for t in (0.1, 0.5, 0.9):
            share = (m <= t).double().mean().item()
            assert share == pytest.approx(1 - alpha(torch.tensor(t)).item(), abs=0.01), name


def exact_log_likelihood(model, x0):
    """log p(x0) of the discrete model: every masking-time pattern m with q(m | x0) and its weight."""
    T, D = model.num_timesteps, x0.numel()
    alpha_bar = model.log_alpha_bar.exp()
    total = 0.0
    for m in itertools.product(range(1, T + 1), repeat=D):
        q = math.prod((alpha_bar[t - 1] - alpha_bar[t]).item() for t in m)
        if q == 0:
            continue
        log_w = 0.0
        for d, t in enumerate(m):
            x_t = torch.where(torch.tensor(m) <= t, model.mask, x0)
            log_w += model.p_log_x0(x_t[None], torch.tensor([t]))[0, d, x0[d]].item()
        total += q * math.exp(log_w)
    return math.log(total)


def test_importance_weights_give_elbo_iwbo_and_the_exact_likelihood():
    torch.manual_seed(0)
    model = MaskedDiffusion((2,), 3, TimeBlind(2, 3, seed=1), timesteps=3).double()
    xs = torch.tensor(list(itertools.product(range(3), repeat=2)))
    exact = torch.tensor([exact_log_likelihood(model, x) for x in xs])
    assert exact.exp().sum().item() == pytest.approx(1.0, abs=1e-6)      # the model is a distribution
    elbo = model.log_prob(xs, exact=True)
    assert (elbo <= exact + 1e-6).all()
    i = 3                                                                   # x = (1, 0): ELBO 0.43 nats below
    torch.manual_seed(1)
    mean_weight = model.log_weight(xs[i].repeat(40000, 1)).mean().item()
    assert mean_weight == pytest.approx(elbo[i].item(), abs=0.01)          # E log w = ELBO
    iwbo = [model.log_prob(xs[i].repeat(4000, 1), k=k).mean().item() for k in (2, 8, 64)]
    assert elbo[i].item() < iwbo[0] < iwbo[1] < iwbo[2] <= exact[i].item() + 0.005
    assert exact[i].item() - iwbo[2] < (exact[i] - elbo[i]).item() / 4


@pytest.mark.parametrize("schedule", list(MASKING_SCHEDULES))
def test_continuous_importance_weights_average_to_the_bound(schedule):
    model = ContinuousMaskedDiffusion((2,), 3, TimeMLP(2, 4, hidden=(16,)), schedule).double()
    x = torch.tensor([[0, 2]])
    torch.manual_seed(0)
    mean_weight = model.log_weight(x.repeat(40000, 1)).mean().item()
    assert mean_weight == pytest.approx(model.log_prob(x, exact=True).item(), abs=0.01)
    with pytest.raises(ValueError, match="needs k = 1"):
        model.log_prob(x, k=2, exact=True)


def test_discrete_training_loss_averages_to_the_negative_elbo():
    torch.manual_seed(0)
    model = MaskedDiffusion((2,), 3, TimeMLP(2, 4, hidden=(16,)), timesteps=6).double()
    x = torch.tensor([[1, 0]])
    losses = torch.stack([model.training_loss(x.repeat(600, 1)) for _ in range(20)])
    assert losses.mean().item() == pytest.approx(-model.log_prob(x, exact=True).item(), abs=0.03)


@pytest.mark.parametrize("schedule", list(MASKING_SCHEDULES))
def test_discretized_model_is_the_sampler_with_fewer_steps(schedule):
    model = ContinuousMaskedDiffusion((3,), 4, TimeMLP(3, 5, hidden=(16,)), schedule).double()
    short = model.discretized(6)
    torch.manual_seed(3)
    a = model.sample(200, steps=6)
    torch.manual_seed(3)
    b = short.sample(200)
    assert torch.equal(a, b)
    x = torch.tensor([[0, 3, 1]])
    bounds = [model.discretized(s).log_prob(x, exact=True).item() for s in (2, 16, 256)]
    exact = model.log_prob(x, exact=True).item()
    assert abs(exact - bounds[2]) < abs(exact - bounds[1]) < abs(exact - bounds[0]) and abs(exact - bounds[2]) < 0.01


# ----------------------------------------------------------------------------- building

from catlib.masked_diffusion import build_masked_diffusion  # noqa: E402


def test_build_masked_diffusion_and_its_errors():
    model = build_masked_diffusion((2, 4), 5, channels=8)
    assert isinstance(model, ContinuousMaskedDiffusion) and model.options["network"] == "unet"
    assert model.name == "masked-diffusion" and model.options["schedule"] == "linear"
    assert model.denoise_fn.num_classes == 6                                   # the mask is an input state
    text = build_masked_diffusion((8,), 27, time="discrete", timesteps=20, network="transformer", width=16,
                                  local_window=4)
    assert isinstance(text, MaskedDiffusion) and text.options["schedule"] == "absorbing"
    assert text.sample(2, steps=4).shape == (2, 8)
    with pytest.raises(ValueError, match="time must be"):
        build_masked_diffusion((4,), 3, time="later")
    with pytest.raises(ValueError, match="schedule for time='discrete'"):
        build_masked_diffusion((4,), 3, time="discrete", schedule="cosine")
    with pytest.raises(ValueError, match="unknown option"):
        build_masked_diffusion((4,), 3, channels=8)
    with pytest.raises(ValueError, match="timesteps"):
        build_masked_diffusion((4,), 3, timesteps=0)

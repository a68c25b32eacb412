"""Multinomial diffusion: closed forms against enumeration, oracle sampling, the bound, edge cases."""
from __future__ import annotations

import itertools
import math

import pytest
import torch
import torch.nn.functional as F
from scipy.stats import chisquare

from catlib.diffusion import (MultinomialDiffusion, build_diffusion, categorical_kl, cosine_schedule,
                              index_to_log_onehot, linear_schedule, log1mexp)
from catlib.nets import TimeMLP

SCHEDULES = ["cosine", "linear"]


def all_states(num_classes: int, num_vars: int) -> torch.Tensor:
    """Every configuration ``[K ** D, D]``; variable ``d`` of state ``j`` is digit ``d`` of ``j`` in base K."""
    j = torch.arange(num_classes ** num_vars)
    return j[:, None] // num_classes ** torch.arange(num_vars) % num_classes


def state_index(x: torch.Tensor, num_classes: int) -> torch.Tensor:
    return (x * num_classes ** torch.arange(x.shape[1])).sum(1)


def kernel(model: MultinomialDiffusion, t: int) -> torch.Tensor:
    """:math:`q(x_t = j \\mid x_0 = i)` for one variable, ``[K, K]``, straight from the paper's eq. 12."""
    K = model.num_classes
    abar = math.exp(float(model.log_cumprod_alpha[t - 1]))
    return abar * torch.eye(K, dtype=torch.float64) + (1 - abar) / K


def oracle(model: MultinomialDiffusion, P: torch.Tensor, kind: str = "matched"):
    """A table-lookup ``denoise_fn`` for a known distribution ``P`` over all ``K ** D`` states.

    ``"posterior"`` returns the marginals :math:`q(x_{0,d} \\mid x_t)`. ``"matched"`` returns,
    for ``t >= 2``, :math:`\\hat x_{0,d} \\propto q(x_{0,d} \\mid x_t) / q(x_{t,d} \\mid x_{0,d})`:
    with it :math:`p(x_{t-1,d} \\mid x_t)` (eq. 13-14) equals the true marginal
    :math:`q(x_{t-1,d} \\mid x_t)`, the best any factorised reverse step can do (and exact for
    D = 1). For ``t = 1`` the decoder :math:`\\mathcal{C}(\\hat x_0)` must be the posterior itself.
    """
    K, D, T = model.num_classes, model.num_vars, model.num_timesteps
    states = all_states(K, D)
    table = torch.empty(T, len(states), D, K, dtype=torch.float64)
    for t in range(1, T + 1):
        Q = kernel(model, t)
        lik = Q[states[:, None, :], states[None, :, :]].prod(-1)        # [x0, xt]
        post = P.flatten()[:, None] * lik                                # [x0, xt]
        post = post / post.sum(0)
        marg = torch.stack([torch.stack([post[states[:, d] == k].sum(0) for k in range(K)], -1)
                            for d in range(D)], 1)                       # [xt, D, K]
        if kind == "matched" and t >= 2:
            marg = marg / Q[:, states].permute(1, 2, 0)                  # divide by q(x_t,d | x0_d = k)
            marg = marg / marg.sum(-1, keepdim=True)
        table[t - 1] = marg.clamp(min=1e-300).log()

    def denoise_fn(x_t, t):
        return table[t - 1, state_index(x_t.view(len(t), -1), K)].view(*x_t.shape, K)

    return denoise_fn


def model_marginal(model: MultinomialDiffusion, steps: int | None = None) -> torch.Tensor:
    """The model's exact :math:`p(x_0)` over all states, by chaining the reverse kernels."""
    states = all_states(model.num_classes, model.num_vars)
    times = model.sampling_times(steps) + [0]
    dist = torch.full((len(states),), 1 / len(states), dtype=torch.float64)
    for t, s in zip(times[:-1], times[1:]):
        lp = model.p_log_prob_prev(states, t, s)                                # [from, D, K]
        M = lp[:, torch.arange(model.num_vars), states].sum(-1).exp()           # [from, to]
        dist = dist @ M
    return dist


def correlated_toy() -> torch.Tensor:
    P = torch.tensor([[0.30, 0.02, 0.05], [0.02, 0.25, 0.02], [0.05, 0.04, 0.25]], dtype=torch.float64)
    return (P / P.sum()).T  # P[x0_1, x0_0]: flattened index = x_0 + 3 x_1, as all_states


def chi2_p(samples: torch.Tensor, probs: torch.Tensor) -> float:
    counts = torch.bincount(samples, minlength=len(probs)).double()
    return float(chisquare(counts.numpy(), (probs / probs.sum() * counts.sum()).numpy()).pvalue)


def toy_model(data_shape=(2,), K=3, T=20, schedule="cosine", hidden=(16,), **kw) -> MultinomialDiffusion:
    return MultinomialDiffusion(data_shape, K, TimeMLP(math.prod(data_shape), K, hidden=hidden), T, schedule, **kw)


# ----------------------------------------------------------------------------- schedules and helpers

def test_cosine_schedule_is_the_ratio_of_cosines():
    T, s = 50, 0.008
    alphas = cosine_schedule(T, s)
    f = [math.cos((t / T + s) / (1 + s) * math.pi / 2) for t in range(T + 1)]
    abar = alphas.cumprod(0)
    assert alphas.dtype == torch.float64 and alphas.shape == (T,)
    torch.testing.assert_close(abar[:-1], torch.tensor(f[1:-1], dtype=torch.float64) / f[0], rtol=1e-12, atol=0)
    assert alphas[-1] == pytest.approx(math.sqrt(0.001))  # the clip acts at t = T only
    assert ((alphas > 0) & (alphas < 1)).all()


def test_linear_schedule_and_errors():
    alphas = linear_schedule(5, 0.1, 0.5)
    torch.testing.assert_close(1 - alphas, torch.linspace(0.1, 0.5, 5, dtype=torch.float64))
    assert linear_schedule(1000)[0] == pytest.approx(1 - 1e-4) and linear_schedule(1000)[-1] == pytest.approx(0.98)
    with pytest.raises(ValueError, match="beta_end=1.5"):
        linear_schedule(5, 0.1, 1.5)
    with pytest.raises(ValueError, match="timesteps must be an integer >= 1, got 0"):
        cosine_schedule(0)


def test_log_helpers():
    a = torch.tensor([-1e-20, -1e-5, -0.5, -1.0, -50.0, -800.0], dtype=torch.float64)
    expected = torch.tensor([math.log(1e-20), math.log(-math.expm1(-1e-5)), math.log(-math.expm1(-0.5)),
                             math.log1p(-math.exp(-1.0)), -math.exp(-50.0), 0.0], dtype=torch.float64)
    torch.testing.assert_close(log1mexp(a), expected, rtol=1e-14, atol=0)
    log_p = torch.tensor([[0.0, -math.inf]])  # 0 log 0 = 0
    assert categorical_kl(log_p, torch.tensor([[-1.0, -2.0]])).item() == 1.0
    lx = index_to_log_onehot(torch.tensor([[2, 0]]), 3)
    assert lx.shape == (1, 2, 3) and torch.isfinite(lx).all()
    assert torch.equal(lx.exp().argmax(-1), torch.tensor([[2, 0]]))


# ----------------------------------------------------------------------------- closed forms

@pytest.mark.parametrize("schedule", SCHEDULES)
def test_marginal_is_the_product_of_transitions(schedule):
    torch.manual_seed(0)
    model = toy_model((3,), K=4, T=30, schedule=schedule)
    x0 = torch.softmax(torch.randn(2, 3, 4, dtype=torch.float64), -1)
    probs = x0
    for t in range(1, 31):
        probs = model.transition_probs(probs, t)
        torch.testing.assert_close(model.marginal_probs(x0, t), probs, rtol=1e-10, atol=1e-14)
    x_idx = torch.tensor([[0, 3, 1]])
    torch.testing.assert_close(model.marginal_probs(x_idx, 7).double(),
                               model.marginal_probs(F.one_hot(x_idx, 4).double(), 7), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("schedule", SCHEDULES)
def test_posterior_is_bayes_rule(schedule):
    K, T = 4, 25
    model = toy_model((1,), K=K, T=T, schedule=schedule)
    x0, xt = torch.cartesian_prod(torch.arange(K), torch.arange(K)).T      # every pair
    x0_onehot = F.one_hot(x0, K).double()[:, None]                          # [K*K, 1, K]
    eye = torch.eye(K, dtype=torch.float64)
    for t in (1, 2, 3, 13, T - 1, T):
        fwd = model.transition_probs(eye[:, None], t)[:, 0]                 # [x_{t-1}, x_t]
        prior = model.marginal_probs(x0_onehot, t - 1)[:, 0] if t > 1 else x0_onehot[:, 0]
        bayes = fwd[:, xt].T * prior
        bayes = bayes / bayes.sum(-1, keepdim=True)
        torch.testing.assert_close(model.posterior_probs(x0_onehot, xt[:, None], t)[:, 0], bayes,
                                   rtol=1e-10, atol=1e-14)


def test_posterior_with_predicted_x0_is_equation_13():
    torch.manual_seed(1)
    K, T = 5, 40
    model = toy_model((3,), K=K, T=T)
    x0_hat = torch.softmax(torch.randn(4, 3, K, dtype=torch.float64), -1)
    xt = torch.randint(K, (4, 3))
    for t in (1, 2, 17, T):
        alpha = math.exp(float(model.log_alpha[t - 1]))
        abar_prev = math.exp(float(model.log_cumprod_alpha[t - 2])) if t > 1 else 1.0
        theta = (alpha * F.one_hot(xt, K).double() + (1 - alpha) / K) * (abar_prev * x0_hat + (1 - abar_prev) / K)
        expected = theta / theta.sum(-1, keepdim=True) if t > 1 else x0_hat
        torch.testing.assert_close(model.posterior_probs(x0_hat, xt, t), expected, rtol=1e-10, atol=1e-14)


def test_skip_posterior_is_bayes_rule_with_the_composed_transition():
    K, T = 3, 20
    model = toy_model((1,), K=K, T=T)
    eye = torch.eye(K, dtype=torch.float64)
    x0, xt = torch.cartesian_prod(torch.arange(K), torch.arange(K)).T
    log_x0 = F.one_hot(x0, K).double()[:, None].clamp(min=1e-30).log()
    for t, s in [(20, 1), (20, 13), (9, 2), (5, 4)]:
        fwd = eye[:, None]
        for r in range(s + 1, t + 1):                                        # q(x_t | x_s) as a product
            fwd = model.transition_probs(fwd, r)
        bayes = fwd[:, 0][:, xt].T * model.marginal_probs(log_x0.exp(), s)[:, 0]
        bayes = bayes / bayes.sum(-1, keepdim=True)
        got = model.q_log_posterior(log_x0, xt[:, None], t, s).exp()[:, 0]
        torch.testing.assert_close(got, bayes, rtol=1e-10, atol=1e-14)


# ----------------------------------------------------------------------------- the bound

def trajectory_elbo(model: MultinomialDiffusion, x: torch.Tensor) -> torch.Tensor:
    """:math:`E_q[\\log p(x_{0:T}) - \\log q(x_{1:T} \\mid x_0)]` by summing over every path x_{1:T}."""
    K, D, T = model.num_classes, model.num_vars, model.num_timesteps
    states = all_states(K, D)
    S = len(states)
    eye = F.one_hot(states, K).double()
    log_q = [model.q_log_transition(eye.clamp(min=1e-30).log(), t)[:, torch.arange(D), states].sum(-1)
             for t in range(1, T + 1)]                                         # [from x_{t-1}, to x_t]
    log_p = [model.p_log_prob_prev(states, t)[:, torch.arange(D), states].sum(-1) for t in range(1, T + 1)]
    paths = torch.tensor(list(itertools.product(range(S), repeat=T)))         # [S**T, T]: x_1..x_T
    out = []
    for i in state_index(x, K):
        prev = torch.cat([torch.full((len(paths), 1), int(i)), paths], 1)     # x_0..x_T
        lq = sum(log_q[t][prev[:, t], prev[:, t + 1]] for t in range(T))
        lp = -D * math.log(K) + sum(log_p[t][prev[:, t + 1], prev[:, t]] for t in range(T))
        out.append((lq.exp() * (lp - lq)).sum())
    return torch.stack(out)


def test_exact_elbo_equals_the_sum_over_all_trajectories(float64):
    torch.manual_seed(2)
    alphas = torch.tensor([0.9, 0.8, 0.7, 0.6])  # little noise: q(x_T | x_0) is far from uniform
    model = toy_model((2,), K=3, T=4, schedule=alphas, hidden=(32,)).eval()
    x = all_states(3, 2)
    assert (model.prior_kl(x) > 0.1).all()
    enumerated = -(model.elbo_terms(x, enumerate_xt=True).sum(1) + model.prior_kl(x))
    torch.testing.assert_close(enumerated, trajectory_elbo(model, x), rtol=1e-10, atol=1e-10)
    # the sampled estimators are unbiased for it
    reps = 400
    xr = x[[0, 4]].repeat(reps, 1)
    for estimate in (model.log_prob(xr, exact=True), model.log_prob(xr)):
        est = estimate.view(reps, 2)
        se = est.std(0) / math.sqrt(reps)
        assert ((est.mean(0) - enumerated[[0, 4]]).abs() < 4 * se + 1e-9).all()
    # the importance-weighted bound over whole trajectories closes the gap to the model's log p(x)
    log_p_model = model_marginal(model).log()
    iwbo = model.log_prob(x, k=5000)
    assert (iwbo > enumerated + 0.5).all() and (iwbo - log_p_model).abs().max() < 0.5
    assert (iwbo - log_p_model).mean().abs() < 0.1
    # the training loss (-ELBO, nats per example) is unbiased too
    losses = torch.stack([model.training_loss(x[[0]].repeat(50, 1)) for _ in range(40)])
    assert abs(losses.mean() + enumerated[0]) < 4 * losses.std() / math.sqrt(40)


def test_bound_with_an_oracle_denoiser(float64):
    torch.manual_seed(3)
    P = correlated_toy()
    model = MultinomialDiffusion((2,), 3, None, timesteps=100)
    model.denoise_fn = oracle(model, P, "matched")
    x = all_states(3, 2)
    log_p_model = model_marginal(model).log()
    elbo = -(model.elbo_terms(x, enumerate_xt=True).sum(1) + model.prior_kl(x))
    assert (elbo <= log_p_model + 1e-10).all()                       # the ELBO bounds the model's log p
    entropy = -(P.flatten() * P.flatten().log()).sum()
    assert -entropy - 0.05 < (P.flatten() * elbo).sum() <= -entropy  # ... and on average the data's
    sampled = model.log_prob(x.repeat(50, 1), exact=True).view(50, -1)
    assert (sampled.mean(0) <= log_p_model + 4 * sampled.std(0) / math.sqrt(50)).all()
    iwbo = model.log_prob(x.repeat(10, 1), k=8).view(10, -1)
    assert (iwbo.mean(0) <= log_p_model + 4 * iwbo.std(0) / math.sqrt(10)).all()
    # the true posterior q(x0 | x_t) is *not* the best x0-prediction for eq. 14: its bound is worse
    model.denoise_fn = oracle(model, P, "posterior")
    elbo_posterior = -(model.elbo_terms(x, enumerate_xt=True).sum(1) + model.prior_kl(x))
    assert (P.flatten() * elbo_posterior).sum() < (P.flatten() * elbo).sum() - 0.1


# ----------------------------------------------------------------------------- sampling

def test_oracle_ancestral_samples_follow_the_data(float64):
    torch.manual_seed(4)
    P = correlated_toy()
    model = MultinomialDiffusion((2,), 3, None, timesteps=200)
    model.denoise_fn = oracle(model, P)
    exact = model_marginal(model)
    assert 0.5 * (exact - P.flatten()).abs().sum() < 0.005  # only the factorised steps' error is left
    samples = model.sample(4000)
    assert samples.shape == (4000, 2) and samples.dtype == torch.long and model.last_sample_calls == 200
    assert chi2_p(state_index(samples, 3), P.flatten()) > 0.001


def test_oracle_skip_sampler_is_exact_in_one_dimension(float64):
    torch.manual_seed(5)
    P = torch.tensor([0.5, 0.05, 0.15, 0.3], dtype=torch.float64)
    model = MultinomialDiffusion((1,), 4, None, timesteps=200)
    model.denoise_fn = oracle(model, P)
    for steps in (200, 10, 3):  # exact up to q(x_T | x_0) not being exactly uniform
        torch.testing.assert_close(model_marginal(model, steps), P, rtol=0, atol=1e-6)
    samples = model.sample(4000, steps=10)
    assert model.last_sample_calls == 10
    assert chi2_p(samples[:, 0], P) > 0.001


def test_skip_sampler_draws_from_its_chain(float64):
    torch.manual_seed(6)
    P = correlated_toy()
    model = MultinomialDiffusion((2,), 3, None, timesteps=200)
    model.denoise_fn = oracle(model, P)
    exact = model_marginal(model, steps=20)
    assert 0.5 * (exact - P.flatten()).abs().sum() < 0.05  # factorised jumps: close, not exact
    assert chi2_p(state_index(model.sample(4000, steps=20), 3), exact) > 0.001
    times, chain = model.sample_chain(5, steps=4)
    assert times == [200, 134, 67, 1, 0] and chain.shape == (5, 5, 2) and model.last_sample_calls == 4


# ----------------------------------------------------------------------------- large T and K

@pytest.mark.parametrize("schedule", SCHEDULES)
def test_no_nan_or_inf_for_large_T_and_K(schedule):
    torch.manual_seed(7)
    T, K = 4000, 256
    model = toy_model((2,), K=K, T=T, schedule=schedule).train()
    for name in ("log_alpha", "log_1_min_alpha", "log_cumprod_alpha", "log_1_min_cumprod_alpha"):
        assert torch.isfinite(getattr(model, name)).all(), name
    x = torch.randint(K, (4, 2))
    ts = torch.tensor([1, 2, T - 1, T])
    for t in (1, 2, 3, T // 2, T - 1, T):
        post = model.posterior_probs(x, torch.randint(K, (4, 2)), t)
        assert torch.isfinite(post).all() and torch.allclose(post.sum(-1), torch.ones(4, 2))
        assert torch.isfinite(model.p_log_prob_prev(x, t)).all()
    assert torch.isfinite(model.loss_terms(x, ts)).all() and (model.loss_terms(x, ts) > -1e-4).all()
    assert torch.isfinite(model.prior_kl(x)).all()
    loss = model.training_loss(x)
    loss.backward()
    assert torch.isfinite(loss) and all(torch.isfinite(p.grad).all() for p in model.parameters())


# ----------------------------------------------------------------------------- timestep sampling

def test_importance_timestep_sampling():
    T = 5
    torch.manual_seed(8)
    model = toy_model((2,), K=3, T=T).train()
    x = torch.randint(3, (16, 2))
    while (model.Lt_count < 10).any():
        t, pt = model.sample_timesteps(16)
        assert ((t >= 1) & (t <= T)).all() and torch.allclose(pt, torch.full((16,), 1 / T))
        model.training_loss(x)
    t, pt = model.sample_timesteps(4000)
    assert not torch.allclose(pt, torch.full_like(pt, 1 / T))
    weights = torch.sqrt(model.Lt_history + 1e-10) + 1e-4
    torch.testing.assert_close(pt, (weights / weights.sum())[t - 1].float())
    # the history is saved, and draws are determined by the seed
    state = model.state_dict()
    assert {"Lt_history", "Lt_count"} <= set(state)
    clone = toy_model((2,), K=3, T=T)
    clone.load_state_dict(state)
    torch.manual_seed(9)
    a = model.sample_timesteps(64)
    torch.manual_seed(9)
    assert torch.equal(a[0], clone.sample_timesteps(64)[0])
    # eval mode leaves the history alone; uniform sampling stays uniform
    before = model.Lt_history.clone()
    model.eval().training_loss(x)
    assert torch.equal(model.Lt_history, before)
    assert torch.allclose(toy_model(T=T, timestep_sampling="uniform").sample_timesteps(8)[1], torch.full((8,), 0.2))


# ----------------------------------------------------------------------------- training, build, errors

@pytest.mark.parametrize("data_shape,options", [((3,), {"hidden": (16, 16)}),
                                                ((8, 4), {"channels": 8, "attention": True})])
def test_gradients_reach_every_parameter(data_shape, options):
    torch.manual_seed(10)
    model = build_diffusion(data_shape, 4, timesteps=10, **options).train()
    model.training_loss(torch.randint(4, (6, *data_shape))).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_build_diffusion_and_state_dict_round_trip(tmp_path):
    torch.manual_seed(11)
    model = build_diffusion((8, 8), 5, timesteps=50, channels=8)
    assert model.name == "multinomial-diffusion" and model.options["network"] == "unet"
    assert model.options["channels"] == 8 and model.options["timesteps"] == 50
    assert build_diffusion((6,), 5, timesteps=50).options["network"] == "mlp"
    x = torch.randint(5, (3, 8, 8))
    assert model.log_prob(x).shape == (3,) and model.sample(2, steps=5).shape == (2, 8, 8)
    torch.save(model.state_dict(), tmp_path / "m.pt")
    clone = build_diffusion((8, 8), 5, timesteps=50, channels=8)
    clone.load_state_dict(torch.load(tmp_path / "m.pt"))
    torch.manual_seed(0)
    a = model.log_prob(x)
    torch.manual_seed(0)
    assert torch.equal(a, clone.log_prob(x))


X = torch.tensor([[0, 2]])
BAD_INPUT = [
    (lambda m: m.marginal_probs(X, 0), "t must be in [1, 1000], got 0"),
    (lambda m: m.loss_terms(X, 1001), "t must be in [1, 1000], got 1001"),
    (lambda m: m.loss_terms(X, torch.tensor([5, 6])), "t must be an int or a LongTensor of shape [1], got shape [2]"),
    (lambda m: m.loss_terms(X, torch.tensor([0])), "t must be in [1, 1000], got 0 at position 0"),
    (lambda m: m.loss_terms(X, 2.0), "t must be an int or a LongTensor of shape [1], got float"),
    (lambda m: m.marginal_probs(torch.full((1, 2, 3), 0.4), 3), "must sum to 1 over the last axis, got a sum off by"),
    (lambda m: m.marginal_probs(torch.full((1, 2, 4), 0.25), 3), "K = 3 on the last axis), got [1, 2, 4]"),
    (lambda m: m.transition_probs(torch.tensor([[[1.5, -0.5, 0.0]] * 2]), 3), "finite non-negative probabilities"),
    (lambda m: m.log_prob(torch.tensor([[0, 3]])), "x must hold class indices in [0, 3), got 3 at position (0, 1)"),
    (lambda m: m.log_prob(torch.tensor([[0, 1, 2]])), "x must have shape [batch, 2], got [1, 3]"),
    (lambda m: m.posterior_probs(X, torch.tensor([[0, 5]]), 2), "xt must hold class indices in [0, 3), got 5"),
    (lambda m: m.q_log_posterior(index_to_log_onehot(X, 3), X, 4, 4), "s must be smaller than t, got s = 4 and t = 4"),
    (lambda m: m.log_prob(X, k=0), "k must be an integer >= 1, got 0"),
    (lambda m: m.log_prob(X, k=2, exact=True), "exact=True computes the ELBO and needs k = 1, got k = 2"),
    (lambda m: m.sample(2, steps=1001), "steps must be in [1, 1000], got 1001"),
    (lambda m: m.sample(0), "n must be an integer >= 1, got 0"),
    (lambda m: toy_model((6,), K=5, T=3).elbo_terms(torch.zeros(1, 6, dtype=torch.long), enumerate_xt=True),
     "enumerate_xt needs num_classes ** num_vars <= 4096 states, got 5 ** 6"),
    (lambda m: toy_model(schedule="quadratic"),
     "schedule must be 'cosine', 'linear' or a tensor of alphas, got 'quadratic'"),
    (lambda m: toy_model(schedule=torch.ones(20)), "schedule as a tensor must hold 20 alphas in (0, 1)"),
    (lambda m: toy_model(T=0), "timesteps must be an integer >= 1, got 0"),
    (lambda m: toy_model(timestep_sampling="loss"), "timestep_sampling must be 'uniform' or 'importance', got 'loss'"),
    (lambda m: MultinomialDiffusion((2,), 3, lambda x_t, t: torch.zeros(len(t), 2, 4)).log_prob(X),
     "denoise_fn must return logits of shape [1, 2, 3], got [1, 2, 4]"),
    (lambda m: build_diffusion((4,), 3, channels=8), "unknown option(s) ['channels'] for network 'mlp'"),
    (lambda m: build_diffusion((4,), 3, network="unet"), "network 'unet' needs data_shape (H, W), got (4,)"),
    (lambda m: build_diffusion((4,), 3, network="rnn"), "network must be 'mlp' or 'unet', got 'rnn'"),
]


@pytest.mark.parametrize("call,message", BAD_INPUT, ids=[m for _, m in BAD_INPUT])
def test_bad_input_raises_clear_errors(call, message):
    with pytest.raises(ValueError) as err:
        call(toy_model((2,), K=3, T=1000))
    assert message in str(err.value)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_runs_on_cuda():
    torch.manual_seed(12)
    model = build_diffusion((8, 8), 4, timesteps=20, channels=8).cuda().train()
    x = torch.randint(4, (5, 8, 8))  # on the CPU: moved by the model
    model.training_loss(x).backward()
    assert model.log_prob(x, exact=True).device.type == "cuda"
    assert model.log_prob(x, k=2).shape == (5,) and model.sample(3, steps=4).device.type == "cuda"
    assert model.posterior_probs(x, x, 3).device.type == "cuda"


def test_skip_bound_with_every_step_has_the_terms_of_the_full_bound():
    from catlib.diffusion import build_diffusion

    torch.manual_seed(0)
    model = build_diffusion((2,), 3, timesteps=12, hidden=(16,)).double().eval()
    x = torch.tensor([[0, 2], [1, 1]])
    exact = model.elbo_terms(x, enumerate_xt=True)                       # [2, T], t = 1..T
    r = 2000
    skip = model.skip_elbo_terms(x.repeat(r, 1), 12).view(r, 2, -1)      # [r, 2, T], t = T..1
    mean, se = skip.mean(0).flip(-1), skip.std(0).flip(-1) / r ** 0.5
    assert ((mean - exact).abs() <= 5 * se + 1e-9).all()
    assert model.skip_elbo_terms(x, 4).shape == (2, 4)
    assert torch.allclose(model.skip_elbo_terms(x, 12, enumerate_xt=True).flip(-1), exact, atol=1e-12)
    lp = model.log_prob(x, exact=True, steps=3)
    assert lp.shape == (2,) and torch.isfinite(lp).all()
    with pytest.raises(ValueError, match="needs exact=True"):
        model.log_prob(x, steps=4)


def test_a_shortened_chain_has_a_valid_bound_on_its_own_likelihood():
    """Enumerate the S-step sampler's distribution and check its exact bound against it."""
    from catlib.diffusion import build_diffusion

    torch.manual_seed(0)
    model = build_diffusion((1,), 3, timesteps=12, hidden=(16,)).double().eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.5 * torch.randn_like(p))  # a model far from exact, so the gap is visible
        states = torch.arange(3).view(3, 1)
        for steps in (1, 3, 12):
            times = model.sampling_times(steps) + [0]
            dist = torch.full((3,), 1 / 3, dtype=torch.float64)
            for t, s in zip(times[:-1], times[1:]):
                dist = dist @ model.p_log_prob_prev(states, t, s).exp()[:, 0, :].double()
            bound = -(model.skip_elbo_terms(states, steps, enumerate_xt=True).sum(1) + model.prior_kl(states))
            assert (bound <= dist.log() + 1e-9).all()

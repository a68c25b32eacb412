"""The absorbing (masking) kernel against its transition matrices multiplied out by hand."""
import itertools

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

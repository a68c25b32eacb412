"""catlib.viz.dequantization: the 1-d mixture of chapter 1, q(u|x) evaluation, cell masses, plots."""
import math

import matplotlib
import numpy as np
import pytest
import torch

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from catlib import build_model  # noqa: E402
from catlib.dequantization import VariationalDequantization  # noqa: E402
from catlib.viz import dequantization as vz  # noqa: E402


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


@pytest.fixture
def integers():
    probs = torch.tensor([0.1, 0.25, 0.3, 0.2, 0.1, 0.05], dtype=torch.float64)
    data = torch.multinomial(probs, 300, replacement=True, generator=torch.Generator().manual_seed(0))
    p_hat = torch.bincount(data, minlength=6).double() / len(data)
    entropy_nats = float(-(p_hat[p_hat > 0] * p_hat[p_hat > 0].log()).sum())
    return data, entropy_nats


def test_mixture_density_integrates_to_one_and_cells_sum_to_one():
    means = torch.tensor([0.5, 2.5, 3.0], dtype=torch.float64)
    logits = torch.tensor([0.2, -1.0, 0.5], dtype=torch.float64)
    v = torch.linspace(-15, 20, 70001, dtype=torch.float64)
    dens = vz.mixture_log_prob(v, means, logits, math.log(0.7)).exp()
    assert float(dens.sum() * (v[1] - v[0])) == pytest.approx(1.0, abs=1e-6)
    cells = torch.arange(-10, 15)
    masses = vz.mixture_interval_log_prob(cells, means, logits, math.log(0.7)).exp()
    assert float(masses.sum()) == pytest.approx(1.0, abs=1e-9)
    # the cell [2, 3) against the midpoint rule
    mid = 2 + (torch.arange(10000, dtype=torch.float64) + 0.5) / 10000
    riemann = vz.mixture_log_prob(mid, means, logits, math.log(0.7)).exp().mean()
    assert float(masses[12]) == pytest.approx(float(riemann), abs=1e-8)


def test_mixture_on_integers_collapses_and_dequantized_mixture_is_bounded(integers):
    data, entropy = integers
    raw = vz.fit_gaussian_mixture_1d(data, torch.arange(6.0), steps=150, dequantize=False)
    deq = vz.fit_gaussian_mixture_1d(data, torch.arange(6.0) + 0.5, steps=150, dequantize=True)
    assert len(raw.objective_history) == 150 and len(raw.sigma_history) == 151
    # the width keeps shrinking and the "log-likelihood" passes -H and keeps rising
    assert raw.sigma_history[-1] < 1e-3 * raw.sigma_history[0]
    assert np.all(np.diff(raw.objective_history[50:]) > 0)
    assert raw.objective_history[-1] > -entropy + 5
    # the dequantized objective is a lower bound on log P_model, hence below -H (up to noise)
    assert deq.sigma_history[-1] > 0.1
    assert deq.objective_history[-20:].mean() < -entropy + 0.05
    u = (torch.arange(500, dtype=torch.float64) + 0.5) / 500
    bound = vz.mixture_log_prob(data.double()[:, None] + u, deq.means, deq.logits, deq.log_sigma).mean(1)
    log_p = vz.mixture_interval_log_prob(data, deq.means, deq.logits, deq.log_sigma)
    assert (bound <= log_p + 1e-12).all()
    assert float(log_p.mean()) <= -entropy + 1e-12


@pytest.mark.parametrize("bad", [torch.tensor([0.0, 1.0]), torch.tensor([[0, 1]]), torch.tensor([0, 1], dtype=torch.int32)])
def test_fit_rejects_data_that_are_not_a_1d_long_tensor(bad):
    with pytest.raises(ValueError, match="1-d LongTensor"):
        vz.fit_gaussian_mixture_1d(bad, torch.arange(2.0), steps=2)


def test_fit_rejects_zero_steps(integers):
    with pytest.raises(ValueError, match="steps"):
        vz.fit_gaussian_mixture_1d(integers[0], torch.arange(6.0), steps=0)


def perturbed(layer):
    """A fresh layer is exactly uniform; move every weight so that the checks have work to do.

    The base's scale is also brought below 1: with a logistic scale above 1 the density of
    ``u = sigmoid(s)`` is unbounded at the edges of the cube, which a grid cannot integrate.
    """
    with torch.no_grad():
        for p in layer.parameters():
            p.add_(0.05 * torch.randn_like(p))
        layer.q_s.base.net[-1].bias[layer.dim:] -= 0.5
    return layer


@pytest.mark.parametrize("K", [2, 5])
def test_variational_log_q_matches_the_layer_samples(K):
    torch.manual_seed(0)
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)  # float64: logit(u) loses nothing near u = 1
    try:
        check_log_q_matches_samples(perturbed(VariationalDequantization(2, K)), K)
    finally:
        torch.set_default_dtype(old)


def check_log_q_matches_samples(layer, K):
    x = torch.randint(K, (64, 2))
    with torch.no_grad():
        v, minus_log_q = layer(x)
        log_q = vz.variational_log_q(layer, v - layer.onehot(x), x)
    torch.testing.assert_close(log_q, -minus_log_q, atol=1e-4, rtol=1e-4)


def test_variational_log_q_integrates_to_one_on_the_square():
    torch.manual_seed(1)
    layer = perturbed(VariationalDequantization(1, 2))
    with torch.no_grad():  # make q(s|x) depend on x, and not centred
        layer.q_s.base.net[-1].bias.add_(torch.tensor([0.7, -0.4, -0.3, 0.2]))
    n = 300
    c = (torch.arange(n) + 0.5) / n
    u = torch.stack(torch.meshgrid(c, c, indexing="ij"), -1).view(-1, 2)
    with torch.no_grad():
        for cls in (0, 1):
            total = vz.variational_log_q(layer, u, torch.full((n * n, 1), cls)).exp().sum() / n**2
            assert float(total) == pytest.approx(1.0, abs=5e-3)


def test_density_grid_orientation_rows_are_v2():
    centres, logp = vz.density_grid(lambda v: 2.0 * v[:, 0] - v[:, 1], (0.0, 1.0), n=4)
    assert centres.shape == (4,) and logp.shape == (4, 4)
    np.testing.assert_allclose(centres, [0.125, 0.375, 0.625, 0.875])
    i, j = 1, 3
    assert logp[i, j] == pytest.approx(2.0 * centres[j] - centres[i])


def test_cell_masses_of_known_densities():
    def uniform_square(v):  # uniform on [0, 2)^2
        inside = ((v >= 0) & (v < 2)).all(-1)
        return torch.where(inside, torch.tensor(math.log(0.25)), torch.tensor(-math.inf))

    m = vz.cell_masses(uniform_square, n=50)
    for key in [(0, 0), (0, 1), (1, 0), (1, 1)]:
        assert m[key] == pytest.approx(0.25, abs=1e-6)
    assert m["outside"] == pytest.approx(0.0, abs=1e-6)

    normal = torch.distributions.Normal(torch.tensor([1.2, 0.4]), torch.tensor([0.5, 0.8]))
    m = vz.cell_masses(lambda v: normal.log_prob(v).sum(-1), n=200)
    cdf = lambda a, d: float(normal.cdf(torch.tensor([a + 1.0, a + 1.0]))[d] - normal.cdf(torch.tensor([a * 1.0, a * 1.0]))[d])
    for a in (0, 1):
        for b in (0, 1):
            assert m[(a, b)] == pytest.approx(cdf(a, 0) * cdf(b, 1), abs=1e-4)
    assert m["outside"] == pytest.approx(1 - sum(cdf(a, 0) for a in (0, 1)) * sum(cdf(b, 1) for b in (0, 1)), abs=1e-4)


def test_plots_draw_what_they_say(integers):
    data, entropy = integers
    raw = vz.fit_gaussian_mixture_1d(data, torch.arange(6.0), steps=5)
    deq = vz.fit_gaussian_mixture_1d(data, torch.arange(6.0) + 0.5, steps=5, dequantize=True)
    fig = vz.plot_mixture_collapse(np.arange(6), np.full(6, 1 / 6), raw, deq, entropy / math.log(2))
    assert len(fig.axes) == 2 and len(fig.axes[1].lines) == 3

    torch.manual_seed(0)
    model = build_model("uniform-dequantization", (1,), 2, flow_steps=1, hidden=(8,))
    with torch.no_grad():
        centres, logp = vz.density_grid(model.flow.log_prob, (-0.5, 2.5), 30)
    fig, ax = plt.subplots()
    im = vz.plot_density_2d(ax, centres, logp, {(1, 0): "x = 0", (0, 1): "x = 1"},
                            samples=np.zeros((5, 2)), title="t")
    assert im.get_array().shape == (30, 30)
    assert len(ax.patches) == 4 and ax.get_xlim() == pytest.approx((-0.5, 2.5))
    assert {t.get_text() for t in ax.texts} == {"x = 0", "x = 1", "(0,0): unused", "(1,1): unused"}

    fig, ax = plt.subplots()
    vz.plot_training_curves(ax, {"a": [3.0, 2.0, 1.0, 1.0], "b": [2.0, 1.0]}, entropy_bits=1.0, window=2)
    assert len(ax.lines) == 5  # raw + smoothed per run, and the entropy line
    np.testing.assert_allclose(ax.lines[1].get_ydata(), np.array([2.5, 1.5, 1.0]) / math.log(2))

    fig, ax = plt.subplots()
    vz.plot_samples_vs_data(ax, torch.tensor([0.5, 0.5]), {"m": torch.tensor([[0], [0], [1], [0]])})
    np.testing.assert_allclose(ax.lines[0].get_ydata(), [0.75, 0.25])

"""Hypercube dequantization layers: the cells they sample, and where the variational one starts."""
import torch

from catlib.dequantization import UniformDequantization, VariationalDequantization


def test_variational_dequantization_starts_as_the_uniform_one():
    torch.manual_seed(0)
    layer = VariationalDequantization(2, 6)
    x = torch.randint(0, 6, (5000, 2))
    with torch.no_grad():
        v, minus_log_q = layer(x)
    u = (v - layer.onehot(x)).double()
    assert torch.allclose(minus_log_q, torch.zeros_like(minus_log_q), atol=1e-4)  # q(u|x) = 1
    assert abs(float(u.mean()) - 0.5) < 0.01 and abs(float(u.var()) - 1 / 12) < 0.005


def test_samples_stay_in_their_cell_even_when_the_sigmoid_rounds_to_one():
    torch.manual_seed(0)
    layer = VariationalDequantization(1, 3)
    with torch.no_grad():
        layer.q_s.base.net[-1].bias[:3] = 40.0  # location 40: sigmoid(s) is 1.0 in float32
        x = torch.tensor([[0], [1], [2]])
        v, minus_log_q = layer(x)
    assert bool((v.floor() == layer.onehot(x)).all())
    assert bool((layer.inverse(v) == x).all()) and bool(torch.isfinite(minus_log_q).all())


def test_uniform_dequantization_fills_the_cell_with_zero_log_q():
    x = torch.randint(0, 4, (1000, 3), generator=torch.Generator().manual_seed(0))
    layer = UniformDequantization(3, 4)
    v, ldj = layer(x)
    assert bool((v.floor() == layer.onehot(x)).all()) and bool((ldj == 0).all())

"""Fast paths of the training step: fused Adam on the CPU, and fit(compile=True), which must not change the run."""
import warnings

import pytest
import torch
from torch import nn

import catlib
import catlib.train as train
from catlib.train import fit, fit_defaults

DATA = torch.randint(0, 4, (300, 2), generator=torch.Generator().manual_seed(0))


def make():
    torch.manual_seed(0)
    return catlib.build_model("argmax-threshold", (2,), 4, flow_steps=1, hidden=(16,), q_flow_steps=1, q_hidden=(8,))


class NoisyGauss(nn.Module):
    """The smallest model with what matters here: parameters, a nonlinearity and noise drawn in ``log_prob``
    (uniform dequantization of ``x [batch, 2]``), so compiled and eager runs must draw the same numbers."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.net = nn.Sequential(nn.Linear(2, 8), nn.Tanh(), nn.Linear(8, 2))

    def log_prob(self, x):
        v = x.float() + torch.rand(x.shape)
        return -(v - self.net(v)).pow(2).sum(-1)


def test_cpu_optimiser_is_fused_adam_and_the_losses_are_those_of_the_default_adam(monkeypatch):
    model = make()
    assert train._adam(model.parameters(), 1e-3, torch.device("cpu")).defaults["fused"] is True
    fused = fit(model, DATA, steps=30, batch_size=16, progress=False, device="cpu")
    draws = torch.randint(1000, (5,)).tolist()
    monkeypatch.setattr(train, "_adam", lambda params, lr, device: torch.optim.Adam(params, lr=lr))
    plain = fit(make(), DATA, steps=30, batch_size=16, progress=False, device="cpu")
    assert fused.losses == pytest.approx(plain.losses, rel=1e-5, abs=0)
    assert torch.randint(1000, (5,)).tolist() == draws  # the same random numbers were drawn


def test_compile_is_off_by_default_and_fit_defaults_can_turn_it_on(monkeypatch):
    calls = []

    def fake_compiled(objective, device):
        calls.append(device)
        return objective

    monkeypatch.setattr(train, "_compiled", fake_compiled)
    fit(NoisyGauss(), DATA, steps=2, batch_size=8, progress=False, device="cpu")
    fit(NoisyGauss(), DATA, steps=2, batch_size=8, progress=False, device="cpu", compile=False)
    assert calls == []
    with fit_defaults(compile=True):
        fit(NoisyGauss(), DATA, steps=2, batch_size=8, progress=False, device="cpu")
        fit(NoisyGauss(), DATA, steps=2, batch_size=8, progress=False, device="cpu", compile=False)  # explicit wins
    assert calls == [torch.device("cpu")]
    with pytest.raises(ValueError, match="compile must be True or False, got 'yes'"):
        fit(NoisyGauss(), DATA, steps=2, batch_size=8, progress=False, compile="yes")


def test_compile_where_it_cannot_work_warns_and_trains_eagerly(monkeypatch):
    monkeypatch.setitem(train._COMPILE_PROBES, "cpu", "InvalidCxxCompiler: no working C++ compiler found")
    torch.manual_seed(1)
    eager = fit(NoisyGauss(), DATA, steps=3, batch_size=8, progress=False, device="cpu")
    torch.manual_seed(1)
    with pytest.warns(RuntimeWarning, match="torch.compile does not work on cpu here.*training without compiling"):
        fallback = fit(NoisyGauss(), DATA, steps=3, batch_size=8, progress=False, device="cpu", compile=True)
    assert fallback.losses == eager.losses


def test_compiled_fit_gives_the_eager_losses():
    why = train._compile_unavailable(torch.device("cpu"))
    if why is not None:
        pytest.skip(f"torch.compile is unavailable on this machine's CPU: {why}")
    try:
        torch.manual_seed(1)
        eager_model = NoisyGauss()
        eager = fit(eager_model, DATA, steps=4, batch_size=16, progress=False, device="cpu")
        eager_draws = torch.randint(1000, (5,)).tolist()
        torch.manual_seed(1)
        compiled_model = NoisyGauss()
        with warnings.catch_warnings():
            warnings.simplefilter("error", RuntimeWarning)  # no fallback to eager
            compiled = fit(compiled_model, DATA, steps=4, batch_size=16, progress=False, device="cpu", compile=True)
        assert compiled.losses == pytest.approx(eager.losses, rel=1e-5, abs=1e-6)
        assert torch.randint(1000, (5,)).tolist() == eager_draws  # the same noise was drawn, in the same order
        for (name, p), q in zip(eager_model.state_dict().items(), compiled_model.state_dict().values()):
            assert torch.allclose(p, q, rtol=1e-5, atol=1e-6), name
    finally:
        torch._dynamo.reset()

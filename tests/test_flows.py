"""Flows: exact inverses and log-determinants equal to autograd's."""
import pytest
import torch

from catlib.distributions import ConditionalNormal, StandardNormal
from catlib.flows import (ActNorm, AffineCoupling, ConditionalFlow, Flow, LinearLU, MixtureLogisticCoupling,
                          Permutation, coupling_stack)
from catlib.nets import MLP
from helpers import randomize

pytestmark = pytest.mark.usefixtures("float64")


TRANSFORMS = {
    "affine": lambda: AffineCoupling(5, parity=1, context_dim=3, hidden=(16,)),
    "mixture": lambda: MixtureLogisticCoupling(5, parity=0, context_dim=3, hidden=(16,), num_mixtures=3),
    "actnorm": lambda: ActNorm(5),
    "linear": lambda: LinearLU(5, seed=3),
    "permutation": lambda: Permutation(5, "random", seed=1),
}


@pytest.mark.parametrize("name", sorted(TRANSFORMS))
def test_log_det_matches_autograd_and_inverse_round_trips(name):
    torch.manual_seed(0)
    t = randomize(TRANSFORMS[name](), 0.5).eval()
    x, c = torch.randn(4, 5) * 2, torch.randn(4, 3)
    z, ldj = t(x, c)
    assert ldj.shape == (4,)
    assert torch.allclose(t.inverse(z, c), x, atol=1e-8)
    for i in range(4):
        jac = torch.autograd.functional.jacobian(lambda a: t(a.unsqueeze(0), c[i:i + 1])[0][0], x[i])
        assert torch.allclose(torch.linalg.slogdet(jac)[1], ldj[i], atol=1e-8)


@pytest.mark.parametrize("coupling", ["affine", "mixture"])
def test_flow_density_mass_on_a_grid_matches_its_samples(coupling):
    """The density's mass in a box equals the fraction of the flow's own samples in it."""
    torch.manual_seed(0)
    flow = randomize(Flow(StandardNormal(2), coupling_stack(2, 3, hidden=(8,), coupling=coupling)), 0.2).eval()
    g = torch.linspace(-15, 15, 801)
    xx, yy = torch.meshgrid(g, g, indexing="ij")
    with torch.no_grad():
        p = flow.log_prob(torch.stack([xx.flatten(), yy.flatten()], -1)).exp().view(801, 801)
    mass = float(torch.trapezoid(torch.trapezoid(p, g, dim=1), g))
    inside = float((flow.sample(100_000).abs() <= 15).all(-1).double().mean())
    assert mass == pytest.approx(inside, abs=1.5e-3)
    assert mass > 0.5  # the box holds most of the mass, so the comparison is not vacuous


def test_conditional_flow_log_prob_is_the_change_of_variables():
    torch.manual_seed(0)
    q = ConditionalFlow(ConditionalNormal(MLP(3, 8, (16,)), 4), coupling_stack(4, 2, (16,), context_dim=3, actnorm=False))
    randomize(q, 0.3)
    c = torch.randn(6, 3)
    torch.manual_seed(5)
    u, log_q = q.sample_with_log_prob(c)
    torch.manual_seed(5)
    eps, log_base = q.base.sample_with_log_prob(c)
    x, ldj = eps, torch.zeros(6)
    for t in q.transforms:
        x, l = t(x, c)
        ldj = ldj + l
    assert torch.allclose(u, x) and torch.allclose(log_q, log_base - ldj)
    assert torch.allclose(q.base.log_prob(eps, c), log_base)


def test_actnorm_initialises_from_first_batch_only_once():
    a = ActNorm(3).train()
    x = torch.randn(500, 3) * torch.tensor([1.0, 5.0, 0.1]) + 4
    z, _ = a(x)
    assert torch.allclose(z.mean(0), torch.zeros(3), atol=1e-6)
    assert torch.allclose(z.std(0), torch.ones(3), atol=1e-6)
    shift = a.shift.clone()
    a(x * 3)
    assert torch.equal(a.shift, shift)


@pytest.mark.parametrize("mixing", ["linear", "reverse"])
@pytest.mark.parametrize("dim", [4, 5])
def test_every_coordinate_of_a_two_step_coupling_stack_is_transformed(mixing, dim):
    """Two steps move every coordinate: a coordinate no coupling touches would keep its value 0."""
    torch.manual_seed(0)
    layers = coupling_stack(dim, num_steps=2, hidden=(8,), actnorm=False, mixing=mixing)
    with torch.no_grad():
        for p in torch.nn.ModuleList(layers).parameters():
            p.normal_()
    z = torch.zeros(1, dim)
    for t in layers:
        z, _ = t(z)
    assert bool((z != 0).all()), z

"""Image flows: exact inverses, log-determinants against autograd, the flat layout, identity starts, errors."""
import math

import pytest
import torch
from torch.nn import functional as F

from catlib.argmax import GumbelThresholdInverse, ThresholdInverse, flat_onehot
from catlib.dequantization import VariationalDequantization
from catlib.distributions import Gumbel
from catlib.flows import (ActNorm2d, AffineCoupling2d, Conv1x1, ImageFlowTransform, MultiScale, Squeeze,
                          conditional_image_flow,
                          conditional_image_flow_factory, image_flow, to_flat, to_image)
from catlib.nets import DenseNet
from helpers import randomize


def coupling_stack_2d(channels, context_channels):
    return [ActNorm2d(channels), Conv1x1(channels, seed=1),
            AffineCoupling2d(channels, context_channels, growth=4, depth=1),
            Conv1x1(channels, seed=2), AffineCoupling2d(channels, context_channels, growth=4, depth=2)]


# each entry: (transform on images [2, 2, 4, 4] or flat [2, 32], context or None, flat?)
TRANSFORMS = {
    "squeeze": lambda: (Squeeze(), None, False),
    "actnorm2d": lambda: (ActNorm2d(2), None, False),
    "conv1x1": lambda: (Conv1x1(2, seed=3), None, False),
    "coupling": lambda: (AffineCoupling2d(2, growth=4, depth=2), None, False),
    "coupling-context": lambda: (AffineCoupling2d(2, context_channels=3, growth=4, depth=1),
                                 torch.randn(2, 3, 4, 4), False),
    "flat-squeezed-context": lambda: (ImageFlowTransform(coupling_stack_2d(8, 12), 2, 4, 4, context_channels=3,
                                                         squeeze=True), torch.randn(2, 4 * 4 * 3), True),
    "flat-unsqueezed": lambda: (ImageFlowTransform(coupling_stack_2d(2, 0), 2, 4, 4), None, True),
    "multi-scale": lambda: (MultiScale([ActNorm2d(8), Conv1x1(8, seed=1), AffineCoupling2d(8, growth=4, depth=1)],
                                       AffineCoupling2d(8, growth=4, depth=1),
                                       MultiScale([Conv1x1(16, seed=2), AffineCoupling2d(16, growth=4, depth=1)])),
                            None, False),
}


@pytest.mark.parametrize("name", sorted(TRANSFORMS))
def test_log_det_matches_autograd_and_inverse_round_trips(name, float64):
    torch.manual_seed(0)
    t, context, flat = TRANSFORMS[name]()
    t = randomize(t).eval()
    x = torch.randn(2, 32) * 2 if flat else torch.randn(2, 2, 4, 4) * 2
    z, ldj = t(x, context)
    assert ldj.shape == (2,) and z.numel() == x.numel()
    assert torch.allclose(t.inverse(z, context), x, atol=1e-10)
    for b in range(2):
        c = None if context is None else context[b:b + 1]
        f = lambda a: t(a.view(1, *x.shape[1:]), c)[0].flatten()
        jac = torch.autograd.functional.jacobian(f, x[b].flatten())
        assert torch.allclose(torch.linalg.slogdet(jac)[1], ldj[b], atol=1e-9)


def assert_change_of_variables(flow, v):
    """The flow inverts exactly and log p(v[0]) = log N(z) + log|det dz/dv| with the autograd Jacobian; returns z."""
    z, _ = flow(v)
    assert torch.allclose(flow.inverse(z), v, atol=1e-10)
    jac = torch.autograd.functional.jacobian(lambda a: flow(a.unsqueeze(0))[0][0], v[0])
    expected = -0.5 * (z[0] ** 2 + math.log(2 * math.pi)).sum() + torch.linalg.slogdet(jac)[1]
    assert torch.allclose(flow.log_prob(v)[0], expected, atol=1e-9)
    return z


def test_whole_image_flow_round_trips_and_its_density_is_the_change_of_variables(float64):
    torch.manual_seed(1)
    flow = randomize(image_flow(3, 4, 6, num_steps=2, growth=4, depth=1), std=0.1).eval()
    assert_change_of_variables(flow, torch.randn(3, 72))


def test_multi_scale_image_flow_density_is_the_change_of_variables_and_levels_factor_out(float64):
    """Three levels on 8x8 maps: the exact log-density, and a factored-out channel is left alone
    by the coarser levels (changing the inner level changes no factored-out coordinate)."""
    torch.manual_seed(3)
    flow = randomize(image_flow(2, 8, 8, num_steps=1, growth=4, depth=1, levels=3), std=0.1).eval()
    v = torch.randn(2, 128)
    z = assert_change_of_variables(flow, v)
    level = flow.transforms[0].transforms[0]
    assert isinstance(level.inner.inner, MultiScale) and level.inner.inner.inner is None
    h = Squeeze()(to_image(v, 2, 8, 8))[0]
    for t in level.steps:
        h = t(h)[0]
    h = level.split(h)[0]
    out = Squeeze()(to_image(z, 2, 8, 8))[0][:, 4:]  # level 1 has 8 channels: 4 kept, 4 factored out
    assert torch.allclose(out, h[:, 4:], atol=1e-12)


def test_one_level_image_flow_is_the_single_squeeze_flow():
    """levels=1 builds exactly the flow (and parameter names) of the single-squeeze image flow."""
    torch.manual_seed(4)
    a = image_flow(3, 4, 4, num_steps=2, growth=4, depth=1)
    torch.manual_seed(4)
    b = image_flow(3, 4, 4, num_steps=2, growth=4, depth=1, levels=1)
    assert list(a.state_dict()) == list(b.state_dict())
    assert all(torch.equal(a.state_dict()[k], b.state_dict()[k]) for k in a.state_dict())


def test_conditional_image_flow_log_q_is_the_change_of_variables(float64):
    """log q(u|c) = log base(eps|c) - log|du/deps|, with the Jacobian from autograd."""
    torch.manual_seed(2)
    q = randomize(conditional_image_flow(2, 3, 4, 4, num_steps=2, growth=4), std=0.2)
    c = torch.randn(1, 48)
    u, log_q = q.sample_with_log_prob(c)
    eps = u
    for t in reversed(q.transforms):
        eps = t.inverse(eps, c)
    jac = torch.autograd.functional.jacobian(lambda e: q.transforms[0](e, c)[0], eps)
    assert torch.allclose(log_q, q.base.log_prob(eps, c) - torch.linalg.slogdet(jac.view(32, 32))[1], atol=1e-9)


def test_flat_layout_is_the_one_hot_layout():
    x = torch.randint(0, 5, (3, 4, 6))
    img = to_image(flat_onehot(x.flatten(1), 5), 5, 4, 6)
    assert torch.equal(img, F.one_hot(x, 5).permute(0, 3, 1, 2).float())
    assert torch.equal(to_flat(img), flat_onehot(x.flatten(1), 5))


def test_squeeze_moves_2x2_blocks_into_channels():
    x = torch.arange(16.0).view(1, 1, 4, 4)
    z, ldj = Squeeze()(x)
    assert z.shape == (1, 4, 2, 2) and ldj.item() == 0
    assert z[0, :, 0, 0].tolist() == [0.0, 1.0, 4.0, 5.0]  # the top-left block


def test_actnorm2d_initialises_per_channel_from_the_first_batch_only():
    torch.manual_seed(3)
    layer = ActNorm2d(3).train()
    x = torch.randn(16, 3, 5, 5) * torch.tensor([1.0, 4.0, 0.5]).view(1, 3, 1, 1) + 2
    z, _ = layer(x)
    assert torch.allclose(z.mean((0, 2, 3)), torch.zeros(3), atol=1e-5)
    assert torch.allclose(z.std((0, 2, 3)), torch.ones(3), atol=1e-4)
    before = layer.log_scale.detach().clone()
    layer(x * 10)
    assert torch.equal(layer.log_scale.detach(), before)


def test_densenet_shapes_and_zero_start():
    net = DenseNet(3, 5, depth=3, growth=4)
    y = net(torch.randn(2, 3, 7, 5))
    assert y.shape == (2, 5, 7, 5) and bool((y == 0).all())
    assert DenseNet(3, 5, zero_init=False)(torch.randn(1, 3, 4, 4)).abs().sum() > 0
    with pytest.raises(ValueError, match=r"images \[batch, channels, H, W\], got shape \[2, 3\]"):
        net(torch.randn(2, 3))
    with pytest.raises(ValueError, match="depth must be an integer >= 0, got -1"):
        DenseNet(3, 5, depth=-1)


def _standard_normal_log_prob(u):
    return (-0.5 * (u**2 + math.log(2 * math.pi))).sum(-1)


@pytest.mark.parametrize("shape", [(4, 6), (3, 5)], ids=["squeezed", "odd"])
def test_threshold_inverse_with_image_q_starts_at_a_standard_normal(shape):
    torch.manual_seed(4)
    H, W = shape
    inv = ThresholdInverse(H * W, 3, q_flow=conditional_image_flow_factory(H, W, num_steps=2, growth=8))
    x = torch.randint(0, 3, (64, H * W))
    with torch.no_grad():
        u, log_q = inv.q_u.sample_with_log_prob(inv.context(x))
    assert torch.allclose(log_q, _standard_normal_log_prob(u), atol=1e-4)
    assert abs(float(u.mean())) < 0.05 and abs(float(u.var()) - 1) < 0.05


def test_variational_dequantization_with_image_q_starts_as_the_uniform_one():
    torch.manual_seed(5)
    layer = VariationalDequantization(4 * 6, 3, q_flow=conditional_image_flow_factory(4, 6, num_steps=2, growth=8))
    x = torch.randint(0, 3, (2000, 4 * 6))
    with torch.no_grad():
        v, minus_log_q = layer(x)
    u = (v - layer.onehot(x)).double()
    assert torch.allclose(minus_log_q, torch.zeros_like(minus_log_q), atol=1e-4)  # q(u|x) = 1
    assert abs(float(u.mean()) - 0.5) < 0.01 and abs(float(u.var()) - 1 / 12) < 0.005


def test_gumbel_thresholding_with_image_q_starts_as_the_gumbel_inverse():
    torch.manual_seed(6)
    q = GumbelThresholdInverse(4 * 4, 5, q_flow=conditional_image_flow_factory(4, 4, num_steps=2, growth=8))
    x = torch.randint(0, 5, (500, 16))
    with torch.no_grad():
        v, log_q = q.sample(x)
        phi = q.locations(x).expand_as(v)
    closed = Gumbel(phi).log_prob(v).sum(-1) - torch.log_softmax(phi, -1).gather(-1, x.unsqueeze(-1)).squeeze(-1)
    assert torch.allclose(log_q, closed.sum(-1), atol=1e-3)
    assert bool((v.argmax(-1) == x).all())


def test_bad_image_arguments_raise_clear_errors():
    with pytest.raises(ValueError, match=r"Squeeze needs images \[batch, C, H, W\] with even H and W, got shape \[1, 2, 3, 4\]"):
        Squeeze()(torch.zeros(1, 2, 3, 4))
    with pytest.raises(ValueError, match="squeeze needs an even height and width, got 3x4"):
        ImageFlowTransform([], 2, 3, 4, squeeze=True)
    with pytest.raises(ValueError, match="needs channels >= 2 to split, got 1"):
        AffineCoupling2d(1)
    with pytest.raises(ValueError, match="1 channel at 3x5 cannot be squeezed"):
        image_flow(1, 3, 5)
    with pytest.raises(ValueError, match=r"a flow of 3 levels .* multiples of 2\^3 = 8, got 8x12"):
        image_flow(2, 8, 12, levels=3)
    with pytest.raises(ValueError, match="levels must be"):
        image_flow(2, 8, 8, levels=0)
    with pytest.raises(ValueError, match="both a split coupling and an inner level, or neither"):
        MultiScale([], AffineCoupling2d(4))
    with pytest.raises(ValueError, match="needs a context image with 3 channels, got None"):
        AffineCoupling2d(2, context_channels=3)(torch.zeros(1, 2, 2, 2))
    with pytest.raises(ValueError, match=r"expected flat vectors \[batch, 24\] \(H=2 x W=4 x C=3\), got shape \[5, 20\]"):
        to_image(torch.zeros(5, 20), 3, 2, 4)
    with pytest.raises(ValueError, match="base must be one of .*'gaussian'"):
        conditional_image_flow(2, 2, 2, 2, base="gaussian")
    with pytest.raises(ValueError, match="dim must be a multiple of H \\* W = 2 \\* 3 = 6 .*got 10"):
        conditional_image_flow_factory(2, 3)(10, 12, base="normal")


@pytest.mark.parametrize("base", ["normal", "logistic"])
@pytest.mark.parametrize("shape", [(4, 4), (3, 5)], ids=["squeezed", "odd"])
def test_every_coordinate_of_the_conditional_image_flow_is_transformed(base, shape):
    """With two steps the couplings between them move every channel (the mixing swaps the halves)."""
    H, W = shape
    q = conditional_image_flow(3, 3, H, W, num_steps=2, growth=4, base=base)
    with torch.no_grad():
        for coupling in [t for t in q.modules() if isinstance(t, AffineCoupling2d)]:
            coupling.net.out.bias.fill_(1.0)  # every moved coordinate: z = e^{3 tanh(1/3)} x + 1
    eps, c = torch.zeros(1, H * W * 3), torch.zeros(1, H * W * 3)
    u, _ = q.transforms[0](eps, c)
    assert bool((u != 0).all())

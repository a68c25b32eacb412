"""Time-conditioned denoisers: the timestep embedding, TimeMLP and the UNet (shapes, axes, errors)."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from catlib.nets import TimeMLP, UNet, timestep_embedding


def test_timestep_embedding():
    e = timestep_embedding(torch.tensor([0, 1, 2, 999]), 16)
    assert e.shape == (4, 16) and e.dtype == torch.float32
    assert torch.equal(e[0], torch.cat([torch.zeros(8), torch.ones(8)]))       # sin 0, cos 0
    assert torch.cdist(e, e).add(torch.eye(4)).min() > 0.1                      # distinct times, distinct codes
    assert timestep_embedding(torch.tensor([3]), 7).shape == (1, 7)
    with pytest.raises(ValueError, match="dim must be an integer >= 1, got 0"):
        timestep_embedding(torch.tensor([1]), 0)


def test_time_mlp_shapes_and_time_dependence():
    torch.manual_seed(0)
    net = TimeMLP(6, 256, hidden=(32,))
    x = torch.randint(256, (3, 6))
    out = net(x, torch.tensor([1, 2, 3]))
    assert out.shape == (3, 6, 256)
    assert net(x.view(3, 2, 3), torch.tensor([1, 2, 3])).shape == (3, 2, 3, 256)  # any data shape
    assert not torch.allclose(out, net(x, torch.tensor([500, 2, 3])))
    double = TimeMLP(2, 3, hidden=(8,)).double()
    assert double(torch.zeros(1, 2, dtype=torch.long), torch.tensor([4])).dtype == torch.float64


@pytest.mark.parametrize("size,options", [((16, 16), {}), ((8, 16), {}), ((16, 32), {"attention": True}),
                                          ((12, 8), {"channel_mults": (1, 2, 2), "num_res_blocks": 2}),
                                          ((5, 3), {"channel_mults": (1,), "dropout": 0.1})])
def test_unet_shapes(size, options):
    torch.manual_seed(1)
    net = UNet(5, channels=8, **options)
    x = torch.randint(5, (2, *size))
    out = net(x, torch.tensor([1, 1000]))
    assert out.shape == (2, *size, 5) and torch.isfinite(out).all()


def _jacobian_norm(net: UNet, x: torch.Tensor, i: int, j: int) -> torch.Tensor:
    """Norm over classes of d logits[0, i, j, :] / d one-hot input ``[H, W]``."""
    captured = {}

    def make_leaf(module, args):
        captured["x"] = args[0].detach().requires_grad_()
        return (captured["x"],)

    handle = net.conv_in.register_forward_pre_hook(make_leaf)
    logits = net(x, torch.tensor([10]))[0, i, j]
    handle.remove()
    rows = [torch.autograd.grad(logit, captured["x"], retain_graph=True)[0][0] for logit in logits]
    return torch.stack(rows).pow(2).sum((0, 1)).sqrt()


@pytest.mark.parametrize("size", [(8, 16), (16, 8)])
def test_unet_output_pixel_depends_most_on_the_same_input_pixel(size):
    """Catches a height/width mix-up (the official code's bug): trained for a few steps to copy
    its input, the net's logits at (i, j) must depend most on input pixel (i, j) of a non-square map.
    (At initialisation the dependence is too diffuse for the exact pixel to stand out.)"""
    torch.manual_seed(2)
    H, W = size
    net = UNet(4, channels=8)
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    for _ in range(40):
        x = torch.randint(4, (16, H, W))
        loss = F.cross_entropy(net(x, torch.randint(1, 100, (16,))).reshape(-1, 4), x.flatten())
        opt.zero_grad()
        loss.backward()
        opt.step()
    net.eval()
    x = torch.randint(4, (32, H, W))
    assert (net(x, torch.full((32,), 50)).argmax(-1) == x).float().mean() > 0.98
    for i, j in [(0, 0), (2, W - 3), (H - 1, 5), (H // 2, W // 2)]:
        jac = _jacobian_norm(net, x[:1], i, j)
        assert jac.shape == size
        assert divmod(int(jac.argmax()), W) == (i, j)


def test_unet_errors():
    net = UNet(5, channels=8, channel_mults=(1, 2, 2))
    with pytest.raises(ValueError, match=r"UNet with 3 levels needs H and W divisible by 4, got H x W = 14 x 16"):
        net(torch.zeros(1, 14, 16, dtype=torch.long), torch.tensor([1]))
    with pytest.raises(ValueError, match=r"x_t must have shape \[batch, H, W\], got \[2, 16\]"):
        net(torch.zeros(2, 16, dtype=torch.long), torch.tensor([1, 2]))
    with pytest.raises(ValueError, match="channel_mults must be a non-empty tuple of positive integers"):
        UNet(5, channel_mults=())
    with pytest.raises(ValueError, match="dropout must be in"):
        UNet(5, dropout=1.0)

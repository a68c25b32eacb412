"""The VAE baseline: decoder normalisation, the ELBO/IWBO decomposition, bounds on a tiny case, sampling."""
import itertools

import pytest
import torch
from torch import nn

import catlib
from catlib.argmax import flat_onehot
from catlib.vae import CategoricalDecoder, VAELayer
from catlib.train import fit


def test_decoder_probabilities_sum_to_one_over_every_x():
    torch.manual_seed(0)
    decoder = CategoricalDecoder(nn.Sequential(nn.Linear(2, 16), nn.GELU(), nn.Linear(16, 2 * 3)), 2, 3)
    z = torch.randn(4, 2)
    xs = torch.tensor(list(itertools.product(range(3), repeat=2)))  # all 9 values of x
    with torch.no_grad():
        log_p = torch.stack([decoder.log_prob(x.expand(4, 2), z) for x in xs])  # [9, 4]
    assert torch.allclose(log_p.exp().sum(0), torch.ones(4), atol=1e-6)


def test_samples_are_draws_of_the_decoder_not_its_argmax():
    decoder = CategoricalDecoder(nn.Linear(1, 2), 1, 2)
    with torch.no_grad():
        decoder.net.weight.zero_()
        decoder.net.bias.copy_(torch.log(torch.tensor([0.7, 0.3])))
    torch.manual_seed(1)
    x = decoder.sample(torch.zeros(20_000, 1))
    assert x.shape == (20_000, 1) and x.dtype == torch.long
    assert float(x.double().mean()) == pytest.approx(0.3, abs=0.015)  # the argmax would give 0.0


def test_layer_weight_is_decoder_minus_encoder():
    """ldj = log p(x|z) - log q(z|x) for the z the encoder drew (same seed, same draw)."""
    torch.manual_seed(2)
    model = catlib.build_model("vae", (3,), 4, q_hidden=(16,), hidden=(16,))
    layer = model.layer
    assert isinstance(layer, VAELayer) and layer.dim == 3 * 2
    x = torch.randint(0, 4, (5, 3))
    torch.manual_seed(3)
    z, ldj = layer(x)
    torch.manual_seed(3)
    z2, log_q = layer.encoder.sample_with_log_prob(flat_onehot(x, 4))
    assert torch.equal(z, z2)
    assert torch.allclose(ldj, layer.decoder.log_prob(x, z) - log_q)


@pytest.fixture(scope="module")
def trained_tiny_vae():
    torch.manual_seed(4)
    x1 = torch.multinomial(torch.tensor([0.5, 0.3, 0.2]), 2000, replacement=True)
    x2 = torch.where(torch.rand(2000) < 0.8, x1, torch.randint(0, 3, (2000,)))
    data = torch.stack([x1, x2], 1)  # correlated: z must carry information, the ELBO has a gap
    model = catlib.build_model("vae", (2,), 3, flow_steps=2, hidden=(32,), q_flow_steps=1, q_hidden=(32,),
                               latent_channels=1)
    fit(model, data, steps=400, batch_size=128, lr=3e-3, warmup=20, progress=False)
    return model.eval()


def test_iwbo_increases_with_k_towards_log_p(trained_tiny_vae):
    """E[IWBO_k] is non-decreasing in k (Burda et al., 2016): each step up holds within three
    standard errors of the estimate, and the whole gap IWBO_200 - ELBO is clearly positive."""
    model = trained_tiny_vae
    x = torch.tensor(list(itertools.product(range(3), repeat=2))).repeat(500, 1)  # every x, 500 times
    torch.manual_seed(5)
    with torch.no_grad():
        bounds = [model.log_prob(x, k=k) for k in (1, 10, 200)]

    def gap_and_error(lower, higher):
        """Mean gap over the 9 values of x, and its standard error from the spread within each x."""
        lower, higher = lower.view(500, 9), higher.view(500, 9)
        error = ((lower.var(0) + higher.var(0)).sum() / 500).sqrt() / 9
        return float(higher.mean() - lower.mean()), float(error)

    for lower, higher in zip(bounds[:-1], bounds[1:]):
        gap, error = gap_and_error(lower, higher)
        assert gap > -3 * error
    gap, error = gap_and_error(bounds[0], bounds[-1])
    assert gap > 3 * error


def test_probabilities_enumerate_to_one_and_match_own_samples(trained_tiny_vae):
    """exp(IWBO_k) is an unbiased estimate of P(x); over all 9 values of x they must sum to one,
    match the model's own samples, and the ELBO must stay below log P(x)."""
    model = trained_tiny_vae
    xs = torch.tensor(list(itertools.product(range(3), repeat=2)))
    torch.manual_seed(6)
    with torch.no_grad():
        p = torch.stack([model.log_prob(x.expand(20, 2), k=1000).exp().mean() for x in xs])
        elbo = torch.stack([model.log_prob(x.expand(500, 2)).mean() for x in xs])
        samples = model.sample(40_000)
    assert float(p.sum()) == pytest.approx(1.0, abs=0.03)
    hist = torch.bincount(samples[:, 0] * 3 + samples[:, 1], minlength=9).double() / 40_000
    assert torch.allclose(p.double(), hist, atol=0.02)
    assert (elbo < p.log()).all()


def test_vae_options():
    model = catlib.build_model("vae", (4, 4), 3, latent_channels=3, flow_steps=1, growth=8, q_growth=8)
    assert model.layer.dim == 4 * 4 * 3 and model.options["architecture"] == "conv"
    with pytest.raises(ValueError, match="latent_channels must be an integer >= 1, got 0"):
        catlib.build_model("vae", (2,), 3, latent_channels=0)
    with pytest.raises(ValueError, match=r"unknown option\(s\) \['base'\] for 'vae'"):
        catlib.build_model("vae", (2,), 3, base=3)

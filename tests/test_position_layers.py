"""One categorical layer per position (CatNF, TRUFL, argmax thresholding) on padded batches."""
import pytest
import torch

from catlib.position_layers import (POSITION_LAYERS, decode_positions, latent_size, make_position_layer,
                                    position_supported, position_terms)


@pytest.mark.parametrize("name", POSITION_LAYERS)
def test_terms_drop_padding_and_greedy_decoding_recovers_well_separated_categories(name):
    torch.manual_seed(0)
    layer = make_position_layer(name, 4, latent_dim=3, init_spread=6.0, q_hidden=(16,))
    x = torch.tensor([[0, 3, 1, 2], [2, 2, 0, 0]])
    mask = torch.tensor([[True, True, True, True], [True, True, False, False]])
    z, log_px_z, log_q = position_terms(layer, x, mask)
    assert z.shape == (2, 4, latent_size(layer)) and log_q.shape == log_px_z.shape == (2, 4)
    assert not log_q[~mask].any() and not log_px_z[~mask].any() and torch.isfinite(log_q).all()
    assert (log_px_z <= 1e-9).all()  # log-probabilities of the decoder
    # a position's latent depends on its own category only: changing padding changes no real term
    torch.manual_seed(1)
    z1, _, q1 = position_terms(layer, x, mask)
    x2 = x.clone()
    x2[~mask] = 3
    torch.manual_seed(1)
    z2, _, q2 = position_terms(layer, x2, mask)
    assert torch.equal(z1[mask], z2[mask]) and torch.equal(q1, q2)
    decoded = decode_positions(layer, z1, mask, greedy=True)
    assert not decoded[~mask].any()
    assert (decoded[mask] == x[mask]).float().mean() >= 0.75  # spread-out classes decode back (argmax: exactly)
    assert position_supported(layer, z1)[mask].all()  # draws of q lie in their own class's support


def test_only_trufl_has_latents_outside_every_support_and_bad_names_fail():
    trufl = make_position_layer("trufl", 3, latent_dim=2, init_truncation=0.5)
    far = torch.full((1, 2, 2), 50.0)
    assert not position_supported(trufl, far).any()
    assert position_supported(make_position_layer("catnf", 3), far).all()
    # outside every support the truncated decoder falls back to the continued densities
    x = decode_positions(trufl, far, torch.ones(1, 2, dtype=torch.bool), greedy=True)
    assert ((0 <= x) & (x < 3)).all()
    with pytest.raises(ValueError, match="name must be one of"):
        make_position_layer("gumbel", 3)

"""The public contract of build_model: shapes, bounds, probabilities, gradients, errors, save/load."""
import io

import pytest
import torch

import catlib
from catlib.train import fit

NAMES = catlib.MODEL_NAMES
ARGMAX = [n for n in NAMES if n.startswith("argmax")]
SMALL = {"flow_steps": 2, "hidden": (32,)}


def small(name, data_shape, num_classes, **extra):
    if name in ("multinomial-diffusion", "masked-diffusion"):  # a network, not a flow: its own options
        return catlib.build_model(name, data_shape, num_classes, **{"timesteps": 10, "hidden": (32,), **extra})
    opts = dict(SMALL)
    if name not in ("uniform-dequantization", "argmax-gumbel", "catnf", "trufl"):
        opts.update(q_flow_steps=1, q_hidden=(16,))
    opts.update(extra)
    return catlib.build_model(name, data_shape, num_classes, **opts)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("D", [1, 2, 5, 8])
def test_defaults_shapes_dtypes_finiteness(name, D):
    torch.manual_seed(D)
    model = catlib.build_model(name, (D,), 7)
    x = torch.randint(0, 7, (3, D))
    for k in (1, 5):
        lp = model.log_prob(x, k=k)
        assert lp.shape == (3,) and lp.dtype == torch.get_default_dtype() and torch.isfinite(lp).all()
    s = model.sample(4)
    assert s.shape == (4, D) and s.dtype == torch.long and s.min() >= 0 and s.max() < 7


@pytest.mark.parametrize("name", NAMES)
def test_gradients_reach_every_parameter(name):
    torch.manual_seed(0)
    model = small(name, (3,), 5)
    data = torch.randint(0, 5, (64, 3))
    fit(model, data, steps=3, batch_size=16, progress=False)  # leave the zero-initialised start
    model.train()
    model.zero_grad()
    model.log_prob(data).mean().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()
               or p.grad.abs().sum() == 0]
    assert not missing


@pytest.mark.parametrize("name", NAMES)
def test_bad_input_raises_clear_errors(name):
    model = small(name, (2,), 4)
    with pytest.raises(ValueError, match=r"class indices in \[0, 4\), got 4 at position \(1, 0\)"):
        model.log_prob(torch.tensor([[0, 1], [4, 0]]))
    with pytest.raises(ValueError, match="got -1"):
        model.log_prob(torch.tensor([[0, -1]]))
    with pytest.raises(ValueError, match="dtype torch.float32"):
        model.log_prob(torch.tensor([[0.0, 1.0]]))
    with pytest.raises(ValueError, match="NaN at position"):
        model.log_prob(torch.tensor([[0.0, float("nan")]]))
    with pytest.raises(ValueError, match=r"shape \[batch, 2\], got \[2, 3\]"):
        model.log_prob(torch.zeros(2, 3, dtype=torch.long))
    with pytest.raises(ValueError, match="k must be an integer >= 1, got 0"):
        model.log_prob(torch.zeros(1, 2, dtype=torch.long), k=0)
    with pytest.raises(ValueError, match="n must be"):
        model.sample(0)


def test_build_model_rejects_bad_arguments():
    with pytest.raises(ValueError, match="unknown model 'argmax-nope'"):
        catlib.build_model("argmax-nope", (2,), 3)
    with pytest.raises(ValueError, match="num_classes must be an integer >= 2, got 1"):
        catlib.build_model("argmax-threshold", (2,), 1)
    with pytest.raises(ValueError, match="data_shape"):
        catlib.build_model("argmax-threshold", (0,), 3)
    with pytest.raises(ValueError, match=r"unknown option\(s\) \['q_flow_steps'\]"):
        catlib.build_model("argmax-gumbel", (2,), 3, q_flow_steps=2)


@pytest.mark.parametrize("name", NAMES)
def test_iwbo_tightens_the_elbo(name):
    torch.manual_seed(1)
    model = small(name, (2,), 3)
    fit(model, torch.randint(0, 3, (512, 2)), steps=30, batch_size=64, progress=False)
    x = torch.tensor([[0, 1], [2, 2]]).repeat(200, 1)
    with torch.no_grad():
        # masked diffusion's one-time ELBO estimate weighs a time t by 1/t: too noisy on 400 rows,
        # so its ELBO is the exact one (4 mask patterns)
        elbo = model.log_prob(x, exact=True).mean() if name == "masked-diffusion" else model.log_prob(x).mean()
        iwbo = model.log_prob(x, k=50).mean()
    assert iwbo > elbo


@pytest.mark.parametrize("name", ARGMAX)
def test_argmax_probabilities_sum_to_one_and_match_own_samples(name):
    """exp(IWBO_k) with k large is an unbiased estimate of P(x) = mass of x's argmax region.

    Over all x of a small problem these estimates must sum to one (the argmax regions tile
    the space; for the binary code on K=3 the unused code takes the rest), and match the
    histogram of the model's own samples.
    """
    torch.manual_seed(2)
    K = 3
    data = torch.multinomial(torch.tensor([0.6, 0.3, 0.1]), 2000, replacement=True).unsqueeze(1)
    model = small(name, (1,), K)
    fit(model, data, steps=150, batch_size=128, lr=3e-3, progress=False)
    with torch.no_grad():
        est = torch.stack([model.log_prob(torch.tensor([[c]]).repeat(10, 1), k=2000).exp().mean() for c in range(K)])
        samples = model.sample(40_000)
    hist = torch.bincount(samples[:, 0], minlength=K).double() / 40_000
    valid_mass = 1 - model.last_invalid_rate
    assert float(est.sum()) == pytest.approx(valid_mass, abs=0.03)
    assert torch.allclose(est.double() / valid_mass, hist, atol=0.03)


@pytest.mark.parametrize("name", ["uniform-dequantization", "variational-dequantization", "catnf", "trufl"])
def test_dequantization_probabilities_sum_to_at_most_one(name):
    torch.manual_seed(3)
    model = small(name, (1,), 3)
    with torch.no_grad():
        est = torch.stack([model.log_prob(torch.tensor([[c]]).repeat(10, 1), k=1000).exp().mean() for c in range(3)])
    assert float(est.sum()) < 1.0


def test_binary_model_reports_invalid_code_rate():
    torch.manual_seed(4)
    model = small("argmax-binary", (2,), 5)  # 3 bits: codes 5, 6, 7 unused
    s = model.sample(2000)
    assert s.max() < 5
    assert 0.0 < model.last_invalid_rate < 1.0


def test_base_m_threshold_model():
    torch.manual_seed(5)
    model = small("argmax-threshold", (2,), 10, base=3)  # 3 digits of 3 classes: 27 codes, 10 used
    assert model.layer.dim == 2 * 3 * 3
    assert torch.isfinite(model.log_prob(torch.tensor([[9, 0]]), k=3)).all()
    assert model.sample(50).max() < 10


@pytest.mark.parametrize("name", NAMES)
def test_save_load_round_trip(name):
    torch.manual_seed(6)
    model = small(name, (3,), 4)
    fit(model, torch.randint(0, 4, (256, 3)), steps=5, batch_size=32, progress=False)
    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    buf.seek(0)
    clone = small(name, (3,), 4)
    clone.load_state_dict(torch.load(buf))
    model.eval(), clone.eval()
    x = torch.randint(0, 4, (8, 3))
    torch.manual_seed(7)
    a = model.log_prob(x)
    torch.manual_seed(7)
    b = clone.log_prob(x)
    assert torch.equal(a, b)


# ---- image models: data_shape (H, W) picks the convolutional flows ----

# the flow-based models and the VAE on images (CatNF and TRUFL have MLP priors only)
FLOW_NAMES = [n for n in NAMES if n not in ("multinomial-diffusion", "masked-diffusion", "catnf", "trufl")]
IMAGE_SHAPES = [(4, 6), (3, 5)]  # squeezed once, and odd sizes (no squeeze)
SMALL_CONV = {"flow_steps": 1, "growth": 8, "depth": 1}


def small_image(name, data_shape, num_classes, **extra):
    opts = dict(SMALL_CONV)
    if name not in ("uniform-dequantization", "argmax-gumbel", "catnf", "trufl"):
        opts.update(q_flow_steps=1, q_growth=8)
    opts.update(extra)
    return catlib.build_model(name, data_shape, num_classes, **opts)


@pytest.mark.parametrize("name", FLOW_NAMES)
@pytest.mark.parametrize("shape", IMAGE_SHAPES)
def test_image_models_shapes_dtypes_finiteness(name, shape):
    torch.manual_seed(8)
    model = catlib.build_model(name, shape, 3) if shape == (4, 6) else small_image(name, shape, 3)
    assert model.options["architecture"] == "conv"
    x = torch.randint(0, 3, (3, *shape))
    for k in (1, 5):
        lp = model.log_prob(x, k=k)
        assert lp.shape == (3,) and lp.dtype == torch.get_default_dtype() and torch.isfinite(lp).all()
    s = model.sample(4)
    assert s.shape == (4, *shape) and s.dtype == torch.long and s.min() >= 0 and s.max() < 3


@pytest.mark.parametrize("name", FLOW_NAMES)
def test_image_models_gradients_reach_every_parameter(name):
    torch.manual_seed(9)
    model = small_image(name, (4, 4), 3)
    data = torch.randint(0, 3, (64, 4, 4))
    fit(model, data, steps=3, batch_size=16, progress=False)
    model.train()
    model.zero_grad()
    model.log_prob(data).mean().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()
               or p.grad.abs().sum() == 0]
    assert not missing


@pytest.mark.parametrize("name", FLOW_NAMES)
def test_image_models_save_load_round_trip(name):
    torch.manual_seed(10)
    model = small_image(name, (4, 4), 3)
    fit(model, torch.randint(0, 3, (128, 4, 4)), steps=3, batch_size=16, progress=False)
    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    buf.seek(0)
    clone = small_image(name, (4, 4), 3)
    clone.load_state_dict(torch.load(buf))
    model.eval(), clone.eval()
    x = torch.randint(0, 3, (8, 4, 4))
    torch.manual_seed(11)
    a = model.log_prob(x)
    torch.manual_seed(11)
    b = clone.log_prob(x)
    assert torch.equal(a, b)


def test_image_variational_dequantization_starts_uniform():
    torch.manual_seed(12)
    model = catlib.build_model("variational-dequantization", (4, 6), 3)
    with torch.no_grad():
        v, minus_log_q = model.layer(torch.randint(0, 3, (500, 24)))
    assert torch.allclose(minus_log_q, torch.zeros_like(minus_log_q), atol=1e-4)


def test_architecture_choice_and_image_errors():
    assert catlib.build_model("argmax-threshold", (5,), 3).options["architecture"] == "mlp"
    assert catlib.build_model("argmax-threshold", (5,), 3, architecture="conv", **SMALL_CONV).options["architecture"] == "conv"
    mlp = catlib.build_model("argmax-threshold", (2, 3), 3, architecture="mlp", hidden=(16,))
    assert mlp.options["architecture"] == "mlp" and mlp.log_prob(torch.zeros(2, 2, 3, dtype=torch.long)).shape == (2,)
    assert catlib.build_model("argmax-threshold", (2, 2, 2), 3, architecture="mlp").sample(1).shape == (1, 2, 2, 2)
    digits = small_image("argmax-threshold", (4, 4), 10, base=3)  # 3 digits x 3 classes = 9 channels per pixel
    assert digits.layer.dim == 4 * 4 * 9 and torch.isfinite(digits.log_prob(torch.full((2, 4, 4), 9), k=2)).all()
    with pytest.raises(ValueError, match=r"data_shape must be \(D,\) or \(H, W\) for architecture 'auto', got \(2, 2, 2\)"):
        catlib.build_model("argmax-threshold", (2, 2, 2), 3)
    with pytest.raises(ValueError, match="architecture must be one of 'auto', 'mlp', 'conv', got 'cnn'"):
        catlib.build_model("argmax-threshold", (4, 4), 3, architecture="cnn")
    with pytest.raises(ValueError, match=r"unknown option\(s\) \['hidden'\] for 'argmax-gumbel'.*architecture 'conv'"):
        catlib.build_model("argmax-gumbel", (4, 4), 3, hidden=(8,))
    with pytest.raises(ValueError, match="1 channel at 3x5 cannot be squeezed"):
        catlib.build_model("argmax-binary", (3, 5), 2)  # one bit per pixel, odd sizes
    with pytest.raises(ValueError, match=r"shape \[batch, 4, 6\], got \[2, 6, 4\]"):
        catlib.build_model("argmax-gumbel", (4, 6), 3).log_prob(torch.zeros(2, 6, 4, dtype=torch.long))

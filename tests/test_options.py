"""Every option of every model build_model builds is checked at build time, with a message naming it.

Integer counts are integers with the right minimum, widths are tuples of positive integers,
numbers are finite and in range, names are among their choices; NumPy numbers are accepted and
used as Python numbers.
"""
import math
import re

import numpy as np
import pytest
import torch

import catlib
from catlib import build_model
from catlib.graph_models import GraphColouringModel

FLOW_MODELS = [n for n in catlib.MODEL_NAMES if n not in ("multinomial-diffusion", "masked-diffusion")]
CONV_MODELS = [n for n in FLOW_MODELS if n not in ("catnf", "trufl")]
Q_MODELS = ["variational-dequantization", "argmax-threshold", "argmax-gumbel-threshold", "argmax-binary", "vae"]
TUPLE = "must be a tuple of positive integers such as (8,), got "

# (option, bad value, message): every flow model on data_shape (3,), MLP flows
MLP_FLOW_CASES = [
    ("flow_steps", -1, "flow_steps must be an integer >= 0, got -1"),
    ("flow_steps", 1.5, "flow_steps must be an integer >= 0, got 1.5"),
    ("hidden", (0,), "hidden " + TUPLE + "(0,)"),
    ("hidden", (-4,), "hidden " + TUPLE + "(-4,)"),
    ("hidden", 8, "hidden " + TUPLE + "8"),
    ("hidden", (8, 2.5), "hidden " + TUPLE + "(8, 2.5)"),
    ("coupling", ["affine"], "coupling must be one of 'affine', 'mixture', got ['affine']"),
    ("mixing", None, "mixing must be one of 'linear', 'reverse', got None"),
]
# the models with a variational q(u|x) (or a VAE encoder)
MLP_Q_CASES = [
    ("q_flow_steps", -2, "q_flow_steps must be an integer >= 0, got -2"),
    ("q_hidden", 8, "q_hidden " + TUPLE + "8"),
    ("q_hidden", (0,), "q_hidden " + TUPLE + "(0,)"),
]
# conv flows on data_shape (4, 4); flow_steps=0 / q_flow_steps=0 builds no DenseNet, so only the
# build-time check can see the bad size
CONV_FLOW_CASES = [
    ({"flow_steps": 0, "growth": -1}, "growth must be an integer >= 1, got -1"),
    ({"flow_steps": 0, "depth": -1}, "depth must be an integer >= 0, got -1"),
    ({"flow_steps": 0, "depth": 1.0}, "depth must be an integer >= 0, got 1.0"),
]
CONV_Q_CASES = [
    ({"q_flow_steps": 0, "q_growth": 0}, "q_growth must be an integer >= 1, got 0"),
    ({"q_flow_steps": -1}, "q_flow_steps must be an integer >= 0, got -1"),
]
ENCODING_CASES = [
    ("catnf", {"init_spread": -1.0}, "init_spread must be a finite number > 0, got -1.0"),
    ("catnf", {"init_spread": 0.0}, "init_spread must be a finite number > 0, got 0.0"),
    ("trufl", {"init_spread": math.nan}, "init_spread must be a finite number > 0, got nan"),
    ("trufl", {"init_truncation": math.inf}, "init_truncation must be a finite number, got inf"),
    ("trufl", {"support_temperature": math.inf}, "support_temperature must be a finite number >= 0, got inf"),
    ("trufl", {"support_temperature": "0.1"}, "support_temperature must be a finite number >= 0, got '0.1'"),
]
DIFFUSION_CASES = [
    ((3,), {"hidden": 8}, "hidden " + TUPLE + "8"),
    ((3,), {"hidden": (0, 16)}, "hidden " + TUPLE + "(0, 16)"),
    ((4, 4), {"channels": 8, "time_dim": 0}, "time_dim must be an integer >= 1, got 0"),
    ((4, 4), {"channel_mults": 2},
     "channel_mults must be a non-empty tuple of positive integers such as (1, 2), got 2"),
    ((4, 4), {"dropout": "0.1"}, "dropout must be in [0, 1), got '0.1'"),
    ((4, 4), {"attention": "no"}, "attention must be True or False, got 'no'"),
    ((3,), {"network": ["mlp"]}, "network must be 'mlp' or 'unet', got ['mlp']"),
]


def raises(message):
    return pytest.raises(ValueError, match=re.escape(message))


@pytest.mark.parametrize("name", FLOW_MODELS)
@pytest.mark.parametrize("option,value,message", MLP_FLOW_CASES)
def test_bad_flow_option_is_refused_at_build_time(name, option, value, message):
    with raises(message):
        build_model(name, (3,), 4, **{option: value})


@pytest.mark.parametrize("name", Q_MODELS)
@pytest.mark.parametrize("option,value,message", MLP_Q_CASES)
def test_bad_q_option_is_refused_at_build_time(name, option, value, message):
    with raises(message):
        build_model(name, (3,), 4, **{option: value})


@pytest.mark.parametrize("name", CONV_MODELS)
@pytest.mark.parametrize("options,message", CONV_FLOW_CASES)
def test_bad_conv_option_is_refused_even_when_unused(name, options, message):
    with raises(message):
        build_model(name, (4, 4), 3, **options)


@pytest.mark.parametrize("name", [n for n in Q_MODELS if n in CONV_MODELS])
@pytest.mark.parametrize("options,message", CONV_Q_CASES)
def test_bad_conv_q_option_is_refused(name, options, message):
    with raises(message):
        build_model(name, (4, 4), 3, flow_steps=1, growth=4, **options)


@pytest.mark.parametrize("name,options,message", ENCODING_CASES)
def test_bad_encoding_option_is_refused(name, options, message):
    with raises(message):
        build_model(name, (3,), 4, flow_steps=1, hidden=(8,), **options)


@pytest.mark.parametrize("data_shape,options,message", DIFFUSION_CASES)
def test_bad_diffusion_option_is_refused(data_shape, options, message):
    with raises(message):
        build_model("multinomial-diffusion", data_shape, 4, timesteps=5, **options)


@pytest.mark.parametrize("make,message", [
    (lambda: GraphColouringModel("argmax-threshold", q_flow_steps=-1), "q_flow_steps must be an integer >= 0, got -1"),
    (lambda: GraphColouringModel("argmax-threshold", q_hidden=8), "q_hidden " + TUPLE + "8"),
    (lambda: GraphColouringModel("catnf", latent_dim=1), "latent_dim must be an integer >= 2, got 1"),
    (lambda: GraphColouringModel("trufl", init_spread=-1.0), "init_spread must be a finite number > 0, got -1.0"),
])
def test_bad_graph_model_option_is_refused(make, message):
    with raises(message):
        make()


@pytest.mark.parametrize("call,message", [
    (lambda m: m.sample(2, max_tries=0), "max_tries must be an integer >= 1, got 0"),
    (lambda m: m.log_prob(torch.zeros(1, 3, dtype=torch.long), max_rows=0), "max_rows must be an integer >= 1, got 0"),
])
def test_bad_text_flow_call_arguments_are_refused(call, message):
    torch.manual_seed(0)
    model = build_model("text-ar-uniform", (3,), 4, lstm_size=8, context_size=4, context_hidden=8)
    with raises(message):
        call(model)


def test_sample_max_tries_is_checked():
    torch.manual_seed(0)
    model = build_model("argmax-threshold", (3,), 4, flow_steps=1, hidden=(8,), q_flow_steps=0)
    with raises("max_tries must be an integer >= 1, got 0"):
        model.sample(2, max_tries=0)


# ----------------------------------------------------------------------------- NumPy numbers

def assert_python_numbers(options):
    for key, value in options.items():
        assert type(value) not in (np.int64, np.int32, np.float32, np.float64), (key, value)
        if isinstance(value, tuple):
            assert all(type(v) is int for v in value), (key, value)


@pytest.mark.parametrize("name,data_shape,options", [
    ("argmax-threshold", (3,), {"flow_steps": np.int64(2), "hidden": (np.int64(8),), "q_flow_steps": np.int32(1),
                                "q_hidden": np.array([8])}),
    ("vae", (4, 4), {"flow_steps": np.int64(1), "growth": np.int64(4), "depth": np.int64(1),
                     "q_growth": np.int64(4), "latent_channels": np.int64(1)}),
    ("trufl", (3,), {"flow_steps": np.int64(1), "hidden": [8], "latent_dim": np.int64(3),
                     "init_spread": np.float32(0.5), "support_temperature": np.float64(0.1)}),
])
def test_numpy_numbers_are_accepted_and_stored_as_python_numbers(name, data_shape, options):
    torch.manual_seed(0)
    model = build_model(name, data_shape, np.int64(4), **options)
    assert model.sample(np.int64(2)).shape == (2, *data_shape)
    assert_python_numbers(model.options)
    assert type(model.options["flow_steps"]) is int


def test_numpy_counts_build_and_sample():
    torch.manual_seed(0)
    model = build_model("argmax-threshold", (np.int64(3),), np.int64(4), flow_steps=np.int64(2))
    assert model.sample(np.int64(2)).shape == (2, 3)
    assert type(model.options["flow_steps"]) is int and model.options["hidden"] == (128, 128)


def test_numpy_numbers_in_diffusion():
    torch.manual_seed(0)
    model = build_model("multinomial-diffusion", (np.int64(4), np.int64(4)), np.int64(3), timesteps=np.int64(4),
                        channels=np.int64(8), channel_mults=(np.int64(1), np.int64(2)), dropout=np.float32(0.1))
    assert model.sample(np.int64(2)).shape == (2, 4, 4)
    x = torch.zeros(1, 4, 4, dtype=torch.long)
    assert model.marginal_probs(x, np.int64(2)).shape == (1, 4, 4, 3)
    assert_python_numbers(model.options)


def test_numpy_numbers_in_text_flows():
    torch.manual_seed(0)
    model = build_model("text-ar-variational", (np.int64(3),), np.int64(5), num_steps=np.int64(1),
                        lstm_size=np.int64(8), context_size=np.int64(4), context_hidden=np.int64(8),
                        input_dropout=np.float32(0.1))
    assert model.sample(np.int64(2)).shape == (2, 3)
    assert_python_numbers(model.options)
    assert type(model.options["num_steps"]) is int


# ----------------------------------------------------------------------------- what 0 and () mean

@pytest.mark.parametrize("name", Q_MODELS)
def test_zero_steps_and_empty_hidden_build_working_models(name):
    """0 flow steps is the base distribution alone, no hidden layer a linear conditioner: both work,
    and the widths are stored as tuples."""
    torch.manual_seed(0)
    model = build_model(name, (3,), 4, flow_steps=0, hidden=[], q_flow_steps=np.int64(0), q_hidden=[])
    assert model.options["hidden"] == () and model.options["q_hidden"] == ()
    assert type(model.options["q_flow_steps"]) is int and model.options["q_flow_steps"] == 0
    x = torch.randint(0, 4, (2, 3))
    assert torch.isfinite(model.log_prob(x)).all() and model.sample(2).shape == (2, 3)


def test_validation_helpers():
    from catlib.validation import check_bool, check_choice, check_float, check_positive_float, check_positive_ints

    assert check_positive_ints("hidden", (np.int64(4), 2)) == (4, 2) and check_positive_ints("hidden", ()) == ()
    with raises("channel_mults must be a non-empty tuple of positive integers such as (8,), got ()"):
        check_positive_ints("channel_mults", (), allow_empty=False)
    with raises("hidden " + TUPLE + "'8'"):
        check_positive_ints("hidden", "8")
    with raises("hidden " + TUPLE + "(True,)"):
        check_positive_ints("hidden", (True,))
    assert check_positive_float("x", np.float32(0.5)) == 0.5 and type(check_positive_float("x", 1)) is float
    with raises("x must be a finite number > 0, got True"):
        check_positive_float("x", True)
    assert check_float("p", 0.0, 0.0, 1.0, strict_maximum=True) == 0.0
    with raises("p must be in (0, 1], got 0.0"):
        check_float("p", 0.0, 0.0, 1.0, strict_minimum=True)
    with raises("t must be a finite number <= 2, got 3"):
        check_float("t", 3, maximum=2.0)
    assert check_choice("mixing", "reverse", ("linear", "reverse")) == "reverse"
    assert check_bool("attention", np.bool_(True)) is True

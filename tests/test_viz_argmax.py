"""catlib.viz.argmax: the toy inverses, their closed-form densities, and the figure/widget builders."""
import math

import matplotlib
import numpy as np
import pytest
import torch

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from catlib.viz.argmax import (INVERSES, argmax_slider_figure, argmax_widget, binary_log_q,  # noqa: E402
                               density_grid, example_params, fit_toy_q, log_q, plot_binary, plot_inverse,
                               plot_q, project_k3, sample_q, sample_toy_q, sector_boundaries)


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


@pytest.mark.parametrize("inverse", INVERSES)
@pytest.mark.parametrize("K", [2, 3, 5])
def test_samples_win_the_argmax_and_closed_form_matches_the_sampler(inverse, K):
    for x in range(K):
        params = example_params(inverse, K, x)
        v, lq = sample_q(inverse, x, params, 2000, seed=x)
        assert v.shape == (2000, K) and lq.shape == (2000,)
        assert (v.argmax(-1) == x).all()
        assert np.isfinite(lq).all()
        np.testing.assert_allclose(log_q(inverse, v, x, params), lq, atol=1e-9, rtol=0)


@pytest.mark.parametrize("inverse", INVERSES)
@pytest.mark.parametrize("x", [0, 1])
def test_k2_density_integrates_to_one_and_is_zero_outside_the_region(inverse, x):
    params = {"threshold": {"mean": [0.8, -0.5][::1 - 2 * x], "log_scale": [0.2, -0.3]},
              "gumbel": {"phi": [0.4, -0.7][::1 - 2 * x]},
              "gumbel-threshold": {"phi": [0.4, -0.7][::1 - 2 * x], "noise_loc": [0.5, -0.2],
                                   "noise_log_scale": [-0.4, 0.1]},
              }[inverse]  # x the likelier class; see the next test for a sharp boundary
    v0, v1, dens = density_grid(inverse, x, params, lim=(-12.0, 12.0), n=481)
    h0, h1 = v0[1] - v0[0], v1[1] - v1[0]
    assert dens.sum() * h0 * h1 == pytest.approx(1.0, abs=2e-3)
    grid0, grid1 = np.meshgrid(v0, v1)
    wins = grid0 > grid1 if x == 0 else grid1 > grid0
    assert (dens[~wins] == 0).all()
    assert (dens[wins] >= 0).all() and dens[wins].max() > 0
    assert not np.any(np.isclose(grid0, grid1, rtol=0, atol=1e-12))  # no centre on the boundary


@pytest.mark.parametrize("inverse", INVERSES)
def test_density_integrates_to_one_near_a_sharp_boundary(inverse):
    """A winner with a low mean squeezes q(v|x) against the boundary, too thin for a square
    grid; in coordinates (T = v_1, log d) with d = v_1 - v_0 > 0 it integrates to one."""
    params = {"threshold": {"mean": [0.3, -0.5], "log_scale": [0.2, -0.3]},
              "gumbel": {"phi": [0.5, -2.0]},
              "gumbel-threshold": {"phi": [0.5, -2.0], "noise_loc": -1.0, "noise_log_scale": 0.3},
              }[inverse]
    T = np.linspace(-10, 14, 1201)
    log_d = np.linspace(-25, 4, 1451)
    tt, dd = np.meshgrid(T, np.exp(log_d), indexing="ij")
    q = np.exp(log_q(inverse, np.stack([tt - dd, tt], -1), 1, params))
    integral = (q * dd).sum() * (T[1] - T[0]) * (log_d[1] - log_d[0])
    assert integral == pytest.approx(1.0, abs=1e-3)


def test_density_of_every_class_at_once_integrates_to_two():
    params = lambda c: example_params("threshold", 2, c)  # noqa: E731
    v0, v1, dens = density_grid("threshold", None, params, lim=(-12.0, 12.0), n=401)
    assert dens.sum() * (v0[1] - v0[0]) * (v1[1] - v1[0]) == pytest.approx(2.0, abs=4e-3)


def test_gumbel_thresholding_with_uniform_noise_is_the_gumbel_inverse():
    v = np.random.default_rng(0).normal(size=(500, 4)) * 2
    phi = [0.3, -0.2, 0.1, 0.0]
    for x in range(4):
        a = log_q("gumbel-threshold", v, x, {"phi": phi, "noise_loc": 0.0, "noise_log_scale": 0.0})
        b = log_q("gumbel", v, x, {"phi": phi})
        assert (np.isfinite(a) == np.isfinite(b)).all() and np.isfinite(a).any()
        np.testing.assert_allclose(a[np.isfinite(a)], b[np.isfinite(b)], atol=1e-9)


def test_closed_form_gumbel_is_the_conditioned_gumbel_and_minus_inf_outside():
    v = np.array([[1.0, 0.0, -1.0], [1.0, 1.0, 0.0]])  # second row: a tie, outside every region
    phi = np.array([0.2, -0.1, 0.4])
    lq = log_q("gumbel", v, 0, {"phi": phi})
    expected = (phi - v[0] - np.exp(phi - v[0])).sum() - (phi[0] - np.logaddexp.reduce(phi))
    assert lq[0] == pytest.approx(expected)
    assert lq[1] == -np.inf


def test_sample_toy_q_is_differentiable_in_its_parameters():
    mean = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    log_scale = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    v, lq = sample_toy_q("threshold", torch.tensor([0, 1, 2, 2]), {"mean": mean, "log_scale": log_scale})
    (v.sum() + lq.sum()).backward()
    assert mean.grad is not None and log_scale.grad is not None and torch.isfinite(mean.grad).all()


def test_binary_density_integrates_to_one_per_bit():
    grid = np.linspace(-30, 30, 600001)
    h = grid[1] - grid[0]
    for b in (0, 1):
        dens = np.exp(binary_log_q(grid, b, 0.5, -0.2))
        assert dens.sum() * h == pytest.approx(1.0, abs=1e-4)
        assert (dens[(grid > 0) if b == 0 else (grid < 0)] == 0).all()


def test_projection_keeps_the_argmax_and_sectors_are_120_degrees_apart():
    rng = np.random.default_rng(1)
    v = rng.normal(size=(1000, 3))
    p = project_k3(v)
    np.testing.assert_allclose(project_k3(v + 5.0), p, atol=1e-12)  # a shift of all entries is invisible
    # p . proj(e_i) = v_i - mean(v): the class is the nearest corner direction
    np.testing.assert_array_equal((p @ project_k3(np.eye(3)).T).argmax(-1), v.argmax(-1))
    rays = sector_boundaries(1.0)
    cosines = rays @ rays.T
    np.testing.assert_allclose(cosines[~np.eye(3, dtype=bool)], -0.5, atol=1e-12)


def test_errors_name_the_bad_value():
    with pytest.raises(ValueError, match="inverse must be one of"):
        sample_q("rounding", 0, {"phi": [0.0, 0.0]}, 3)
    with pytest.raises(ValueError, match=r"x must be a class index in \[0, 2\), got 2"):
        sample_q("gumbel", 2, {"phi": [0.0, 0.0]}, 3)
    with pytest.raises(ValueError, match="parameters of 'gumbel'"):
        log_q("gumbel", np.zeros((1, 2)), 0, {"mean": [0.0, 0.0]})
    with pytest.raises(ValueError, match="num_classes must be 2 or 3"):
        plot_q("gumbel", 4, 0, {"phi": np.zeros(4)})
    with pytest.raises(ValueError, match="probs must be"):
        fit_toy_q("gumbel", [0.5, 0.6])


def test_slider_figure_has_a_precomputed_frame_per_value():
    values = [-1.0, 0.0, 1.0, 2.0]
    fig = argmax_slider_figure("threshold", values=values, n_samples=50, grid=41)
    assert len(fig.data) == 1 + 2 * len(values)
    assert fig.data[0].type == "scatter" and fig.data[0].mode == "lines"
    assert [t.type for t in fig.data[1:]] == ["heatmap", "scatter"] * len(values)
    (slider,) = fig.layout.sliders
    assert len(slider.steps) == len(values) and slider.active == 1  # the value closest to 0
    for i, step in enumerate(slider.steps):
        visible = step.args[0]["visible"]
        assert len(visible) == len(fig.data) and sum(visible) == 3
        assert visible[0] and visible[1 + 2 * i] and visible[2 + 2 * i]
    assert [bool(t.visible) for t in fig.data[1:]] == [i // 2 == 1 for i in range(2 * len(values))]
    # the heatmap is the density of q(v|x=0): NaN (transparent) outside v0 > v1, and the samples inside
    heat, dots = fig.data[3], fig.data[4]
    z, gx, gy = np.asarray(heat.z, dtype=float), np.asarray(heat.x), np.asarray(heat.y)
    outside = gx[None, :] <= gy[:, None]
    assert np.isnan(z[outside]).all() and np.isfinite(z[~outside]).all()
    assert (np.asarray(dots.x) > np.asarray(dots.y)).all()
    html = fig.to_html(include_plotlyjs=False, full_html=False)
    assert "plotly-graph-div" in html


@pytest.mark.parametrize("inverse", ["gumbel", "gumbel-threshold"])
def test_slider_figures_of_the_gumbel_inverses(inverse):
    fig = argmax_slider_figure(inverse, n_samples=20, grid=21)
    assert len(fig.layout.sliders[0].steps) == 9 and len(fig.data) == 19


def test_widget_controls_follow_k_and_the_inverse():
    import ipywidgets as W

    widget = argmax_widget(n_samples=100)
    assert isinstance(widget, W.VBox)
    header, threshold_box, gumbel_box, image = widget.children
    k, inverse, x = header.children
    assert isinstance(image, W.Image) and image.value[:8] == b"\x89PNG\r\n\x1a\n"
    assert x.max == 1 and threshold_box.layout.display == "" and gumbel_box.layout.display == "none"
    first = image.value
    threshold_box.children[0].children[0].value = -1.0  # the mean of u0: the figure is redrawn
    assert image.value != first
    k.value = 3
    assert x.max == 2
    x.value = 2
    inverse.value = "gumbel"
    assert threshold_box.layout.display == "none" and gumbel_box.layout.display == ""
    noise_loc = gumbel_box.children[1].children[0]
    assert noise_loc.layout.display == "none"
    inverse.value = "gumbel-threshold"
    assert noise_loc.layout.display == ""
    assert gumbel_box.children[0].children[2].layout.display == ""  # phi2 shown for K = 3
    k.value = 2  # x is clamped to the new range and the figure is redrawn without error
    assert x.max == 1 and x.value == 1
    assert gumbel_box.children[0].children[2].layout.display == "none"
    assert not plt.get_fignums()  # the widget draws off pyplot: nothing left for inline display


@pytest.mark.parametrize("inverse", INVERSES)
def test_matplotlib_panels(inverse):
    fig = plot_inverse(inverse, n_samples=200, grid=41)
    assert len(fig.axes) == 2
    for ax, K in zip(fig.axes, (2, 3)):
        assert len(ax.collections) == 1 + K  # the density image and one scatter per class
        assert len(ax.lines) == K - 1 + (K == 3)  # boundaries: one line for K = 2, three rays for K = 3
    ax = plot_binary(n_samples=200)
    assert len(ax.lines) == 3  # two densities and the boundary


def test_fit_toy_q_gumbel_reaches_the_entropy():
    result = fit_toy_q("gumbel", [0.6, 0.3, 0.1], steps=150, batch=256, eval_size=200, k=10)
    assert result["elbo_bits"] < result["elbo_bits_start"]
    assert result["entropy_bits"] == pytest.approx(-(0.6 * math.log2(0.6) + 0.3 * math.log2(0.3)
                                                     + 0.1 * math.log2(0.1)))
    assert result["elbo_bits"] == pytest.approx(result["entropy_bits"], abs=0.01)

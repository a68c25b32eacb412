"""Figures of the diffusion and squares chapters: trajectories, palettes, widgets, sliders."""
import numpy as np
import pytest
import torch

from catlib.data import Squares, encode_text
from catlib.diffusion import build_diffusion, cosine_schedule
from catlib.viz import diffusion as vd
from catlib.viz.segmentation import CITYSCAPES_PALETTE, colorize, plot_maps


@pytest.fixture(scope="module")
def chains():
    sq = Squares(height=8, width=8, cell=4, sizes=(2, 3))
    d = build_diffusion(sq.data_shape, sq.num_classes, timesteps=40, channels=8)
    text = build_diffusion((11,), 27, timesteps=40, hidden=(8,))
    times = [0, 10, 40]
    maps = vd.forward_trajectory(d, sq.sample(1, seed=0), times, seed=0)
    words = vd.forward_trajectory(text, encode_text("hello world")[None], times, seed=0)
    return d, {t: m[0] for t, m in maps.items()}, {t: w[0] for t, w in words.items()}


def test_forward_trajectory_is_seeded_and_starts_at_the_data(chains):
    d, maps, _ = chains
    assert sorted(maps) == [0, 10, 40]
    again = vd.forward_trajectory(d, maps[0][None], [10, 40], seed=0)
    assert torch.equal(again[40][0], maps[40])
    with pytest.raises(ValueError, match="times must be in \\[0, 40\\]"):
        vd.forward_trajectory(d, maps[0][None], [41])


def test_highlight_marks_exactly_the_changed_characters():
    html = vd.highlight_changes(encode_text("abc d"), encode_text("abx d"))
    assert html.count("<span style=\"background") == 1 and "·" in html


def test_widget_and_static_slider_have_one_step_per_time(chains):
    import ipywidgets

    _, maps, words = chains
    alphas = cosine_schedule(40).numpy()
    w = vd.diffusion_widget(maps, words, alphas)
    slider = w.children[0]
    assert isinstance(slider, ipywidgets.SelectionSlider) and list(slider.options) == [0, 10, 40]
    image = w.children[2].children[0]
    first = image.value
    slider.value = 40
    assert image.value != first  # the picture follows the slider
    fig = vd.diffusion_slider_figure(maps, words, alphas)
    assert len(fig.data) == 3 and len(fig.layout.sliders[0].steps) == 3


def test_colorize_and_grids():
    assert colorize(np.array([[7]]), CITYSCAPES_PALETTE).shape == (1, 1, 3)
    with pytest.raises(ValueError, match="classes in \\[0, 5\\)"):
        colorize(np.array([[5]]))
    ax = plot_maps(torch.zeros(3, 4, 4, dtype=torch.long), ncols=2)
    assert ax.images[0].get_array().shape == (2 * 4 + 1, 2 * 4 + 1, 3)

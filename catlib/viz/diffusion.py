"""Figures and widgets of the multinomial diffusion chapters: trajectories, schedules, sliders."""
from __future__ import annotations

import html
import io
from typing import Sequence

import numpy as np
import torch
from torch import Tensor

from catlib.data.text import TEXT8_ALPHABET, decode_text
from catlib.viz.segmentation import SQUARES_PALETTE, colorize

__all__ = ["forward_trajectory", "plot_schedules", "plot_trajectory", "highlight_changes",
           "diffusion_widget", "diffusion_slider_figure"]


@torch.no_grad()
def forward_trajectory(diffusion, x0: Tensor, times: Sequence[int], seed: int = 0) -> dict[int, Tensor]:
    """One run of the forward chain :math:`x_0 \\to x_1 \\to \\dots`, kept at ``times``.

    Each step draws :math:`x_t \\sim q(x_t \\mid x_{t-1})` (``diffusion.transition_probs``), so the
    maps at increasing times belong to one trajectory, as in the paper's figure 2.

    Args:
        diffusion: a :class:`catlib.diffusion.MultinomialDiffusion`.
        x0: ``[b, *data_shape]`` class indices.
        times: the (1-based) times to keep; ``0`` keeps ``x0``.

    Returns:
        ``{t: x_t [b, *data_shape]}``.
    """
    g = torch.Generator().manual_seed(seed)
    keep = sorted(set(int(t) for t in times))
    if keep and (keep[0] < 0 or keep[-1] > diffusion.num_timesteps):
        raise ValueError(f"times must be in [0, {diffusion.num_timesteps}], got {keep[0]}..{keep[-1]}")
    out = {0: x0.clone()} if 0 in keep else {}
    x = x0
    for t in range(1, (keep[-1] if keep else 0) + 1):
        probs = diffusion.transition_probs(x, t).cpu()
        flat = probs.reshape(-1, probs.shape[-1]).double()
        x = torch.multinomial(flat, 1, generator=g).view(x.shape).to(x0.device)
        if t in keep:
            out[t] = x.clone()
    return out


def plot_schedules(schedules: dict[str, np.ndarray], axes=None):
    """Left: :math:`\\bar\\alpha_t` (the chance that a variable still holds its data value, plus
    a ``1/K`` share of the noise); right: the per-step resampling chance :math:`\\beta_t`.

    ``schedules`` maps a label to ``alphas [T]``. Returns the two axes.
    """
    import matplotlib.pyplot as plt

    if axes is None:
        _, axes = plt.subplots(1, 2, figsize=(10, 3.4), layout="constrained")
    for label, alphas in schedules.items():
        alphas = np.asarray(alphas, dtype=np.float64)
        t = np.arange(1, len(alphas) + 1)
        axes[0].plot(t, np.cumprod(alphas), label=label)
        axes[1].semilogy(t, 1 - alphas, label=label)
    axes[0].set(xlabel="t", ylabel=r"$\bar\alpha_t$", title="signal kept")
    axes[1].set(xlabel="t", ylabel=r"$\beta_t = 1 - \alpha_t$", title="per-step noise (log scale)")
    for ax in axes:
        ax.legend()
        ax.grid(alpha=0.3)
    return axes


def plot_trajectory(maps: dict[int, Tensor], palette: np.ndarray = SQUARES_PALETTE, axes=None):
    """One row of maps ``{t: [H, W]}``, titled with their times; returns the axes."""
    import matplotlib.pyplot as plt

    times = sorted(maps)
    if axes is None:
        _, axes = plt.subplots(1, len(times), figsize=(1.6 * len(times), 1.9), layout="constrained")
    for ax, t in zip(np.atleast_1d(axes), times):
        ax.imshow(colorize(maps[t], palette), interpolation="nearest")
        ax.set_title(f"t = {t}", fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    return axes


def highlight_changes(text: Tensor, reference: Tensor, alphabet: str = TEXT8_ALPHABET) -> str:
    """HTML of ``text`` (class indices ``[L]``) with the characters that differ from
    ``reference`` on a coloured background; spaces are shown as ``·`` so they can be seen."""
    parts = []
    for ch, changed in zip(decode_text(text, alphabet), (text != reference).tolist()):
        shown = "·" if ch == " " else html.escape(ch)
        parts.append(f'<span style="background:#fdd49e;color:#b30000">{shown}</span>' if changed else shown)
    return '<span style="font-family:monospace;font-size:15px">' + "".join(parts) + "</span>"


def _png(rgb: np.ndarray, scale: int = 12) -> bytes:
    from PIL import Image

    image = Image.fromarray(rgb).resize((rgb.shape[1] * scale, rgb.shape[0] * scale), Image.NEAREST)
    buffer = io.BytesIO()
    image.save(buffer, format="png")
    return buffer.getvalue()


def diffusion_widget(map_chain: dict[int, Tensor], text_chain: dict[int, Tensor], alphas: np.ndarray,
                     palette: np.ndarray = SQUARES_PALETTE):
    """Live explorer (needs a kernel): a time slider over precomputed forward trajectories.

    Args:
        map_chain: ``{t: [H, W]}`` from :func:`forward_trajectory` (one map).
        text_chain: ``{t: [L]}`` likewise for a text.
        alphas: ``[T]`` the schedule, to print :math:`\\bar\\alpha_t` beside the picture.

    As in :func:`catlib.viz.argmax.argmax_widget`, the picture is an ``ipywidgets.Image``
    updated by a callback, which works in any front end and in the static site.
    """
    import ipywidgets as W

    times = sorted(set(map_chain) & set(text_chain))
    cumprod = np.cumprod(np.asarray(alphas, dtype=np.float64))
    slider = W.SelectionSlider(options=times, value=times[0], description="time t", continuous_update=True,
                               layout=W.Layout(width="36em"))
    image = W.Image(format="png", layout=W.Layout(width="240px"))
    text = W.HTML()
    info = W.HTML()

    def redraw(*_):
        t = slider.value
        image.value = _png(colorize(map_chain[t], palette))
        text.value = highlight_changes(text_chain[t], text_chain[times[0]])
        kept = 1.0 if t == 0 else cumprod[t - 1]
        info.value = (f"alpha-bar<sub>t</sub> = {kept:.3f}: each variable still holds its data value "
                      f"with probability {kept:.3f} + (1 - {kept:.3f})/K")

    slider.observe(redraw, "value")
    redraw()
    return W.VBox([slider, info, W.HBox([image, text])])


def diffusion_slider_figure(map_chain: dict[int, Tensor], text_chain: dict[int, Tensor],
                            alphas: np.ndarray, palette: np.ndarray = SQUARES_PALETTE):
    """The static version of :func:`diffusion_widget`: a plotly figure whose slider steps
    through the precomputed times (an image trace and a text annotation per step)."""
    import plotly.graph_objects as go

    times = sorted(set(map_chain) & set(text_chain))
    cumprod = np.cumprod(np.asarray(alphas, dtype=np.float64))
    fig = go.Figure()
    texts = []
    for i, t in enumerate(times):
        fig.add_trace(go.Image(z=colorize(map_chain[t], palette), visible=(i == 0), hoverinfo="skip"))
        chars = decode_text(text_chain[t]).replace(" ", "·")
        kept = 1.0 if t == 0 else cumprod[t - 1]
        texts.append(f"<b>text:</b> <span style='font-family:monospace'>{html.escape(chars)}</span>"
                     f"<br>alpha-bar = {kept:.3f}")
    steps = [dict(method="update", label=str(t),
                  args=[{"visible": [j == i for j in range(len(times))]},
                        {"annotations": [dict(text=texts[i], x=0.0, y=-0.12, xref="paper", yref="paper",
                                              showarrow=False, align="left", xanchor="left")]}])
             for i, t in enumerate(times)]
    fig.update_layout(
        sliders=[dict(active=0, steps=steps, currentvalue=dict(prefix="time t = "), pad=dict(t=70))],
        annotations=steps[0]["args"][1]["annotations"], width=620, height=560,
        margin=dict(l=20, r=20, t=40, b=20), title=dict(text="the forward process, one trajectory", x=0.02),
        xaxis=dict(visible=False), yaxis=dict(visible=False))
    return fig

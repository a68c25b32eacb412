"""Figures and widgets of chapter 14: the masking and the resampling forward processes side by side."""
from __future__ import annotations

import html
from typing import Callable, Sequence

import numpy as np
import torch
from torch import Tensor

from catlib.data.text import TEXT8_ALPHABET, decode_text
from catlib.viz.diffusion import _png, highlight_changes
from catlib.viz.segmentation import SQUARES_PALETTE, colorize

__all__ = ["MASK_COLOUR", "MASK_CHAR", "masking_trajectory", "kernel_palette", "kernel_alphabet",
           "kernels_widget", "kernels_slider_figure", "plot_kernels"]

#: How a masked pixel (grey) and a masked character are drawn.
MASK_COLOUR = (150, 150, 150)
MASK_CHAR = "▒"


def kernel_palette(palette: np.ndarray = SQUARES_PALETTE) -> np.ndarray:
    """``palette`` with one more colour, :data:`MASK_COLOUR`, for the mask state ``K``."""
    return np.vstack([palette, np.array(MASK_COLOUR, dtype=palette.dtype)[None]])


def kernel_alphabet(alphabet: str = TEXT8_ALPHABET) -> str:
    """``alphabet`` with :data:`MASK_CHAR` for the mask state ``K``."""
    return alphabet + MASK_CHAR


@torch.no_grad()
def masking_trajectory(x0: Tensor, num_classes: int, times: Sequence[float],
                       alpha: Callable[[Tensor], Tensor], seed: int = 0) -> dict[float, Tensor]:
    r"""One run of the masking process, kept at ``times`` in ``[0, 1]``.

    Each position gets one masking time :math:`m_d` with :math:`P(m_d \le t) = 1 - \alpha(t)`, and
    :math:`x_t` is masked (value ``num_classes``) exactly where :math:`m_d \le t`: a position, once
    masked, stays masked, so the returned states belong to one trajectory.

    Returns ``{t: x_t}`` (``x_t`` of ``x0``'s shape).

    >>> chain = masking_trajectory(torch.zeros(1, 6, dtype=torch.long), 3, [0.0, 0.5, 1.0], lambda t: 1 - t)
    >>> [int((chain[t] == 3).sum()) for t in (0.0, 1.0)]
    [0, 6]
    """
    g = torch.Generator().manual_seed(seed)
    u = 1 - torch.rand(x0.shape, generator=g, dtype=torch.float64)
    grid = torch.linspace(0, 1, 2001, dtype=torch.float64)
    masked_share = 1 - alpha(grid)                                       # increasing from 0 to 1
    m = grid[torch.searchsorted(masked_share, u.flatten()).clamp(max=len(grid) - 1)].view(x0.shape)
    return {float(t): torch.where(m.to(x0.device) <= float(t), torch.full_like(x0, num_classes), x0) for t in times}


def _text_html(x: Tensor, reference: Tensor) -> str:
    return highlight_changes(x, reference, kernel_alphabet())


def kernels_widget(chains: dict[str, tuple[dict, dict]], times: Sequence[float], info: Callable[[float], str],
                   palette: np.ndarray = SQUARES_PALETTE):
    """Live explorer (needs a kernel): one time slider moves every kernel's trajectory.

    Args:
        chains: ``{kernel name: (map chain {t: [H, W]}, text chain {t: [L]})}``, keyed by the same
            times (fractions of the way, ``0`` to ``1``); the mask state is ``K``.
        times: the slider's times.
        info: ``t -> HTML`` said above the pictures (e.g. what each kernel keeps at ``t``).

    As :func:`catlib.viz.diffusion.diffusion_widget`: images updated by a callback.
    """
    import ipywidgets as W

    palette = kernel_palette(palette)
    slider = W.SelectionSlider(options=list(times), value=times[0], description="time t/T", continuous_update=True,
                               layout=W.Layout(width="36em"))
    note = W.HTML()
    panels = {}
    for name in chains:
        panels[name] = (W.Image(format="png", layout=W.Layout(width="200px")), W.HTML())

    def redraw(*_):
        t = slider.value
        note.value = info(t)
        for name, (maps, texts) in chains.items():
            image, text = panels[name]
            image.value = _png(colorize(maps[t], palette))
            text.value = f"<b>{html.escape(name)}</b><br>" + _text_html(texts[t], texts[times[0]])

    slider.observe(redraw, "value")
    redraw()
    return W.VBox([slider, note] + [W.HBox([image, text]) for image, text in panels.values()])


def kernels_slider_figure(chains: dict[str, tuple[dict, dict]], times: Sequence[float],
                          palette: np.ndarray = SQUARES_PALETTE):
    """The static version of :func:`kernels_widget`: a plotly figure, one map per kernel side by side
    and the texts below, whose slider steps through the precomputed times."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    palette = kernel_palette(palette)
    names = list(chains)
    fig = make_subplots(rows=1, cols=len(names), subplot_titles=names, horizontal_spacing=0.04)
    for i, t in enumerate(times):
        for j, name in enumerate(names):
            fig.add_trace(go.Image(z=colorize(chains[name][0][t], palette), visible=(i == 0), hoverinfo="skip"),
                          row=1, col=j + 1)
    alphabet = kernel_alphabet()
    per = len(names)
    steps = []
    for i, t in enumerate(times):
        lines = [f"<b>{html.escape(name)}:</b> <span style='font-family:monospace'>"
                 f"{html.escape(decode_text(chains[name][1][t], alphabet).replace(' ', '·'))}</span>" for name in names]
        note = dict(text="<br>".join(lines), x=0.0, y=-0.15, xref="paper", yref="paper", showarrow=False,
                    align="left", xanchor="left")
        titles = [a for a in fig.layout.annotations[:per]]
        steps.append(dict(method="update", label=f"{t:g}",
                          args=[{"visible": [k // per == i for k in range(len(times) * per)]},
                                {"annotations": [*titles, note]}]))
    fig.update_layout(sliders=[dict(active=0, steps=steps, currentvalue=dict(prefix="time t/T = "), pad=dict(t=80))],
                      annotations=steps[0]["args"][1]["annotations"], width=720, height=500,
                      margin=dict(l=20, r=20, t=60, b=20))
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    return fig


def plot_kernels(chains: dict[str, tuple[dict, dict]], times: Sequence[float], palette: np.ndarray = SQUARES_PALETTE,
                 axes=None):
    """A grid of maps: one row per kernel, one column per time (fractions of the way); returns the axes."""
    import matplotlib.pyplot as plt

    palette = kernel_palette(palette)
    names = list(chains)
    if axes is None:
        _, axes = plt.subplots(len(names), len(times), figsize=(1.6 * len(times), 1.8 * len(names)), squeeze=False)
    for i, name in enumerate(names):
        for j, t in enumerate(times):
            ax = axes[i][j]
            ax.imshow(colorize(chains[name][0][t], palette), interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(f"t/T = {t:g}", fontsize=9)
            if j == 0:
                ax.set_ylabel(name, fontsize=9)
    return axes

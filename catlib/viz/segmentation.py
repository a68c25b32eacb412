"""Segmentation maps as pictures: class palettes and sample grids (squares, cityscapes)."""
from __future__ import annotations

from typing import Sequence

import numpy as np
from torch import Tensor

__all__ = ["SQUARES_PALETTE", "CITYSCAPES_PALETTE", "colorize", "plot_maps"]

#: Background black, then four clearly different colours (colour-blind friendly, Okabe-Ito).
SQUARES_PALETTE = np.array([[0, 0, 0], [230, 159, 0], [86, 180, 233], [0, 158, 115], [240, 228, 66]],
                           dtype=np.uint8)
#: The 8 cityscapes categories (void, flat, construction, object, nature, sky, human, vehicle) in
#: the colours of the official cityscapes palette of a typical class of each category.
CITYSCAPES_PALETTE = np.array([[0, 0, 0], [128, 64, 128], [70, 70, 70], [153, 153, 153],
                               [107, 142, 35], [70, 130, 180], [220, 20, 60], [0, 0, 142]], dtype=np.uint8)


def colorize(maps: Tensor | np.ndarray, palette: np.ndarray = SQUARES_PALETTE) -> np.ndarray:
    """Class maps ``[..., H, W]`` to RGB ``[..., H, W, 3]`` (uint8); a class without a colour raises.

    >>> colorize(np.array([[0, 1]])).tolist()
    [[[0, 0, 0], [230, 159, 0]]]
    """
    maps = maps.cpu().numpy() if isinstance(maps, Tensor) else np.asarray(maps)
    if maps.size and (maps.min() < 0 or maps.max() >= len(palette)):
        raise ValueError(f"maps must hold classes in [0, {len(palette)}) for a palette of {len(palette)} "
                         f"colours, got values in [{maps.min()}, {maps.max()}]")
    return palette[maps]


def plot_maps(maps: Tensor | np.ndarray, ncols: int = 8, palette: np.ndarray = SQUARES_PALETTE,
              title: str | None = None, ax=None, gap: int = 1):
    """Draw maps ``[n, H, W]`` as one image grid with white gaps; returns the matplotlib axes.

    All maps share one pair of axes, so grids of data and of samples drawn side by side have
    the same scale.
    """
    import matplotlib.pyplot as plt

    rgb = colorize(maps, palette)
    n, h, w, _ = rgb.shape
    ncols = max(1, min(ncols, n))
    nrows = -(-n // ncols)
    canvas = np.full((nrows * (h + gap) - gap, ncols * (w + gap) - gap, 3), 255, dtype=np.uint8)
    for i in range(n):
        r, c = divmod(i, ncols)
        canvas[r * (h + gap):r * (h + gap) + h, c * (w + gap):c * (w + gap) + w] = rgb[i]
    if ax is None:
        _, ax = plt.subplots(figsize=(min(12, 0.25 * canvas.shape[1] / 4 + 1), 0.25 * canvas.shape[0] / 4 + 0.6))
    ax.imshow(canvas, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title)
    return ax


def legend_handles(names: Sequence[str], palette: np.ndarray = SQUARES_PALETTE) -> list:
    """Patches for ``ax.legend(handles=...)``: one coloured square per class name."""
    from matplotlib.patches import Patch

    return [Patch(facecolor=palette[i] / 255, edgecolor="grey", label=name) for i, name in enumerate(names)]

r"""Pictures of the argmax surjection: toy inverses with explicit parameters, their closed-form
densities, matplotlib panels, an ``ipywidgets`` explorer and a plotly slider for static pages.

The three inverses of :mod:`catlib.argmax` are used here with parameters you can set by hand
(one categorical variable, ``K`` classes), instead of the networks of the library classes:

- ``"threshold"``: :math:`u \sim \mathcal{N}(\mu, \operatorname{diag}\sigma^2)`, then
  :func:`catlib.argmax.threshold`; parameters ``mean [K]``, ``log_scale [K]``;
- ``"gumbel"``: :math:`\mathrm{Gumbel}(\phi)` conditioned on its argmax, through
  :func:`catlib.argmax.gumbel_argmax_transform`; parameter ``phi [K]``;
- ``"gumbel-threshold"``: logistic noise :math:`s_i \sim \mathrm{Logistic}(m_i, b_i)`,
  :math:`w = \sigma(s)`, through the same Gumbel inverse CDFs; parameters ``phi [K]``,
  ``noise_loc`` and ``noise_log_scale`` (scalars or ``[K]``). With ``noise_loc = 0`` and
  ``noise_log_scale = 0`` the noise ``w`` is uniform and this is exactly ``"gumbel"``.

Sampling goes through catlib (:func:`sample_toy_q`, differentiable in the parameters);
:func:`log_q` evaluates the same densities independently, in NumPy, by inverting the maps in
closed form, so the two can check each other. :func:`density_grid` tabulates :math:`q(v|x)` on
the plane for ``K = 2``; :func:`project_k3` maps ``K = 3`` vectors to the plane orthogonal to
:math:`(1, 1, 1)`, where the three argmax regions are 120 degree sectors.
"""
from __future__ import annotations

import math
from typing import Callable, Mapping, Sequence, Union

import numpy as np
import torch
from torch import Tensor
from torch.nn import functional as F

from catlib.argmax import gumbel_argmax_transform, log_softplus, threshold
from catlib.distributions import Gumbel, Logistic

__all__ = [
    "INVERSES", "INVERSE_LABELS", "example_params", "sample_toy_q", "sample_q", "log_q",
    "density_grid", "k2_density_mass", "project_k3", "sector_boundaries", "plot_q", "plot_inverse",
    "binary_log_q", "plot_binary", "argmax_widget", "argmax_slider_figure", "fit_toy_q",
]

INVERSES = ("threshold", "gumbel", "gumbel-threshold")
INVERSE_LABELS = {
    "threshold": "softplus thresholding",
    "gumbel": "Gumbel distribution",
    "gumbel-threshold": "Gumbel thresholding",
}
CLASS_COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c")  # matplotlib's C0, C1, C2
_LOG_2PI = math.log(2 * math.pi)
_PARAM_NAMES = {
    "threshold": ("mean", "log_scale"),
    "gumbel": ("phi",),
    "gumbel-threshold": ("phi", "noise_loc", "noise_log_scale"),
}

Params = Mapping[str, Union[float, Sequence[float], np.ndarray, Tensor]]
ParamsArg = Union[Params, Callable[[int], Params]]


# --------------------------------------------------------------------------- checks


def _check_inverse(inverse: str) -> str:
    if inverse not in INVERSES:
        raise ValueError(f"inverse must be one of {', '.join(INVERSES)}, got {inverse!r}")
    return inverse


def _check_class(x: int, num_classes: int) -> int:
    if isinstance(x, bool) or not isinstance(x, (int, np.integer)) or not 0 <= x < num_classes:
        raise ValueError(f"x must be a class index in [0, {num_classes}), got {x!r}")
    return int(x)


def _check_params(inverse: str, params: Params) -> None:
    missing = [name for name in _PARAM_NAMES[inverse] if name not in params]
    extra = sorted(set(params) - set(_PARAM_NAMES[inverse]))
    if missing or extra:
        raise ValueError(f"parameters of {inverse!r} are {list(_PARAM_NAMES[inverse])}, "
                         f"got {sorted(params)}")


def _params_for(params: ParamsArg, x: int) -> Params:
    return params(x) if callable(params) else params


def example_params(inverse: str, num_classes: int, x: int) -> dict[str, np.ndarray]:
    """Parameters the chapter uses for its figures: readable, not fitted to anything.

    ``"threshold"``: :math:`u \\sim \\mathcal{N}(e_x, I)` (the winner's mean one above the rest);
    ``"gumbel"``: :math:`\\phi = \\log(0.6, 0.4)` for K = 2, :math:`\\log(0.5, 0.3, 0.2)` for K = 3;
    ``"gumbel-threshold"``: the same :math:`\\phi` with noise :math:`s \\sim \\mathrm{Logistic}(0, 1/2)`,
    which keeps :math:`w = \\sigma(s)` away from 0 and 1 (a tighter :math:`q` than the Gumbel's).

    >>> example_params("threshold", 3, 1)["mean"]
    array([0., 1., 0.])
    """
    _check_inverse(inverse)
    _check_class(x, num_classes)
    phi = {2: np.log([0.6, 0.4]), 3: np.log([0.5, 0.3, 0.2])}.get(num_classes, np.zeros(num_classes))
    if inverse == "threshold":
        return {"mean": np.eye(num_classes)[x], "log_scale": np.zeros(num_classes)}
    if inverse == "gumbel":
        return {"phi": phi}
    return {"phi": phi, "noise_loc": np.zeros(num_classes), "noise_log_scale": np.full(num_classes, math.log(0.5))}


# --------------------------------------------------------------------------- sampling


def _as_tensor(value, like: Tensor) -> Tensor:
    return torch.as_tensor(value, dtype=like.dtype, device=like.device)


def sample_toy_q(inverse: str, x: Tensor, params: Params,
                 generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
    r"""Sample :math:`v \sim q(v|x)` for one categorical variable with hand-set parameters.

    Args:
        inverse: ``"threshold"``, ``"gumbel"`` or ``"gumbel-threshold"``.
        x: ``[n]`` class indices in ``[0, K)``.
        params: tensors (or numbers) broadcastable to ``[n, K]``: ``mean`` and ``log_scale``
            of :math:`q(u|x)`; ``phi``; ``noise_loc`` and ``noise_log_scale`` of the logistic
            noise. ``K`` is read from ``mean`` or ``phi``. Gradients flow to tensor parameters.
        generator: a ``torch.Generator`` for reproducible noise.

    Returns:
        ``v [n, K]`` with ``argmax(v) == x`` and ``log q(v|x) [n]``, in the parameters' dtype.

    >>> v, lq = sample_toy_q("gumbel", torch.tensor([0, 1]), {"phi": torch.zeros(3)})
    >>> v.argmax(-1).tolist(), lq.shape
    ([0, 1], torch.Size([2]))
    """
    _check_inverse(inverse)
    _check_params(inverse, params)
    key = "mean" if inverse == "threshold" else "phi"
    first = params[key]
    ref = first if torch.is_tensor(first) else torch.as_tensor(np.asarray(first, dtype=np.float64))
    ref = ref if ref.is_floating_point() else ref.to(torch.get_default_dtype())
    K = ref.shape[-1]
    if not torch.is_tensor(x) or x.dtype != torch.long or x.dim() != 1:
        raise ValueError(f"x must be a 1-d torch.long tensor of class indices, got {x!r:.80}")
    if ((x < 0) | (x >= K)).any():
        raise ValueError(f"x must hold class indices in [0, {K}), got {x.tolist()[:10]}")
    n, dtype, device = x.shape[0], ref.dtype, ref.device
    x = x.to(device)
    if inverse == "threshold":
        mean = _as_tensor(params["mean"], ref).expand(n, K)
        log_scale = _as_tensor(params["log_scale"], ref).expand(n, K)
        eps = torch.randn((n, K), generator=generator, dtype=dtype, device=device)
        u = mean + torch.exp(log_scale) * eps
        log_q_u = (-0.5 * (eps**2 + _LOG_2PI) - log_scale).sum(-1)
        v, ldj = threshold(u.unsqueeze(1), x.unsqueeze(1))
        return v.squeeze(1), log_q_u - ldj
    phi = _as_tensor(params["phi"], ref).expand(n, K).unsqueeze(1)
    # uniforms in float64, never exactly 0 (torch.rand is below 1); tails computed before the cast
    uniform = torch.rand((n, 1, K), dtype=torch.float64, device=device, generator=generator).clamp(min=2.0**-54)
    if inverse == "gumbel":
        ell = torch.log(-torch.log(uniform)).to(dtype)
        v, log_q = gumbel_argmax_transform(phi, ell, x.unsqueeze(1))
        return v.squeeze(1), log_q
    loc = _as_tensor(params["noise_loc"], ref).expand(n, K).unsqueeze(1)
    scale = torch.exp(_as_tensor(params["noise_log_scale"], ref)).expand(n, K).unsqueeze(1)
    noise = Logistic(loc, scale)
    s = loc + scale * (torch.log(uniform) - torch.log1p(-uniform)).to(dtype)  # logistic inverse CDF
    # w = sigmoid(s): log q(w) = log q(s) - log sigmoid'(s), and -log w = softplus(-s)
    log_q_w = (noise.log_prob(s) + F.softplus(-s) + F.softplus(s)).flatten(1).sum(-1)
    v, log_density = gumbel_argmax_transform(phi, log_softplus(-s), x.unsqueeze(1))
    return v.squeeze(1), log_q_w + log_density


def sample_q(inverse: str, x: int, params: Params, n: int, seed: int = 0,
             num_classes: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """NumPy front end of :func:`sample_toy_q` for one class ``x``: ``(v [n, K], log q [n])``, float64.

    The same ``seed`` gives the same noise, so moving a parameter moves the samples smoothly.
    """
    params = {k: np.asarray(val, dtype=np.float64) for k, val in params.items()}
    K = num_classes or np.broadcast_shapes(*(np.shape(p) for p in params.values()))[-1]
    _check_class(x, K)
    tensors = {k: torch.as_tensor(val, dtype=torch.float64) for k, val in params.items()}
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        v, lq = sample_toy_q(inverse, torch.full((n,), x, dtype=torch.long), tensors, generator)
    return v.numpy(), lq.numpy()


# --------------------------------------------------------------------------- closed-form densities


def _log_expm1(y: np.ndarray) -> np.ndarray:
    """``log(exp(y) - 1)`` for ``y > 0``, finite for large ``y``."""
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        return np.where(y > 20.0, y + np.log1p(-np.exp(-y)), np.log(np.expm1(np.minimum(y, 20.0))))


def _inside(v: np.ndarray, x: int) -> np.ndarray:
    others = np.delete(v, x, axis=-1)
    return (v[..., x:x + 1] > others).all(-1)


def log_q(inverse: str, v: np.ndarray, x: int, params: Params) -> np.ndarray:
    r"""Closed-form :math:`\log q(v|x)` at ``v [..., K]`` (NumPy, float64); ``-inf`` where
    :math:`\arg\max v \ne x` (ties included).

    Each inverse is undone in closed form and the change of variables applied:

    - threshold: :math:`T = v_x`, :math:`u_i = T - \log(e^{T - v_i} - 1)`,
      :math:`\log q = \log\mathcal{N}(u) - \sum_{i\ne x}\log(1 - e^{v_i - T})`;
    - Gumbel: :math:`\sum_i \log\mathrm{Gumbel}(v_i|\phi_i) - \log\operatorname{softmax}(\phi)_x`;
    - Gumbel thresholding: :math:`\ell_x = \operatorname{logsumexp}\phi - T`,
      :math:`\ell_i = \phi_i - v_i + \log(1 - e^{v_i - T})`, :math:`s = -\log(e^{e^\ell} - 1)`,
      :math:`\log q = \sum \log\mathrm{Logistic}(s) + \sum (e^\ell + \ell - \log(e^{e^\ell}-1))
      - \sum_{i \ne x} \log(1 - e^{v_i - T})`.
    """
    _check_inverse(inverse)
    _check_params(inverse, params)
    v = np.asarray(v, dtype=np.float64)
    K = v.shape[-1]
    x = _check_class(x, K)
    p = {k: np.broadcast_to(np.asarray(val, dtype=np.float64), (K,)) for k, val in params.items()}
    inside = _inside(v, x)
    T = v[..., x:x + 1]
    is_x = np.arange(K) == x
    # gap d_i = T - v_i > 0 off the winner; a harmless 1 where it is not used
    gap = np.where(is_x | ~inside[..., None], 1.0, T - v)
    log_one_minus = np.log(-np.expm1(-gap))  # log(1 - exp(v_i - T)), <= 0
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        if inverse == "threshold":
            u = np.where(is_x, v, T - _log_expm1(gap))
            scale = np.exp(p["log_scale"])
            z = (u - p["mean"]) / scale
            out = (-0.5 * (z**2 + _LOG_2PI) - p["log_scale"]).sum(-1)
            out = out - np.where(is_x, 0.0, log_one_minus).sum(-1)
        elif inverse == "gumbel":
            phi = p["phi"]
            lse = np.logaddexp.reduce(phi)
            out = (phi - v - np.exp(phi - v)).sum(-1) - (phi[x] - lse)
        else:
            phi = p["phi"]
            lse = np.logaddexp.reduce(phi)
            ell = np.where(is_x, lse - T, phi - v + log_one_minus)
            e = np.exp(ell)
            s = -_log_expm1(e)
            b = np.exp(p["noise_log_scale"])
            z = (s - p["noise_loc"]) / b
            log_logistic = -z - np.log(b) - 2 * np.logaddexp(0.0, -z)
            log_ds = e + ell - _log_expm1(e)
            out = (log_logistic + log_ds).sum(-1) - np.where(is_x, 0.0, log_one_minus).sum(-1)
    return np.where(inside, out, -np.inf)


def density_grid(inverse: str, x: int | None, params: ParamsArg, lim: tuple[float, float] = (-4.0, 5.0),
                 n: int = 201) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    r""":math:`q(v|x)` for ``K = 2`` at the centres of an ``n x n`` grid of cells on ``lim x lim``.

    The cells of the :math:`v_1` axis are shifted by half a cell, so no centre lies on the
    boundary :math:`v_0 = v_1` where the density jumps; the midpoint rule
    ``density.sum() * h0 * h1`` then integrates it with an error of second order in the cell size.

    Args:
        x: the class, or ``None`` for every class at once (their supports are disjoint, so each
            region shows its own class's density; the total then integrates to 2).
        params: a mapping, or a function of the class returning one.

    Returns:
        ``v0 [n]``, ``v1 [n]`` (centres) and ``density [n, n]`` with ``density[j, i]`` at
        ``(v0[i], v1[j])``; exactly 0 outside the argmax region of ``x``.
    """
    _check_inverse(inverse)
    lo, hi = lim
    h = (hi - lo) / n
    v0 = lo + (np.arange(n) + 0.5) * h
    v1 = v0 + 0.5 * h
    grid = np.stack(np.meshgrid(v0, v1), -1)  # [n(v1), n(v0), 2]
    classes = range(2) if x is None else [_check_class(x, 2)]
    density = np.zeros((n, n))
    for c in classes:
        density += np.exp(log_q(inverse, grid, c, _params_for(params, c)))
    return v0, v1, density


def k2_density_mass(inverse: str, x: int, params: Params, lim: tuple[float, float] = (-12.0, 12.0),
                    n: int = 481) -> tuple[float, float]:
    """``(integral over the plane, largest value outside the region of x)`` of the ``K = 2``
    density of :func:`density_grid`: ``(about 1, exactly 0)`` for a proper :math:`q(v|x)`."""
    v0, v1, dens = density_grid(inverse, x, params, lim, n)
    g0, g1 = np.meshgrid(v0, v1)
    outside = (g0 > g1) != (_check_class(x, 2) == 0)
    return float(dens.sum() * (v0[1] - v0[0]) * (v1[1] - v1[0])), float(dens[outside].max(initial=0.0))


def binary_log_q(v: np.ndarray, b: int, mean: float, log_scale: float) -> np.ndarray:
    r"""Closed-form log density of :math:`v = (2b - 1)\,\mathrm{softplus}(u)`,
    :math:`u \sim \mathcal{N}(\mu, \sigma^2)`: :math:`\log\mathcal{N}(u) - \log\sigma(u)` with
    :math:`u = \log(e^{|v|} - 1)`, and ``-inf`` on the wrong side of 0."""
    v = np.asarray(v, dtype=np.float64)
    if b not in (0, 1):
        raise ValueError(f"b must be a bit, 0 or 1, got {b!r}")
    sign = 1.0 if b == 1 else -1.0
    inside = sign * v > 0
    mag = np.where(inside, np.abs(v), 1.0)
    u = _log_expm1(mag)
    z = (u - mean) / math.exp(log_scale)
    out = -0.5 * (z**2 + _LOG_2PI) - log_scale + np.logaddexp(0.0, -u)
    return np.where(inside, out, -np.inf)


# --------------------------------------------------------------------------- geometry


_PROJ = np.array([[1.0, -1.0, 0.0], [1.0, 1.0, -2.0]]) / np.array([[math.sqrt(2)], [math.sqrt(6)]])


def project_k3(v: np.ndarray) -> np.ndarray:
    r"""``v [..., 3] -> [..., 2]``: coordinates in the plane orthogonal to :math:`(1, 1, 1)`.

    The argmax ignores a constant added to every entry, so this projection keeps all that
    decides the class; the corner :math:`e_k` goes to the direction of class ``k``.

    >>> np.round(project_k3(np.eye(3)), 3)
    array([[ 0.707,  0.408],
           [-0.707,  0.408],
           [ 0.   , -0.816]])
    """
    v = np.asarray(v, dtype=np.float64)
    if v.shape[-1] != 3:
        raise ValueError(f"v must have 3 entries in its last axis, got shape {v.shape}")
    return v @ _PROJ.T


def sector_boundaries(radius: float = 10.0) -> np.ndarray:
    r"""End points ``[3, 2]`` of the rays from the origin that separate the three argmax regions
    in the projected plane: the ray between classes i and j points away from the third class k."""
    ends = -project_k3(np.eye(3))
    return radius * ends / np.linalg.norm(ends, axis=-1, keepdims=True)


# --------------------------------------------------------------------------- matplotlib


def plot_q(inverse: str, num_classes: int, x: int | None, params: ParamsArg, n_samples: int = 1000,
           seed: int = 0, ax=None, lim: float | tuple[float, float] | None = None, grid: int = 201,
           show_samples: int = 400, title: str | None = None):
    r"""Samples of :math:`q(v|x)`, its density and the argmax regions on one matplotlib axis.

    ``K = 2``: the plane :math:`(v_0, v_1)`, the exact density (:func:`density_grid`) as a
    grey-scale image, the boundary :math:`v_0 = v_1`. ``K = 3``: the projection
    :func:`project_k3`, a histogram of ``n_samples`` projected samples per class as the
    density, and the three sector boundaries. ``x=None`` draws every class (samples coloured
    by class). Returns the axis.
    """
    import matplotlib.pyplot as plt
    from matplotlib.colors import PowerNorm

    _check_inverse(inverse)
    if num_classes not in (2, 3):
        raise ValueError(f"num_classes must be 2 or 3 for a picture, got {num_classes!r}")
    classes = list(range(num_classes)) if x is None else [_check_class(x, num_classes)]
    if ax is None:
        _, ax = plt.subplots(figsize=(4.6, 4.4))
    samples = {c: sample_q(inverse, c, _params_for(params, c), n_samples, seed + c, num_classes)[0]
               for c in classes}
    if num_classes == 2:
        lo, hi = (-4.0, 5.0) if lim is None else ((-lim, lim) if np.isscalar(lim) else lim)
        if x is None:
            v0, v1, dens = density_grid(inverse, None, params, (lo, hi), grid)
        else:
            v0, v1, dens = density_grid(inverse, x, _params_for(params, x), (lo, hi), grid)
        ax.pcolormesh(v0, v1, np.ma.masked_equal(dens, 0.0), cmap="Greys", shading="nearest",
                      norm=PowerNorm(0.5, vmin=0.0, vmax=dens.max()), rasterized=True)
        ax.plot([lo, hi], [lo, hi], color="k", lw=1.2, ls="--")
        for c in classes:
            pts = samples[c][:show_samples]
            ax.scatter(pts[:, 0], pts[:, 1], s=4, color=CLASS_COLORS[c], alpha=0.6, lw=0,
                       label=f"v ~ q(v | x={c})")
        ax.text(hi - 0.3, lo + 0.3, "argmax = 0", ha="right", va="bottom", fontsize=11)
        ax.text(lo + 0.3, hi - 0.3, "argmax = 1", ha="left", va="top", fontsize=11)
        ax.set_xlim(lo, hi)
        ax.set_ylim(lo, hi)
        ax.set_xlabel("$v_0$", fontsize=13)
        ax.set_ylabel("$v_1$", fontsize=13)
    else:
        r = 3.5 if lim is None else float(lim if np.isscalar(lim) else max(map(abs, lim)))
        proj = {c: project_k3(s) for c, s in samples.items()}
        allp = np.concatenate(list(proj.values()))
        bins = int(np.clip(np.sqrt(len(allp)) / 2.5, 30, 80))  # fewer, larger bins for fewer samples
        hist, xe, ye = np.histogram2d(allp[:, 0], allp[:, 1], bins=bins, range=[[-r, r], [-r, r]])
        ax.pcolormesh(xe, ye, np.ma.masked_equal(hist.T, 0.0), cmap="Greys",
                      norm=PowerNorm(0.5, vmin=0.0, vmax=hist.max()), rasterized=True)
        for end in sector_boundaries(2 * r):
            ax.plot([0, end[0]], [0, end[1]], color="k", lw=1.2, ls="--")
        for c in classes:
            pts = proj[c][:show_samples]
            ax.scatter(pts[:, 0], pts[:, 1], s=4, color=CLASS_COLORS[c], alpha=0.6, lw=0,
                       label=f"x={c}")
        for c, d in enumerate(project_k3(np.eye(3))):
            d = 0.8 * r * d / np.linalg.norm(d)
            ax.text(d[0], d[1], f"argmax = {c}", ha="center", va="center", fontsize=11,
                    bbox=dict(boxstyle="round,pad=0.2", fc="white", ec="none", alpha=0.7))
        ax.set_xlim(-r, r)
        ax.set_ylim(-r, r)
        ax.set_xlabel(r"$(v_0 - v_1)/\sqrt{2}$", fontsize=13)
        ax.set_ylabel(r"$(v_0 + v_1 - 2 v_2)/\sqrt{6}$", fontsize=13)
    ax.set_aspect("equal")
    ax.tick_params(labelsize=11)
    ax.set_title(title if title is not None else INVERSE_LABELS[inverse], fontsize=13)
    return ax


def plot_inverse(inverse: str, n_samples: int = 4000, seed: int = 0, params: dict | None = None,
                 **kwargs):
    """Two panels for one inverse, every class drawn: ``K = 2`` (exact density) and ``K = 3``
    (projected). ``params`` maps K to the parameters (a mapping, or a function of the class);
    by default :func:`example_params`. Returns the matplotlib figure."""
    import matplotlib.pyplot as plt

    _check_inverse(inverse)
    fig, axes = plt.subplots(1, 2, figsize=(9.5, 5.0), constrained_layout=True)
    for ax, K in zip(axes, (2, 3)):
        p = (params or {}).get(K) or (lambda c, K=K: example_params(inverse, K, c))
        plot_q(inverse, K, None, p, n_samples, seed, ax=ax, title=f"K = {K}", **kwargs)
    handles, _ = axes[1].get_legend_handles_labels()
    fig.legend(handles, [f"x = {c}" for c in range(3)], loc="outside lower center",
               ncol=3, markerscale=5, frameon=False, fontsize=12, title="samples of q(v | x)",
               title_fontsize=12)
    fig.suptitle(f"{INVERSE_LABELS[inverse]}: samples and density of q(v | x)", fontsize=14)
    return fig


def plot_binary(means: tuple[float, float] = (0.5, 0.5), log_scale: float = 0.0, n_samples: int = 4000,
                seed: int = 0, ax=None):
    r"""Histogram of :math:`v = (2b - 1)\,\mathrm{softplus}(u)`, :math:`u \sim \mathcal{N}(\mu_b, \sigma^2)`,
    for both bits, with the closed-form density (:func:`binary_log_q`) on top. Returns the axis."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(7, 3))
    generator = torch.Generator().manual_seed(seed)
    grid = np.linspace(-6, 6, 1201)
    for b in (0, 1):
        u = means[b] + math.exp(log_scale) * torch.randn(n_samples, generator=generator, dtype=torch.float64)
        v = ((2 * b - 1) * F.softplus(u)).numpy()
        ax.hist(v, bins=120, range=(-6, 6), density=True, color=CLASS_COLORS[b], alpha=0.35,
                label=f"samples, bit b={b}")
        ax.plot(grid, np.exp(binary_log_q(grid, b, means[b], log_scale)), color=CLASS_COLORS[b],
                lw=1.5, label=f"q(v | b={b}), closed form")
    ax.axvline(0.0, color="k", ls="--", lw=1.2)
    ax.set_xlim(-6, 6)
    ax.set_xlabel("v (one real number per bit: its sign is the bit)", fontsize=12)
    ax.set_ylabel("density", fontsize=12)
    ax.tick_params(labelsize=11)
    ax.legend(fontsize=10, frameon=False)
    return ax


# --------------------------------------------------------------------------- ipywidgets


def argmax_widget(n_samples: int = 1500, seed: int = 0, dpi: int = 90):
    """Live explorer (needs a Jupyter or Colab kernel): pick K, the inverse, the class and the
    inverse's parameters; the figure of :func:`plot_q` is redrawn on every change.

    The figure is an ``ipywidgets.Image`` whose PNG is replaced by a ``observe`` callback,
    rather than an ``Output`` widget (``interactive_output``): notebook runners such as
    nbclient (papermill, nbval, jupyter-book) mimic Output widgets by sending messages back to
    the kernel, which can deadlock intermittently (jupyter/nbclient#312). An Image is plain
    widget state, drawn by any front end and by the static widget manager of the site.

    Returns an ``ipywidgets.VBox`` (controls, then the image); show it with ``display(...)``.
    """
    import io

    import ipywidgets as W
    from matplotlib.figure import Figure

    wide = {"description_width": "9em"}

    def slider(value, lo, hi, description):
        return W.FloatSlider(value=value, min=lo, max=hi, step=0.1, description=description,
                             continuous_update=False, style=wide, readout_format=".1f",
                             layout=W.Layout(width="20em"))  # one Layout each: display is per slider

    k = W.ToggleButtons(options=[("K = 2", 2), ("K = 3", 3)], value=2, description="classes")
    inverse = W.Dropdown(options=[(INVERSE_LABELS[i], i) for i in INVERSES], value="threshold",
                         description="inverse")
    x = W.IntSlider(value=0, min=0, max=1, description="class x", continuous_update=False)
    mean = [slider(1.0 if i == 0 else 0.0, -3, 3, f"mean of u{i}") for i in range(3)]
    log_scale = [slider(0.0, -2, 1, f"log-scale of u{i}") for i in range(3)]
    phi = [slider(0.0, -3, 3, f"phi{i}") for i in range(3)]
    noise_loc = slider(0.0, -3, 3, "noise location m")
    noise_log_scale = slider(0.0, -2, 1, "noise log-scale")
    threshold_box = W.HBox([W.VBox(mean), W.VBox(log_scale)])
    gumbel_box = W.HBox([W.VBox(phi), W.VBox([noise_loc, noise_log_scale])])
    image = W.Image(format="png", layout=W.Layout(width="470px"))

    def arrange(*_):
        K, inv = k.value, inverse.value
        x.max = K - 1
        threshold_box.layout.display = "" if inv == "threshold" else "none"
        gumbel_box.layout.display = "none" if inv == "threshold" else ""
        noise_loc.layout.display = noise_log_scale.layout.display = "" if inv == "gumbel-threshold" else "none"
        for group in (mean, log_scale, phi):
            group[2].layout.display = "" if K == 3 else "none"

    def redraw(*_):
        K, inv, c = k.value, inverse.value, min(x.value, k.value - 1)
        if inv == "threshold":
            params = {"mean": [w.value for w in mean[:K]], "log_scale": [w.value for w in log_scale[:K]]}
        else:
            params = {"phi": [w.value for w in phi[:K]]}
            if inv == "gumbel-threshold":
                params.update(noise_loc=noise_loc.value, noise_log_scale=noise_log_scale.value)
        fig = Figure(figsize=(5.2, 5.0), layout="constrained")
        plot_q(inv, K, c, params, n_samples, seed, ax=fig.subplots(),
               title=f"{INVERSE_LABELS[inv]}: q(v | x={c})")
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=dpi)
        image.value = buffer.getvalue()

    k.observe(arrange, "value")  # before redraw: a smaller K first clamps x
    inverse.observe(arrange, "value")
    arrange()
    for control in [k, inverse, x, noise_loc, noise_log_scale, *mean, *log_scale, *phi]:
        control.observe(redraw, "value")
    redraw()
    return W.VBox([W.HBox([k, inverse, x]), threshold_box, gumbel_box, image])


# --------------------------------------------------------------------------- plotly (static pages)

_SLIDER_DEFAULTS = {
    # parameter moved by the slider, its label, and the fixed parameters around it (x = 0, K = 2)
    "threshold": ("mean of u_x", lambda t: {"mean": [t, 0.0], "log_scale": [0.0, 0.0]}),
    "gumbel": ("phi_1", lambda t: {"phi": [0.0, t]}),
    "gumbel-threshold": ("noise location m", lambda t: {"phi": [0.0, 0.0], "noise_loc": t,
                                                        "noise_log_scale": 0.0}),
}


def argmax_slider_figure(inverse: str = "threshold", values: Sequence[float] | None = None,
                         n_samples: int = 300, grid: int = 101, lim: tuple[float, float] = (-4.0, 5.0),
                         seed: int = 0):
    r"""A plotly figure of :math:`q(v|x=0)` for ``K = 2`` whose slider moves one parameter.

    Each slider step is precomputed (a heatmap of the exact density and a scatter of samples),
    so the slider works in a static page with no kernel. The parameter moved:

    - ``"threshold"``: the mean of :math:`u_x` (:math:`u_1 \sim \mathcal{N}(0, 1)`, unit scales);
    - ``"gumbel"``: :math:`\phi_1` (:math:`\phi_0 = 0`);
    - ``"gumbel-threshold"``: the location :math:`m` of the logistic noise (scale 1,
      :math:`\phi = 0`); at :math:`m = 0` it is the Gumbel inverse.

    Returns a ``plotly.graph_objects.Figure`` with one boundary line trace, then a heatmap and a
    scatter trace per value, and one slider with a step per value.
    """
    import plotly.graph_objects as go

    _check_inverse(inverse)
    label, make = _SLIDER_DEFAULTS[inverse]
    values = list(np.arange(-2.0, 2.01, 0.5) if values is None else values)
    if not values:
        raise ValueError("values must hold at least one parameter value")
    active = int(np.argmin(np.abs(np.asarray(values))))
    lo, hi = lim
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=[lo, hi], y=[lo, hi], mode="lines", name="v0 = v1",
                             line=dict(color="black", dash="dash", width=1.5), hoverinfo="skip"))
    for i, t in enumerate(values):
        params = make(float(t))
        v0, v1, dens = density_grid(inverse, 0, params, lim, grid)
        z = np.where(dens > 0, dens, np.nan).astype(np.float32)
        fig.add_trace(go.Heatmap(x=v0.astype(np.float32), y=v1.astype(np.float32), z=z,
                                 colorscale="Greys", zmin=0.0, visible=(i == active),
                                 colorbar=dict(title=dict(text="q(v|x=0)"), len=0.8), name="density",
                                 hovertemplate="v0=%{x:.2f}<br>v1=%{y:.2f}<br>q=%{z:.3f}<extra></extra>"))
        v, _ = sample_q(inverse, 0, params, n_samples, seed)
        fig.add_trace(go.Scatter(x=v[:, 0].astype(np.float32), y=v[:, 1].astype(np.float32),
                                 mode="markers", visible=(i == active), name="samples",
                                 marker=dict(size=4, color=CLASS_COLORS[0], opacity=0.7),
                                 hoverinfo="skip"))
    steps = []
    for i, t in enumerate(values):
        visible = [True] + [j // 2 == i for j in range(2 * len(values))]
        steps.append(dict(method="restyle", label=f"{t:g}", args=[{"visible": visible}]))
    fig.update_layout(
        title=dict(text=f"{INVERSE_LABELS[inverse]}: q(v | x=0), K = 2", x=0.02, xanchor="left",
                   y=0.98, yanchor="top"),
        sliders=[dict(active=active, steps=steps, currentvalue=dict(prefix=f"{label} = "),
                      pad=dict(t=40))],
        xaxis=dict(title=dict(text="v0"), range=[lo, hi], constrain="domain"),
        yaxis=dict(title=dict(text="v1"), range=[lo, hi], scaleanchor="x", scaleratio=1),
        showlegend=False, width=640, height=620, margin=dict(l=60, r=110, t=60, b=20),
        modebar=dict(orientation="v"),  # at the right edge, clear of the title
        plot_bgcolor="white",
        annotations=[dict(x=hi - 0.3, y=lo + 0.3, text="argmax = 0", showarrow=False, xanchor="right"),
                     dict(x=lo + 0.3, y=hi - 0.3, text="argmax = 1", showarrow=False, xanchor="left")],
    )
    return fig


# --------------------------------------------------------------------------- the bound, with a known p(v)


def fit_toy_q(inverse: str, probs: Sequence[float], steps: int = 300, batch: int = 512, lr: float = 0.05,
              seed: int = 0, eval_size: int = 1000, k: int = 100) -> dict:
    r"""Fit :math:`q(v|x)` to a *known* :math:`p(v)` and report the bound in bits.

    The model is :math:`p(v) = \prod_i \mathrm{Gumbel}(v_i \mid \log \pi_i)`, whose argmax has
    the distribution :math:`\pi` exactly (``probs``), and the data are drawn from :math:`\pi`, so
    :math:`\mathbb{E}[-\log_2 P(x)]` is the entropy of :math:`\pi`. Only :math:`q` is learned
    (Adam with a cosine learning-rate decay, ``steps`` steps of ``batch`` examples), starting
    from a neutral guess: for
    ``"threshold"`` a Gaussian :math:`q(u|x)` per class (means 0, log-scales 0); for ``"gumbel"``
    one :math:`\phi` shared by all classes (zeros); for ``"gumbel-threshold"`` that
    :math:`\phi` and a logistic noise per class (location 0, log-scale 0: uniform :math:`w`).
    The gap between the ELBO and the entropy is :math:`\mathbb{E}_x\,\mathrm{KL}(q(v|x) \,\|\, p(v|x))`.

    Returns a dict with ``elbo_bits_start``, ``elbo_bits``, ``iwbo_bits`` (``k`` samples),
    ``entropy_bits``, all in bits per example and computed class by class (``eval_size`` draws
    of :math:`q(v|x)` for each class, weighted by :math:`\\pi_x`), and the fitted ``params``.
    """
    _check_inverse(inverse)
    probs_t = torch.as_tensor(probs, dtype=torch.float64)
    if probs_t.dim() != 1 or (probs_t <= 0).any() or abs(float(probs_t.sum()) - 1) > 1e-9:
        raise ValueError(f"probs must be a 1-d vector of positive probabilities summing to 1, got {probs!r}")
    K = probs_t.shape[0]
    phi_p = torch.log(probs_t)
    zeros = lambda *shape: torch.zeros(*shape, dtype=torch.float64, requires_grad=True)  # noqa: E731
    if inverse == "threshold":
        learned = {"mean": zeros(K, K), "log_scale": zeros(K, K)}
    elif inverse == "gumbel":
        learned = {"phi": zeros(K)}
    else:
        learned = {"phi": zeros(K), "noise_loc": zeros(K, K), "noise_log_scale": zeros(K, K)}

    def params_of(x: Tensor) -> dict:
        return {name: (p[x] if p.dim() == 2 else p) for name, p in learned.items()}

    generator = torch.Generator().manual_seed(seed)

    def bound(x: Tensor, samples: int) -> Tensor:
        xs = x.repeat_interleave(samples)
        v, lq = sample_toy_q(inverse, xs, params_of(xs), generator)
        w = (Gumbel(phi_p).log_prob(v).sum(-1) - lq).view(-1, samples)
        return torch.logsumexp(w, -1) - math.log(samples)

    # evaluation: every class, ``eval_size`` draws of q each, weighted by its probability, so
    # the only noise left in the numbers is that of q (none at all for the exact posterior)
    x_eval = torch.arange(K).repeat_interleave(eval_size)

    def expected_bits(samples: int) -> float:
        with torch.no_grad():
            per_class = bound(x_eval, samples).view(K, eval_size).mean(-1)
        return float(-(probs_t * per_class).sum()) / math.log(2)

    entropy_bits = float(-(probs_t * torch.log2(probs_t)).sum())
    start = expected_bits(1)
    opt = torch.optim.Adam(list(learned.values()), lr=lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(steps, 1))
    for _ in range(steps):
        x = torch.multinomial(probs_t, batch, replacement=True, generator=generator)
        loss = -bound(x, 1).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        schedule.step()
    elbo, iwbo = expected_bits(1), expected_bits(k)
    return {"inverse": inverse, "elbo_bits_start": start, "elbo_bits": elbo, "iwbo_bits": iwbo,
            "entropy_bits": entropy_bits, "steps": steps, "k": k,
            "params": {name: p.detach().clone() for name, p in learned.items()}}



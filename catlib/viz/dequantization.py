r"""Helpers for chapter 1 (dequantization): a 1-d mixture that collapses onto integers, and
densities, cell masses and plots of hypercube-dequantized models on the plane (``K = 2``).

Plot functions draw on a given matplotlib ``Axes`` (or make a figure) and return it; they
never call ``plt.show()``. Numerical helpers return tensors or plain floats.
"""
from __future__ import annotations

import math
from typing import Callable, Mapping, Sequence

import numpy as np
import torch
from torch import Tensor
from torch.nn import functional as F

__all__ = [
    "MixtureFit", "mixture_log_prob", "mixture_interval_log_prob", "fit_gaussian_mixture_1d",
    "plot_mixture_collapse", "variational_log_q", "density_grid", "cell_masses",
    "draw_cells", "plot_density_2d", "plot_training_curves", "plot_samples_vs_data",
]

_LN2 = math.log(2.0)


# ---------------------------------------------------------------------------------------------
# 1. A continuous density fitted to integers
# ---------------------------------------------------------------------------------------------


class MixtureFit(dict):
    """What :func:`fit_gaussian_mixture_1d` returns (a dict with attribute access).

    Keys: ``means [C]``, ``logits [C]``, ``log_sigma`` (a float, the shared log-width, final),
    ``sigma_history [steps + 1]`` and ``objective_history [steps]`` (mean log-density of the
    training batch per step, nats), ``dequantize`` (bool).
    """

    __getattr__ = dict.__getitem__


def mixture_log_prob(v: Tensor, means: Tensor, logits: Tensor, log_sigma: Tensor | float) -> Tensor:
    r"""Log-density of a Gaussian mixture with one shared width, ``v [N] -> [N]`` (nats).

    .. math:: \log p(v) = \log \sum_c \pi_c\, \mathcal{N}(v;\ \mu_c, \sigma^2),
              \qquad \pi = \operatorname{softmax}(\text{logits})
    """
    log_sigma = torch.as_tensor(log_sigma, dtype=v.dtype)
    z = (v.unsqueeze(-1) - means) * torch.exp(-log_sigma)
    log_n = -0.5 * z**2 - log_sigma - 0.5 * math.log(2 * math.pi)
    return torch.logsumexp(torch.log_softmax(logits, -1) + log_n, -1)


def mixture_interval_log_prob(x: Tensor, means: Tensor, logits: Tensor, log_sigma: float) -> Tensor:
    r"""Exact :math:`\log \int_x^{x+1} p(v)\,dv` of the mixture, ``x [N] -> [N]`` (nats).

    The probability the mixture gives to the unit cell of the integer ``x``: the discrete
    model that uniform dequantization lower-bounds.
    """
    x = x.double()
    sigma = math.exp(log_sigma)
    normal = torch.distributions.Normal(means.double(), sigma)
    mass = normal.cdf(x.unsqueeze(-1) + 1) - normal.cdf(x.unsqueeze(-1))
    return torch.log((torch.softmax(logits.double(), -1) * mass).sum(-1))


def fit_gaussian_mixture_1d(data: Tensor, centres: Tensor, steps: int = 300, lr: float = 0.05,
                            dequantize: bool = False, seed: int = 0) -> MixtureFit:
    r"""Fit the weights and the shared width of a Gaussian mixture with fixed ``centres`` by Adam.

    Without dequantization the data are the integers themselves: with a component on each
    integer, the gradient of the mean log-density with respect to :math:`\log\sigma` stays
    near :math:`-1` however small :math:`\sigma` is, so the width keeps shrinking and the
    objective grows like :math:`-\log\sigma`, without bound. With ``dequantize=True`` each
    step sees :math:`x + u`, :math:`u \sim U[0, 1)` (fresh noise every step), and the
    objective is the dequantization lower bound on :math:`\log P(x)`, which cannot exceed
    :math:`-H(\text{data})`.

    The centres are fixed so that the run is smooth and the point is only the width; letting
    them move as well ends in the same collapse, less smoothly.

    Args:
        data: ``[N]`` integers (LongTensor).
        centres: ``[C]`` component means, e.g. the distinct values (or values + 0.5 for ``x + u``).
        steps: full-batch Adam steps.
        lr: Adam learning rate.
        dequantize: add uniform noise at every step.
        seed: seeds the noise.

    Returns:
        a :class:`MixtureFit`.
    """
    if data.dtype != torch.long or data.dim() != 1:
        raise ValueError(f"data must be a 1-d LongTensor of integers, got dtype {data.dtype} "
                         f"and shape {tuple(data.shape)}")
    steps = int(steps)
    if steps < 1:
        raise ValueError(f"steps must be a positive integer, got {steps}")
    means = torch.as_tensor(centres, dtype=torch.float64).flatten()
    gen = torch.Generator().manual_seed(seed)
    logits = torch.zeros(len(means), dtype=torch.float64, requires_grad=True)
    log_sigma = torch.zeros((), dtype=torch.float64, requires_grad=True)
    opt = torch.optim.Adam([logits, log_sigma], lr=lr)
    x = data.double()
    sigmas, objective = [math.exp(log_sigma.item())], []
    for _ in range(steps):
        v = x + torch.rand(x.shape, generator=gen, dtype=torch.float64) if dequantize else x
        loss = -mixture_log_prob(v, means, logits, log_sigma).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        objective.append(-loss.item())
        sigmas.append(math.exp(log_sigma.item()))
    return MixtureFit(means=means, logits=logits.detach(), log_sigma=log_sigma.item(),
                      sigma_history=np.array(sigmas), objective_history=np.array(objective),
                      dequantize=dequantize)


def plot_mixture_collapse(values: Sequence[int], probs: Sequence[float], raw: MixtureFit,
                          deq: MixtureFit, entropy_bits: float, fig=None):
    """Two panels: the fitted densities over the data, and the objective (bits) over the steps."""
    import matplotlib.pyplot as plt

    fig = fig or plt.figure(figsize=(11, 3.8))
    ax1, ax2 = fig.subplots(1, 2)
    values = np.asarray(values)
    lo, hi = values.min() - 1.0, values.max() + 2.0
    grid = torch.linspace(lo, hi, 4001, dtype=torch.float64)
    ax1.bar(values + 0.5, probs, width=1.0, color="0.88", edgecolor="0.6", label="P(x) spread over [x, x+1)")
    ax1.vlines(values, 0, probs, color="k", lw=2)
    ax1.plot(values, probs, "ko", ms=5, label="data: P(x) at the integers")
    for fit, colour, name in [(raw, "C3", "fitted to x"), (deq, "C0", "fitted to x + u")]:
        dens = mixture_log_prob(grid, fit.means, fit.logits, fit.log_sigma).exp()
        ax1.plot(grid, dens, color=colour, lw=1.2, label=f"{name}: σ = {math.exp(fit.log_sigma):.1e}")
    ax1.set_yscale("log")
    ax1.set_ylim(1e-3, 1e11)  # room above the spikes for the legend
    ax1.set_xlabel("v")
    ax1.set_ylabel("density (log scale)")
    ax1.set_title("fitted densities")
    ax1.legend(fontsize=8, loc="upper center", ncol=2)

    steps = np.arange(1, len(raw.objective_history) + 1)
    ax2.plot(steps, raw.objective_history / _LN2, color="C3", label="mean log p(x), integers")
    ax2.plot(steps, deq.objective_history / _LN2, color="C0", label="mean log p(x + u), dequantized")
    ax2.axhline(-entropy_bits, color="k", ls="--", lw=1, label=f"-H(data) = {-entropy_bits:.2f} bits")
    ax2.set_xlabel("gradient step")
    ax2.set_ylabel("bits per value")
    ax2.set_title("training objective")
    ax2.legend(fontsize=8)
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------------------------------------
# 2-3. Hypercube dequantization on the plane (K = 2)
# ---------------------------------------------------------------------------------------------


def variational_log_q(layer, u: Tensor, x: Tensor) -> Tensor:
    r"""Log-density :math:`\log q(u \mid x)` of a :class:`~catlib.dequantization.VariationalDequantization`
    at given points ``u [batch, D*K]`` in :math:`(0, 1)^{D K}`, for classes ``x [batch, D]``.

    The layer only samples; here we run its conditional flow backwards:
    :math:`s = \operatorname{logit}(u)`, :math:`\varepsilon = f^{-1}(s; x)`, and

    .. math:: \log q(u|x) = \log q_{base}(\varepsilon|x) - \log|\det \partial f/\partial\varepsilon|
              - \sum \log \sigma'(s).
    """
    h = layer.onehot(x)
    s = torch.logit(u)
    eps = s
    for t in reversed(layer.q_s.transforms):
        eps = t.inverse(eps, h)
    log_q = layer.q_s.base.log_prob(eps, h)
    z = eps
    for t in layer.q_s.transforms:
        z, ldj = t(z, h)
        log_q = log_q - ldj
    return log_q + (F.softplus(-s) + F.softplus(s)).sum(-1)


@torch.no_grad()
def density_grid(log_prob: Callable[[Tensor], Tensor], lim: tuple[float, float] = (-0.5, 2.5), n: int = 200,
                 batch: int = 8192) -> tuple[np.ndarray, np.ndarray]:
    """Evaluate a 2-d ``log_prob: [b, 2] -> [b]`` at the midpoints of an ``n x n`` grid on ``lim^2``.

    Returns ``(centres [n], log p [n, n])`` with ``log_p[i, j]`` at ``(v1, v2) = (centres[j], centres[i])``
    (rows are ``v2``, as ``imshow`` wants).
    """
    lo, hi = lim
    step = (hi - lo) / n
    c = torch.linspace(lo + step / 2, hi - step / 2, n)
    v2, v1 = torch.meshgrid(c, c, indexing="ij")
    pts = torch.stack([v1.flatten(), v2.flatten()], -1)
    out = torch.cat([log_prob(p) for p in pts.split(batch)])
    return c.numpy(), out.view(n, n).double().numpy()


@torch.no_grad()
def cell_masses(log_prob: Callable[[Tensor], Tensor], n: int = 200) -> dict:
    r"""Probability of each unit cell of :math:`\{0,1\}^2` under a 2-d density, by the midpoint rule.

    Returns ``{(0, 0): m, (1, 0): m, (0, 1): m, (1, 1): m, "outside": 1 - sum}``; the key is
    the cell's lower corner, so ``(1, 0)`` is the cell of ``onehot(0)`` and ``(0, 1)`` that of
    ``onehot(1)``. ``n`` points per unit length and axis.
    """
    centres, logp = density_grid(log_prob, (0.0, 2.0), 2 * n)
    p = np.exp(logp) * (1.0 / n) ** 2
    out = {}
    for a in (0, 1):
        for b in (0, 1):
            # rows are v2 (b), columns v1 (a)
            out[(a, b)] = float(p[b * n:(b + 1) * n, a * n:(a + 1) * n].sum())
    out["outside"] = 1.0 - sum(out.values())
    return out


def draw_cells(ax, used: Mapping[tuple[int, int], str] | None = None, color: str = "w", fontsize: int = 9):
    """Outline the four unit cells of :math:`\\{0,1\\}^2`; ``used`` maps a corner to a label
    (e.g. ``{(1, 0): "x = 0"}``), the others are marked as unused."""
    from matplotlib.patches import Rectangle

    used = used or {}
    for a in (0, 1):
        for b in (0, 1):
            is_used = (a, b) in used
            ax.add_patch(Rectangle((a, b), 1, 1, fill=False, ec=color, lw=1.5 if is_used else 0.8,
                                   ls="-" if is_used else ":"))
            label = used.get((a, b), f"({a},{b}): unused")
            ax.text(a + 0.5, b + 0.5, label, color=color, ha="center", va="center", fontsize=fontsize,
                    fontweight="bold" if is_used else "normal")
    ax.plot([1, 0], [0, 1], "o", color=color, ms=5)
    return ax


def plot_density_2d(ax, centres: np.ndarray, logp: np.ndarray, used: Mapping[tuple[int, int], str],
                    samples: Tensor | np.ndarray | None = None, title: str = "", vmin: float = -8.0,
                    cmap: str = "magma"):
    """Heatmap of ``log p(v)`` (from :func:`density_grid`) with the unit cells and optional samples."""
    step = centres[1] - centres[0]
    extent = (centres[0] - step / 2, centres[-1] + step / 2) * 2
    im = ax.imshow(np.maximum(logp, vmin), origin="lower", extent=extent, cmap=cmap, vmin=vmin,
                   interpolation="nearest")
    draw_cells(ax, used)
    if samples is not None:
        s = np.asarray(samples)
        ax.scatter(s[:, 0], s[:, 1], s=2, c="c", alpha=0.6, lw=0)
    ax.set_xlim(extent[0], extent[1])
    ax.set_ylim(extent[2], extent[3])
    ax.set_xlabel("$v_1$")
    ax.set_ylabel("$v_2$")
    ax.set_title(title)
    ax.set_aspect("equal")
    return im


# ---------------------------------------------------------------------------------------------
# 4. Training curves and samples
# ---------------------------------------------------------------------------------------------


def _smooth(y: np.ndarray, window: int) -> np.ndarray:
    if window <= 1 or len(y) < window:
        return y
    kernel = np.ones(window) / window
    return np.convolve(y, kernel, mode="valid")


def plot_training_curves(ax, curves: Mapping[str, Sequence[float]], entropy_bits: float | None = None,
                         window: int = 20, num_vars: int = 1, ylim: tuple[float, float] | None = None):
    """Training loss (nats per example, as :class:`~catlib.train.FitResult` stores it) in bits per
    variable, smoothed with a running mean of ``window`` steps, one line per run."""
    for i, (name, losses) in enumerate(curves.items()):
        y = np.asarray(losses, dtype=float) / (_LN2 * num_vars)
        ys = _smooth(y, window)
        x = np.arange(len(y) - len(ys) + 1, len(y) + 1)
        ax.plot(np.arange(1, len(y) + 1), y, color=f"C{i}", alpha=0.2, lw=0.8)
        ax.plot(x, ys, color=f"C{i}", label=name)
    if entropy_bits is not None:
        ax.axhline(entropy_bits, color="k", ls="--", lw=1, label=f"data entropy {entropy_bits:.2f} bits")
    ax.set_xlabel("training step")
    ax.set_ylabel("-ELBO of the batch (bits)")
    if ylim is not None:
        ax.set_ylim(*ylim)
    ax.legend(fontsize=8)
    return ax


def plot_samples_vs_data(ax, probs: Tensor | np.ndarray, samples: Mapping[str, Tensor]):
    """True class probabilities as bars, and each model's sample frequencies as markers."""
    probs = np.asarray(probs, dtype=float)
    k = np.arange(len(probs))
    ax.bar(k, probs, color="0.8", label="data P(x)")
    for i, (name, s) in enumerate(samples.items()):
        s = torch.as_tensor(s).flatten()
        freq = torch.bincount(s, minlength=len(probs)).double() / len(s)
        ax.plot(k, freq.numpy(), "o", ms=3.5, color=f"C{i}", label=f"{name} ({len(s)} samples)")
    ax.set_xlabel("class x")
    ax.set_ylabel("probability")
    ax.legend(fontsize=8)
    return ax

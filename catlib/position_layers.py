r"""One categorical layer applied at every position of a padded batch: CatNF, TRUFL or argmax thresholding.

Graph models lift categories position by position (a node's colour, an atom's type, a bond's
order) to latents that a flow prior then models jointly. The layer at each position is one of

- ``"catnf"``: CatNF's logistic dequantizer with the Bayes-optimal decoder
  (:meth:`catlib.encodings.CategoricalEncoding.catnf`), ``d = latent_dim`` numbers per position;
- ``"trufl"``: TRUFL's truncated dequantizer (:meth:`~catlib.encodings.CategoricalEncoding.trufl`),
  ``d = latent_dim``; a latent outside every class's support decodes to nothing, which rejection
  sampling avoids;
- ``"argmax-threshold"``: the argmax surjection with the thresholding inverse
  (:class:`catlib.argmax.ThresholdInverse`), ``d = K`` numbers per position and
  :math:`\log p(x_i \mid z_i) = 0`.

The layer treats every position of ``x [B, L]`` as a one-variable example (the encodings take
any number of positions; the threshold inverse is built with ``num_vars=1``), so a position's
latent depends on its own category only and padded positions (``mask [B, L]`` False) are
dropped from the terms by the mask: whatever they hold changes nothing.

These are functions of the layer (:func:`make_position_layer`) rather than a wrapping module,
so that models keep the layer itself as an attribute (and their checkpoints its parameter names).
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from catlib.argmax import ThresholdInverse
from catlib.encodings import CategoricalEncoding

__all__ = ["POSITION_LAYERS", "make_position_layer", "latent_size", "position_terms", "position_supported",
           "decode_positions"]

#: The layer names :func:`make_position_layer` builds.
POSITION_LAYERS = ("catnf", "argmax-threshold", "trufl")


def make_position_layer(name: str, num_classes: int, latent_dim: int = 2, q_flow_steps: int = 2,
                        q_hidden: tuple[int, ...] = (64,), init_spread: float = 1.0, init_truncation: float = 2.0,
                        support_temperature: float = 0.0, seed: int = 0) -> nn.Module:
    """The layer ``name`` for one position with ``num_classes`` categories (see the module docstring).

    >>> layer = make_position_layer("trufl", 4, latent_dim=3)
    >>> latent_size(layer), latent_size(make_position_layer("argmax-threshold", 4))
    (3, 4)
    """
    if name not in POSITION_LAYERS:
        raise ValueError(f"name must be one of {list(POSITION_LAYERS)}, got {name!r}")
    if name == "argmax-threshold":
        return ThresholdInverse(1, num_classes, flow_steps=q_flow_steps, hidden=q_hidden)
    if name == "trufl":
        return CategoricalEncoding.trufl(1, num_classes, latent_dim, init_spread=init_spread, seed=seed,
                                         init_truncation=init_truncation, support_temperature=support_temperature)
    return CategoricalEncoding.catnf(1, num_classes, latent_dim, init_spread=init_spread, seed=seed)


def _is_argmax(layer: nn.Module) -> bool:
    return isinstance(layer, ThresholdInverse)


def _is_truncated(layer: nn.Module) -> bool:
    return isinstance(layer, CategoricalEncoding) and layer.truncated


def latent_size(layer: nn.Module) -> int:
    """``d``, the latent numbers per position."""
    return layer.num_classes if _is_argmax(layer) else layer.latent_dim


def position_terms(layer: nn.Module, x: Tensor, mask: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    r"""One latent per position and its terms: ``z [B, L, d]`` drawn from :math:`q(z|x)`,
    :math:`\log p(x_i|z_i)` ``[B, L]`` and :math:`\log q(z_i|x_i)` ``[B, L]``, both 0 at padding.

    ``x [B, L]`` long must hold valid categories at padded positions too (callers put 0 there).
    """
    b, n = x.shape
    if _is_argmax(layer):
        v, log_q = layer.sample(x.reshape(b * n, 1))
        z, log_q = v.view(b, n, layer.num_classes), log_q.view(b, n)
        log_px_z = torch.zeros_like(log_q)
    else:
        z, log_px_z, log_q = layer.variable_terms(x)
    zero = torch.zeros((), dtype=log_q.dtype, device=log_q.device)
    return z, torch.where(mask, log_px_z.to(log_q.dtype), zero), torch.where(mask, log_q, zero)


def position_supported(layer: nn.Module, z: Tensor) -> Tensor:
    """``[B, L]`` bool: the latent lies in some category's support (always True but for TRUFL)."""
    if not _is_truncated(layer):
        return torch.ones(z.shape[:2], dtype=torch.bool, device=z.device)
    return torch.isfinite(layer.log_q_all(z)).any(-1)


@torch.no_grad()
def decode_positions(layer: nn.Module, z: Tensor, mask: Tensor, truncate: bool = True, greedy: bool = False,
                     generator: torch.Generator | None = None) -> Tensor:
    """Categories ``[B, L]`` from latents ``z [B, L, d]`` (0 at padded positions).

    Argmax: the argmax of the position's ``K`` numbers. CatNF / TRUFL: a draw from the optimal
    decoder :math:`p(x_i|z_i)` (``greedy``: its most likely category); ``truncate=False`` uses the
    densities continued outside their supports (TRUFL without rejection sampling, as the paper
    does), and a latent outside every support falls back to them too.
    """
    if _is_argmax(layer):
        x = z.argmax(-1)
    else:
        joint = layer.log_q_all(z, truncate=truncate) + layer.log_class_prior
        if truncate and _is_truncated(layer):
            outside = ~torch.isfinite(joint).any(-1, keepdim=True)
            if outside.any():
                joint = torch.where(outside, layer.log_q_all(z, truncate=False) + layer.log_class_prior, joint)
        logits = joint - torch.logsumexp(joint, -1, keepdim=True)
        if greedy:
            x = logits.argmax(-1)
        else:
            probs = logits.exp().reshape(-1, layer.num_classes)
            x = torch.multinomial(probs.cpu() if generator is not None and generator.device.type == "cpu"
                                  else probs, 1, generator=generator).view(z.shape[:2]).to(z.device)
    return torch.where(mask, x, torch.zeros_like(x))

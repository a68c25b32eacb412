"""Normalizing flows on vectors and images: the interface, couplings, linear layers and standard stacks."""
from __future__ import annotations

from catlib.flows.autoregressive import (ARMixtureLogisticFlow, MixtureParams, mixture_logistic_inverse,
                                         mixture_logistic_logit_cdf, mixture_logistic_params,
                                         mixture_logistic_transform)
from catlib.flows.base import ConditionalFlow, Flow, Transform
from catlib.flows.graph import GRAPH_COUPLINGS, GraphAffineCoupling, GraphFlow, GraphMixtureCoupling, NodeActNorm, NodeLinear
from catlib.flows.coupling import AffineCoupling, MixtureLogisticCoupling, checkerboard_mask
from catlib.flows.image import (ActNorm2d, AffineCoupling2d, Conv1x1, FlatImageNet, ImageFlowTransform, MultiScale,
                               Squeeze,
                               conditional_image_flow, conditional_image_flow_factory, image_flow, to_flat,
                               to_image)
from catlib.flows.linear import ActNorm, LinearLU, Permutation
from catlib.validation import check_choice, check_positive_int, check_positive_ints

__all__ = [
    "Transform", "Flow", "ConditionalFlow", "AffineCoupling", "MixtureLogisticCoupling",
    "checkerboard_mask", "ActNorm", "Permutation", "LinearLU", "coupling_stack",
    "Squeeze", "ActNorm2d", "Conv1x1", "AffineCoupling2d", "MultiScale", "ImageFlowTransform", "FlatImageNet",
    "image_flow",
    "conditional_image_flow", "conditional_image_flow_factory", "to_image", "to_flat",
    "GraphFlow", "NodeActNorm", "NodeLinear", "GraphAffineCoupling", "GraphMixtureCoupling", "GRAPH_COUPLINGS",
    "ARMixtureLogisticFlow", "MixtureParams", "mixture_logistic_inverse", "mixture_logistic_logit_cdf",
    "mixture_logistic_params", "mixture_logistic_transform",
]

COUPLINGS = {"affine": AffineCoupling, "mixture": MixtureLogisticCoupling}


def coupling_stack(dim: int, num_steps: int = 4, hidden: tuple[int, ...] = (128, 128),
                   coupling: str = "affine", context_dim: int = 0, actnorm: bool = True,
                   mixing: str = "linear", seed: int = 0) -> list[Transform]:
    """``num_steps`` x [actnorm, mixing layer, coupling]: a Glow-style stack for vectors.

    Args:
        dim: event size (for ``dim == 1`` only actnorm layers are used: a coupling needs two
            coordinates).
        coupling: ``"affine"`` or ``"mixture"`` (mixture of logistics).
        context_dim: size of the conditioning vector (0 for an unconditional flow).
        mixing: ``"linear"`` (LU linear layer) or ``"reverse"`` (fixed reversal).

    Raises ``ValueError`` for a bad option, e.g. ``num_steps < 0`` or ``hidden`` not a tuple of
    positive integers.

    >>> len(coupling_stack(6, num_steps=2))
    6
    """
    check_choice("coupling", coupling, tuple(COUPLINGS))
    check_choice("mixing", mixing, ("linear", "reverse"))
    num_steps = check_positive_int("num_steps", num_steps, minimum=0)
    hidden = check_positive_ints("hidden", hidden)
    layers: list[Transform] = []
    for i in range(num_steps):
        if actnorm:
            layers.append(ActNorm(dim))
        if dim < 2:
            continue
        layers.append(LinearLU(dim, seed=seed + i) if mixing == "linear" else Permutation(dim))
        # the checkerboard keeps coordinates i % 2 == parity fixed; a reversal (i -> dim - 1 - i)
        # already swaps the two sets when dim is even, and alternating the parity as well would
        # undo it, leaving half of the coordinates untransformed
        parity = 0 if mixing == "reverse" and dim % 2 == 0 else i % 2
        layers.append(COUPLINGS[coupling](dim, parity=parity, context_dim=context_dim, hidden=hidden))
    return layers

r"""A variational autoencoder for categorical data, as a stochastic layer between ``x`` and a latent ``z``.

The baseline of the argmax-flow papers' image tables, "VAE (flow prior, flow variational
posterior)": a continuous latent :math:`z`, a categorical decoder :math:`p(x \mid z)`, an
encoder :math:`q(z \mid x)` that is a conditional flow and a prior :math:`p(z)` that is a flow.
With one importance sample it gives the ELBO, with ``k`` the IWBO (Burda et al., 2016):

.. math:: \log P(x) \ge \log \frac{1}{k} \sum_{j=1}^{k}
          \frac{p(z_j)\, p(x \mid z_j)}{q(z_j \mid x)},\qquad z_j \sim q(\cdot \mid x).

In survae_flows' terms a VAE is a layer that is stochastic in both directions: ``forward``
samples :math:`z \sim q(z|x)` and contributes :math:`\log p(x|z) - \log q(z|x)` to the
log-weight, ``inverse`` samples :math:`x \sim p(x|z)`. :class:`VAELayer` is that layer, and
:class:`~catlib.models.CategoricalFlow` with the prior flow around it is the whole model
(``build_model("vae", ...)``), so the bound is computed by the same
:func:`~catlib.metrics.importance_weighted` as every other model.

Shapes: ``x [batch, D]`` class indices (flattened, pixel-major for maps); ``z [batch, latent_dim]``.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from catlib.argmax import flat_onehot
from catlib.flows import ConditionalFlow

__all__ = ["CategoricalDecoder", "VAELayer"]


class CategoricalDecoder(nn.Module):
    r"""Factorised categorical :math:`p(x \mid z) = \prod_d \operatorname{softmax}(f(z)_d)_{x_d}`.

    Args:
        net: ``f``, maps ``z [batch, latent_dim]`` to logits ``[batch, D * K]`` laid out
            variable-major, class-minor (as :func:`~catlib.argmax.flat_onehot`).
        num_vars: ``D``.
        num_classes: ``K``.

    >>> dec = CategoricalDecoder(nn.Linear(2, 3 * 4), 3, 4)
    >>> z = torch.randn(5, 2)
    >>> dec.log_prob(torch.zeros(5, 3, dtype=torch.long), z).shape, dec.sample(z).shape
    (torch.Size([5]), torch.Size([5, 3]))
    """

    def __init__(self, net: nn.Module, num_vars: int, num_classes: int):
        super().__init__()
        self.net, self.num_vars, self.num_classes = net, num_vars, num_classes

    def log_probs(self, z: Tensor) -> Tensor:
        """Normalised log-probabilities of every class, ``[batch, D, K]``."""
        return torch.log_softmax(self.net(z).view(z.shape[0], self.num_vars, self.num_classes), -1)

    def log_prob(self, x: Tensor, z: Tensor) -> Tensor:
        """``log p(x | z)``, ``x [batch, D]``, ``z [batch, latent_dim]`` -> ``[batch]``."""
        return self.log_probs(z).gather(-1, x.unsqueeze(-1)).squeeze(-1).sum(-1)

    @torch.no_grad()
    def sample(self, z: Tensor) -> Tensor:
        """A sample ``x ~ p(x | z)``, ``[batch, D]`` (not the most likely ``x``)."""
        probs = self.log_probs(z).exp().view(-1, self.num_classes)
        return torch.multinomial(probs, 1).view(z.shape[0], self.num_vars)


class VAELayer(nn.Module):
    r"""``x <-> z`` through an encoder flow and a categorical decoder, stochastic both ways.

    ``forward(x) -> (z, ldj)``: :math:`z \sim q(z \mid x)` (the encoder conditioned on the
    one-hot of ``x``, reparametrised) and

    .. math:: \mathrm{ldj} = \log p(x \mid z) - \log q(z \mid x),

    so that a prior flow :math:`p(z)` adds the missing term of the log-weight
    :math:`\log p(z) + \log p(x|z) - \log q(z|x)`. ``inverse(z)`` is a **sample** of
    :math:`p(x \mid z)`, not its argmax: the model whose bound ``log_prob`` reports is the one
    that samples the decoder, and the argmax of each pixel would be a different (and, for
    uncertain pixels, sharper) model.

    Args:
        encoder: :math:`q(z \mid x)`, a conditional flow on ``[batch, latent_dim]`` given the
            one-hot ``[batch, D * K]`` (:func:`~catlib.argmax.conditional_flow` or
            :func:`~catlib.flows.conditional_image_flow` with a normal base).
        decoder: :math:`p(x \mid z)`.
        latent_dim: size of ``z``.
    """

    stochastic_forward = True

    def __init__(self, encoder: ConditionalFlow, decoder: CategoricalDecoder, latent_dim: int):
        super().__init__()
        self.encoder, self.decoder, self.latent_dim = encoder, decoder, latent_dim

    @property
    def dim(self) -> int:
        """Size of the latent ``z`` on which the prior flow lives."""
        return self.latent_dim

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        z, log_q = self.encoder.sample_with_log_prob(flat_onehot(x, self.decoder.num_classes))
        return z, self.decoder.log_prob(x, z) - log_q

    def inverse(self, z: Tensor) -> Tensor:
        return self.decoder.sample(z)

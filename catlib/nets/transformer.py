r"""A time-conditioned transformer denoiser for sequences of categories (multinomial text diffusion).

It follows the denoiser of the official multinomial-diffusion code for text8 and enwik8
(Hoogeboom et al., 2021, section 6.1: "the :math:`\mu` network is modeled by a 12-layer
Transformer"):

- ``ehoogeboom/multinomial_diffusion``, ``text_diffusion/layers/transformer.py``
  (``LinearAttentionTransformerEmbedding``, ``SinusoidalPosEmb``): token embedding plus an axial
  positional embedding; the timestep embedded sinusoidally (rescaled to 4000 steps), passed
  through an MLP that emits one vector per layer, *added to the input of every layer*; a final
  LayerNorm and a linear map to the logits.
- ``text_diffusion/model.py`` (``DynamicsTransformer``, ``Rezero``): the logits multiplied by a
  learned scalar that starts at 0, so an untrained model predicts the uniform :math:`\hat x_0`.
- ``text_diffusion/README.md``: the run commands, which set the sizes in
  :data:`TEXT8_TRANSFORMER` and :data:`ENWIK8_TRANSFORMER`; ``text_diffusion/datasets/data.py``:
  sequence lengths 256 (text8, 27 classes) and 320 (enwik8, 256 classes).
- Each layer is one ``LinearAttentionTransformer`` of depth 1 from ``lucidrains/
  linear-attention-transformer`` (``linear_attention_transformer/linear_attention_transformer.py``):
  pre-LayerNorm residual self-attention and feed-forward (GELU, 4x wider). Of the ``heads`` heads
  the first ``local_heads`` attend with softmax attention inside a window (a query in block
  ``i // w`` sees the keys of blocks ``i // w - 1 .. i // w + 1``, the non-causal
  ``LocalAttention``); the others use linear attention (Shen et al., 2021):
  :math:`\operatorname{softmax}_{feat}(Q)\,(\operatorname{softmax}_{seq}(K)^\top V)`, which sees
  the whole sequence. The axial positional embedding is ``lucidrains/axial-positional-embedding``
  with axial shape ``(L / w, w)``: position ``i`` gets :math:`e_{\lfloor i/w \rfloor} + e'_{i \bmod w}`.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from catlib.validation import check_float, check_positive_int

__all__ = ["TimeTransformer", "TEXT8_TRANSFORMER", "ENWIK8_TRANSFORMER"]

TEXT8_TRANSFORMER: dict = {"layers": 12, "width": 512, "heads": 16, "local_heads": 8, "local_window": 128,
                           "ff_mult": 4, "dropout": 0.0}
"""The official text8 denoiser (``text_diffusion/README.md`` run command: ``--transformer_depth 12
--transformer_heads 16 --transformer_local_heads 8``; ``text_diffusion/model.py`` defaults:
``--transformer_dim 512``, ``--transformer_local_size 128``, ``--transformer_blocks 1``,
``--input_dp_rate 0.0``), for sequences of 256 characters, 27 classes, ``T = 1000``. About
51M parameters, 14M of them in the time MLP."""

ENWIK8_TRANSFORMER: dict = {**TEXT8_TRANSFORMER, "local_window": 80}
"""The official enwik8 denoiser: as text8 but ``--transformer_local_size 80``, for sequences of 320
bytes (axial shape 4 x 80), 256 classes, ``T = 4000``."""

_TIME_RESCALE = 4000.0  # SinusoidalPosEmb(rescale_steps=4000) in text_diffusion/layers/transformer.py


class _SelfAttention(nn.Module):
    """Multi-head self-attention: ``local_heads`` windowed softmax heads, the rest linear-attention heads."""

    def __init__(self, width: int, heads: int, local_heads: int, local_window: int, seq_len: int, dropout: float):
        super().__init__()
        self.heads, self.local_heads = heads, local_heads
        self.to_q = nn.Linear(width, width, bias=False)
        self.to_k = nn.Linear(width, width, bias=False)
        self.to_v = nn.Linear(width, width, bias=False)
        self.to_out = nn.Linear(width, width)
        self.dropout = nn.Dropout(dropout)
        block = torch.arange(seq_len) // local_window
        # non-causal LocalAttention with look_backward = look_forward = 1: own block and both neighbours
        self.register_buffer("local_mask", (block[:, None] - block[None, :]).abs() <= 1, persistent=False)

    def forward(self, h: Tensor) -> Tensor:
        b, length, width = h.shape
        q, k, v = (f(h).view(b, length, self.heads, -1).transpose(1, 2) for f in (self.to_q, self.to_k, self.to_v))
        n, out = self.local_heads, []
        if n > 0:   # softmax(q k^T / sqrt(d)) v inside the window
            out.append(F.scaled_dot_product_attention(q[:, :n], k[:, :n], v[:, :n], attn_mask=self.local_mask))
        if n < self.heads:   # linear attention: softmax over features for q, over positions for k
            context = k[:, n:].softmax(dim=-2).transpose(-2, -1) @ v[:, n:]       # [b, h, d, d]
            out.append(q[:, n:].softmax(dim=-1) @ context)
        a = torch.cat(out, dim=1).transpose(1, 2).reshape(b, length, width)
        return self.dropout(self.to_out(a))


class _Layer(nn.Module):
    """Pre-norm residual attention and feed-forward: ``h + attn(LN(h))``, then ``h + ff(LN(h))``."""

    def __init__(self, width: int, heads: int, local_heads: int, local_window: int, seq_len: int, ff_mult: int,
                 dropout: float):
        super().__init__()
        self.norm_attn = nn.LayerNorm(width)
        self.attn = _SelfAttention(width, heads, local_heads, local_window, seq_len, dropout)
        self.norm_ff = nn.LayerNorm(width)
        self.ff = nn.Sequential(nn.Linear(width, ff_mult * width), nn.GELU(), nn.Linear(ff_mult * width, width))

    def forward(self, h: Tensor) -> Tensor:
        h = h + self.attn(self.norm_attn(h))
        return h + self.ff(self.norm_ff(h))


class TimeTransformer(nn.Module):
    r"""A transformer denoiser for sequences of categories: ``(x_t [b, L], t [b]) -> logits [b, L, K]``.

    .. math:: h^{(0)} = E[x_t] + P,\qquad h^{(j)} = \mathrm{Layer}_j\big(h^{(j-1)} + \tau_j(t)\big),
              \qquad \mathrm{logits} = \gamma\, W\, \mathrm{LN}(h^{(J)})

    with :math:`E` a token embedding, :math:`P` the axial positional embedding, :math:`\tau_j(t)`
    the ``j``-th slice of :math:`\mathrm{MLP}(\mathrm{sinusoid}(4000 (t - 1)/T))` (Linear,
    Softplus, Linear to ``width * layers``) and :math:`\gamma` a learned scalar that starts at 0
    (ReZero). See the module docstring for what follows which official file.

    **Time**: ``t`` is 1-based as in :class:`catlib.diffusion.MultinomialDiffusion`; the official
    code counts from 0, so it embeds ``t - 1`` (our ``t = 1`` is its ``t = 0``), scaled by
    ``4000 / T`` so that every ``T`` spans the same frequencies.

    Because :math:`\gamma = 0` at initialisation, every logit is 0 (uniform :math:`\hat x_0`) and
    in the first backward pass only :math:`\gamma` receives a gradient; after one optimiser step
    all parameters do (as in the official code).

    Args:
        num_classes: ``K``.
        seq_len: ``L``; inputs must have exactly this length.
        num_timesteps: ``T`` of the diffusion (scales the time embedding).
        layers: number of transformer layers (12 officially).
        width: model width (512 officially); divisible by ``heads``, even, at least 4.
        heads: attention heads per layer (16 officially).
        local_heads: how many of them attend within a window (8 officially); the remaining
            ``heads - local_heads`` use linear attention over the whole sequence.
        local_window: window ``w`` of the local heads, which must divide ``seq_len`` (128 for
            text8, 80 for enwik8); default ``seq_len`` (one window: the local heads then attend
            to the whole sequence).
        ff_mult: width multiplier of the feed-forward layers (4).
        dropout: dropout after each attention block (the official ``--input_dp_rate``, 0).

    Shapes: ``x_t [b, L]`` (long), ``t [b]`` in ``[1, T]`` -> ``[b, L, K]``.

    >>> net = TimeTransformer(27, seq_len=16, num_timesteps=100, layers=2, width=32, heads=4, local_window=8)
    >>> net(torch.randint(27, (3, 16)), torch.tensor([1, 50, 100])).shape
    torch.Size([3, 16, 27])
    """

    def __init__(self, num_classes: int, seq_len: int, num_timesteps: int, layers: int = 2, width: int = 64,
                 heads: int = 4, local_heads: int = 2, local_window: int | None = None, ff_mult: int = 4,
                 dropout: float = 0.0):
        super().__init__()
        self.num_classes = num_classes = check_positive_int("num_classes", num_classes, minimum=2)
        self.seq_len = seq_len = check_positive_int("seq_len", seq_len)
        self.num_timesteps = check_positive_int("num_timesteps", num_timesteps)
        self.layers = layers = check_positive_int("layers", layers)
        self.width = width = check_positive_int("width", width, minimum=4)
        self.heads = heads = check_positive_int("heads", heads)
        if width % heads or width % 2:
            raise ValueError(f"width must be even and divisible by heads = {heads}, got width = {width}")
        self.local_heads = local_heads = check_positive_int("local_heads", local_heads, minimum=0)
        if local_heads > heads:
            raise ValueError(f"local_heads must be in [0, heads = {heads}], got {local_heads}")
        self.local_window = seq_len if local_window is None else check_positive_int("local_window", local_window)
        if seq_len % self.local_window:
            raise ValueError(f"local_window must divide seq_len = {seq_len} (the axial positional embedding has "
                             f"shape (seq_len / local_window, local_window)), got {self.local_window}")
        ff_mult = check_positive_int("ff_mult", ff_mult)
        dropout = check_float("dropout", dropout, 0.0, 1.0, strict_maximum=True)

        self.embed = nn.Embedding(num_classes, width)
        # AxialPositionalEmbedding(width, (L / w, w)): summed, each axis initialised N(0, 1)
        self.pos_block = nn.Parameter(torch.randn(seq_len // self.local_window, width))
        self.pos_offset = nn.Parameter(torch.randn(self.local_window, width))
        self.time_mlp = nn.Sequential(nn.Linear(width, 4 * width), nn.Softplus(), nn.Linear(4 * width, width * layers))
        self.blocks = nn.ModuleList(_Layer(width, heads, self.local_heads, self.local_window, seq_len, ff_mult, dropout)
                                    for _ in range(layers))
        self.norm = nn.LayerNorm(width)
        self.out = nn.Linear(width, num_classes)
        self.rezero = nn.Parameter(torch.zeros(1))

    def time_features(self, t: Tensor) -> Tensor:
        r"""The official ``SinusoidalPosEmb``: ``[b, width]``, of :math:`s = 4000\,(t - 1)/T`.

        .. math:: [\sin(s\,\omega_0), \dots, \sin(s\,\omega_{h-1}), \cos(s\,\omega_0), \dots],\qquad
                  \omega_i = 10000^{-i/(h - 1)},\ h = \mathrm{width}/2
        """
        dtype = self.out.weight.dtype
        s = (t.to(dtype) - 1) / self.num_timesteps * _TIME_RESCALE
        half = self.width // 2
        freqs = torch.exp(-math.log(10000.0) * torch.arange(half, device=t.device, dtype=dtype) / (half - 1))
        args = s[:, None] * freqs[None]
        return torch.cat([args.sin(), args.cos()], dim=-1)

    def positions(self) -> Tensor:
        """The axial positional embedding ``[L, width]``: row ``i`` is ``pos_block[i // w] + pos_offset[i % w]``."""
        return (self.pos_block[:, None] + self.pos_offset[None]).reshape(self.seq_len, self.width)

    def forward(self, x_t: Tensor, t: Tensor) -> Tensor:
        """Logits ``[b, L, K]`` of :math:`\\hat x_0` from ``x_t [b, L]`` and ``t [b]``."""
        if x_t.dim() != 2 or x_t.shape[1] != self.seq_len:
            raise ValueError(f"x_t must have shape [batch, {self.seq_len}], got {list(x_t.shape)}")
        if t.shape != (x_t.shape[0],):
            raise ValueError(f"t must have shape [{x_t.shape[0]}], got {list(t.shape)}")
        b = x_t.shape[0]
        # official: t.view(b, 1, emb_dim, n_blocks, depth) with n_blocks = 1; layer j adds [..., j]
        temb = self.time_mlp(self.time_features(t)).view(b, 1, self.width, self.layers)
        h = self.embed(x_t) + self.positions()
        for j, block in enumerate(self.blocks):
            h = block(h + temb[..., j])
        return self.rezero * self.out(self.norm(h))

r"""LSTM networks of the text flows: the autoregressive and coupling conditioners and the contexts of q(u|x).

They follow the official Argmax Flows code (repository ``didriknielsen/argmax_flows``), which
takes its networks from CategoricalNF (Lippe and Gavves, 2020):

- :class:`ARLSTMNet`: ``model/CategoricalNF/networks/autoregressive_layers.py``
  (``LSTMFeatureModel`` + ``AutoregFeedforward``): a one-directional LSTM over the *previous*
  positions gives each position a feature vector, and a masked feed-forward net turns it and the
  position's own earlier coordinates into the parameters of each coordinate;
- :class:`BiLSTMNet`: ``model/CategoricalNF/networks/autoregressive_layers2.py``
  (``LSTMFeatureModel`` with ``bidirectional=True``): the conditioner of the coupling flow;
- :class:`IndexContextLSTM` and :class:`IndexContextFF`: ``model/ar/encoder_context.py``
  (``IdxContextNet``) and ``model/coupling/flow.py`` (``ContextFF``): the context of the
  variational distribution ``q(u | x)``, computed from the class indices.

Shapes: sequences are batch-first, ``[batch, L, channels]``.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from catlib.validation import check_positive_int

__all__ = ["PositionEmbedding", "InputDropout", "MaskedFeedforward", "ARLSTMNet", "BiLSTMNet",
           "IndexContextLSTM", "IndexContextFF"]


def _check_hidden(hidden: int) -> int:
    hidden = check_positive_int("lstm_size", hidden)
    if hidden < 8:
        raise ValueError(f"lstm_size must be at least 8 (an eighth of it embeds the position), got {hidden}")
    return hidden


class PositionEmbedding(nn.Module):
    r"""A learned embedding of position ``t`` in a sequence of length ``L``.

    As CategoricalNF's ``TimeConcat`` (``create_T_one_hot`` in
    ``model/CategoricalNF/general/mutils.py``): a linear layer of the concatenated one-hots of
    ``t`` and ``L - 1 - t``. With every sequence of the full length ``L`` this is a table of
    ``L`` learned vectors.

    >>> PositionEmbedding(6, 4)(torch.tensor([0, 5])).shape
    torch.Size([2, 4])
    """

    def __init__(self, max_len: int, dim: int):
        super().__init__()
        self.max_len = check_positive_int("max_len", max_len)
        self.linear = nn.Linear(2 * max_len, dim)
        t = torch.arange(max_len)
        self.register_buffer("one_hots", torch.cat([F.one_hot(t, max_len), F.one_hot(max_len - 1 - t, max_len)],
                                                   -1).to(torch.get_default_dtype()), persistent=False)

    def forward(self, positions: Tensor) -> Tensor:
        """``positions [*]`` (integers in ``[0, L)``) -> ``[*, dim]``."""
        return self.linear(self.one_hots.to(self.linear.weight.dtype)[positions])


class InputDropout(nn.Module):
    """Zero a whole position's input vector with probability ``p`` in training (no rescaling).

    CategoricalNF's ``InputDropout``: ``[batch, L, c]``, one Bernoulli draw per ``(batch, L)``.
    """

    def __init__(self, p: float = 0.0):
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"input dropout rate must be in [0, 1), got {p!r}")
        self.p = p

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = torch.rand(x.shape[:-1] + (1,), device=x.device) >= self.p
        return x * keep.to(x.dtype)


class _MaskedLinear(nn.Linear):
    """``Linear`` with ``weight * mask``; without autograd (sampling) the product is kept until the weight changes."""

    def __init__(self, in_features: int, out_features: int, mask: Tensor):
        super().__init__(in_features, out_features)
        self.register_buffer("mask", mask.to(self.weight.dtype))
        self._masked: tuple[tuple, Tensor] | None = None

    def masked_weight(self) -> Tensor:
        """``weight * mask``. With gradients off it is computed once per version of the weight and mask
        (an optimiser step, ``load_state_dict`` or ``.to(device)`` makes a new one), since a sampler calls
        the head thousands of times with the same weights."""
        w, m = self.weight, self.mask
        if torch.is_grad_enabled():
            return w * m
        key = (w.data_ptr(), w._version, m.data_ptr(), m._version, w.dtype, w.device)
        if self._masked is None or self._masked[0] != key:
            self._masked = (key, w * m)
        return self._masked[1]

    def forward(self, x: Tensor) -> Tensor:
        return F.linear(x, self.masked_weight(), self.bias)


class MaskedFeedforward(nn.Module):
    r"""Parameters of each coordinate of one position from its features and the earlier coordinates.

    CategoricalNF's ``AutoregFeedforward`` (``c_offset = 0``): coordinate ``c`` of ``v [.., d]``
    is embedded alone as ``(v_c, elu(v_c), elu(-v_c))`` (``c < d - 1``; the last coordinate
    conditions nothing), the hidden block of output ``c`` sees the features and the embeddings
    of coordinates ``< c``, and output ``c`` sees only its hidden block. So output ``c`` is a
    function of ``(features, v_0, ..., v_{c-1})``.

    The masks are applied to the weights in every call (the official code multiplies the
    weights in place before every call: the same function).

    Args:
        dim: ``d``, coordinates per position.
        params_per_dim: outputs per coordinate.
        features: size of the features (CategoricalNF: ``lstm_size // 2``).

    Shapes: ``features [*, features]``, ``v [*, d] -> [*, d, params_per_dim]``.

    >>> net = MaskedFeedforward(3, 2, 16)
    >>> v = torch.randn(1, 3)
    >>> a, b = net(torch.zeros(1, 16), v), net(torch.zeros(1, 16), v + torch.tensor([0.0, 0.0, 5.0]))
    >>> bool(torch.equal(a, b))  # the last coordinate conditions no output
    True
    """

    def __init__(self, dim: int, params_per_dim: int, features: int):
        super().__init__()
        self.dim, self.params_per_dim, self.features = dim, params_per_dim, features
        inputs = dim - 1
        self.embed_size = min(max(1, int(features * 9.0 / 16.0 / inputs)), 96) if inputs > 0 else 0
        self.hidden_per_dim = max(1, features // 2)
        e, h, p = self.embed_size, self.hidden_per_dim, params_per_dim
        # block c of the embedding sees only the three inputs of coordinate c
        m1 = torch.block_diag(*[torch.ones(e, 3) for _ in range(inputs)]) if inputs > 0 else torch.ones(0, 0)
        # hidden block c sees the features and the embeddings of coordinates < c
        m2 = torch.ones(h * dim, features + e * inputs)
        for c in range(dim):
            m2[h * c:h * (c + 1), features + e * c:] = 0
        # output block c sees hidden block c
        m3 = torch.block_diag(*[torch.ones(p, h) for _ in range(dim)])
        self.in_to_features = _MaskedLinear(3 * inputs, e * inputs, m1) if inputs > 0 else None
        self.features_to_hidden = _MaskedLinear(features + e * inputs, h * dim, m2)
        self.hidden_to_out = _MaskedLinear(h * dim, p * dim, m3)

    def forward(self, features: Tensor, v: Tensor) -> Tensor:
        if self.in_to_features is not None:
            inp = v[..., :-1]
            inp = torch.stack([inp, F.elu(inp), F.elu(-inp)], -1).flatten(-2)
            features = torch.cat([features, F.gelu(self.in_to_features(inp))], -1)
        hidden = F.gelu(self.features_to_hidden(features))
        return self.hidden_to_out(hidden).unflatten(-1, (self.dim, self.params_per_dim))


class ARLSTMNet(nn.Module):
    r"""Autoregressive conditioner over a sequence ``v [batch, L, d]``: parameters of ``v[:, t, c]``.

    CategoricalNF's ``LSTMFeatureModel`` (``autoregressive_layers.py``), with ``H = lstm_size``:

    .. math::
        e_t = [\mathrm{drop}(\mathrm{MLP}(v_t)),\ \mathrm{pos}(t)] \in \mathbb{R}^{H/2},\qquad
        h_t = \mathrm{LSTM}(0, e_0, \dots, e_{t-1}),\qquad
        \theta_{t,c} = \mathrm{MaskedFF}_c(\mathrm{GELU}(W h_t), v_{t,<c}),

    so :math:`\theta_{t,c}` depends on :math:`v_{<t}` and :math:`v_{t,<c}` only. The input MLP is
    ``Linear(d, H/2), GELU, Linear(H/2, H/2 - H/8), GELU``; the position embedding has ``H/8``
    entries; the LSTM has ``num_layers`` layers of width ``H``; ``W`` maps ``H -> H/2``.

    :meth:`step` runs the LSTM one position at a time from a cached state, for sampling.

    Args:
        dim: ``d``.
        params_per_dim: outputs per coordinate.
        lstm_size: ``H`` (at least 8).
        seq_len: ``L``.
        num_layers: LSTM layers.
        input_dropout: probability of dropping a position's input embedding in training.
    """

    def __init__(self, dim: int, params_per_dim: int, lstm_size: int, seq_len: int, num_layers: int = 1,
                 input_dropout: float = 0.0):
        super().__init__()
        hidden = _check_hidden(lstm_size)
        self.dim, self.seq_len, self.hidden = dim, seq_len, hidden
        time_dim = hidden // 8
        self.input_size = hidden // 2
        self.position = PositionEmbedding(seq_len, time_dim)
        self.input_embed = nn.Sequential(nn.Linear(dim, hidden // 2), nn.GELU(),
                                         nn.Linear(hidden // 2, hidden // 2 - time_dim), nn.GELU())
        self.input_dropout = InputDropout(input_dropout)
        self.lstm = nn.LSTM(self.input_size, hidden, num_layers=check_positive_int("lstm_layers", num_layers),
                            batch_first=True)
        self.features = nn.Sequential(nn.Linear(hidden, hidden // 2), nn.GELU())
        self.head = MaskedFeedforward(dim, params_per_dim, hidden // 2)

    def _embed(self, v: Tensor, positions: Tensor) -> Tensor:
        e = self.input_dropout(self.input_embed(v))
        return torch.cat([e, self.position(positions).expand(*e.shape[:-1], -1)], -1)

    def forward(self, v: Tensor) -> Tensor:
        """``v [batch, L, d] -> [batch, L, d, params_per_dim]``."""
        e = self._embed(v, torch.arange(v.shape[1], device=v.device))
        e = torch.cat([e.new_zeros(e.shape[0], 1, e.shape[2]), e[:, :-1]], 1)  # shift: t sees < t
        h, _ = self.lstm(e)
        return self.head(self.features(h), v)

    def step(self, v_prev: Tensor | None, t: int, state: tuple[Tensor, Tensor] | None, batch: int
             ) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        """Features of position ``t`` from the cached LSTM state, feeding it only ``v_{t-1}``.

        Args:
            v_prev: ``[batch, d]``, the values at position ``t - 1`` (``None`` for ``t = 0``).
            t: the position.
            state: the LSTM's ``(h, c)`` returned by the step of position ``t - 1`` (``None``
                for ``t = 0``): it has already read ``v_0 .. v_{t-2}``.
            batch: number of rows.

        Returns:
            ``(features [batch, H/2], state)``: the features go to :attr:`head` with the
            position's own ``v_t``; ``state`` is the cache for position ``t + 1``.
        """
        weight = self.input_embed[0].weight
        if t == 0:
            e = weight.new_zeros(batch, 1, self.input_size)
        else:
            e = self._embed(v_prev.unsqueeze(1), torch.tensor([t - 1], device=weight.device))
        h, state = self.lstm(e, state)
        return self.features(h[:, 0]), state


class BiLSTMNet(nn.Module):
    r"""Bidirectional LSTM conditioner: ``x [batch, L, c_in] -> [batch, L, c_out]``, every position sees all.

    CategoricalNF's ``LSTMFeatureModel`` in ``autoregressive_layers2.py`` (no shift):
    ``[drop(MLP(x_t)), pos(t)]`` (sizes as in :class:`ARLSTMNet`), a bidirectional LSTM of width
    ``H`` per direction, then ``Linear(2H, H), GELU, Linear(H, c_out)``.
    """

    def __init__(self, c_in: int, c_out: int, lstm_size: int, seq_len: int, num_layers: int = 1,
                 input_dropout: float = 0.0):
        super().__init__()
        hidden = _check_hidden(lstm_size)
        time_dim = hidden // 8
        self.position = PositionEmbedding(seq_len, time_dim)
        self.input_embed = nn.Sequential(nn.Linear(c_in, hidden // 2), nn.GELU(),
                                         nn.Linear(hidden // 2, hidden // 2 - time_dim), nn.GELU())
        self.input_dropout = InputDropout(input_dropout)
        self.lstm = nn.LSTM(hidden // 2, hidden, num_layers=check_positive_int("lstm_layers", num_layers),
                            batch_first=True, bidirectional=True)
        self.out = nn.Sequential(nn.Linear(2 * hidden, hidden), nn.GELU(), nn.Linear(hidden, c_out))

    def forward(self, x: Tensor) -> Tensor:
        e = self.input_dropout(self.input_embed(x))
        pos = self.position(torch.arange(x.shape[1], device=x.device))
        h, _ = self.lstm(torch.cat([e, pos.expand(e.shape[0], -1, -1)], -1))
        return self.out(h)


class IndexContextLSTM(nn.Module):
    """Context of ``q(u|x)`` for the AR model: ``Embedding(K, H)``, a bidirectional LSTM, ``Linear(2H, context_size)``.

    ``IdxContextNet`` of ``model/ar/encoder_context.py``. Shapes: ``x [batch, L] -> [batch, L, context_size]``.
    """

    def __init__(self, num_classes: int, context_size: int = 128, hidden: int = 512, num_layers: int = 1):
        super().__init__()
        self.embed = nn.Embedding(num_classes, hidden)
        self.lstm = nn.LSTM(hidden, hidden, num_layers=check_positive_int("context_lstm_layers", num_layers),
                            batch_first=True, bidirectional=True)
        self.out = nn.Linear(2 * hidden, context_size)

    def forward(self, x: Tensor) -> Tensor:
        h, _ = self.lstm(self.embed(x))
        return self.out(h)


class IndexContextFF(nn.Module):
    """Context of ``q(u|x)`` for the coupling model: per position, ``Embedding(K, H)``, (Linear, GELU) x n, Linear.

    ``ContextFF`` of ``model/coupling/flow.py`` (no information flows between positions). Its
    ``Dropout(context_dropout)`` before each hidden layer is left out: the rate is 0 in every
    README run.
    Shapes: ``x [batch, L] -> [batch, L, context_size]``.
    """

    def __init__(self, num_classes: int, context_size: int = 128, hidden: int = 512, num_layers: int = 1):
        super().__init__()
        layers: list[nn.Module] = [nn.Embedding(num_classes, hidden)]
        for _ in range(num_layers):
            layers += [nn.Linear(hidden, hidden), nn.GELU()]
        layers.append(nn.Linear(hidden, context_size))
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)

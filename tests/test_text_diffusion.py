"""Text diffusion: the transformer denoiser, skip-step sampling and the one-step spell checker.

The transformer is checked against a reference forward pass written out head by head with
explicit loops (the official layer layout), for its attention pattern (windowed heads see only
neighbouring blocks, linear heads the whole sequence) and for permutation equivariance once the
positional embedding is removed; the skip-step sampler against the default sampler and against a
brute-force product of single-step kernels; ``corrupt`` and ``denoise_in_one_step`` against counts
and an oracle denoiser.
"""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from catlib.diffusion import ENWIK8_DIFFUSION, TEXT8_DIFFUSION, MultinomialDiffusion, build_diffusion
from catlib.nets import ENWIK8_TRANSFORMER, TEXT8_TRANSFORMER, TimeTransformer
from catlib.spellcheck import SPELLCHECK_CORRUPTED, SPELLCHECK_GROUND_TRUTH, corrupt, denoise_in_one_step


def small_net(seed: int = 0, K: int = 7, L: int = 12, T: int = 50, **options) -> TimeTransformer:
    """A tiny transformer with its ReZero scale set to 1 (at 0 every logit would be 0)."""
    torch.manual_seed(seed)
    opt = {"layers": 2, "width": 16, "heads": 4, "local_heads": 2, "local_window": 4, **options}
    net = TimeTransformer(K, L, T, **opt).double()
    with torch.no_grad():
        net.rezero.fill_(1.0)
    return net


def reference_forward(net: TimeTransformer, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """The official forward pass written out with loops over positions and heads."""
    W, H, L, w, J = net.width, net.heads, net.seq_len, net.local_window, net.layers
    d, half = W // H, W // 2
    freqs = [10000.0 ** (-i / (half - 1)) for i in range(half)]
    steps = [(ti - 1) / net.num_timesteps * 4000.0 for ti in t.tolist()]   # 0-based time, rescaled
    feat = torch.tensor([[math.sin(s * f) for f in freqs] + [math.cos(s * f) for f in freqs] for s in steps],
                        dtype=torch.float64)
    tau = net.time_mlp(feat)                                                # [b, W * J], entry e * J + j
    pos = torch.stack([net.pos_block[i // w] + net.pos_offset[i % w] for i in range(L)])
    h = net.embed.weight[x] + pos
    allowed = torch.tensor([[abs(i // w - k // w) <= 1 for k in range(L)] for i in range(L)])
    for j, layer in enumerate(net.blocks):
        h = h + tau[:, j::J][:, None, :]
        a = F.layer_norm(h, (W,), layer.norm_attn.weight, layer.norm_attn.bias)
        att = layer.attn
        q, k, v = a @ att.to_q.weight.T, a @ att.to_k.weight.T, a @ att.to_v.weight.T
        heads = []
        for hd in range(H):
            qh, kh, vh = (z[..., hd * d:(hd + 1) * d] for z in (q, k, v))
            if hd < net.local_heads:
                scores = (qh @ kh.transpose(1, 2) / math.sqrt(d)).masked_fill(~allowed, -math.inf)
                heads.append(scores.softmax(-1) @ vh)
            else:
                heads.append(qh.softmax(-1) @ (kh.softmax(1).transpose(1, 2) @ vh))
        h = h + torch.cat(heads, -1) @ att.to_out.weight.T + att.to_out.bias
        f = F.layer_norm(h, (W,), layer.norm_ff.weight, layer.norm_ff.bias)
        lin1, lin2 = layer.ff[0], layer.ff[2]
        h = h + F.linear(F.gelu(F.linear(f, lin1.weight, lin1.bias)), lin2.weight, lin2.bias)
    out = F.layer_norm(h, (W,), net.norm.weight, net.norm.bias) @ net.out.weight.T + net.out.bias
    return net.rezero * out


# ----------------------------------------------------------------------------- the transformer

def test_official_configuration():
    assert TEXT8_TRANSFORMER == {"layers": 12, "width": 512, "heads": 16, "local_heads": 8, "local_window": 128,
                                 "ff_mult": 4, "dropout": 0.0}
    assert ENWIK8_TRANSFORMER == {**TEXT8_TRANSFORMER, "local_window": 80}
    assert (TEXT8_DIFFUSION["data_shape"], TEXT8_DIFFUSION["num_classes"], TEXT8_DIFFUSION["timesteps"]) == \
        ((256,), 27, 1000)
    assert (ENWIK8_DIFFUSION["data_shape"], ENWIK8_DIFFUSION["num_classes"], ENWIK8_DIFFUSION["timesteps"]) == \
        ((320,), 256, 4000)
    net = TimeTransformer(27, 256, 1000, **TEXT8_TRANSFORMER)
    assert net.pos_block.shape == (2, 512) and net.pos_offset.shape == (128, 512)   # axial shape (2, 128)
    assert abs(sum(p.numel() for p in net.parameters()) / 1e6 - 51.5) < 0.1


@pytest.mark.parametrize("options", [{}, {"local_heads": 0}, {"local_heads": 4}, {"local_window": 12},
                                     {"layers": 1, "heads": 2, "local_heads": 1, "ff_mult": 2}])
def test_transformer_matches_the_reference_forward(options):
    net = small_net(**options)
    x, t = torch.randint(7, (3, 12)), torch.tensor([1, 17, 50])
    out = net(x, t)
    assert out.shape == (3, 12, 7) and out.dtype == torch.float64
    torch.testing.assert_close(out, reference_forward(net, x, t), rtol=1e-10, atol=1e-10)


def test_rezero_starts_at_uniform_and_float32_works():
    torch.manual_seed(0)
    net = TimeTransformer(5, 8, 20, width=16, heads=2, local_window=4)
    out = net(torch.randint(5, (2, 8)), torch.tensor([1, 20]))
    assert out.dtype == torch.float32 and torch.equal(out, torch.zeros(2, 8, 5))


@pytest.mark.parametrize("local_heads", [0, 2, 4])
def test_attention_mixes_positions_and_time_matters(local_heads):
    net = small_net(local_heads=local_heads, local_window=12)   # one window: every head sees everything
    x, t = torch.randint(7, (1, 12)), torch.tensor([10])
    out = net(x, t)
    y = x.clone()
    y[0, 5] = (y[0, 5] + 1) % 7
    changed = (net(y, t) - out).abs().amax(-1)[0]
    assert (changed > 1e-6).all()                          # every position, not only position 5, moves
    assert not torch.allclose(net(x, torch.tensor([11])), out)


def test_local_heads_see_only_neighbouring_blocks():
    net = small_net(layers=1, heads=2, local_heads=2, local_window=3)     # blocks {0,1,2}, {3,4,5}, ...
    x, t = torch.randint(7, (1, 12)), torch.tensor([3])
    y = x.clone()
    y[0, 1] = (y[0, 1] + 1) % 7                                          # block 0
    changed = (net(y, t) - net(x, t)).abs().amax(-1)[0] > 1e-9
    assert changed[:6].all() and not changed[6:].any()                   # blocks 0 and 1 only
    net2 = small_net(layers=2, heads=2, local_heads=2, local_window=3)   # two layers reach two blocks
    changed = (net2(y, t) - net2(x, t)).abs().amax(-1)[0] > 1e-9
    assert changed[:9].all() and not changed[9:].any()


@pytest.mark.parametrize("local_heads", [0, 2])
def test_permutation_equivariant_only_through_the_positions(local_heads):
    net = small_net(local_heads=local_heads, local_window=12)
    x, t = torch.randint(7, (2, 12)), torch.tensor([5, 40])
    perm = torch.randperm(12)
    assert not torch.allclose(net(x[:, perm], t), net(x, t)[:, perm])
    with torch.no_grad():
        net.pos_block.zero_()
        net.pos_offset.zero_()
    torch.testing.assert_close(net(x[:, perm], t), net(x, t)[:, perm])


def test_gradients_reach_every_parameter():
    net = small_net(dropout=0.1).train()
    net(torch.randint(7, (4, 12)), torch.tensor([1, 2, 30, 50])).logsumexp(-1).sum().backward()
    for name, p in net.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


@pytest.mark.parametrize("make,message", [
    (lambda: TimeTransformer(5, 8, 10, width=18, heads=4),
     "width must be even and divisible by heads = 4, got width = 18"),
    (lambda: TimeTransformer(5, 8, 10, heads=4, local_heads=5), "local_heads must be in [0, heads = 4], got 5"),
    (lambda: TimeTransformer(5, 8, 10, local_window=3), "local_window must divide seq_len = 8"),
    (lambda: TimeTransformer(5, 8, 10, dropout=1.0), "dropout must be in [0, 1), got 1.0"),
    (lambda: TimeTransformer(1, 8, 10), "num_classes must be an integer >= 2, got 1"),
    (lambda: TimeTransformer(5, 8, 10)(torch.zeros(2, 9, dtype=torch.long), torch.tensor([1, 2])),
     "x_t must have shape [batch, 8], got [2, 9]"),
    (lambda: TimeTransformer(5, 8, 10)(torch.zeros(2, 8, dtype=torch.long), torch.tensor([1])),
     "t must have shape [2], got [1]"),
])
def test_transformer_errors(make, message):
    with pytest.raises(ValueError) as err:
        make()
    assert message in str(err.value)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_transformer_on_cuda_matches_cpu():
    net = small_net()
    x, t = torch.randint(7, (3, 12)), torch.tensor([1, 17, 50])
    expected = net(x, t)
    torch.testing.assert_close(net.cuda()(x.cuda(), t.cuda()).cpu(), expected, rtol=1e-9, atol=1e-9)


# ----------------------------------------------------------------------------- build_diffusion

def test_build_diffusion_transformer_contract(tmp_path):
    torch.manual_seed(0)
    model = build_diffusion((8,), 5, timesteps=6, network="transformer", width=16, heads=2, local_window=4)
    assert model.options["network"] == "transformer" and model.options["local_window"] == 4
    assert isinstance(model.denoise_fn, TimeTransformer) and model.denoise_fn.num_timesteps == 6
    with torch.no_grad():
        model.denoise_fn.rezero.fill_(1.0)
    x = torch.randint(5, (3, 8))
    for lp in (model.log_prob(x), model.log_prob(x, exact=True), model.log_prob(x, k=2),
               model.log_prob(x, exact=True, steps=2)):
        assert lp.shape == (3,) and torch.isfinite(lp).all() and (lp <= 0).all()
    s = model.sample(4)
    assert s.shape == (4, 8) and s.dtype == torch.long and s.min() >= 0 and s.max() < 5
    loss = model.training_loss(x)
    loss.backward()
    assert torch.isfinite(loss) and model.denoise_fn.out.weight.grad.abs().sum() > 0

    torch.save(model.state_dict(), tmp_path / "m.pt")
    clone = build_diffusion((8,), 5, **{k: v for k, v in model.options.items()})
    clone.load_state_dict(torch.load(tmp_path / "m.pt"))
    torch.manual_seed(1)
    a = model.sample(3)
    torch.manual_seed(1)
    assert torch.equal(a, clone.sample(3))


@pytest.mark.parametrize("call,message", [
    (lambda: build_diffusion((4, 4), 3, network="transformer"),
     "network 'transformer' needs data_shape (L,), got (4, 4)"),
    (lambda: build_diffusion((8,), 3, network="transformer", hidden=(8,)),
     "unknown option(s) ['hidden'] for network 'transformer'"),
    (lambda: build_diffusion((8,), 3, network="rnn"), "sequences (L,) may also use 'transformer'"),
    (lambda: build_diffusion((8,), 3, network="transformer", local_window=3), "local_window must divide seq_len = 8"),
    (lambda: build_diffusion((8,), 3, timesteps=0, network="transformer"), "timesteps must be an integer >= 1, got 0"),
])
def test_build_diffusion_transformer_errors(call, message):
    with pytest.raises(ValueError) as err:
        call()
    assert message in str(err.value)


# ----------------------------------------------------------------------------- skip-step sampling

def test_sampling_with_all_steps_is_the_default_sampler():
    model = build_diffusion((6,), 4, timesteps=15, network="transformer", width=16, heads=2, local_window=3)
    with torch.no_grad():
        model.denoise_fn.rezero.fill_(1.0)
    assert model.sampling_times(15) == list(range(15, 0, -1))
    torch.manual_seed(3)
    default = model.sample(5)
    torch.manual_seed(3)
    assert torch.equal(model.sample(5, steps=15), default)
    for steps in (1, 2, 4):
        s = model.sample(7, steps=steps)
        assert model.last_sample_calls == steps
        assert s.shape == (7, 6) and s.dtype == torch.long and s.min() >= 0 and s.max() < 4
    # the jump t -> t - 1 given explicitly is the single step
    x_t = torch.randint(4, (2, 6))
    torch.testing.assert_close(model.p_log_prob_prev(x_t, 9, 8), model.p_log_prob_prev(x_t, 9))


def test_skip_kernel_is_the_composition_of_single_steps():
    """With a denoiser whose x0-prediction ignores (x_t, t), p(x_s | x_t) = q(x_s | x_t, x0_hat) composes exactly.

    Given a fixed (soft) x0_hat, every p(x_{r-1} | x_r) is the reverse kernel of one Markov chain
    (x_0 ~ x0_hat, then the forward process), whose reverse is again Markov: the jump t -> s is
    the product of the single steps. Checked by matrix products over all K states of one variable.
    """
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        K, T = 4, 9
        logits = torch.tensor([1.5, -0.3, 0.2, 0.9])
        model = MultinomialDiffusion((1,), K, lambda x_t, t: logits.expand(len(t), 1, K), timesteps=T,
                                     schedule="linear")
        states = torch.arange(K)[:, None]

        def kernel(t: int, s: int) -> torch.Tensor:          # [K (x_t), K (x_s)]
            return model.p_log_prob_prev(states, t, s)[:, 0].exp()

        for t, s in [(9, 0), (9, 4), (7, 1), (5, 2), (3, 0)]:
            brute = torch.eye(K)
            for r in range(t, s, -1):
                brute = brute @ kernel(r, r - 1)
            torch.testing.assert_close(kernel(t, s), brute, rtol=1e-10, atol=1e-12)
    finally:
        torch.set_default_dtype(previous)


# ----------------------------------------------------------------------------- spell checking

def test_corrupt_changes_exactly_the_requested_count():
    g = torch.Generator().manual_seed(0)
    x = torch.randint(27, (50, 40), generator=g)
    for fraction, count in [(0.0, 0), (0.1, 4), (0.25, 10), (1.0, 40)]:
        x_c, mask = corrupt(x, fraction, 27, g)
        assert x_c.dtype == torch.long and mask.dtype == torch.bool and x_c.shape == mask.shape == x.shape
        assert (mask.sum(1) == count).all()
        assert torch.equal(x_c != x, mask)                              # exactly the masked positions change
        assert x_c.min() >= 0 and x_c.max() < 27
    a = corrupt(x, 0.3, 27, torch.Generator().manual_seed(5))
    b = corrupt(x, 0.3, 27, torch.Generator().manual_seed(5))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert corrupt(x.view(50, 4, 10), 0.5, 27, g)[1].flatten(1).sum(1).eq(20).all()   # any data shape


def test_corrupt_replacements_are_uniform_over_the_other_classes():
    g = torch.Generator().manual_seed(1)
    x = torch.full((4000, 5), 2)
    x_c, mask = corrupt(x, 1.0, 4, g)
    counts = torch.bincount(x_c[mask], minlength=4).double()
    assert counts[2] == 0
    expected = mask.sum() / 3
    chi2 = float((((counts[[0, 1, 3]] - expected) ** 2) / expected).sum())
    assert chi2 < 13.8                                                  # chi-square, 2 dof, p = 0.001


def test_denoise_in_one_step_marks_what_it_changed():
    model = build_diffusion((12,), 6, timesteps=20, network="transformer", width=16, heads=2, local_window=4)
    with torch.no_grad():
        model.denoise_fn.rezero.fill_(3.0)
    x = torch.randint(6, (5, 12))
    for t in (1, 7, torch.tensor([1, 2, 3, 4, 20])):
        x0, changed = denoise_in_one_step(model, x, t)
        assert x0.shape == x.shape and x0.dtype == torch.long and changed.dtype == torch.bool
        assert torch.equal(x0, model.p_log_x0(x, t).argmax(-1))
        assert torch.equal(changed, x0 != x)


def test_oracle_spell_checker_undoes_the_corruption():
    """A denoiser that knows the sentence corrects every substitution and marks exactly those positions."""
    from catlib.data.text import decode_text, encode_text

    truth = encode_text(SPELLCHECK_GROUND_TRUTH)
    assert truth.shape == (256,) and (encode_text(SPELLCHECK_CORRUPTED) != truth).sum() == 12
    oracle = lambda x_t, t: 5.0 * F.one_hot(truth, 27).double().expand(len(t), 256, 27)   # noqa: E731
    model = MultinomialDiffusion((256,), 27, oracle, timesteps=1000)
    x_c, mask = corrupt(truth[None], 0.05, 27, torch.Generator().manual_seed(0))
    x0, changed = denoise_in_one_step(model, x_c)
    assert decode_text(x0[0]) == SPELLCHECK_GROUND_TRUTH and torch.equal(changed, mask)
    x0, changed = denoise_in_one_step(model, encode_text(SPELLCHECK_CORRUPTED)[None], 1)
    assert torch.equal(x0[0], truth) and changed.sum() == 12


@pytest.mark.parametrize("call,message", [
    (lambda m: corrupt(torch.zeros(2, 5, dtype=torch.long), -0.1, 6), "fraction must be a number in [0, 1], got -0.1"),
    (lambda m: corrupt(torch.zeros(2, 5, dtype=torch.long), 1.5, 6), "fraction must be a number in [0, 1], got 1.5"),
    (lambda m: corrupt(torch.zeros(2, 5, dtype=torch.long), float("nan"), 6), "fraction must be a number in [0, 1]"),
    (lambda m: corrupt(torch.zeros(2, 5, dtype=torch.long), True, 6), "fraction must be a number in [0, 1], got True"),
    (lambda m: corrupt(torch.zeros(2, 5), 0.5, 6), "x must be an integer tensor of class indices"),
    (lambda m: corrupt(torch.tensor([[0, 7]]), 0.5, 6),
     "x must hold class indices in [0, 6), got 7 at position (0, 1)"),
    (lambda m: corrupt(torch.zeros(5, dtype=torch.long), 0.5, 6), "x must be a LongTensor of class indices of shape "
                                                                  "[batch, L], got [5]"),
    (lambda m: corrupt(torch.zeros(2, 5, dtype=torch.long), 0.5, 1), "num_classes must be an integer >= 2, got 1"),
    (lambda m: denoise_in_one_step(m, torch.zeros(1, 8, dtype=torch.long), 0), "t must be in [1, 10], got 0"),
    (lambda m: denoise_in_one_step(m, torch.zeros(1, 8, dtype=torch.long), 11), "t must be in [1, 10], got 11"),
    (lambda m: denoise_in_one_step(m, torch.full((1, 8), 6), 1), "x_t must hold class indices in [0, 6), got 6"),
    (lambda m: denoise_in_one_step(m, torch.zeros(1, 9, dtype=torch.long), 1), "x_t must have shape [batch, 8], got"),
    (lambda m: denoise_in_one_step(m, torch.zeros(1, 8), 1), "x_t must be an integer tensor of class indices"),
    (lambda m: denoise_in_one_step(m.denoise_fn, torch.zeros(1, 8, dtype=torch.long)),
     "model must be a MultinomialDiffusion (with p_log_x0), got TimeTransformer"),
])
def test_spellcheck_errors(call, message):
    model = build_diffusion((8,), 6, timesteps=10, network="transformer", width=16, heads=2)
    with pytest.raises(ValueError) as err:
        call(model)
    assert message in str(err.value)

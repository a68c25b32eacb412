"""The training loop: exact resume, stored metrics, damaged checkpoints."""
import pytest
import torch

import catlib
from catlib.train import finished_run_metrics, fit, load_checkpoint, save_metrics
from helpers import interrupted_draw


def make():
    torch.manual_seed(0)
    return catlib.build_model("argmax-threshold", (2,), 4, flow_steps=1, hidden=(16,), q_flow_steps=1, q_hidden=(8,))


DATA = torch.randint(0, 4, (300, 2), generator=torch.Generator().manual_seed(0))


def draw(n, g):
    """The batches ``fit`` draws from ``DATA``, as a batch function."""
    return DATA[torch.randint(len(DATA), (n,), generator=g)]


def test_resume_after_interruption_is_bit_for_bit(tmp_path):
    straight = make()
    fit(straight, DATA, steps=20, batch_size=16, checkpoint=tmp_path / "a.pt", checkpoint_every=5, progress=False)

    # the Colab session is lost during step 13
    interrupted = interrupted_draw(draw, on_call=13)

    resumed = make()
    with pytest.raises(KeyboardInterrupt):
        fit(resumed, interrupted, steps=20, batch_size=16, checkpoint=tmp_path / "b.pt", checkpoint_every=5,
            progress=False)
    assert load_checkpoint(tmp_path / "b.pt")["step"] == 10
    resumed = make()  # the same program run again: the same batch function, this time not interrupted
    result = fit(resumed, interrupted_draw(draw, on_call=0), steps=20, batch_size=16, checkpoint=tmp_path / "b.pt",
                 checkpoint_every=5, progress=False)
    assert result.resumed_from == 10 and result.steps == 20
    for (n, p), q in zip(straight.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(p, q), n


def test_finished_run_keeps_metrics_and_does_not_train_again(tmp_path):
    path = tmp_path / "run.pt"
    fit(make(), DATA, steps=6, batch_size=16, checkpoint=path, progress=False)
    save_metrics(path, {"elbo_bits": 1.5})
    model = make()
    result = fit(model, DATA, steps=6, batch_size=16, checkpoint=path, progress=False)
    assert result.metrics == {"elbo_bits": 1.5} and result.resumed_from == 6 and len(result.losses) == 6


def test_damaged_checkpoint_gives_a_clear_error(tmp_path):
    path = tmp_path / "bad.pt"
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="damaged"):
        fit(make(), DATA, steps=2, checkpoint=path, progress=False)


def test_training_lowers_the_loss():
    model = make()
    result = fit(model, DATA, steps=150, batch_size=64, lr=3e-3, progress=False)
    assert sum(result.losses[-20:]) / 20 < sum(result.losses[:20]) / 20


def test_a_model_with_its_own_training_loss_is_trained_on_it():
    class Own(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.tensor(3.0))
            self.calls = 0

        def log_prob(self, x):  # pragma: no cover - must not be used for training
            raise AssertionError("fit used log_prob instead of training_loss")

        def training_loss(self, x):
            self.calls += 1
            return (self.w - 1.0) ** 2

    model = Own()
    fit(model, DATA, steps=200, batch_size=4, lr=0.05, warmup=1, progress=False)
    assert model.calls == 200
    assert abs(model.w.item() - 1.0) < 0.05


def test_finished_run_metrics_keeps_only_the_same_run(tmp_path):
    path = tmp_path / "run.pt"
    fit(make(), DATA, steps=4, batch_size=8, checkpoint=path, checkpoint_every=2, progress=False)
    # unfinished (no metrics yet), same length: kept for resuming; another length: deleted
    assert finished_run_metrics(path, {"lr": 1}, steps=4) is None and path.exists()
    save_metrics(path, {"loss": 1.0, "run": {"lr": 1}})
    assert finished_run_metrics(path, {"lr": 1}, steps=4) == {"loss": 1.0, "run": {"lr": 1}}
    # finished with other settings but the same length: deleted, not "resumed" at its last step
    assert finished_run_metrics(path, {"lr": 2}, steps=4) is None and not path.exists()
    fit(make(), DATA, steps=4, batch_size=8, checkpoint=path, checkpoint_every=2, progress=False)
    assert finished_run_metrics(path, {"lr": 1}, steps=5) is None and not path.exists()


# Pinned with the implementation of ``fit`` before mixed precision, DDP, time-based checkpoints and
# run estimates were added (catlib/train.py at commit 8d56f04), computed on CPU with
# OMP_NUM_THREADS=1. A single process with default arguments must keep drawing the same batches
# and the same noise and computing the same losses: finished experiments' results depend on it.
# The losses are float32 sums of many kernels whose rounding differs between processors: on an AMD
# EPYC 7 of the 8 differed from these (Intel) values by up to 9.6e-6 relative. The tolerance, 1e-4
# relative, admits that with a 10x margin; a changed noise draw alone (global seed + 1, same batches)
# moved every loss by 2.4e-3 relative or more, a changed batch by far more. The random streams (integers
# drawn afterwards) do not depend on floating point and must match exactly.
PINNED_LOSSES = [3.4122822284698486, 5.492589473724365, 5.845890522003174, 5.355070114135742,
                 5.490797996520996, 7.75227165222168, 4.212565898895264, 5.291864395141602]
PINNED_TORCH_DRAWS_AFTER = [676, 963, 446, 624, 740]  # torch.randint(1000, (5,)) right after fit
PINNED_DATA_DRAWS_AFTER = [193, 211, 28, 31, 277]  # the checkpoint's data generator: randint(300, (5,))
PINNED_KEYS = ["cuda_rng", "data_rng", "fingerprint", "format", "losses", "metrics", "model", "optimizer", "seconds",
               "sha256", "step", "steps_total", "torch_rng"]


def test_default_single_process_fit_is_unchanged(tmp_path):
    model = make()
    result = fit(model, DATA, steps=8, batch_size=16, checkpoint=tmp_path / "pin.pt", checkpoint_every=4,
                 progress=False, device="cpu")  # the default device is CUDA where there is one; the pin is CPU's
    assert result.losses == pytest.approx(PINNED_LOSSES, rel=1e-4, abs=0)
    assert torch.randint(1000, (5,)).tolist() == PINNED_TORCH_DRAWS_AFTER
    state = load_checkpoint(tmp_path / "pin.pt")
    assert sorted(state) == PINNED_KEYS and sorted(state["optimizer"]) == ["param_groups", "state"]
    assert state["step"] == 8 and state["steps_total"] == 8 and state["cuda_rng"] is None
    data_gen = torch.Generator()
    data_gen.set_state(state["data_rng"])
    assert torch.randint(300, (5,), generator=data_gen).tolist() == PINNED_DATA_DRAWS_AFTER
    assert result.estimate is None and not model.training


def test_new_options_off_by_default_match_explicit_defaults():
    """The explicit defaults of the new options give the very same run as leaving them out."""
    a, b = make(), make()
    ra = fit(a, DATA, steps=5, batch_size=16, progress=False)
    rb = fit(b, DATA, steps=5, batch_size=16, progress=False, precision="fp32", checkpoint_minutes=None,
             estimate=False, distributed=False)
    assert ra.losses == rb.losses
    for (n, p), q in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(p, q), n


@pytest.mark.parametrize("name, value, message", [
    ("checkpoint_every", 0, "checkpoint_every must be an integer >= 1, got 0"),
    ("precision", "fp8", "precision must be one of 'fp32', 'bf16', 'fp16', got 'fp8'"),
    ("checkpoint_minutes", -1.0, "checkpoint_minutes must be a positive number of minutes or None, got -1.0"),
])
def test_bad_options_name_the_argument(name, value, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        fit(make(), DATA, steps=2, batch_size=4, progress=False, **{name: value})

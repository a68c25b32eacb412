"""The training loop: exact resume, stored metrics, damaged checkpoints."""
import pytest
import torch

import catlib
from catlib.train import finished_run_metrics, fit, load_checkpoint, save_metrics


def make():
    torch.manual_seed(0)
    return catlib.build_model("argmax-threshold", (2,), 4, flow_steps=1, hidden=(16,), q_flow_steps=1, q_hidden=(8,))


DATA = torch.randint(0, 4, (300, 2), generator=torch.Generator().manual_seed(0))


def test_resume_after_interruption_is_bit_for_bit(tmp_path):
    straight = make()
    fit(straight, DATA, steps=20, batch_size=16, checkpoint=tmp_path / "a.pt", checkpoint_every=5, progress=False)

    calls = {"n": 0}

    def interrupted(n, g):
        calls["n"] += 1
        if calls["n"] == 13:
            raise KeyboardInterrupt  # the Colab session is lost during step 13
        return DATA[torch.randint(len(DATA), (n,), generator=g)]

    resumed = make()
    with pytest.raises(KeyboardInterrupt):
        fit(resumed, interrupted, steps=20, batch_size=16, checkpoint=tmp_path / "b.pt", checkpoint_every=5,
            progress=False)
    assert load_checkpoint(tmp_path / "b.pt")["step"] == 10
    resumed = make()
    result = fit(resumed, DATA, steps=20, batch_size=16, checkpoint=tmp_path / "b.pt", checkpoint_every=5,
                 progress=False)
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

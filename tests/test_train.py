"""The training loop: exact resume, stored metrics, damaged, corrupted, unsafe and mismatched checkpoints."""
import math
from pathlib import Path

import pytest
import torch

import catlib
from catlib.checkpoint import CheckpointError
from catlib.metrics import evaluate_bound
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
    result = fit(resumed, draw, steps=20, batch_size=16, checkpoint=tmp_path / "b.pt", checkpoint_every=5,
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


def test_radam_with_exponential_decay_sets_each_steps_learning_rate(tmp_path):
    """CatNF's optimiser: RAdam, and the learning rate multiplied by lr_decay at every step."""
    path = tmp_path / "radam.pt"
    result = fit(make(), DATA, steps=8, batch_size=64, lr=0.01, warmup=1, checkpoint=path, progress=False,
                 optimizer="radam", lr_decay=0.9)
    group = load_checkpoint(path)["optimizer"]["param_groups"][0]
    assert group["lr"] == pytest.approx(0.01 * 0.9 ** 7, rel=1e-12)  # the last step's (s = 7)
    assert "decoupled_weight_decay" in group and "amsgrad" not in group  # RAdam's settings, not Adam's
    assert len(result.losses) == 8 and all(map(math.isfinite, result.losses))


@pytest.mark.parametrize("name, value, message", [
    ("checkpoint_every", 0, "checkpoint_every must be an integer >= 1, got 0"),
    ("precision", "fp8", "precision must be one of 'fp32', 'bf16', 'fp16', got 'fp8'"),
    ("checkpoint_minutes", -1.0, "checkpoint_minutes must be a positive number of minutes or None, got -1.0"),
    ("optimizer", "sgd", "optimizer must be one of ['adam', 'radam'], got 'sgd'"),
    ("lr_decay", 1.5, "lr_decay must be None (cosine decay) or a number in (0, 1], got 1.5"),
])
def test_bad_options_name_the_argument(name, value, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")):
        fit(make(), DATA, steps=2, batch_size=4, progress=False, **{name: value})


# --- checkpoints: safe to load, checked, and only ever resumed by the run that wrote them ---


class _MakesAFolder:
    """A pickled object that would create a folder when unpickled (as a malicious checkpoint could run any code)."""

    def __init__(self, folder):
        self.folder = str(folder)

    def __reduce__(self):
        import os

        return os.mkdir, (self.folder,)


def test_a_checkpoint_that_would_run_code_is_refused_not_unpickled(tmp_path):
    path = tmp_path / "run.pt"
    fit(make(), DATA, steps=4, batch_size=8, checkpoint=path, progress=False)
    state = torch.load(path, weights_only=True)
    state["metrics"] = {"note": _MakesAFolder(tmp_path / "pwned")}
    torch.save(state, path)
    with pytest.raises(CheckpointError, match=r"run\.pt holds objects other than tensors and plain data.*could run code"):
        fit(make(), DATA, steps=4, batch_size=8, checkpoint=path, progress=False)
    with pytest.raises(CheckpointError, match="could run code"):
        load_checkpoint(path)
    assert not (tmp_path / "pwned").exists()


def test_metrics_are_stored_as_plain_data(tmp_path):
    np = pytest.importorskip("numpy")
    path = tmp_path / "run.pt"
    fit(make(), DATA, steps=2, batch_size=8, checkpoint=path, progress=False)
    save_metrics(path, {"bits": np.float32(1.5), "hist": np.arange(3), "where": tmp_path, "hidden": (8, 8)})
    metrics = load_checkpoint(path)["metrics"]
    assert metrics == {"bits": 1.5, "hist": [0, 1, 2], "where": str(tmp_path), "hidden": (8, 8)}
    assert type(metrics["bits"]) is float
    with pytest.raises(CheckpointError, match=r"metrics\['f'\] holds a function"):
        save_metrics(path, {"f": lambda: 0})


def test_a_checkpoint_of_other_settings_is_refused_with_the_differences(tmp_path):
    path = tmp_path / "run.pt"
    fit(make(), DATA, steps=20, batch_size=16, checkpoint=path, checkpoint_every=5, progress=False)
    before = path.read_bytes()
    with pytest.raises(CheckpointError) as err:  # used to return the 20-step run and train nothing
        fit(make(), DATA, steps=10, batch_size=16, lr=0.5, seed=7, checkpoint=path, progress=False)
    message = str(err.value)
    assert "run.pt belongs to another run" in message and "resume='ignore-settings'" in message
    for line in ("steps: 20 in the checkpoint, 10 now", "lr: 0.001 in the checkpoint, 0.5 now",
                 "seed: 0 in the checkpoint, 7 now"):
        assert line in message
    assert "batch_size" not in message  # only what differs
    # a finished run asked for more steps is another run (it used to continue on another cosine schedule)
    with pytest.raises(CheckpointError, match="steps: 20 in the checkpoint, 40 now"):
        fit(make(), DATA, steps=40, batch_size=16, checkpoint=path, progress=False)
    # another width: named shapes instead of torch's "size mismatch"
    torch.manual_seed(0)
    wider = catlib.build_model("argmax-threshold", (2,), 4, flow_steps=1, hidden=(32,), q_flow_steps=1, q_hidden=(8,))
    with pytest.raises(CheckpointError, match=r"shapes\.flow\..*\[16, .*\] in the checkpoint, \[32, .*\] now"):
        fit(wider, DATA, steps=20, batch_size=16, checkpoint=path, progress=False)
    # other data, other precision, the caller's own settings
    with pytest.raises(CheckpointError, match="data.sha256"):
        fit(make(), DATA.flip(0), steps=20, batch_size=16, checkpoint=path, progress=False)
    with pytest.raises(CheckpointError, match="precision: 'fp32' in the checkpoint, 'bf16' now"):
        fit(make(), DATA, steps=20, batch_size=16, checkpoint=path, progress=False, precision="bf16")
    with pytest.raises(CheckpointError, match=r"settings\.init_spread: \(not set\) in the checkpoint, 2\.0 now"):
        fit(make(), DATA, steps=20, batch_size=16, checkpoint=path, progress=False, settings={"init_spread": 2.0})
    with pytest.raises(CheckpointError, match="schedule: 'adam, linear warm-up, cosine decay to 0' in the checkpoint, "
                                              "'radam, linear warm-up, exponential decay x0.999 per step' now"):
        fit(make(), DATA, steps=20, batch_size=16, checkpoint=path, progress=False, optimizer="radam", lr_decay=0.999)
    assert path.read_bytes() == before  # nothing was trained or written
    # the same settings resume (a finished run: nothing more to train)
    again = fit(make(), DATA, steps=20, batch_size=16, checkpoint=path, progress=False)
    assert again.resumed_from == 20 and again.steps == 20


def test_ignore_settings_continues_a_run_with_the_new_settings(tmp_path):
    path = tmp_path / "run.pt"
    fit(make(), DATA, steps=6, batch_size=16, checkpoint=path, progress=False)
    result = fit(make(), DATA, steps=9, batch_size=16, checkpoint=path, progress=False, resume="ignore-settings")
    assert result.resumed_from == 6 and result.steps == 9 and len(result.losses) == 9
    assert load_checkpoint(path)["fingerprint"]["steps"] == 9  # the file now describes the continued run
    torch.manual_seed(0)
    wider = catlib.build_model("argmax-threshold", (2,), 4, flow_steps=1, hidden=(32,), q_flow_steps=1, q_hidden=(8,))
    with pytest.raises(CheckpointError, match="holds a model of other shapes than this one"):
        fit(wider, DATA, steps=9, batch_size=16, checkpoint=path, progress=False, resume="ignore-settings")
    with pytest.raises(ValueError, match="resume must be one of 'check', 'ignore-settings', got 'yes'"):
        fit(make(), DATA, steps=9, batch_size=16, checkpoint=path, progress=False, resume="yes")


def test_a_checkpoint_without_a_fingerprint_is_resumed_only_when_told(tmp_path):
    path = tmp_path / "old.pt"
    fit(make(), DATA, steps=4, batch_size=16, checkpoint=path, progress=False)
    state = load_checkpoint(path)
    for key in ("fingerprint", "format", "sha256"):  # as catlib wrote checkpoints before
        del state[key]
    torch.save(state, path)
    with pytest.raises(CheckpointError, match="written before catlib recorded run settings"):
        fit(make(), DATA, steps=6, batch_size=16, checkpoint=path, progress=False)
    result = fit(make(), DATA, steps=6, batch_size=16, checkpoint=path, progress=False, resume="ignore-settings")
    assert result.resumed_from == 4 and result.steps == 6


def test_a_flipped_byte_in_a_checkpoint_is_reported_as_corruption(tmp_path):
    path = tmp_path / "run.pt"
    model = make()
    fit(model, DATA, steps=4, batch_size=16, checkpoint=path, progress=False)
    weight = max(model.state_dict().values(), key=lambda t: t.numel())
    raw = bytearray(path.read_bytes())
    at = raw.find(weight.contiguous().numpy().tobytes()[:32])
    assert at >= 0  # the tensor's bytes are stored as they are
    raw[at + 2] ^= 0x10  # one bit of one float: used to load silently
    path.write_bytes(bytes(raw))
    with pytest.raises(CheckpointError, match=r"checkpoint .*run\.pt is corrupted: its contents have SHA-256"):
        load_checkpoint(path)
    with pytest.raises(CheckpointError, match="is corrupted"):
        fit(make(), DATA, steps=4, batch_size=16, checkpoint=path, progress=False)


def test_a_checkpoint_folder_that_cannot_be_written_fails_before_training(tmp_path):
    calls = []

    def batches(n, g):
        calls.append(n)
        return DATA[:n]

    blocker = tmp_path / "a-file"
    blocker.write_text("")
    for folder, why in [("/proc/self", "is not writable"), (blocker / "sub", "cannot be created")]:
        with pytest.raises(ValueError, match=f"checkpoint folder '{folder}' {why}"):
            fit(make(), batches, steps=3, batch_size=4, checkpoint=Path(folder) / "run.pt", progress=False)
    assert calls == []  # refused before the first step
    fit(make(), batches, steps=1, batch_size=4, checkpoint=tmp_path / "new" / "deeper" / "run.pt", progress=False)
    assert (tmp_path / "new" / "deeper" / "run.pt").is_file() and calls == [4]


# --- a loss that goes non-finite: which part went wrong ---


class _Broken(torch.nn.Module):
    def __init__(self, weight: float, output: float):
        super().__init__()
        self.w = torch.nn.Parameter(torch.tensor(weight))
        self.output = output

    def log_prob(self, x):
        return self.w * 0 + self.output + torch.zeros(len(x))


def test_a_non_finite_loss_says_whether_the_parameters_or_the_model_went_wrong():
    with pytest.raises(FloatingPointError, match=r"loss became nan at step 0 while every parameter is finite: "
                                                 r"the model's log_prob"):
        fit(_Broken(1.0, float("nan")), DATA, steps=2, batch_size=4, progress=False)
    with pytest.raises(FloatingPointError, match=r"parameters became non-finite before step 0 \(1 of 1 tensors: w\)"):
        fit(_Broken(float("inf"), 0.0), DATA, steps=2, batch_size=4, progress=False)


def test_evaluate_bound_warns_about_non_finite_bounds():
    with pytest.warns(RuntimeWarning, match=r"2 of 5 bounds are non-finite \(first: nan at row 0\)"):
        out = evaluate_bound(_NaNRows(), DATA[:5], progress=False)
    assert torch.isnan(out[0]) and torch.isfinite(out[1:3]).all()


class _NaNRows(torch.nn.Module):
    def log_prob(self, x, k=1):
        out = -x.float().sum(1)
        out[0] = float("nan")
        out[-1] = float("-inf")
        return out


def test_model_options_are_part_of_the_fingerprint(tmp_path):
    """An option that changes no shape (TRUFL's initial truncation) still makes another run."""
    path = tmp_path / "run.pt"

    def trufl(truncation):
        torch.manual_seed(0)
        return catlib.build_model("trufl", (2,), 4, flow_steps=1, hidden=(8,), init_truncation=truncation)

    fit(trufl(2.0), DATA, steps=3, batch_size=8, checkpoint=path, progress=False)
    with pytest.raises(CheckpointError, match=r"options\.init_truncation: 2\.0 in the checkpoint, 3\.0 now"):
        fit(trufl(3.0), DATA, steps=3, batch_size=8, checkpoint=path, progress=False)
    schedule = torch.linspace(0.99, 0.5, 10)  # a tensor among the options is described, not compared as a tensor
    torch.manual_seed(0)
    model = catlib.build_model("multinomial-diffusion", (2,), 4, timesteps=10, schedule=schedule, hidden=(8,))
    fit(model, DATA, steps=2, batch_size=8, checkpoint=tmp_path / "d.pt", progress=False)
    assert load_checkpoint(tmp_path / "d.pt")["fingerprint"]["options"]["schedule"]["shape"] == [10]

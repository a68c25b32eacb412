"""Training at scale: DDP on several processes, mixed precision, time-based checkpoints, run estimates, the dispatcher.

The DDP test starts two CPU processes (Gloo) with ``torch.multiprocessing``; CUDA-only paths
(fp16 with a GradScaler, NCCL, measured GPU memory) are skipped without a GPU.
"""
from __future__ import annotations

import os
import random
import socket
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp
from torch import nn

import catlib
import catlib.train as train_module
from catlib.distributed import DistributedContext, env_world, init_distributed, rank_seed
from catlib.train import TrainingLoss, estimate_run, fit, fit_defaults, format_estimate, load_checkpoint
from helpers import interrupted_draw

REPO = Path(__file__).resolve().parents[1]
DATA = torch.randint(0, 4, (300, 2), generator=torch.Generator().manual_seed(0))
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA-only path (no GPU on this machine)")


class TinyAR(nn.Module):
    """p(x1) p(x2 | x1) over 4 classes: a log_prob without noise, so a split batch must give one process's step."""

    def __init__(self, seed: int = 0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.first = nn.Parameter(0.1 * torch.randn(4, generator=g))
        self.embed = nn.Parameter(0.5 * torch.randn(4, 8, generator=g))
        self.out = nn.Linear(8, 4)
        with torch.no_grad():
            self.out.weight.copy_(0.3 * torch.randn(4, 8, generator=g))
            self.out.bias.zero_()

    def log_prob(self, x):
        lp1 = torch.log_softmax(self.first, 0)[x[:, 0]]
        lp2 = torch.log_softmax(self.out(torch.tanh(self.embed[x[:, 0]])), -1).gather(1, x[:, 1:2])[:, 0]
        return lp1 + lp2


class OwnLoss(nn.Module):
    """A model with its own ``training_loss`` (a data-dependent mean), as multinomial diffusion has."""

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.tensor([3.0, -1.0]))

    def log_prob(self, x):  # pragma: no cover - must not be used for training
        raise AssertionError("fit used log_prob instead of training_loss")

    def training_loss(self, x):
        return ((self.w - x.float()) ** 2).sum(1).mean()


def draw_from_data(n, g):
    return DATA[torch.randint(len(DATA), (n,), generator=g)]


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ddp_worker(rank: int, world_size: int, port: int, out: str) -> None:
    """One of ``world_size`` processes, set up as torchrun would (``fit`` starts the Gloo group itself)."""
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world_size), LOCAL_RANK=str(rank),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), OMP_NUM_THREADS="1")
    torch.set_num_threads(1)
    import torch.distributed as dist

    out = Path(out)
    found = {}
    try:  # batch_size must split evenly; checked before any collective, on every rank alike
        fit(TinyAR(), DATA, steps=2, batch_size=15, progress=False, device="cpu")
    except ValueError as err:
        found["indivisible"] = str(err)
    model = TinyAR()
    result = fit(model, DATA, steps=8, batch_size=16, lr=0.05, warmup=2, checkpoint=out / "straight.pt",
                 checkpoint_every=3, progress=False, device="cpu")
    found.update(straight_losses=result.losses, straight_params={k: v.clone() for k, v in model.state_dict().items()},
                 initialised_by_fit=dist.is_initialized())

    interrupted = interrupted_draw(draw_from_data, on_call=6)  # every rank loses step 6 alike

    try:
        fit(TinyAR(), interrupted, steps=8, batch_size=16, lr=0.05, warmup=2, checkpoint=out / "resumed.pt",
            checkpoint_every=3, progress=False, device="cpu")
    except KeyboardInterrupt:
        pass
    dist.barrier()
    resumed = TinyAR()
    again = fit(resumed, draw_from_data, steps=8, batch_size=16, lr=0.05, warmup=2, checkpoint=out / "resumed.pt",
                checkpoint_every=3, progress=False, device="cpu")
    found.update(resumed_from=again.resumed_from, resumed_losses=again.losses,
                 resumed_params={k: v.clone() for k, v in resumed.state_dict().items()})

    own = OwnLoss()
    found["own_losses"] = fit(own, draw_from_data, steps=6, batch_size=16, lr=0.1, warmup=1, progress=False,
                              device="cpu").losses
    found["own_w"] = own.w.detach().clone()
    torch.save(found, out / f"rank{rank}.pt")
    dist.destroy_process_group()


def _spawn(fn, args: tuple, nprocs: int, timeout: float = 120.0) -> None:
    """``torch.multiprocessing`` spawn with a deadline, so a hung collective fails the test instead of hanging it."""
    context = mp.start_processes(fn, args=args, nprocs=nprocs, join=False, start_method="spawn")
    deadline = time.monotonic() + timeout
    while not context.join(timeout=1.0):
        if time.monotonic() > deadline:
            for process in context.processes:
                process.kill()
            pytest.fail(f"the {nprocs} DDP processes did not finish within {timeout} s")


@pytest.mark.skipif(not torch.distributed.is_available() or not torch.distributed.is_gloo_available(),
                    reason="needs torch.distributed with the Gloo backend")
def test_ddp_on_two_cpu_processes_matches_one_process_on_the_global_batch(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(REPO))  # the spawned processes import this module as tests.test_distributed
    _spawn(_ddp_worker, (2, _free_port(), str(tmp_path)), nprocs=2)
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=False) for r in range(2)]

    single = TinyAR()
    reference = fit(single, DATA, steps=8, batch_size=16, lr=0.05, warmup=2, progress=False, device="cpu",
                    distributed=False)
    own = OwnLoss()
    own_reference = fit(own, draw_from_data, steps=6, batch_size=16, lr=0.1, warmup=1, progress=False,
                        device="cpu", distributed=False)
    for found in ranks:
        assert found["initialised_by_fit"]
        assert "batch_size must be divisible by the world size 2" in found["indivisible"]
        # the logged losses are global means: those of one process on the whole batch
        assert found["straight_losses"] == pytest.approx(reference.losses, rel=1e-5)
        for name, value in single.state_dict().items():
            torch.testing.assert_close(found["straight_params"][name], value, rtol=1e-5, atol=1e-6)
        assert found["own_losses"] == pytest.approx(own_reference.losses, rel=1e-5)
        torch.testing.assert_close(found["own_w"], own.w.detach(), rtol=1e-5, atol=1e-6)
        # a lost session: every rank reloads rank 0's checkpoint and continues exactly
        assert found["resumed_from"] == 3
        assert found["resumed_losses"] == found["straight_losses"]
        for name, value in found["straight_params"].items():
            assert torch.equal(found["resumed_params"][name], value), name
    assert ranks[0]["straight_losses"] == ranks[1]["straight_losses"]
    for name, value in ranks[0]["straight_params"].items():
        assert torch.equal(ranks[1]["straight_params"][name], value), name  # DDP keeps the replicas identical
    state = load_checkpoint(tmp_path / "straight.pt")
    assert state["step"] == 8 and state["world_size"] == 2 and len(state["rank_rng"]) == 2
    assert not torch.equal(state["rank_rng"][0][0], state["rank_rng"][1][0])  # each rank draws its own noise
    assert not list(tmp_path.glob("*.tmp"))


#: Models whose layers initialise themselves from the first batch (ActNorm, the Gumbel locations, ActNorm2d).
DATA_INIT_MODELS = {
    "argmax-gumbel": ((3,), dict(flow_steps=1, hidden=(8,))),
    "argmax-threshold": ((3,), dict(flow_steps=1, hidden=(8,), q_flow_steps=1, q_hidden=(8,))),
    "argmax-threshold-image": ((4, 4), dict(flow_steps=1, growth=4, depth=1, q_flow_steps=1, q_growth=4, q_depth=1)),
}
INIT_DATA = {shape: torch.randint(0, 3, (64, *shape), generator=torch.Generator().manual_seed(1))
             for shape in {shape for shape, _ in DATA_INIT_MODELS.values()}}


def _build_data_init_model(key: str) -> nn.Module:
    shape, options = DATA_INIT_MODELS[key]
    torch.manual_seed(0)
    return catlib.build_model(key.removesuffix("-image"), shape, 3, **options)


def _data_init_worker(rank: int, world_size: int, port: int, out: str) -> None:
    """Trains each model of DATA_INIT_MODELS with lr=0 (the initialisation alone) and for 4 steps."""
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world_size), LOCAL_RANK=str(rank),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), OMP_NUM_THREADS="1")
    torch.set_num_threads(1)
    import torch.distributed as dist

    found = {}
    for key, (shape, _) in DATA_INIT_MODELS.items():
        model = _build_data_init_model(key)
        fit(model, INIT_DATA[shape], steps=1, batch_size=16, lr=0.0, progress=False, device="cpu")
        found[f"{key}/init"] = {k: v.clone() for k, v in model.state_dict().items()}
        model = _build_data_init_model(key)
        fit(model, INIT_DATA[shape], steps=4, batch_size=16, lr=1e-2, warmup=1, progress=False, device="cpu")
        found[f"{key}/trained"] = {k: v.clone() for k, v in model.state_dict().items()}
    torch.save(found, Path(out) / f"init-rank{rank}.pt")
    dist.destroy_process_group()


@pytest.mark.skipif(not torch.distributed.is_available() or not torch.distributed.is_gloo_available(),
                    reason="needs torch.distributed with the Gloo backend")
def test_ddp_replicas_of_data_dependent_layers_stay_identical(tmp_path, monkeypatch):
    """ActNorm, ActNorm2d and the Gumbel locations initialise on the global first batch, the same on every rank.

    Before, each rank initialised them from its own half of the batch after DDP's initial
    broadcast, and two CPU processes drifted apart by up to 1.1 in 3 steps.
    """
    monkeypatch.syspath_prepend(str(REPO))
    _spawn(_data_init_worker, (2, _free_port(), str(tmp_path)), nprocs=2)
    ranks = [torch.load(tmp_path / f"init-rank{r}.pt", weights_only=True) for r in range(2)]
    for key, (shape, _) in DATA_INIT_MODELS.items():
        single = _build_data_init_model(key)
        fresh = {k: v.clone() for k, v in single.state_dict().items()}
        fit(single, INIT_DATA[shape], steps=1, batch_size=16, lr=0.0, progress=False, device="cpu", distributed=False)
        initialised = [k for k, v in single.state_dict().items() if not torch.equal(v, fresh[k])]
        assert any(k.endswith("initialized") for k in initialised), (key, initialised)
        assert len(initialised) > 1, (key, initialised)  # the initialised values changed, not just the flag
        for name, value in single.state_dict().items():
            # rank 0 initialises exactly as one process does on the same global batch, and rank 1 gets rank 0's values
            for r in range(2):
                assert torch.equal(ranks[r][f"{key}/init"][name], value), (key, name, r)
            # after 4 steps of training the two replicas are still the same model
            assert torch.equal(ranks[0][f"{key}/trained"][name], ranks[1][f"{key}/trained"][name]), (key, name)


def test_distributed_context_and_environment(monkeypatch):
    ctx = DistributedContext(rank=2, world_size=4, local_rank=0)
    assert ctx.shard(16) == slice(8, 12) and not ctx.is_main and ctx.enabled
    with pytest.raises(ValueError, match="batch_size must be divisible by the world size 4.*got 18"):
        ctx.shard(18)
    assert rank_seed(5, 0) == 5 and len({rank_seed(5, r) for r in range(8)}) == 8
    for key in ("WORLD_SIZE", "RANK", "LOCAL_RANK"):
        monkeypatch.delenv(key, raising=False)
    assert env_world() is None and init_distributed() == DistributedContext()
    with pytest.raises(ValueError, match="distributed=True needs several processes: launch with torchrun"):
        fit(TinyAR(), DATA, steps=2, batch_size=4, progress=False, distributed=True)
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "7")
    with pytest.raises(ValueError, match=r"RANK must be an integer in \[0, 2\) when WORLD_SIZE=2, got '7'"):
        env_world()
    assert init_distributed(False) == DistributedContext()  # False: one process whatever the environment says


def test_training_loss_module_calls_the_models_objective():
    x = DATA[:8]
    assert torch.equal(TrainingLoss(TinyAR())(x), -TinyAR().log_prob(x).mean())
    own = OwnLoss()
    assert torch.equal(TrainingLoss(own)(x), own.training_loss(x))


class AutocastProbe(TinyAR):
    """Records whether its forward pass ran under autocast, and in which dtype."""

    seen: list = []

    def log_prob(self, x):
        AutocastProbe.seen.append(torch.get_autocast_dtype("cpu") if torch.is_autocast_enabled("cpu") else None)
        return super().log_prob(x)


def test_bf16_on_cpu_trains_under_autocast_and_resumes_exactly(tmp_path):
    AutocastProbe.seen = []
    straight = AutocastProbe()
    result = fit(straight, DATA, steps=8, batch_size=16, lr=0.05, warmup=2, progress=False, precision="bf16",
                 device="cpu")
    assert AutocastProbe.seen == [torch.bfloat16] * 8
    assert all(np.isfinite(result.losses))
    fp32 = fit(TinyAR(), DATA, steps=8, batch_size=16, lr=0.05, warmup=2, progress=False, device="cpu")
    assert result.losses != fp32.losses and result.losses == pytest.approx(fp32.losses, rel=0.05)
    assert all(p.dtype == torch.float32 for p in straight.parameters())  # autocast leaves parameters in fp32

    interrupted = interrupted_draw(draw_from_data, on_call=6)

    path = tmp_path / "bf16.pt"
    with pytest.raises(KeyboardInterrupt):
        fit(AutocastProbe(), interrupted, steps=8, batch_size=16, lr=0.05, warmup=2, checkpoint=path,
            checkpoint_every=2, progress=False, precision="bf16", device="cpu")
    state = load_checkpoint(path)
    assert state["step"] == 4 and state["precision"] == "bf16" and "scaler" not in state
    resumed = AutocastProbe()
    again = fit(resumed, draw_from_data, steps=8, batch_size=16, lr=0.05, warmup=2, checkpoint=path,
                checkpoint_every=2, progress=False, precision="bf16", device="cpu")
    assert again.resumed_from == 4 and again.losses == result.losses
    for (name, p), q in zip(straight.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(p, q), name


def test_fp16_on_cpu_is_a_clear_error():
    message = r"precision 'fp16' needs a CUDA device .*got device 'cpu'; use precision 'bf16' or 'fp32'"
    with pytest.raises(ValueError, match=message):
        fit(TinyAR(), DATA, steps=2, batch_size=4, progress=False, precision="fp16", device="cpu")
    with pytest.raises(ValueError, match=message):
        estimate_run(TinyAR(), DATA, 4, 10, device="cpu", precision="fp16")


@needs_cuda
def test_fp16_on_cuda_saves_and_restores_the_grad_scaler(tmp_path):  # pragma: no cover - needs a GPU
    path = tmp_path / "fp16.pt"
    straight = TinyAR()
    result = fit(straight, DATA, steps=6, batch_size=16, progress=False, precision="fp16", device="cuda")
    interrupted = interrupted_draw(draw_from_data, on_call=4)

    with pytest.raises(KeyboardInterrupt):
        fit(TinyAR(), interrupted, steps=6, batch_size=16, checkpoint=path, checkpoint_every=3, progress=False,
            precision="fp16", device="cuda")
    state = load_checkpoint(path)
    assert state["step"] == 3 and state["precision"] == "fp16" and state["scaler"]["scale"] > 0
    again = fit(TinyAR(), draw_from_data, steps=6, batch_size=16, checkpoint=path, checkpoint_every=3,
                progress=False, precision="fp16", device="cuda")
    assert again.resumed_from == 3 and all(np.isfinite(result.losses))
    # CUDA's atomic adds (the embedding's backward) may reorder sums: equal up to rounding
    assert again.losses == pytest.approx(result.losses, rel=1e-3)


def test_time_based_checkpoints_are_written_between_step_checkpoints(tmp_path, monkeypatch):
    now = {"t": 0.0}

    def fake_clock():
        now["t"] += 10.0  # every reading of the clock is ten seconds later
        return now["t"]

    monkeypatch.setattr(train_module, "_clock", fake_clock)
    # each run is lost during step 7; checkpoint_every alone would have saved nothing
    path = tmp_path / "timed.pt"
    with pytest.raises(KeyboardInterrupt):
        fit(TinyAR(), interrupted_draw(draw_from_data, on_call=7), steps=20, batch_size=8, checkpoint=path,
            checkpoint_every=1000, checkpoint_minutes=0.5, progress=False)
    saved = load_checkpoint(path)["step"]
    assert 1 <= saved <= 6 and not list(tmp_path.glob("*.tmp"))  # written atomically (tmp file + os.replace)

    with pytest.raises(KeyboardInterrupt):  # a long interval: nothing is written before the loss
        fit(TinyAR(), interrupted_draw(draw_from_data, on_call=7), steps=20, batch_size=8,
            checkpoint=tmp_path / "untimed.pt", checkpoint_every=1000, checkpoint_minutes=1e6, progress=False)
    assert not (tmp_path / "untimed.pt").exists()

    monkeypatch.undo()  # the real clock, with a tiny interval: a checkpoint after every step
    with pytest.raises(KeyboardInterrupt):
        fit(TinyAR(), interrupted_draw(draw_from_data, on_call=7), steps=20, batch_size=8,
            checkpoint=tmp_path / "often.pt", checkpoint_every=1000, checkpoint_minutes=1e-9, progress=False)
    assert load_checkpoint(tmp_path / "often.pt")["step"] == 6


def test_estimate_run_leaves_the_model_and_every_generator_untouched():
    torch.manual_seed(0)
    model = catlib.build_model("argmax-threshold", (2,), 4, flow_steps=1, hidden=(16,), q_flow_steps=1,
                               q_hidden=(8,))
    model.eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    random.seed(1)
    np.random.seed(1)
    torch_state, py_state, np_state = torch.get_rng_state(), random.getstate(), np.random.get_state()
    est = estimate_run(model, DATA, batch_size=16, steps=1000, device="cpu")
    assert torch.equal(torch.get_rng_state(), torch_state) and random.getstate() == py_state
    assert all(np.array_equal(a, b) for a, b in zip(np.random.get_state()[1:2], np_state[1:2]))
    for name, value in model.state_dict().items():
        assert torch.equal(value, before[name]), name
    assert not model.training and all(p.grad is None for p in model.parameters())
    assert est["parameters"] == sum(p.numel() for p in model.parameters())
    assert est["seconds_per_step"] > 0 and est["total_seconds"] == pytest.approx(1000 * est["seconds_per_step"])
    assert est["memory_source"] == "cpu-estimate" and est["peak_memory_bytes"] > 4 * 4 * est["parameters"]
    assert format_estimate(est).startswith("estimate: ") and "parameters" in format_estimate(est)
    calls = {"n": 0}

    def counted(n, g):
        calls["n"] += 1
        return draw_from_data(n, g)

    estimate_run(model, counted, batch_size=8, steps=10, device="cpu", warmup_steps=1, timed_steps=2)
    assert calls["n"] == 3


def test_fit_with_an_estimate_prints_it_and_trains_exactly_as_without(capsys):
    def make():
        torch.manual_seed(0)
        return catlib.build_model("argmax-threshold", (2,), 4, flow_steps=1, hidden=(16,), q_flow_steps=1,
                                  q_hidden=(8,))

    plain, estimated = make(), make()
    a = fit(plain, DATA, steps=5, batch_size=16, progress=False)
    after_plain = torch.randint(1000, (3,))
    b = fit(estimated, DATA, steps=5, batch_size=16, progress=False, estimate=True, desc="toy")
    assert torch.equal(torch.randint(1000, (3,)), after_plain)
    assert a.losses == b.losses
    for (name, p), q in zip(plain.state_dict().items(), estimated.state_dict().values()):
        assert torch.equal(p, q), name
    assert b.estimate["steps"] == 5 and b.estimate["batch_size"] == 16
    assert capsys.readouterr().out.startswith("estimate toy: ")


@needs_cuda
def test_estimate_on_cuda_measures_peak_memory():  # pragma: no cover - needs a GPU
    est = estimate_run(TinyAR(), DATA, batch_size=16, steps=10, device="cuda")
    assert est["memory_source"] == "cuda" and est["peak_memory_bytes"] > 0


def test_fit_defaults_reach_fit_and_explicit_arguments_win():
    AutocastProbe.seen = []
    with fit_defaults(precision="bf16", estimate=False):
        fit(AutocastProbe(), DATA, steps=2, batch_size=4, progress=False, device="cpu")
        fit(AutocastProbe(), DATA, steps=1, batch_size=4, progress=False, device="cpu", precision="fp32")
    fit(AutocastProbe(), DATA, steps=1, batch_size=4, progress=False, device="cpu")
    assert AutocastProbe.seen == [torch.bfloat16, torch.bfloat16, None, None]
    with pytest.raises(ValueError, match="precision must be one of"):
        with fit_defaults(precision="half"):
            pass


def test_dispatcher_lists_runs_and_rejects(capsys, monkeypatch):
    from catlib.experiments import __main__ as dispatcher

    names = dispatcher.available_experiments()
    assert {"toy50", "squares", "two_variable", "graphs", "words"} <= set(names)
    dispatcher.main(["--list"])
    listed = capsys.readouterr().out
    assert all(name in listed for name in names)

    with pytest.raises(SystemExit) as exit_:
        dispatcher.main(["toy50", "--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert "usage: python -m catlib.experiments toy50" in out and "--profile" in out

    with pytest.raises(SystemExit) as exit_:
        dispatcher.main(["toy5O"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "'toy5O' is not an experiment; expected one of: " in err and all(name in err for name in names)

    seen = {}

    class Fake:
        @staticmethod
        def main(argv):
            seen.update(argv=argv, defaults=dict(train_module._FIT_DEFAULTS), prog=sys.argv[0])

    monkeypatch.setattr(dispatcher.importlib, "import_module", lambda name: Fake)
    dispatcher.main(["--precision", "bf16", "--checkpoint-minutes", "5", "toy50", "--profile", "smoke", "--seed", "3"])
    assert seen == {"argv": ["--profile", "smoke", "--seed", "3"],
                    "defaults": {"precision": "bf16", "checkpoint_minutes": 5.0, "estimate": True},
                    "prog": "python -m catlib.experiments toy50"}
    assert train_module._FIT_DEFAULTS == {}


def test_dispatcher_runs_as_a_module(capsys, monkeypatch):
    """The file ``python -m catlib.experiments`` runs, executed as ``__main__`` in this process (no new interpreter)."""
    import runpy

    import catlib.experiments

    monkeypatch.setattr(sys, "argv", ["catlib.experiments", "--list"])
    runpy.run_path(str(Path(catlib.experiments.__file__).with_name("__main__.py")), run_name="__main__")
    assert "toy50" in capsys.readouterr().out


def test_an_estimate_that_fails_does_not_stop_the_run(capsys):
    class Uncopyable(TinyAR):
        def __deepcopy__(self, memo):
            raise TypeError("cannot copy this model")

    plain, other = TinyAR(), Uncopyable()
    a = fit(plain, DATA, steps=3, batch_size=8, progress=False)
    b = fit(other, DATA, steps=3, batch_size=8, progress=False, estimate=True)
    assert a.losses == b.losses and b.estimate is None
    assert "estimate unavailable (TypeError: cannot copy this model); training anyway" in capsys.readouterr().out

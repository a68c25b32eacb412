"""One training loop for every model: seeded, on the best device, with progress, checkpoints and resume.

A run is described by its checkpoint file. ``fit`` saves the model, the optimiser, the step,
the loss history and every random state every ``checkpoint_every`` steps (and, with
``checkpoint_minutes``, whenever that much wall time has passed); called again with the same
file it continues where the file stops (an exact continuation on CPU), and once the run is
finished it trains no more. ``save_metrics`` stores a finished run's evaluation in the same
file, so a chapter can re-render from it without re-training. The file holds tensors and plain
data only, with a SHA-256 of its contents and a fingerprint of the run's settings
(:mod:`catlib.checkpoint`): a file of another run is refused instead of resumed.

The same loop runs in mixed precision (``precision="bf16"`` or ``"fp16"``) and on several
GPUs launched by ``torchrun`` (DistributedDataParallel, :mod:`catlib.distributed`): every
process draws the global batch a single process would draw and trains on its own slice of it.
``estimate_run`` times a few steps on a throwaway copy and projects time and memory.
"""
from __future__ import annotations

import contextlib
import copy
import gc
import json
import math
import os
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Sequence

import torch
from torch import Tensor, nn

from catlib.checkpoint import (CheckpointError, fingerprint_differences, load_checkpoint, save_checkpoint,
                               tensor_bytes, to_plain)
from catlib.distributed import (SINGLE, DistributedContext, all_gather_objects, all_reduce_mean, barrier,
                                broadcast_flag, init_distributed, process_rank, rank_seed)
from catlib.progress import progress_bar
from catlib.validation import check_positive_int, check_writable_dir

__all__ = ["select_device", "seed_everything", "fit", "FitResult", "save_metrics", "load_checkpoint", "still_falling",
           "curve_trend", "StepLog", "finished_run_metrics", "TrainingLoss", "estimate_run", "format_estimate", "fit_defaults", "PRECISIONS",
           "RESUME_MODES", "CheckpointError", "run_fingerprint", "data_description", "OPTIMIZERS", "schedule_name"]

#: The precisions :func:`fit` trains in: float32, bfloat16 autocast, float16 autocast with loss scaling (CUDA).
PRECISIONS = ("fp32", "bf16", "fp16")

#: How :func:`fit` treats an existing checkpoint: ``"check"`` resumes it only if its fingerprint matches
#: the run's settings; ``"ignore-settings"`` resumes it whatever settings wrote it.
RESUME_MODES = ("check", "ignore-settings")

#: The optimiser and learning-rate schedule of :func:`fit` by default, as recorded in a run's fingerprint.
SCHEDULE = "adam, linear warm-up, cosine decay to 0"
#: The optimisers :func:`fit` offers: Adam (Kingma & Ba, 2015) and RAdam (Liu et al., 2020; CatNF's).
OPTIMIZERS = ("adam", "radam")


def schedule_name(optimizer: str = "adam", lr_decay: float | None = None) -> str:
    """How a run of :func:`fit` with ``optimizer`` and ``lr_decay`` is recorded in its fingerprint.

    >>> schedule_name() == SCHEDULE, schedule_name("radam", 0.999975)
    (True, 'radam, linear warm-up, exponential decay x0.999975 per step')
    """
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {list(OPTIMIZERS)}, got {optimizer!r}")
    if lr_decay is not None and (isinstance(lr_decay, bool) or not isinstance(lr_decay, (int, float))
                                 or not 0.0 < lr_decay <= 1.0):
        raise ValueError(f"lr_decay must be None (cosine decay) or a number in (0, 1], got {lr_decay!r}")
    decay = "cosine decay to 0" if lr_decay is None else f"exponential decay x{lr_decay} per step"
    return f"{optimizer}, linear warm-up, {decay}"

#: The wall clock of :func:`fit` (seconds); tests replace it with a fake one.
_clock = time.perf_counter


def select_device(device: str | torch.device | None = None) -> torch.device:
    """``device`` if given, else CUDA when present, else the CPU."""
    if device is not None:
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's (if installed) and torch's generators."""
    import random

    random.seed(seed)
    torch.manual_seed(seed)
    try:
        import numpy as np

        np.random.seed(seed)
    except ImportError:  # pragma: no cover
        pass


@dataclass
class FitResult:
    """What a run leaves: the loss history (nats per example), steps done and time spent."""

    losses: list[float] = field(default_factory=list)
    steps: int = 0
    seconds: float = 0.0
    resumed_from: int = 0
    metrics: dict | None = None
    estimate: dict | None = None


def curve_trend(curve: list[dict], key: str = "validity", points: int = 4, seen: str = "graphs_seen") -> float:
    r"""How fast a learning curve (a list of points such as the graph and molecule experiments'
    ``curve``) was moving when training stopped: the least-squares slope of ``key`` against
    :math:`\log_2` of the examples seen (the key ``seen``) over its last ``points`` points with
    examples seen, i.e. the change per doubling of the training budget. NaN with fewer than two
    such points.

    >>> curve = [{"graphs_seen": 2 ** k, "validity": 0.1 * k} for k in range(6)]
    >>> round(curve_trend(curve), 6)
    0.1
    """
    if points < 2:
        raise ValueError(f"points must be at least 2, got {points}")
    tail = [r for r in curve if r[seen] > 0][-points:]
    if len(tail) < 2:
        return float("nan")
    x = torch.tensor([r[seen] for r in tail], dtype=torch.float64).log2()
    y = torch.tensor([r[key] for r in tail], dtype=torch.float64)
    x = x - x.mean()
    return float((x * (y - y.mean())).sum() / (x * x).sum())


def still_falling(losses: Sequence[float], min_drop: float = 0.01) -> bool:
    r"""Was a training curve still falling when it stopped? The mean loss of its last quarter is
    below that of the quarter before by more than ``min_drop`` (in the losses' units):

    .. math:: \bar\ell_{[3S/4, S)} < \bar\ell_{[S/2, 3S/4)} - \delta.

    With the cosine schedule of :func:`fit` the learning rate is small in the last quarter, so
    a drop there is what the run learned, not noise it averaged away. Needs 8 losses or more.

    >>> still_falling([5.0] * 60 + [4.0] * 40), still_falling([4.0] * 100)
    (True, False)
    """
    losses = [float(v) for v in losses]
    if len(losses) < 8:
        raise ValueError(f"still_falling needs at least 8 losses, got {len(losses)}")
    n = len(losses)
    third = losses[n // 2:3 * n // 4]
    last = losses[3 * n // 4:]
    return sum(last) / len(last) < sum(third) / len(third) - min_drop


def data_description(data: Tensor | Callable) -> dict:
    """What a run trains on, for its fingerprint: a tensor's shape, dtype and SHA-256, or a function's name.

    >>> data_description(torch.zeros(4, 2, dtype=torch.long))["shape"]
    [4, 2]
    >>> data_description(lambda n, g: None)["function"]
    'catlib.train.<lambda>'
    """
    if isinstance(data, Tensor):
        import hashlib

        return {"tensor": True, "shape": list(data.shape), "dtype": str(data.dtype),
                "sha256": hashlib.sha256(tensor_bytes(data)).hexdigest()}
    name = getattr(data, "__qualname__", type(data).__qualname__)
    return {"tensor": False, "function": f"{getattr(data, '__module__', '?')}.{name}"}


def run_fingerprint(model: nn.Module, data: Tensor | Callable, *, steps: int, batch_size: int, lr: float, seed: int,
                    warmup: int, grad_clip: float | None, precision: str, world_size: int,
                    settings: dict | None = None, schedule: str = SCHEDULE) -> dict:
    """Plain data naming everything that defines a training run of :func:`fit` (stored in its checkpoint).

    The model's class, ``name``, ``options`` (what :func:`catlib.build_model` was given) and
    parameter and buffer shapes, :func:`data_description` of the data, seed, steps, batch size,
    learning rate, warm-up, gradient clipping, the optimiser and schedule, the precision, the
    number of processes, and the caller's ``settings`` (e.g. an experiment's configuration).
    Tensors among the options and settings are recorded by :func:`data_description`.

    >>> fp = run_fingerprint(nn.Linear(2, 3), torch.zeros(5, 2), steps=10, batch_size=4, lr=1e-3, seed=0,
    ...                      warmup=1, grad_clip=None, precision="fp32", world_size=1)
    >>> fp["shapes"], fp["steps"]
    ({'weight': [3, 2], 'bias': [3]}, 10)
    """
    return _tensors_described(to_plain({
        "model": f"{type(model).__module__}.{type(model).__qualname__}", "name": getattr(model, "name", None),
        "options": getattr(model, "options", None),
        "shapes": {k: list(v.shape) for k, v in model.state_dict().items()}, "data": data_description(data),
        "seed": seed, "steps": steps, "batch_size": batch_size, "lr": lr, "warmup": warmup, "grad_clip": grad_clip,
        "schedule": schedule, "precision": precision, "world_size": world_size,
        "settings": settings if settings is not None else {}}, "fingerprint"))


def _tensors_described(value):
    """``value`` (plain data) with each tensor replaced by its :func:`data_description` (comparable with ``==``)."""
    if isinstance(value, Tensor):
        return data_description(value)
    if isinstance(value, dict):
        return {k: _tensors_described(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_tensors_described(v) for v in value)
    return value


def _check_fingerprint(path: Path, state: dict, current: dict, resume: str) -> None:
    """Refuse to resume the checkpoint at ``path`` unless it was written by the run ``current`` describes."""
    if resume == "ignore-settings":
        return
    saved = state.get("fingerprint")
    if saved is None:
        raise CheckpointError(
            f"checkpoint {path} was written before catlib recorded run settings in checkpoints, so it cannot be "
            f"checked against this run; delete it to train from scratch, or pass resume='ignore-settings' to "
            f"continue it with the settings given now")
    differences = fingerprint_differences(saved, current)
    if differences:
        shown = differences[:12] + ([f"... and {len(differences) - 12} more"] if len(differences) > 12 else [])
        raise CheckpointError(
            f"checkpoint {path} belongs to another run; these settings differ:\n  " + "\n  ".join(shown)
            + f"\nDelete it (or choose another checkpoint file) to train this run from scratch, or pass "
              f"resume='ignore-settings' to continue the saved run with the settings given now")


def finished_run_metrics(path: str | os.PathLike | None, run: dict, steps: int) -> dict | None:
    """The metrics stored in the checkpoint at ``path`` if they belong to ``run``, else ``None``.

    ``run`` describes a run's settings (stored as ``metrics["run"]`` by the experiment). A
    finished checkpoint of other settings, or any of another length (``steps``), belongs to a
    different configuration and is deleted; an unfinished one of the same length is kept, so
    :func:`fit` resumes the interrupted run.

    In a multi-process run only rank 0 deletes; the other ranks may find the file gone
    (``None``), and :func:`fit` waits for every rank before it looks at the checkpoint.
    """
    if path is None or not Path(path).exists():
        return None
    try:
        state = load_checkpoint(path)
    except (FileNotFoundError, ValueError):
        if process_rank() != 0 and not Path(path).exists():
            return None  # rank 0 deleted it meanwhile
        raise
    if state.get("metrics") and state["metrics"].get("run") == run:
        return state["metrics"]
    if (state.get("metrics") or state.get("steps_total") != steps) and process_rank() == 0:
        Path(path).unlink(missing_ok=True)  # a different configuration: start again
    return None


def save_metrics(path: str | os.PathLike, metrics: dict) -> None:
    """Store ``metrics`` in a finished run's checkpoint (on rank 0 only in a multi-process run)."""
    if process_rank() != 0:
        return
    state = load_checkpoint(path)
    state["metrics"] = metrics  # save_checkpoint makes it plain data (or refuses it, naming the entry)
    save_checkpoint(path, state)


class TrainingLoss(nn.Module):
    """The training objective as a module: ``model.training_loss(x)`` if it exists, else ``-model.log_prob(x).mean()``.

    :func:`fit` calls the model through this wrapper so that DistributedDataParallel, which
    wraps it, sees the loss computed inside its ``forward`` (its gradient hooks are set up
    there); calling ``model.log_prob`` directly on a DDP-wrapped model would bypass them.

    Args:
        model: has ``log_prob(x) -> [batch]`` (and optionally ``training_loss(x) -> []``).

    >>> class Coin(nn.Module):
    ...     def __init__(self):
    ...         super().__init__()
    ...         self.logit = nn.Parameter(torch.zeros(()))
    ...     def log_prob(self, x):  # x: [batch, 1] in {0, 1}
    ...         return -nn.functional.binary_cross_entropy_with_logits(
    ...             self.logit.expand(len(x)), x[:, 0].float(), reduction="none")
    >>> round(TrainingLoss(Coin())(torch.tensor([[0], [1]])).item(), 4)  # ln 2
    0.6931
    """

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: Tensor) -> Tensor:
        """The scalar loss (nats per example) on a batch ``x`` ``[batch, *data_shape]``."""
        model = self.model
        return model.training_loss(x) if hasattr(model, "training_loss") else -model.log_prob(x).mean()


_FIT_DEFAULTS: dict = {}


@contextlib.contextmanager
def fit_defaults(*, precision: str | None = None, checkpoint_minutes: float | None = None,
                 estimate: bool | None = None, resume: str | None = None,
                 compile: bool | None = None) -> Iterator[None]:
    """Inside the block, :func:`fit` calls that leave these arguments out use the values given here.

    The command line (``python -m catlib.experiments --precision bf16 --estimate toy50``) uses
    it to reach the ``fit`` calls inside an experiment; ``None`` keeps the current default.
    Arguments passed to ``fit`` explicitly always win.

    >>> with fit_defaults(precision="bf16"):
    ...     _resolve_default("precision", None, "fp32")
    'bf16'
    >>> _resolve_default("precision", None, "fp32")
    'fp32'
    """
    if precision is not None:
        _check_precision(precision)
    if checkpoint_minutes is not None:
        _check_minutes(checkpoint_minutes)
    if resume is not None:
        _check_resume(resume)
    saved = dict(_FIT_DEFAULTS)
    given = {"precision": precision, "checkpoint_minutes": checkpoint_minutes, "estimate": estimate, "resume": resume,
             "compile": compile}
    _FIT_DEFAULTS.update({k: v for k, v in given.items() if v is not None})
    try:
        yield
    finally:
        _FIT_DEFAULTS.clear()
        _FIT_DEFAULTS.update(saved)


def _resolve_default(name: str, value, default):
    if value is not None:
        return value
    return _FIT_DEFAULTS.get(name, default)


def _check_precision(precision) -> str:
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(map(repr, PRECISIONS))}, got {precision!r}")
    return precision


def _check_resume(resume) -> str:
    if resume not in RESUME_MODES:
        raise ValueError(f"resume must be one of {', '.join(map(repr, RESUME_MODES))}, got {resume!r}")
    return resume


def _check_minutes(minutes) -> float:
    if isinstance(minutes, bool) or not isinstance(minutes, (int, float)) or not minutes > 0 \
            or not math.isfinite(minutes):
        raise ValueError(f"checkpoint_minutes must be a positive number of minutes or None, got {minutes!r}")
    return float(minutes)


def _check_precision_device(precision: str, device: torch.device) -> None:
    if precision == "fp16" and device.type != "cuda":
        raise ValueError(f"precision 'fp16' needs a CUDA device (float16 autocast with torch.amp.GradScaler), "
                         f"got device {str(device)!r}; use precision 'bf16' or 'fp32' on the {device.type}")
    if precision == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():  # pragma: no cover
        raise ValueError(f"precision 'bf16' is not supported by {torch.cuda.get_device_name(device)} "
                         f"(device {str(device)!r}); use precision 'fp16' (e.g. on a T4) or 'fp32'")


def _autocast(precision: str, device: torch.device) -> contextlib.AbstractContextManager:
    """A fresh context for one forward pass: autocast to bf16/fp16, or nothing for fp32."""
    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)


def _device_for(ctx: DistributedContext, device: str | torch.device | None) -> torch.device:
    """``select_device(device)``; in a multi-process run a CUDA device without index is ``cuda:LOCAL_RANK``."""
    device = select_device(device)
    if ctx.enabled and device.type == "cuda" and device.index is None:
        device = torch.device("cuda", ctx.local_rank)
    return device


def _nonfinite_loss_message(loss: float, step: int, named_params: list[tuple[str, Tensor]], precision: str) -> str:
    """Why training stopped: the parameters went non-finite (an earlier update diverged), or only the loss did."""
    hint = "" if precision == "fp32" else f"; training in {precision}: try precision 'fp32'"
    bad = [name for name, p in named_params if not torch.isfinite(p.detach()).all()]
    if bad:
        listed = ", ".join(bad[:3]) + (f" and {len(bad) - 3} more" if len(bad) > 3 else "")
        return (f"the parameters became non-finite before step {step} ({len(bad)} of {len(named_params)} tensors: "
                f"{listed}), so the loss is {loss}: an earlier update diverged; lower lr or keep grad_clip on{hint}")
    return (f"loss became {loss} at step {step} while every parameter is finite: the model's log_prob (or "
            f"training_loss) returned a non-finite value on this batch; look for a log of zero or an overflow "
            f"in the model, or lower lr{hint}")


def _step(objective: nn.Module, params: list[Tensor], optimizer: torch.optim.Optimizer, x: Tensor,
          precision: str, device: torch.device, scaler, grad_clip: float | None,
          ctx: DistributedContext, step: int, names: list[str] | None = None) -> float:
    """One optimisation step on ``x``; returns the loss (the mean over every rank's batch).

    A non-finite loss raises ``FloatingPointError`` saying whether the parameters (named by
    ``names``, aligned with ``params``) or only the loss went non-finite.
    """
    with _autocast(precision, device):
        loss = objective(x)
    logged = all_reduce_mean(loss.detach(), ctx).item()  # the step's one synchronisation
    if not math.isfinite(logged):
        named = list(zip(names if names is not None else [f"parameter {i}" for i in range(len(params))], params))
        raise FloatingPointError(_nonfinite_loss_message(logged, step, named, precision))
    optimizer.zero_grad(set_to_none=True)
    # on the CPU torch's default is a loop over the gradients; foreach computes the same norms in one call
    foreach = True if device.type == "cpu" else None
    if scaler is None:
        loss.backward()
        if grad_clip is not None:
            nn.utils.clip_grad_norm_(params, grad_clip, foreach=foreach)
        optimizer.step()
    else:
        scaler.scale(loss).backward()
        if grad_clip is not None:
            scaler.unscale_(optimizer)  # clip the true gradients, not the scaled ones
            nn.utils.clip_grad_norm_(params, grad_clip, foreach=foreach)
        scaler.step(optimizer)  # skipped when the scaled gradients overflowed
        scaler.update()
    return logged


def _optimizer(name: str, params, lr: float, device: torch.device) -> torch.optim.Optimizer:
    """The optimiser ``name`` of :func:`fit`: :func:`_adam`, or torch's RAdam for ``"radam"``."""
    return _adam(params, lr, device) if name == "adam" else torch.optim.RAdam(params, lr=lr)


def _adam(params, lr: float, device: torch.device) -> torch.optim.Adam:
    """The Adam optimiser of :func:`fit` (and :func:`estimate_run`) on ``device``.

    On the CPU the fused implementation (``fused=True``): one kernel updates every parameter,
    instead of about ten small operations per parameter tensor in torch's default CPU loop; the
    update is Adam's, the same up to floating-point rounding. Elsewhere torch's default (on CUDA
    the multi-tensor ``foreach`` implementation). A checkpoint stores the choice with the
    optimiser's settings, and a resumed run keeps the stored one (the update is the same).
    """
    if device.type == "cpu":
        return torch.optim.Adam(params, lr=lr, fused=True)
    return torch.optim.Adam(params, lr=lr)


#: Whether ``torch.compile`` works on a device type here (probed once per process), or why not.
_COMPILE_PROBES: dict[str, str | None] = {}


def _compile_unavailable(device: torch.device) -> str | None:
    """``None`` if ``torch.compile`` (inductor) compiles and runs a tiny function on ``device``, else why not."""
    if device.type not in _COMPILE_PROBES:
        try:
            probe = torch.compile(lambda t: torch.exp(t) * 2.0 + 1.0, fullgraph=True)
            t = torch.ones(3, device=device)
            if not torch.allclose(probe(t), torch.exp(t) * 2.0 + 1.0):  # pragma: no cover
                raise RuntimeError("the compiled probe computed a wrong value")
            _COMPILE_PROBES[device.type] = None
        except Exception as err:  # noqa: BLE001 - any failure means: no compiler here
            first_line = (str(err).strip().splitlines() or [""])[0]
            _COMPILE_PROBES[device.type] = f"{type(err).__name__}: {first_line}"
    return _COMPILE_PROBES[device.type]


def _compiled(objective: nn.Module, device: torch.device) -> nn.Module:
    """``torch.compile(objective)`` with eager random numbers; ``objective`` itself if compiling cannot work here.

    ``fallback_random=True`` makes inductor draw random numbers with torch's own operations, so
    a compiled model draws the noise (argmax flows' samples, diffusion timesteps) the eager one
    draws, from the same generators.
    """
    why = _compile_unavailable(device)
    if why is not None:
        import warnings

        warnings.warn(f"fit(compile=True): torch.compile does not work on {device.type} here ({why}); "
                      f"training without compiling", RuntimeWarning, stacklevel=3)
        return objective
    return torch.compile(objective, options={"fallback_random": True})


def fit(model: nn.Module, data: Tensor | Callable[[int, torch.Generator], Tensor], steps: int,
        batch_size: int = 256, lr: float = 1e-3, seed: int = 0, device: str | torch.device | None = None,
        checkpoint: str | os.PathLike | None = None, checkpoint_every: int = 500,
        grad_clip: float | None = 10.0, warmup: int = 100, progress: bool = True,
        desc: str | None = None, *, precision: str | None = None, checkpoint_minutes: float | None = None,
        estimate: bool | None = None, distributed: bool | None = None, resume: str | None = None,
        settings: dict | None = None, compile: bool | None = None, optimizer: str = "adam",
        lr_decay: float | None = None) -> FitResult:
    r"""Maximise ``model.log_prob(x).mean()`` with Adam and a cosine learning-rate decay.

    A model with its own objective (``model.training_loss(x) -> scalar``, e.g. multinomial
    diffusion's importance-sampled timesteps) is trained on that instead.

    The learning rate of step :math:`s` (of :math:`S`) with :math:`W` warm-up steps is

    .. math:: \eta_s = \eta \,\min\Big(1, \frac{s + 1}{W}\Big)\,\frac{1 + \cos(\pi s / S)}{2},

    or, with ``lr_decay`` :math:`= \gamma`, an exponential decay
    :math:`\eta_s = \eta \min(1, \frac{s + 1}{W})\, \gamma^{s}` (CatNF's schedule, with RAdam:
    ``optimizer="radam"``).

    **Mixed precision.** ``"bf16"`` runs the forward pass (the loss) under
    ``torch.autocast(dtype=torch.bfloat16)`` on CUDA or the CPU; ``"fp16"`` uses float16
    autocast and a ``torch.amp.GradScaler`` (CUDA only), whose state is saved in checkpoints
    and restored on resume. Autocast covers only the forward pass: the backward pass follows
    the dtypes the forward chose, and parameters, gradients and Adam's state stay float32.
    A flow's log-probability is a sum of many log-determinants and log-densities, which
    loses digits in 16-bit arithmetic (bfloat16 keeps 8 bits of mantissa): a model may need
    to compute ``log_prob`` (or parts of it) in float32 itself, e.g. inside
    ``torch.autocast(device_type, enabled=False)`` with inputs cast by ``.float()``. A
    checkpoint trained in one precision resumes in another, but only an unchanged precision
    continues the run exactly.

    **Several processes.** Launched by ``torchrun`` (``WORLD_SIZE > 1``), or with
    ``distributed=True`` after ``torch.distributed.init_process_group``, each of the ``W``
    processes joins the process group (:func:`catlib.distributed.init_distributed`: NCCL on
    CUDA, Gloo on the CPU; CUDA runs on ``cuda:LOCAL_RANK``), wraps a :class:`TrainingLoss`
    of the model in DistributedDataParallel, draws the global batch of ``batch_size`` rows
    that a single process would draw (the data generator is seeded with ``seed`` on every
    rank) and trains on rows ``[rank * b / W, (rank + 1) * b / W)`` of it; gradients are
    averaged, so a step is that of one process on the whole batch (up to floating-point
    rounding) when the model draws no noise. Noise inside the model (argmax flows' samples
    of :math:`q(v \mid x)`, diffusion timesteps) comes from torch's global generator, seeded
    with :func:`catlib.distributed.rank_seed` on each rank. The logged losses are global
    means; only rank 0 shows the progress bar and writes checkpoints, which keep every
    rank's random state, and every rank reads the checkpoint on resume (the number of
    processes is part of the run's fingerprint). Data-dependent initialisations (ActNorm,
    ActNorm2d, the Gumbel locations) run on the global first batch and are copied from rank 0
    to every rank before the first step, so the replicas start, and stay, identical.
    ``batch_size`` stays the global batch and must be divisible by ``W``. Buffers (e.g.
    diffusion's loss history) are rank 0's, broadcast by DDP before every forward pass.

    Args:
        model: has ``log_prob(x) -> [batch]`` (and optionally ``training_loss(x) -> []``).
        data: a tensor ``[N, ...]`` to draw minibatches from (with replacement, seeded), or a
            function ``(batch_size, generator) -> batch`` (a tensor ``[batch_size, ...]`` when
            several processes split it).
        steps: total optimisation steps of the run (also when resuming).
        batch_size: examples per step (over all processes together).
        checkpoint: file for checkpoints and resume; ``None`` trains without saving.
        checkpoint_every: save every this many steps (and at the end).
        grad_clip: maximum gradient norm (``None``: no clipping).
        warmup: steps of linear learning-rate warm-up.
        precision: ``"fp32"`` (default), ``"bf16"`` or ``"fp16"`` (see above).
        checkpoint_minutes: also save when this many minutes of wall time have passed since
            the last save (rank 0's clock decides); ``None``: only every ``checkpoint_every``
            steps. Each write is atomic, so a session lost mid-write keeps the previous file.
        estimate: before the first step, print a one-line estimate of time and memory
            (:func:`estimate_run` on a copy, with the run's first batch; the run itself is
            unchanged, and the copy needs room for a second model and optimiser) and keep it in
            ``FitResult.estimate``. With several processes rank 0 times its share of the batch.
        distributed: ``None`` (default): several processes if launched so; ``True``:
            required; ``False``: one process whatever the environment says.
        resume: what to do with an existing ``checkpoint`` file: ``"check"`` (default)
            resumes it only if it was written by this run (same fingerprint, see below) and
            raises :class:`~catlib.checkpoint.CheckpointError` listing the settings that differ
            otherwise; ``"ignore-settings"`` resumes it whatever wrote it (the settings given
            now apply from the next step on, e.g. the cosine schedule over the new ``steps``).
        settings: plain data naming what else defines the run (an experiment's configuration,
            model options that change no shape); part of the fingerprint.
        optimizer: ``"adam"`` (default) or ``"radam"``.
        lr_decay: ``None`` (default): cosine decay over ``steps``; a number :math:`\gamma` in
            (0, 1]: the learning rate is multiplied by it at every step.
        compile: ``False`` (default): run the model eagerly. ``True``: wrap the training
            objective (:class:`TrainingLoss`, inside DistributedDataParallel when there is one)
            in ``torch.compile`` (inductor; random numbers drawn by torch's own operations, so
            the model's noise is the one it draws uncompiled), which compiles the forward and
            backward pass at the first step (seconds to minutes) and again whenever a shape
            changes. The losses are those of the eager run up to floating-point rounding (so a
            run may be resumed with or without it; it is not part of the fingerprint). If
            ``torch.compile`` cannot compile on this device (probed once with a tiny function,
            e.g. no C compiler for the CPU), a ``RuntimeWarning`` says so and the run trains
            eagerly. The estimate (``estimate=True``) times the eager model.

    **Checkpoints.** The file holds tensors and plain data only (model, optimiser, step,
    losses, time, every random state, the metrics of :func:`save_metrics`), with a SHA-256 of
    its contents and the run's fingerprint (:func:`run_fingerprint`: model class and parameter
    shapes, data, seed, steps, batch size, learning rate, warm-up, clipping, schedule,
    precision, number of processes, ``settings``). It is read with ``weights_only=True`` (a
    file that needs anything else is refused, never unpickled), a changed byte is reported as
    a corrupted file, and a finished run asked for more steps is another run. The folder is
    created and test-written before the first step.

    ``precision``, ``checkpoint_minutes``, ``estimate``, ``resume`` and ``compile`` left at ``None`` take the
    values of an enclosing :func:`fit_defaults` block, else ``"fp32"``, ``None``, ``False``, ``"check"`` and
    ``False``.

    **Speed.** On the CPU the optimiser is Adam's fused implementation and gradient clipping
    uses torch's multi-tensor (``foreach``) norms; each step synchronises once, for the logged loss.

    Returns:
        a :class:`FitResult`; ``metrics`` holds what :func:`save_metrics` stored, if any.

    >>> import catlib
    >>> _ = torch.manual_seed(0)
    >>> model = catlib.build_model("argmax-threshold", (2,), 4, flow_steps=1, hidden=(8,))
    >>> result = fit(model, torch.randint(0, 4, (100, 2)), steps=3, batch_size=8, progress=False)
    >>> result.steps, len(result.losses), model.training
    (3, 3, False)
    """
    steps = check_positive_int("steps", steps)
    batch_size = check_positive_int("batch_size", batch_size)
    checkpoint_every = check_positive_int("checkpoint_every", checkpoint_every)
    precision = _check_precision(_resolve_default("precision", precision, "fp32"))
    checkpoint_minutes = _resolve_default("checkpoint_minutes", checkpoint_minutes, None)
    if checkpoint_minutes is not None:
        checkpoint_minutes = _check_minutes(checkpoint_minutes)
    estimate = bool(_resolve_default("estimate", estimate, False))
    resume = _check_resume(_resolve_default("resume", resume, "check"))
    compile = _resolve_default("compile", compile, False)
    if not isinstance(compile, bool):
        raise ValueError(f"compile must be True or False, got {compile!r}")
    path = Path(checkpoint) if checkpoint is not None else None
    if path is not None:  # before any training: a folder that cannot hold the checkpoint fails now
        check_writable_dir(path.parent, "checkpoint folder")
    ctx = init_distributed(distributed, device)
    rows = ctx.shard(batch_size)
    device = _device_for(ctx, device)
    _check_precision_device(precision, device)
    schedule = schedule_name(optimizer, lr_decay)
    fingerprint = run_fingerprint(model, data, steps=steps, batch_size=batch_size, lr=lr, seed=seed, warmup=warmup,
                                  grad_clip=grad_clip, precision=precision, world_size=ctx.world_size,
                                  settings=settings, schedule=schedule) if path is not None else None
    model.to(device).train()
    optimizer = _optimizer(optimizer, model.parameters(), lr, device)  # the name -> torch's optimiser
    scaler = torch.amp.GradScaler("cuda") if precision == "fp16" else None

    def lr_at(step: int) -> float:
        ramp = min(1.0, (step + 1) / max(1, warmup))
        if lr_decay is not None:
            return lr * ramp * lr_decay ** step
        return lr * ramp * 0.5 * (1 + math.cos(math.pi * step / steps))

    seed_everything(rank_seed(seed, ctx.rank))
    gen = torch.Generator().manual_seed(seed)
    result = FitResult()
    barrier(ctx)  # every rank looks at the same file (rank 0 may just have deleted a stale one)
    if path is not None and path.exists():
        state = load_checkpoint(path)
        _check_fingerprint(path, state, fingerprint, resume)
        try:
            model.load_state_dict(state["model"])
        except RuntimeError as err:  # only with resume="ignore-settings": the shapes were not compared
            raise CheckpointError(f"checkpoint {path} holds a model of other shapes than this one: "
                                  f"{str(err).strip().splitlines()[-1].strip()}") from None
        optimizer.load_state_dict(state["optimizer"])
        if scaler is not None and state.get("scaler") is not None:
            scaler.load_state_dict(state["scaler"])
        cpu_rng, cuda_rng = state["torch_rng"], state.get("cuda_rng")
        per_rank = state.get("rank_rng")
        if ctx.enabled and per_rank is not None and len(per_rank) == ctx.world_size:
            cpu_rng, cuda_rng = per_rank[ctx.rank]
        if ctx.rank == 0 or (per_rank is not None and len(per_rank) == ctx.world_size):
            torch.set_rng_state(cpu_rng)
            if device.type == "cuda" and cuda_rng is not None:
                torch.cuda.set_rng_state(cuda_rng, device)
        # else: another number of processes wrote it; this rank keeps its fresh rank_seed state
        gen.set_state(state["data_rng"])
        result = FitResult(list(state["losses"]), state["step"], state["seconds"], state["step"], state.get("metrics"))

    def snapshot(rank_states: list | None) -> dict:
        state = {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "step": result.steps,
                 "losses": result.losses, "seconds": result.seconds, "torch_rng": torch.get_rng_state(),
                 "cuda_rng": torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
                 "data_rng": gen.get_state(), "metrics": result.metrics, "steps_total": steps,
                 "fingerprint": fingerprint}
        if precision != "fp32":  # extra keys only where used: fp32 single-process files are as before
            state["precision"] = precision
        if scaler is not None:
            state["scaler"] = scaler.state_dict()
        if rank_states is not None:
            state["world_size"] = ctx.world_size
            state["rank_rng"] = rank_states
        return state

    def save() -> None:
        rank_states = None
        if ctx.enabled:  # every rank takes part; rank 0 writes
            rank_states = all_gather_objects(
                (torch.get_rng_state(), torch.cuda.get_rng_state(device) if device.type == "cuda" else None), ctx)
        if ctx.is_main:
            save_checkpoint(path, snapshot(rank_states))

    if isinstance(data, Tensor):
        train = data.to(device)

        def draw(n: int, g: torch.Generator) -> Tensor:
            return train[torch.randint(len(train), (n,), generator=g).to(device)]
    elif ctx.enabled:
        def draw(n: int, g: torch.Generator) -> Tensor:
            batch = data(n, g)
            if not isinstance(batch, Tensor) or batch.dim() == 0 or batch.shape[0] != n:
                got = f"shape {list(batch.shape)}" if isinstance(batch, Tensor) else type(batch).__name__
                raise ValueError(f"data(batch_size, generator) must return a tensor [batch_size={n}, ...] to split "
                                 f"across {ctx.world_size} processes, got {got}")
            return batch
    else:
        draw = data

    objective: nn.Module = TrainingLoss(model)
    wrapped = not ctx.enabled  # with several processes, DDP wraps the objective at the first step
    runner = _compiled(objective, device) if compile and wrapped else objective  # what each step calls
    named = list(model.named_parameters())
    names, params = [name for name, _ in named], [p for _, p in named]

    bar = progress_bar(range(result.steps, steps), initial=result.steps, total=steps,
                       disable=not progress or not ctx.is_main, desc=desc or getattr(model, "name", "fit"), leave=False)
    start = _clock() - result.seconds
    last_save = _clock()
    first = result.steps
    for step in bar:
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step)
        x = draw(batch_size, gen).to(device)  # with several processes: the global batch, split below
        if not wrapped:
            from torch.nn.parallel import DistributedDataParallel

            _initialize_on_global_batch(objective, x, precision, device)
            # DDP's constructor broadcasts rank 0's parameters and buffers, data-dependent ones included
            objective = DistributedDataParallel(objective, device_ids=[device.index] if device.type == "cuda" else None)
            runner = _compiled(objective, device) if compile else objective
            wrapped = True
        if ctx.enabled:
            x = x[rows]
        if estimate and step == first and ctx.is_main:
            began = _clock()
            try:  # advisory: a model that cannot be copied (or a copy that does not fit) still trains
                result.estimate = estimate_run(model, lambda n, g: x, len(x), steps - step, device, precision,
                                               grad_clip=grad_clip, world_size=ctx.world_size)
                bar.write(format_estimate(result.estimate, desc or getattr(model, "name", None)))
            except Exception as err:  # noqa: BLE001 - reported, and the run goes on unchanged
                bar.write(f"estimate unavailable ({type(err).__name__}: {err}); training anyway")
                if device.type == "cuda":
                    torch.cuda.empty_cache()
            start += _clock() - began  # the estimate is not training time
        loss = _step(runner, params, optimizer, x, precision, device, scaler, grad_clip, ctx, step, names)
        result.losses.append(loss)
        result.steps = step + 1
        result.seconds = _clock() - start
        if step % 50 == 0:
            bar.set_postfix(loss=f"{loss:.3f}")
        if path is not None:
            due = checkpoint_minutes is not None and _clock() - last_save >= 60.0 * checkpoint_minutes
            if checkpoint_minutes is not None:
                due = broadcast_flag(due, ctx, device)  # rank 0's clock decides for everyone
            if result.steps % checkpoint_every == 0 or result.steps == steps or due:
                save()
                last_save = _clock()
    bar.close()
    if ctx.enabled and wrapped:
        del objective, runner  # drop DDP's gradient hooks from the model's parameters
        gc.collect()
        barrier(ctx)  # the last checkpoint is written before any rank goes on
    model.eval()
    return result


def _pending_data_init(model: nn.Module) -> bool:
    """Whether a module of ``model`` still waits for its data-dependent initialisation.

    The convention of catlib's layers (ActNorm, ActNorm2d, the Gumbel locations, ...): such a
    module registers a boolean buffer ``initialized`` and sets it in its first forward pass in
    training mode, from that batch's statistics.
    """
    return any(name.rsplit(".", 1)[-1] == "initialized" and buf.dtype == torch.bool and not bool(buf.all())
               for name, buf in model.named_buffers())


@torch.no_grad()
def _initialize_on_global_batch(objective: TrainingLoss, x: Tensor, precision: str, device: torch.device) -> None:
    """Run the data-dependent initialisations of ``objective.model`` on the global first batch ``x``.

    Without this, each process of a DDP run would initialise ActNorm (and friends) from its own
    slice of the batch, after DDP's initial broadcast, and the replicas would drift apart. The
    forward pass here draws its noise from a fork of the global generators, so rank 0 computes
    exactly the values a single process computes in its first step on the same batch, and the
    training step that follows draws the same noise as it would have without this pass. DDP's
    constructor, called next, copies rank 0's values to every rank.
    """
    if not _pending_data_init(objective.model):
        return
    cuda = device.type == "cuda"
    index = (device.index if device.index is not None else torch.cuda.current_device()) if cuda else None
    with torch.random.fork_rng(devices=[index] if cuda else []), _autocast(precision, device):
        objective(x)


def _saved_tensor_bytes() -> tuple[contextlib.AbstractContextManager, Callable[[], int]]:
    """A context recording the tensors autograd saves for backward, and a function giving their bytes."""
    seen: dict[tuple, int] = {}

    def pack(t: Tensor) -> Tensor:
        try:
            storage = t.untyped_storage()
            seen[(storage.data_ptr(), t.device)] = storage.nbytes()
        except (RuntimeError, NotImplementedError):  # pragma: no cover - tensors without storage
            seen[(id(t), t.device)] = t.numel() * t.element_size()
        return t

    return torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t), lambda: sum(seen.values())


def estimate_run(model: nn.Module, draw_or_data: Tensor | Callable[[int, torch.Generator], Tensor], batch_size: int,
                 steps: int, device: str | torch.device | None = None, precision: str = "fp32", *,
                 warmup_steps: int = 1, timed_steps: int = 3, grad_clip: float | None = 10.0,
                 world_size: int = 1) -> dict:
    """Time a few training steps on a throwaway copy of ``model`` and project the run's time and memory.

    The copy (``copy.deepcopy``) gets its own Adam optimiser; ``warmup_steps`` untimed steps
    (allocation, kernel selection) are followed by ``timed_steps`` timed ones. The real
    model, its optimiser state and every global random generator (Python, NumPy, torch CPU
    and CUDA) are as they were afterwards. Batches come from ``draw_or_data``: rows of a
    tensor ``[N, ...]``, or a function ``(batch_size, generator) -> batch`` called with a
    throwaway generator (once per step; pass a tensor if calling it has side effects).

    Args:
        model: as for :func:`fit`.
        draw_or_data: the data or a draw function, as ``data`` of :func:`fit`.
        batch_size: examples per step on this process.
        steps: steps the projection covers.
        device: as for :func:`fit` (``None``: CUDA if present).
        precision: ``"fp32"``, ``"bf16"`` or ``"fp16"`` (CUDA only).
        world_size: processes of the run (for the summary; each times its own share).

    Returns:
        a dict: ``seconds_per_step``, ``total_seconds`` (``seconds_per_step * steps``),
        ``steps``, ``batch_size``, ``parameters`` (count), ``peak_memory_bytes`` and
        ``memory_source`` (``"cuda"``: ``torch.cuda.max_memory_allocated`` during the timed copy,
        above what was allocated before; ``"cpu-estimate"``: a rough estimate, four times the
        parameters' bytes (parameters, gradients, Adam's two moments) plus the tensors saved
        for backward in one step), ``device``, ``precision``, ``world_size``.

    >>> net = nn.Sequential(nn.Linear(3, 4))
    >>> class Gauss(nn.Module):
    ...     def __init__(self):
    ...         super().__init__()
    ...         self.net = net
    ...     def log_prob(self, x):
    ...         return -self.net(x.float()).pow(2).sum(1)
    >>> est = estimate_run(Gauss(), torch.zeros(10, 3, dtype=torch.long), batch_size=4, steps=100, device="cpu")
    >>> est["parameters"], est["memory_source"], est["total_seconds"] == 100 * est["seconds_per_step"]
    (16, 'cpu-estimate', True)
    """
    batch_size = check_positive_int("batch_size", batch_size)
    steps = check_positive_int("steps", steps)
    warmup_steps = check_positive_int("warmup_steps", warmup_steps, minimum=0)
    timed_steps = check_positive_int("timed_steps", timed_steps)
    device = select_device(device)
    precision = _check_precision(precision)
    _check_precision_device(precision, device)
    cuda = device.type == "cuda"
    py_state = random.getstate()
    try:
        import numpy as np

        np_state = np.random.get_state()
    except ImportError:  # pragma: no cover
        np, np_state = None, None
    parameters = sum(p.numel() for p in model.parameters())
    try:
        index = (device.index if device.index is not None else torch.cuda.current_device()) if cuda else None
        with torch.random.fork_rng(devices=[index] if cuda else []):
            if cuda:
                torch.cuda.synchronize(device)
                torch.cuda.reset_peak_memory_stats(device)
                baseline = torch.cuda.memory_allocated(device)
            copied = copy.deepcopy(model).to(device).train()
            objective = TrainingLoss(copied)
            params = list(copied.parameters())
            optimizer = _adam(params, 1e-4, device)
            scaler = torch.amp.GradScaler("cuda") if precision == "fp16" else None
            gen = torch.Generator().manual_seed(0)

            def batch() -> Tensor:
                if isinstance(draw_or_data, Tensor):
                    return draw_or_data[torch.randint(len(draw_or_data), (batch_size,), generator=gen)].to(device)
                return draw_or_data(batch_size, gen).to(device)

            def one_step(x: Tensor) -> None:
                _step(objective, params, optimizer, x, precision, device, scaler, grad_clip, SINGLE, step=0)

            for _ in range(warmup_steps):
                one_step(batch())
            hooks, saved_bytes = _saved_tensor_bytes()
            elapsed = 0.0
            for i in range(timed_steps):
                x = batch()
                if cuda:
                    torch.cuda.synchronize(device)
                began = time.perf_counter()
                if i == 0 and not cuda:
                    with hooks:
                        one_step(x)
                else:
                    one_step(x)
                if cuda:
                    torch.cuda.synchronize(device)
                elapsed += time.perf_counter() - began
            if cuda:
                peak, source = torch.cuda.max_memory_allocated(device) - baseline, "cuda"
            else:
                param_bytes = sum(p.numel() * p.element_size() for p in params)
                peak, source = 4 * param_bytes + saved_bytes(), "cpu-estimate"
            del copied, objective, optimizer, params
    finally:
        random.setstate(py_state)
        if np is not None:
            np.random.set_state(np_state)
    per_step = elapsed / timed_steps
    return {"seconds_per_step": per_step, "total_seconds": per_step * steps, "steps": steps,
            "batch_size": batch_size, "parameters": parameters, "peak_memory_bytes": int(peak),
            "memory_source": source, "device": str(device), "precision": precision, "world_size": world_size}


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def _size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError  # pragma: no cover


def format_estimate(estimate: dict, name: str | None = None) -> str:
    """One line summarising :func:`estimate_run`'s dict, for printing before a run.

    >>> print(format_estimate({"seconds_per_step": 0.012, "total_seconds": 60.0, "steps": 5000, "batch_size": 256,
    ...       "parameters": 12345, "peak_memory_bytes": 3 * 2**20, "memory_source": "cpu-estimate",
    ...       "device": "cpu", "precision": "fp32", "world_size": 1}, "toy"))  # doctest: +NORMALIZE_WHITESPACE
    estimate toy: 12.0 ms/step x 5,000 steps = 60 s; 12,345 parameters;
    memory ~3.0 MiB (rough CPU estimate: 4 x parameter bytes + saved activations); fp32, batch 256 on cpu
    """
    size = _size(estimate["peak_memory_bytes"])
    if estimate["memory_source"] == "cuda":
        memory = f"peak GPU memory {size} (measured)"
    else:
        memory = f"memory ~{size} (rough CPU estimate: 4 x parameter bytes + saved activations)"
    world = estimate.get("world_size", 1)
    where = f"batch {estimate['batch_size']} on {estimate['device']}"
    if world > 1:
        where = f"batch {estimate['batch_size']} per process x {world} processes (without communication)"
    return (f"estimate{' ' + name if name else ''}: {1000 * estimate['seconds_per_step']:.1f} ms/step x "
            f"{estimate['steps']:,} steps = {_duration(estimate['total_seconds'])}; "
            f"{estimate['parameters']:,} parameters; {memory}; {estimate['precision']}, {where}")


class StepLog:
    """Measurements taken during training, one dict with a ``"step"`` each, kept in the JSON file
    ``path`` beside the checkpoint (``None``: in memory only); a run resumed at step ``resumed_at``
    keeps those taken before it.

    >>> log = StepLog(None, resumed_at=0)
    >>> log.add({"step": 0, "validity": 0.5})
    >>> log.rows
    [{'step': 0, 'validity': 0.5}]
    """

    def __init__(self, path: Path | None, resumed_at: int):
        self.path, self.rows = path, []
        if path is not None and path.exists():
            self.rows = [r for r in json.loads(path.read_text()) if r["step"] < resumed_at]

    def add(self, row: dict) -> None:
        self.rows.append(row)
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.write_text(json.dumps(self.rows))

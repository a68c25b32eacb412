"""One training loop for every model: seeded, on the best device, with progress, checkpoints and resume.

A run is described by its checkpoint file. ``fit`` saves the model, the optimiser, the step,
the loss history and every random state every ``checkpoint_every`` steps; called again with
the same file it continues where the file stops (an exact continuation on CPU), and once the
run is finished it trains no more. ``save_metrics`` stores a finished run's evaluation in the
same file, so a chapter can re-render from it without re-training.
"""
from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from catlib.validation import check_positive_int

__all__ = ["select_device", "seed_everything", "fit", "FitResult", "save_metrics", "load_checkpoint"]


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


def load_checkpoint(path: str | os.PathLike) -> dict:
    """Load a checkpoint written by :func:`fit` (on the CPU), with a clear error if it is damaged."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:  # torch raises several types for truncated files
        raise ValueError(f"checkpoint {path} is damaged or not a catlib checkpoint ({err}); "
                         f"delete it to train from scratch") from err


def _save(path: Path, state: dict) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)  # atomic: a session lost mid-write leaves the previous checkpoint


def finished_run_metrics(path: str | os.PathLike | None, run: dict, steps: int) -> dict | None:
    """The metrics stored in the checkpoint at ``path`` if they belong to ``run``, else ``None``.

    ``run`` describes a run's settings (stored as ``metrics["run"]`` by the experiment). A
    finished checkpoint of other settings, or any of another length (``steps``), belongs to a
    different configuration and is deleted; an unfinished one of the same length is kept, so
    :func:`fit` resumes the interrupted run.
    """
    if path is None or not Path(path).exists():
        return None
    state = load_checkpoint(path)
    if state.get("metrics") and state["metrics"].get("run") == run:
        return state["metrics"]
    if state.get("metrics") or state.get("steps_total") != steps:
        Path(path).unlink()  # a different configuration: start again
    return None


def save_metrics(path: str | os.PathLike, metrics: dict) -> None:
    """Store ``metrics`` in a finished run's checkpoint."""
    state = load_checkpoint(path)
    state["metrics"] = metrics
    _save(Path(path), state)


def fit(model: nn.Module, data: Tensor | Callable[[int, torch.Generator], Tensor], steps: int,
        batch_size: int = 256, lr: float = 1e-3, seed: int = 0, device: str | torch.device | None = None,
        checkpoint: str | os.PathLike | None = None, checkpoint_every: int = 500,
        grad_clip: float | None = 10.0, warmup: int = 100, progress: bool = True,
        desc: str | None = None) -> FitResult:
    """Maximise ``model.log_prob(x).mean()`` with Adam and a cosine learning-rate decay.

    A model with its own objective (``model.training_loss(x) -> scalar``, e.g. multinomial
    diffusion's importance-sampled timesteps) is trained on that instead.

    Args:
        model: has ``log_prob(x) -> [batch]`` (and optionally ``training_loss(x) -> []``).
        data: a tensor ``[N, ...]`` to draw minibatches from (with replacement, seeded), or a
            function ``(batch_size, generator) -> batch``.
        steps: total optimisation steps of the run (also when resuming).
        checkpoint: file for checkpoints and resume; ``None`` trains without saving.
        grad_clip: maximum gradient norm (``None``: no clipping).
        warmup: steps of linear learning-rate warm-up.

    Returns:
        a :class:`FitResult`; ``metrics`` holds what :func:`save_metrics` stored, if any.
    """
    steps = check_positive_int("steps", steps)
    batch_size = check_positive_int("batch_size", batch_size)
    device = select_device(device)
    model.to(device).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)

    def lr_at(step: int) -> float:
        ramp = min(1.0, (step + 1) / max(1, warmup))
        return lr * ramp * 0.5 * (1 + math.cos(math.pi * step / steps))

    seed_everything(seed)
    gen = torch.Generator().manual_seed(seed)
    result = FitResult()
    path = Path(checkpoint) if checkpoint is not None else None
    if path is not None and path.exists():
        state = load_checkpoint(path)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["torch_rng"])
        if device.type == "cuda" and state.get("cuda_rng") is not None:
            torch.cuda.set_rng_state(state["cuda_rng"])
        gen.set_state(state["data_rng"])
        result = FitResult(state["losses"], state["step"], state["seconds"], state["step"], state.get("metrics"))
    elif path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)

    def snapshot() -> dict:
        return {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "step": result.steps,
                "losses": result.losses, "seconds": result.seconds, "torch_rng": torch.get_rng_state(),
                "cuda_rng": torch.cuda.get_rng_state() if device.type == "cuda" else None,
                "data_rng": gen.get_state(), "metrics": result.metrics, "steps_total": steps}

    if isinstance(data, Tensor):
        train = data.to(device)

        def draw(n: int, g: torch.Generator) -> Tensor:
            return train[torch.randint(len(train), (n,), generator=g).to(device)]
    else:
        draw = data

    bar = tqdm(range(result.steps, steps), initial=result.steps, total=steps, disable=not progress,
               desc=desc or getattr(model, "name", "fit"), leave=False)
    start = time.perf_counter() - result.seconds
    for step in bar:
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step)
        x = draw(batch_size, gen).to(device)
        loss = model.training_loss(x) if hasattr(model, "training_loss") else -model.log_prob(x).mean()
        if not torch.isfinite(loss):
            raise FloatingPointError(f"loss became {loss.item()} at step {step}; lower lr or enable grad_clip")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if grad_clip is not None:
            nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        optimizer.step()
        result.losses.append(loss.item())
        result.steps = step + 1
        result.seconds = time.perf_counter() - start
        if step % 50 == 0:
            bar.set_postfix(loss=f"{loss.item():.3f}")
        if path is not None and (result.steps % checkpoint_every == 0 or result.steps == steps):
            _save(path, snapshot())
    bar.close()
    model.eval()
    return result

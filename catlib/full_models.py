"""The full-size models of chapters 10-12 and the timing of one training step of each on a GPU.

The papers' text8, enwik8 and Cityscapes runs take GPU-days, far more than any machine that builds
this book has. What we can measure is the time of one training step of each model at the paper's
size and batch, and from it the time to the paper's number of steps. :func:`full_models` lists
those models (Table 2's six text8 flows and the two enwik8 argmax flows, Table 3's two diffusion
models, Table 4's six Cityscapes models), each with its builder, its batch and the steps of the
paper's schedule; :func:`measure` times one of them with :func:`catlib.train.estimate_run` (the
function that ``python -m catlib.experiments`` prints its estimate line with). The script
``benchmarks/speed_full_models.py`` runs them all and writes the file that
:mod:`catlib.viz.speed` reads for chapters 10-12; :func:`unmeasured` names the models that file
lacks, and :func:`parameter_count` counts a model's parameters without building it in memory
(so a test can check that the file still describes the current models).

The batches are uniformly random category indices of the data's shape: a training step does the
same work whatever the categories are (no data-dependent loops in training), so the speed is that
of the real data. Loading the real corpus is not timed (it is an index into a tensor in memory).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from catlib.train import estimate_run

__all__ = ["FullModel", "full_models", "parameter_count", "measure", "unmeasured"]


@dataclass(frozen=True)
class FullModel:
    """One full-size model: ``key`` (``"text8/ar-argmax"``), the ``chapter`` that runs it (``"10"``),
    its ``label``, ``build()`` (untrained, on the CPU), the shape of one example ``shape`` and its
    ``num_classes``, the paper's ``batch_size`` and number of training ``steps``, and the command of
    the full run."""

    key: str
    chapter: str
    label: str
    build: Callable[[], nn.Module]
    shape: tuple[int, ...]
    num_classes: int
    batch_size: int
    steps: int
    command: str


def full_models() -> list[FullModel]:
    """Every full-size model of chapters 10-12, in the order of the papers' tables."""
    from catlib.data.text_corpora import TEXT_CORPORA
    from catlib.experiments import cityscapes, text8, text_diffusion

    out = []
    flows = text8.PROFILES["paper"]
    for dataset, name, label, _ in text8.TABLE2:
        kind = name.split("-")[0]
        opts = flows.training[f"{dataset}-{kind}"]
        spec = TEXT_CORPORA[dataset]
        out.append(FullModel(
            key=f"{dataset}/{name}", chapter="10", label=f"{dataset}: {label}",
            build=lambda n=name, d=dataset: text8.build(n, flows, d), shape=(spec.chunk_len,),
            num_classes=spec.num_classes, batch_size=opts["batch_size"], steps=opts["steps"],
            command=f"python -m catlib.experiments text8 --profile paper --dataset {dataset} --only {name}"))
    for profile in ("paper", "paper-enwik8"):
        config = text_diffusion.PROFILES[profile]
        out.append(FullModel(
            key=f"{config.corpus}/diffusion", chapter="11",
            label=f"{config.corpus}: multinomial text diffusion (T = {config.timesteps})",
            build=lambda c=config: text_diffusion.build(c), shape=(config.seq_len,),
            num_classes=int(config.diffusion["num_classes"]), batch_size=config.batch_size, steps=config.steps,
            command=f"python -m catlib.experiments text_diffusion --profile {profile}"))
    city = cityscapes.PROFILES["paper"]
    for name, label, _, _ in cityscapes.TABLE4:
        opts = city.train_options(name)
        out.append(FullModel(
            key=f"cityscapes/{name}", chapter="12", label=f"Cityscapes: {label}",
            build=lambda n=name: cityscapes.build(n, city), shape=tuple(city.size), num_classes=8,
            batch_size=opts["batch_size"], steps=opts["steps"],
            command=f"python -m catlib.experiments cityscapes --profile paper --only {name}"))
    return out


def parameter_count(model: FullModel) -> int:
    """Parameters of ``model``, built on the meta device (no memory, no time)."""
    with torch.device("meta"):
        net = model.build()
    return sum(p.numel() for p in net.parameters())


def measure(model: FullModel, device: str | torch.device, precision: str = "fp32", warmup_steps: int = 3,
            timed_steps: int = 20, batch_size: int | None = None, seed: int = 0) -> dict:
    """Time ``timed_steps`` training steps of ``model`` (after ``warmup_steps``) with
    :func:`~catlib.train.estimate_run`; returns its dict plus ``key``, ``chapter``, ``label``,
    ``steps_per_second`` and ``paper_steps`` (``total_seconds`` is the projected time to them).

    ``batch_size`` overrides the paper's (for a quick check on a small machine; the row says so).
    """
    torch.manual_seed(seed)
    net = model.build()
    shape, k = model.shape, model.num_classes

    def draw(n: int, g: torch.Generator) -> torch.Tensor:
        return torch.randint(k, (n, *shape), generator=g)

    batch = model.batch_size if batch_size is None else batch_size
    est = estimate_run(net, draw, batch_size=batch, steps=model.steps, device=device, precision=precision,
                       warmup_steps=warmup_steps, timed_steps=timed_steps)
    return {"key": model.key, "chapter": model.chapter, "label": model.label, **est,
            "steps_per_second": 1.0 / est["seconds_per_step"], "paper_steps": model.steps,
            "paper_batch_size": model.batch_size, "timed_steps": timed_steps, "command": model.command}


def unmeasured(chapter: str, speed: dict, precision: str = "fp32") -> list[str]:
    """Keys of the chapter's full models without a row at ``precision`` in ``speed``
    (:func:`catlib.viz.speed.speed_rows`)."""
    measured = {r["key"] for r in speed["results"] if r["precision"] == precision}
    return [m.key for m in full_models() if m.chapter == chapter and m.key not in measured]

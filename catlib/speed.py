"""Training speed of the full-size models of chapters 10-12, measured on a GPU, and how the chapters show it.

The papers' text8, enwik8 and Cityscapes runs take GPU-days, far more than any machine that builds
this book has. What we can measure is the time of one training step of each model at the paper's
size and batch, and from it the time to the paper's number of steps. :func:`full_models` lists
those models (Table 2's six text8 flows and the two enwik8 argmax flows, Table 3's two diffusion
models, Table 4's six Cityscapes models), each with its builder, its batch and the steps of the
paper's schedule; :func:`measure` times one of them with :func:`catlib.train.estimate_run` (the
function that ``python -m catlib.experiments`` prints its estimate line with). The script
``benchmarks/speed_full_models.py`` runs them all and writes :data:`SPEED_PATH`; chapters 10-12 read
that file with :func:`speed_rows` and show it with :func:`speed_table`, :func:`describe_measurement`
and :func:`describe_sampling`; :func:`unmeasured` names the models the file lacks. :func:`parameter_count`
counts a model's parameters without building it in memory (so a test can check that the file
still describes the current models).

The batches are uniformly random category indices of the data's shape: a training step does the
same work whatever the categories are (no data-dependent loops in training), so the speed is that
of the real data. Loading the real corpus is not timed (it is an index into a tensor in memory).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from catlib.train import estimate_run

__all__ = ["SPEED_PATH", "SAMPLING_PATH", "FullModel", "full_models", "parameter_count", "measure", "speed_rows",
           "speed_table", "describe_measurement", "describe_sampling", "unmeasured", "sampling_benchmark",
           "sampling_table", "projected_gpu_hours"]

#: The committed measurements (written by ``benchmarks/speed_full_models.py --json``).
SPEED_PATH = Path(__file__).resolve().parent.parent / "benchmarks" / "results" / "speed_full_models.json"
#: The committed CPU sampling measurements of the text flows (``benchmarks/speed_sampling.py --json``).
SAMPLING_PATH = SPEED_PATH.with_name("speed_sampling.json")


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


def speed_rows(chapter: str, path: str | Path = SPEED_PATH) -> dict:
    """The measurements of one chapter's models from the file at ``path``.

    Returns ``{"environment", "command", "results", "sampling"}``: the device and versions, the
    command that wrote the file, the training rows of :func:`measure` and the sampling rows of the
    chapter (empty lists, and an empty environment, without the file).
    """
    data = _measurements(path)
    return {"environment": data.get("environment", {}), "command": data.get("command"),
            "results": [r for r in data.get("results", []) if r.get("chapter") == chapter],
            "sampling": [r for r in data.get("sampling", []) if r.get("chapter") == chapter]}


def projected_gpu_hours(key: str, path: str | Path = SPEED_PATH, precision: str = "fp32") -> float | None:
    """Hours the model ``key`` (``"text8/ar-argmax"``) needs for the paper's number of steps on the
    GPU of the measurements at ``path``, at ``precision``; ``None`` without such a measurement.
    The scoreboard's "not run" rows carry it.

    >>> projected_gpu_hours("no/such-model") is None
    True
    """
    for row in _measurements(path).get("results", []):
        if row.get("key") == key and row.get("precision") == precision:
            return float(row["total_seconds"]) / 3600
    return None


def _measurements(path: str | Path) -> dict:
    """The measurements file at ``path`` as a dict (``{}`` without the file)."""
    path = Path(path)
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}


def _hours(seconds: float) -> str:
    hours = seconds / 3600
    return f"{hours / 24:.1f} days" if hours >= 48 else f"{hours:.1f} h"


def speed_table(rows: list[dict]) -> list[dict]:
    """Display rows (one per model and precision, numbers as text): steps/s, ms/step, peak GPU memory,
    the paper's steps and the projected time to them on this one GPU.

    >>> speed_table([{"label": "m", "precision": "fp32", "batch_size": 8, "paper_batch_size": 8,
    ...               "parameters": 2_500_000, "seconds_per_step": 0.5, "steps_per_second": 2.0,
    ...               "paper_steps": 7200, "total_seconds": 3600.0, "peak_memory_bytes": 2**30}])
    ... # doctest: +NORMALIZE_WHITESPACE
    [{'model': 'm', 'precision': 'fp32', 'batch': 8, 'parameters (M)': '2.5', 'steps/s': '2.00',
      'ms/step': '500.0', 'peak memory (GiB)': '1.00', "paper's steps": '7,200', 'projected time': '1.0 h'}]
    """
    out = []
    for r in rows:
        batch = r["batch_size"] if r["batch_size"] == r["paper_batch_size"] else f"{r['batch_size']} (paper {r['paper_batch_size']})"
        out.append({"model": r["label"], "precision": r["precision"], "batch": batch,
                    "parameters (M)": f"{r['parameters'] / 1e6:.1f}", "steps/s": f"{r['steps_per_second']:.2f}",
                    "ms/step": f"{1000 * r['seconds_per_step']:.1f}",
                    "peak memory (GiB)": f"{r['peak_memory_bytes'] / 2**30:.2f}",
                    "paper's steps": f"{r['paper_steps']:,}", "projected time": _hours(r["total_seconds"])})
    return out


def describe_measurement(speed: dict) -> str:
    """One line saying where, with what and how the rows of :func:`speed_rows` were measured."""
    env = speed["environment"]
    timed_steps = speed["results"][0]["timed_steps"] if speed["results"] else "?"
    return (f"measured on {env.get('date')} on one {env.get('gpu')} (PyTorch {env.get('torch')}), {timed_steps} timed "
            f"steps after 3 warm-up steps, untrained models, random batches of the paper's size; "
            f"command: {speed['command']}")


def describe_sampling(row: dict) -> str:
    """One line for a sampling row: seconds per sequence (AR flows) or per network call and for the whole chain
    (diffusion).

    >>> describe_sampling({"key": "k", "what": "32 samples, 2 of T = 10 network calls", "seconds": 0.5,
    ...                    "seconds_per_call": 0.25, "timesteps": 10, "projected_full_chain_seconds": 2.5})
    'k: 32 samples, 2 of T = 10 network calls in 0.5 s (250.0 ms per call); all T = 10 calls: 2 s'
    """
    if "seconds_per_call" in row:
        return (f"{row['key']}: {row['what']} in {row['seconds']:.1f} s ({1000 * row['seconds_per_call']:.1f} ms per "
                f"call); all T = {row['timesteps']} calls: {row['projected_full_chain_seconds']:.0f} s")
    return f"{row['key']}: {row['what']}: {row['seconds']:.1f} s ({row['seconds_per_sequence']:.2f} s per sequence)"


def unmeasured(chapter: str, speed: dict, precision: str = "fp32") -> list[str]:
    """Keys of the chapter's full models without a row at ``precision`` in ``speed`` (:func:`speed_rows`)."""
    measured = {r["key"] for r in speed["results"] if r["precision"] == precision}
    return [m.key for m in full_models() if m.chapter == chapter and m.key not in measured]


def sampling_benchmark(path: str | Path = SAMPLING_PATH) -> dict:
    """The runs of ``benchmarks/speed_sampling.py`` in the file at ``path``: ``{label: run}`` (empty without it).

    Each run has ``rows`` (one per model size, sampler, length and batch: ``seconds``,
    ``seconds_per_sequence``, ``ms_per_character``, ...), and the ``cpu``, ``threads``, ``torch``
    version and ``commit`` it was measured with.
    """
    path = Path(path)
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}


def sampling_table(runs: dict) -> list[dict]:
    """Display rows of :func:`sampling_benchmark`: one per size, sampler, length and batch, a column of
    seconds per sequence for each run (label), and the speed-up of the last run over the first.

    >>> row = {"size": "ar", "sampler": "cached", "seq_len": 8, "n": 1, "prior_parameters": 10,
    ...        "seconds_per_sequence": 2.0}
    >>> sampling_table({"before": {"rows": [row]}, "after": {"rows": [{**row, "seconds_per_sequence": 0.5}]}})
    ... # doctest: +NORMALIZE_WHITESPACE
    [{'model': 'ar', 'sampler': 'cached', 'L': 8, 'sequences per call': 1, 'prior parameters (M)': '0.0',
      's per sequence, before': '2.000', 's per sequence, after': '0.500', 'after / before': '4.0x faster'}]
    """
    labels = list(runs)
    table: dict[tuple, dict] = {}
    for label in labels:
        for r in runs[label]["rows"]:
            key = (r["size"], r["sampler"], r["seq_len"], r["n"])
            entry = table.setdefault(key, {"model": r["size"], "sampler": r["sampler"], "L": r["seq_len"],
                                           "sequences per call": r["n"],
                                           "prior parameters (M)": f"{r['prior_parameters'] / 1e6:.1f}"})
            entry[f"s per sequence, {label}"] = f"{r['seconds_per_sequence']:.3f}"
            entry.setdefault("_seconds", {})[label] = r["seconds_per_sequence"]
    out = []
    for entry in table.values():
        seconds = entry.pop("_seconds")
        if len(labels) > 1:
            first, last = labels[0], labels[-1]
            both = first in seconds and last in seconds
            entry[f"{last} / {first}"] = f"{seconds[first] / seconds[last]:.1f}x faster" if both else ""
        out.append(entry)
    return out

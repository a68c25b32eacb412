"""GPU measurements of the full-size models of chapters 10-12, read back and shown.

``benchmarks/speed_full_models.py`` times one training step of each model of
:func:`catlib.full_models.full_models` at the paper's size and batch and writes :data:`SPEED_PATH`;
chapters 10-12 read that file with :func:`speed_rows` and show it with :func:`speed_table`,
:func:`describe_measurement` and :func:`describe_sampling`; the scoreboard's "not run" rows carry
:func:`projected_gpu_hours`. ``benchmarks/speed_sampling.py`` writes :data:`SAMPLING_PATH`
(:func:`sampling_benchmark`, :func:`sampling_table`). Nothing here imports the experiments, which
ask this module for their projections.
"""
from __future__ import annotations

import json
from pathlib import Path

__all__ = ["SPEED_PATH", "SAMPLING_PATH", "speed_rows", "projected_gpu_hours", "speed_table", "describe_measurement",
           "describe_sampling", "sampling_benchmark", "sampling_table"]

#: The committed measurements (written by ``benchmarks/speed_full_models.py --json``).
SPEED_PATH = Path(__file__).resolve().parents[2] / "benchmarks" / "results" / "speed_full_models.json"
#: The committed CPU sampling measurements of the text flows (``benchmarks/speed_sampling.py --json``).
SAMPLING_PATH = SPEED_PATH.with_name("speed_sampling.json")


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
    """The JSON file of measurements at ``path`` as a dict (``{}`` without the file)."""
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


def sampling_benchmark(path: str | Path = SAMPLING_PATH) -> dict:
    """The runs of ``benchmarks/speed_sampling.py`` in the file at ``path``: ``{label: run}`` (empty without it).

    Each run has ``rows`` (one per model size, sampler, length and batch: ``seconds``,
    ``seconds_per_sequence``, ``ms_per_character``, ...), and the ``cpu``, ``threads``, ``torch``
    version and ``commit`` it was measured with.
    """
    return _measurements(path)


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

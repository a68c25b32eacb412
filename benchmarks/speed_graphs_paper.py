"""Training speed of chapter 09's `paper` profiles (small and large graphs), to project their GPU hours.

Not a test: for every model of the graph colouring experiment at the ``paper`` and ``paper-large``
profiles it times a few training steps at the profile's batch (:func:`catlib.train.estimate_run`,
the timing of the other speed benchmarks) on batches drawn from a pool of graphs made by the
profile's generator, and writes steps per second, peak memory and the projected time to the
profile's number of steps. Usage (on a GPU; the whole run takes a few minutes)::

    python benchmarks/speed_graphs_paper.py --json benchmarks/results/speed_graphs_paper.json
    python benchmarks/speed_graphs_paper.py --device cpu --timed 1 --batch-size 4 --pool 8 --only small/catnf

The results file is rewritten after every model, so a run stopped early keeps what it measured.
The models are untrained; the rows have the fields :func:`catlib.viz.speed.speed_table` shows.
"""
from __future__ import annotations

import argparse
import traceback
from pathlib import Path

import torch

from catlib.data.graphs import GraphColouring
from catlib.experiments import graphs
from catlib.results import code_commit
from catlib.train import estimate_run, select_device
from speed_full_models import environment, record

PROFILES = {"small": "paper", "large": "paper-large"}


def keys() -> list[str]:
    """``size/name`` of every model timed, e.g. ``"large/trufl"``."""
    return [f"{size}/{name}" for size in PROFILES for name in graphs.NAMES]


def measure(size: str, name: str, device: torch.device, timed_steps: int, batch_size: int | None,
            pool: GraphColouring) -> dict:
    """One row: the model ``name`` of the ``size`` graphs' paper profile, timed on batches from ``pool``."""
    config = graphs.PROFILES[PROFILES[size]]
    training = config.training(name)
    torch.manual_seed(0)
    packed = graphs._Packed(graphs.build(name, config))

    def draw(n: int, g: torch.Generator) -> torch.Tensor:
        return packed.pack(*pool.batch(torch.randint(len(pool), (n,), generator=g), permute_colours=True, generator=g))

    batch = training["batch_size"] if batch_size is None else batch_size
    est = estimate_run(packed, draw, batch_size=batch, steps=training["steps"], device=device, warmup_steps=3,
                       timed_steps=timed_steps, grad_clip=config.grad_clip)
    label = dict((key, label) for key, label, *_ in graphs.TABLE1)[name]
    return {"key": f"graphs/{size}/{name}", "chapter": "09", "label": f"{size} graphs: {label}", **est,
            "steps_per_second": 1.0 / est["seconds_per_step"], "paper_steps": training["steps"],
            "paper_batch_size": training["batch_size"], "timed_steps": timed_steps,
            "command": f"python -m catlib.experiments graphs --profile {PROFILES[size]} --only {name}"}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default=None, help="cuda (default when there is one) or cpu")
    parser.add_argument("--only", nargs="+", default=None, choices=keys(), metavar="SIZE/NAME")
    parser.add_argument("--timed", type=int, default=30, help="timed steps per model (after 3 warm-up steps)")
    parser.add_argument("--batch-size", type=int, default=None, help="override the profile's batch (a quick check)")
    parser.add_argument("--pool", type=int, default=512, help="graphs drawn per size to make the batches from")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    device = select_device(args.device)
    out = {"environment": environment(device), "command": "python benchmarks/speed_graphs_paper.py "
           + " ".join(argv or []), "commit": code_commit(), "results": [], "failures": []}
    for size, profile in PROFILES.items():
        wanted = [name for name in graphs.NAMES if args.only is None or f"{size}/{name}" in args.only]
        if not wanted:
            continue
        config = graphs.PROFILES[profile]
        pool = GraphColouring(args.pool, size, seed=0, split="train", method=config.method, progress=False)
        for name in wanted:
            try:
                row = measure(size, name, device, args.timed, args.batch_size, pool)
            except Exception:  # keep measuring the others; the file says what failed
                out["failures"].append({"key": f"graphs/{size}/{name}", "error": traceback.format_exc(limit=3)})
                print(f"{size}/{name}: FAILED\n{out['failures'][-1]['error']}", flush=True)
                continue
            record(out, row, args.json, device)


if __name__ == "__main__":
    main()

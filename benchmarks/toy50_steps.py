"""How chapter 03's bounds move with the number of training steps: the toy50 table at several lengths.

Not a test: it trains every model of the workshop paper's Table 2 (``catlib.experiments.toy50``)
at a profile's sizes, batch and learning rate (``--profile``, default ``cpu``) for each of ``--steps`` (a cosine
schedule over each length, as ``fit`` does) and records the ELBO and IWBO in bits and the mean
training loss in each quarter of the run. A bound that still improves when the steps double is
the measured cause of a gap to the paper (undertraining). Usage::

    python benchmarks/toy50_steps.py --steps 5000 10000 20000 40000 --only argmax-gumbel --json out.json
    python benchmarks/toy50_steps.py --merge a.json b.json --json benchmarks/results/toy50_steps.json

One thread per process; run two processes on two cores with disjoint ``--only`` and merge.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import sys
import time
from pathlib import Path

import torch

from catlib.data import Toy50
from catlib.experiments import toy50
from machine import commit, cpu_name


def measure(name: str, steps: int, seed: int = 0, profile: str = "cpu") -> dict:
    """Train ``name`` for ``steps`` steps (no checkpoint) at ``profile``'s other settings and evaluate it as chapter 03 does."""
    config = dataclasses.replace(toy50.PROFILES[profile], steps=steps)
    start = time.perf_counter()
    m = toy50.run_one(name, config, Toy50(), None, seed=seed, device=torch.device("cpu"), progress=False)
    losses = m["losses"]
    quarters = [sum(losses[i * steps // 4:(i + 1) * steps // 4]) / (steps // 4) for i in range(4)]
    return {"model": name, "steps": steps, "batch_size": config.batch_size, "lr": config.model_lr.get(name, config.lr),
            "elbo_bits": m["elbo_bits"], "iwbo_bits": m["iwbo_bits"], "loss_quarters_nats": quarters,
            "seconds": time.perf_counter() - start}


def main(argv: list[str] | None = None) -> None:
    names = [row[0] for row in toy50.TABLE2]
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, nargs="+", default=[5000, 10000, 20000, 40000])
    parser.add_argument("--only", nargs="+", choices=names, default=names)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--profile", choices=["cpu", "paper"], default="cpu", help="the sizes, batch and learning rate")
    parser.add_argument("--merge", type=Path, nargs="+", default=None, help="merge these files' rows instead")
    parser.add_argument("--json", type=Path, required=True)
    args = parser.parse_args(argv)
    if args.merge:
        parts = [json.loads(p.read_text()) for p in args.merge]
        out = {**parts[0], "command": [part["command"] for part in parts],
               "rows": [row for part in parts for row in part["rows"]]}
        args.json.write_text(json.dumps(out, indent=1) + "\n")
        print(f"merged {len(out['rows'])} rows into {args.json}")
        return
    torch.set_num_threads(args.threads)
    out = {"cpu": cpu_name(), "threads": args.threads, "torch": torch.__version__, "python": platform.python_version(),
           "commit": commit(), "profile": args.profile, "command": "python benchmarks/toy50_steps.py " + " ".join(argv or []),
           "rows": []}
    for name in args.only:
        for steps in args.steps:
            row = measure(name, steps, profile=args.profile)
            out["rows"].append(row)
            print(f"{name:27s} {steps:6d} steps: ELBO {row['elbo_bits']:.3f} IWBO {row['iwbo_bits']:.3f} bits, "
                  f"{row['seconds']:.0f} s", flush=True)
            args.json.write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main(sys.argv[1:])

"""Training and sampling speed of multinomial diffusion and an argmax flow at chapter 06's sizes.

Not a test: it measures and prints (and with ``--json`` writes) steps per second and samples
per second on the CPU and, when there is one, on CUDA, with the run's environment. Usage::

    python benchmarks/speed_squares.py                 # cpu-profile sizes, every device
    python benchmarks/speed_squares.py --profile smoke --repeats 3 --json out.json

Each number is the median of ``--repeats`` timed blocks after a warm-up block.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics

import torch

from catlib.data import Squares
from catlib.experiments.squares import PROFILES, build
from catlib.timing import timed

MODELS = ("multinomial-diffusion", "argmax-threshold")


def _median_rate(work, count: int, device: torch.device, repeats: int) -> float:
    """``count`` items per call of ``work``; median items per second over ``repeats`` calls."""
    work()  # warm-up (allocations, cuDNN autotuning, actnorm initialisation)
    return statistics.median(count / timed(work, device)[1] for _ in range(repeats))


def measure(name: str, profile: str, device: torch.device, repeats: int, train_steps: int,
            sample_count: int) -> dict:
    config = PROFILES[profile]
    squares = Squares(**config.squares)
    torch.manual_seed(0)
    model = build(name, config).to(device).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    data = squares.sample(config.batch_size * 4, seed=0).to(device)

    def train_block():
        for i in range(train_steps):
            x = data[(i % 4) * config.batch_size:(i % 4 + 1) * config.batch_size]
            loss = model.training_loss(x) if hasattr(model, "training_loss") else -model.log_prob(x).mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

    steps_per_second = _median_rate(train_block, train_steps, device, repeats)
    model.eval()
    with torch.no_grad():
        samples_per_second = _median_rate(lambda: model.sample(sample_count), sample_count, device, repeats)
    calls = getattr(model, "last_sample_calls", 1)
    return {"model": name, "device": str(device), "profile": profile, "batch_size": config.batch_size,
            "map": f"{squares.height}x{squares.width}", "train_steps_per_second": steps_per_second,
            "samples_per_second": samples_per_second, "network_calls_per_sample": calls,
            "parameters": sum(p.numel() for p in model.parameters())}


def environment() -> dict:
    env = {"python": platform.python_version(), "torch": torch.__version__, "cpu": platform.processor() or
           platform.machine(), "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
           "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}
    return env


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", default="cpu", choices=sorted(PROFILES))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--train-steps", type=int, default=20, help="training steps per timed block")
    parser.add_argument("--samples", type=int, default=16, help="samples per timed block")
    parser.add_argument("--json", default=None, help="also write the results to this file")
    args = parser.parse_args(argv)
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    env = environment()
    print(", ".join(f"{k} {v}" for k, v in env.items()))
    rows = []
    for device in devices:
        for name in MODELS:
            r = measure(name, args.profile, device, args.repeats, args.train_steps, args.samples)
            rows.append(r)
            print(f"{device.type:5s} {name:24s} {r['map']:6s} train {r['train_steps_per_second']:7.2f} steps/s "
                  f"(batch {r['batch_size']}), sample {r['samples_per_second']:8.2f} maps/s "
                  f"({r['network_calls_per_sample']} network calls each)", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"environment": env, "results": rows}, f, indent=2)


if __name__ == "__main__":
    main()

"""Sampling speed of the text argmax flows (chapter 10) on one device with a fixed thread count.

Not a test: it measures and writes seconds per call of ``model.sample(n)`` for untrained text8
argmax flows of 256 (and 64) characters: the autoregressive (AR) flow with the cached sampler
and, where it finishes in reasonable time, the reference sampler that recomputes the network
for every number (the official code's ``reverse``); and the coupling flow. Sizes:

- ``ar-256x2``: the AR flow with a 2-layer LSTM of 256 units and 27 mixtures, the setting in
  which our sampler was compared with the official code (one sequence, one thread);
- ``ar-paper`` / ``coupling-paper``: the paper's text8 configurations
  (:data:`~catlib.text_flows.TEXT8_AR_CONFIG`, :data:`~catlib.text_flows.TEXT8_COUPLING_CONFIG`).

Usage::

    python benchmarks/speed_sampling.py --threads 1 --json benchmarks/results/speed_sampling.json
    python benchmarks/speed_sampling.py --only ar-256x2 --label before --json out.json   # merge a label

Each number is the median of ``--repeats`` timed calls after one warm-up call; ``--json`` merges
this run's rows under ``--label`` into the file (other labels are kept), with the machine,
the thread count, torch's version and the commit of the code measured.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
from pathlib import Path

import torch

from catlib.text_flows import TEXT8_AR_CONFIG, TEXT8_COUPLING_CONFIG, build_text_flow
from catlib.timing import timed
from machine import commit, cpu_name

#: name -> (options of build_text_flow without seq_len, whether the reference sampler is timed)
SIZES = {
    "ar-256x2": ({**TEXT8_AR_CONFIG, "lstm_size": 256}, True),
    "ar-paper": (TEXT8_AR_CONFIG, False),  # the reference needs L*d = 1280 passes of a 2048-unit LSTM: hours
    "coupling-paper": (TEXT8_COUPLING_CONFIG, False),  # no reference: a coupling flow inverts in one pass per step
}
#: (sequence length, sequences per call) timed for each size
CASES = ((256, 1), (256, 64), (64, 1), (64, 64))
#: the reference sampler is timed for one sequence only (it is the slow one)
REFERENCE_CASES = ((64, 1), (256, 1))


def time_call(model, n: int, device: torch.device, repeats: int, reference: bool = False) -> float:
    """Median seconds of ``model.sample(n, reference=reference)`` over ``repeats`` seeded calls, after a warm-up."""
    torch.manual_seed(0)
    model.sample(n, reference=reference)
    seconds = []
    for r in range(repeats):
        torch.manual_seed(r)
        seconds.append(timed(lambda: model.sample(n, reference=reference), device)[1])
    return statistics.median(seconds)


def measure(name: str, device: torch.device, repeats: int) -> list[dict]:
    """Rows ``{size, sampler, seq_len, n, seconds, seconds_per_sequence, ms_per_character, parameters}``."""
    options, with_reference = SIZES[name]
    rows = []
    for seq_len in sorted({length for length, _ in CASES}, reverse=True):
        torch.manual_seed(0)
        model = build_text_flow(**{**options, "seq_len": seq_len}).to(device).eval()
        parameters = sum(p.numel() for p in model.parameters())
        prior = sum(p.numel() for p in model.prior.parameters())
        samplers = [("cached" if options["kind"] == "ar" else "coupling", False)]
        if with_reference:
            samplers.append(("reference", True))
        for sampler, reference in samplers:
            for length, n in (REFERENCE_CASES if reference else CASES):
                if length != seq_len:
                    continue
                seconds = time_call(model, n, device, 1 if reference else repeats, reference)
                row = {"size": name, "kind": options["kind"], "sampler": sampler, "seq_len": seq_len, "n": n,
                       "lstm_size": options["lstm_size"], "lstm_layers": options["lstm_layers"],
                       "num_mixtures": options["num_mixtures"], "parameters": parameters,
                       "prior_parameters": prior, "seconds": seconds, "seconds_per_sequence": seconds / n,
                       "ms_per_character": 1000 * seconds / (n * seq_len)}
                rows.append(row)
                print(f"{name:15s} {sampler:9s} L={seq_len:3d} n={n:2d}: {seconds:8.3f} s per call, "
                      f"{seconds / n:7.3f} s per sequence, {row['ms_per_character']:7.3f} ms per character",
                      flush=True)
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--only", nargs="+", choices=sorted(SIZES), default=list(SIZES))
    parser.add_argument("--label", default="current", help="key under which this run's rows are stored")
    parser.add_argument("--json", type=Path, default=None, help="merge the rows into this JSON file")
    args = parser.parse_args(argv)
    if args.threads < 1 or args.repeats < 1:
        parser.error("--threads and --repeats must be at least 1")
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    rows = [row for name in args.only for row in measure(name, device, args.repeats)]
    if args.json is None:
        return
    out = json.loads(args.json.read_text()) if args.json.exists() else {}
    out[args.label] = {
        "rows": rows, "device": str(device), "threads": args.threads, "repeats": args.repeats,
        "cpu": cpu_name(), "cores": os.cpu_count(), "torch": torch.__version__, "python": platform.python_version(),
        "commit": commit(), "command": "python benchmarks/speed_sampling.py " + " ".join(argv or [])}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {args.json} ({args.label})")


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])

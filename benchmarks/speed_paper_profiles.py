"""Training speed of the `paper` profiles of chapters 03, 06, 07 and 08, to project their GPU hours.

Not a test: for every model of the toy50, squares, two-variable and words experiments at the
``paper`` profile it times a few training steps at the profile's batch (:func:`catlib.full_models.measure`,
the same timing as ``benchmarks/speed_full_models.py``) and writes steps per second, peak memory
and the projected time to the profile's number of steps. Usage (on a GPU; the whole run takes
a few minutes)::

    python benchmarks/speed_paper_profiles.py --json benchmarks/results/speed_paper_profiles.json
    python benchmarks/speed_paper_profiles.py --device cpu --timed 2 --batch-size 4 --only toy50/argmax-threshold

The results file is rewritten after every model, so a run stopped early keeps what it measured.
The models are untrained and the batches uniformly random classes of the data's shape.
"""
from __future__ import annotations

import argparse
import traceback
from pathlib import Path

import torch

import catlib
from catlib.experiments import squares, toy50, two_variable, words
from catlib.results import code_commit
from catlib.full_models import FullModel, measure
from catlib.train import select_device
from speed_full_models import environment, record


def paper_models() -> list[FullModel]:
    """The models of chapters 03, 06, 07 and 08 at the ``paper`` profile, with its batch and steps."""
    out = []
    toy = toy50.PROFILES["paper"]
    for name, label, _, _ in toy50.TABLE2:
        out.append(FullModel(f"toy50/{name}", "03", f"toy50: {label}",
                             lambda n=name: catlib.build_model(n, (1,), toy.num_classes, **toy.model), (1,),
                             toy.num_classes, toy.batch_size, toy.steps,
                             f"python -m catlib.experiments toy50 --profile paper --only {name}"))
    sq = squares.PROFILES["paper"]
    shape = (sq.squares["height"], sq.squares["width"])
    for name, label, _, _ in squares.TABLE3:
        out.append(FullModel(f"squares/{name}", "06", f"squares: {label}", lambda n=name: squares.build(n, sq),
                             shape, sq.squares["num_colors"] + 1, sq.batch_size, sq.steps,
                             f"python -m catlib.experiments squares --profile paper --only {name}"))
    tv = two_variable.PROFILES["paper"]
    for name, label, *_ in two_variable.TABLE5:
        out.append(FullModel(f"two_variable/{name}", "07", f"two variables: {label}",
                             lambda n=name: two_variable.build(n, tv), (2,), 4, tv.batch_size, tv.steps,
                             f"python -m catlib.experiments two_variable --profile paper --only {name}"))
    wd = words.PROFILES["paper"]
    for name in words.NAMES:
        out.append(FullModel(f"words/{name}", "08", f"words: {name}",
                             lambda n=name: words.build(n, wd, wd.vocab_size), (wd.window,), wd.vocab_size,
                             wd.batch_size, wd.steps, f"python -m catlib.experiments words --profile paper --only {name}"))
    return out


def main(argv: list[str] | None = None) -> None:
    models = paper_models()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default=None, help="cuda (default when there is one) or cpu")
    parser.add_argument("--only", nargs="+", default=None, choices=[m.key for m in models], metavar="KEY")
    parser.add_argument("--timed", type=int, default=50, help="timed steps per model (after 3 warm-up steps)")
    parser.add_argument("--batch-size", type=int, default=None, help="override the profile's batch (a quick check)")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    device = select_device(args.device)
    out = {"environment": environment(device), "command": "python benchmarks/speed_paper_profiles.py "
           + " ".join(argv or []), "commit": code_commit(), "results": [], "failures": []}
    for model in models:
        if args.only is not None and model.key not in args.only:
            continue
        try:
            row = measure(model, device, timed_steps=args.timed, batch_size=args.batch_size)
        except Exception:  # keep measuring the others; the file says what failed
            out["failures"].append({"key": model.key, "error": traceback.format_exc(limit=3)})
            print(f"{model.key}: FAILED\n{out['failures'][-1]['error']}", flush=True)
            continue
        record(out, row, args.json, device)


if __name__ == "__main__":
    main()

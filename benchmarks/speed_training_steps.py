"""Training steps per second of :func:`catlib.train.fit` on the CPU, for every model of toy50, squares and graphs.

Not a test: for each model of chapter toy50 (Table 2), squares (Table 3) and graph colouring
(``graphs.NAMES``, the autoregressive baseline too) at the ``"cpu"`` profile's model and batch sizes it runs :func:`fit` itself
(``progress=False``, no checkpoint) for ``--warmup`` untimed steps followed by ``--steps`` timed
ones, with a fixed number of CPU threads, and prints steps/s and ms/step. Usage::

    python benchmarks/speed_training_steps.py --label before     # on the code before a change
    python benchmarks/speed_training_steps.py --label after      # ... and after it
    python benchmarks/speed_training_steps.py --only toy50/argmax-gumbel --steps 50 --no-json

Models and batches are made as each experiment's ``run_one`` makes them: the model from the
profile's options after ``torch.manual_seed(0)``; toy50 and squares draw rows of the training
tensor (the draw :func:`fit` does for a tensor), graphs draws with ``run_one``'s batch function
(random graphs, colours renamed), without TRUFL's rejection-rate probe every 100 steps, which
is evaluation, not a training step. Training sets are the profile's sizes, except the squares
training set, capped by ``--squares-train``, and the graphs' training set, capped at 2000 (drawing
rows does not depend on the set's size).

The time of step ``k`` runs from the call of the batch function of step ``k`` to that of step
``k + 1``, so a timed block is the whole loop of ``fit``: drawing the batch, the learning-rate
update, the forward and backward pass, clipping, the optimiser and the loss's ``.item()``.
The timed steps are cut into blocks of ``--block`` steps; steps/s and ms/step are those of the
median block (robust to a busy machine), ``mean_ms_per_step`` that of all timed steps together.
With the defaults (10 warm-up and 200 timed steps per model, blocks of 25, 1 thread) the whole
run takes about two minutes on a 2-core Xeon. ``--label`` names the section of ``--json`` the results go to;
other sections of an existing file are kept, results of other models in the same section too
(each run's machine and code are listed under ``runs``), and a ``"speedup"`` section compares
``before`` and ``after`` when both are present. To measure an older commit from this checkout::

    git archive COMMIT catlib | tar -x -C /tmp/old && cd /tmp && PYTHONPATH=/tmp/old \
        python /path/to/benchmarks/speed_training_steps.py --label before --commit COMMIT --note "catlib of COMMIT"
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import time
from dataclasses import replace
from pathlib import Path

import torch

from machine import cpu_name

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_JSON = ROOT / "benchmarks" / "results" / "speed_training_steps.json"


def git_state() -> dict:
    def git(*args: str) -> str:
        try:
            return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True).stdout
        except (OSError, subprocess.CalledProcessError):
            return ""

    dirty = [line[3:] for line in git("status", "--porcelain", "--untracked-files=no").splitlines()]
    measured = [f for f in dirty if f.startswith("catlib/")]
    return {"commit": git("rev-parse", "HEAD").strip() or None, "dirty": bool(dirty),
            "note": ("the working tree had uncommitted changes; these files of catlib/ differed from the commit: "
                     + ", ".join(measured)) if measured else
                    ("uncommitted changes outside catlib/ only" if dirty else "clean tree")}


def machine() -> dict:
    return {"date": datetime.date.today().isoformat(), "cpu": cpu_name(), "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(), "torch_interop_threads": torch.get_num_interop_threads(),
            "python": platform.python_version(), "torch": torch.__version__, "device": "cpu"}


def cases(squares_train: int) -> list[tuple[str, callable]]:
    """``(key, make)``: ``make()`` returns ``(model, data, batch_size, lr)`` as the experiment's run_one would."""
    import catlib
    from catlib.data import Squares, Toy50
    from catlib.experiments import graphs, squares, toy50

    out = []
    toy_config = toy50.PROFILES["cpu"]
    toy_data: dict = {}

    def toy_case(name: str):
        def make():
            toy = Toy50()
            torch.manual_seed(0)
            model = catlib.build_model(name, toy.data_shape, toy.num_classes, **toy_config.model)
            if "train" not in toy_data:
                toy_data["train"] = toy.sample(toy_config.train_size, seed=1)
            return model, toy_data["train"], toy_config.batch_size, toy_config.lr
        return make

    for name, *_ in toy50.TABLE2:
        out.append((f"toy50/{name}", toy_case(name)))

    sq_config = squares.PROFILES["cpu"]
    sq_data: dict = {}

    def squares_case(name: str):
        def make():
            torch.manual_seed(0)
            model = squares.build(name, sq_config)
            if "train" not in sq_data:
                sq = Squares(**sq_config.squares)
                sq_data["train"] = sq.splits(train=min(squares_train, sq_config.train_size), val=1, test=1,
                                             seed=0)["train"]
            return model, sq_data["train"], sq_config.batch_size, sq_config.lr
        return make

    for name in squares.NAMES:
        out.append((f"squares/{name}", squares_case(name)))

    gr_config = graphs.PROFILES["cpu"]
    gr_data: dict = {}

    def graph_case(name: str):
        def make():
            if "train" not in gr_data:
                # drawing batches does not depend on the set's size: 2000 graphs of the profile's generator
                gr_data["train"] = graphs.GraphColouring(min(gr_config.train_size, 2000), gr_config.size, 0, "train",
                                                         gr_config.method, progress=False)
            train = gr_data["train"]
            torch.manual_seed(0)
            model = graphs.build(name, gr_config, 0)
            packed = graphs._Packed(model)

            def draw(n: int, g: torch.Generator) -> torch.Tensor:  # run_one's, without the rejection probe
                idx = torch.randint(len(train), (n,), generator=g)
                return packed.pack(*train.batch(idx, permute_colours=True, generator=g))
            return packed, draw, gr_config.batch_size, gr_config.lr
        return make

    for name in graphs.NAMES:
        out.append((f"graphs/{name}", graph_case(name)))
    return out


def measure(make, warmup: int, steps: int, block: int, fit_options: dict) -> dict:
    from catlib.train import fit

    model, data, batch_size, lr = make()
    stamps: list[float] = []
    if isinstance(data, torch.Tensor):
        rows = data

        def draw(n: int, g: torch.Generator) -> torch.Tensor:  # what fit does with a tensor
            stamps.append(time.perf_counter())
            return rows[torch.randint(len(rows), (n,), generator=g)]
    else:
        inner = data

        def draw(n: int, g: torch.Generator) -> torch.Tensor:
            stamps.append(time.perf_counter())
            return inner(n, g)
    # one extra step: its draw ends the last timed step
    began = time.perf_counter()
    fit(model, draw, steps=warmup + steps + 1, batch_size=batch_size, lr=lr, seed=0, device="cpu",
        progress=False, **fit_options)
    total = time.perf_counter() - began
    seconds = stamps[warmup + steps] - stamps[warmup]
    per_step = [b - a for a, b in zip(stamps[warmup:warmup + steps], stamps[warmup + 1:warmup + steps + 1])]
    blocks = [sum(per_step[i:i + block]) / len(per_step[i:i + block]) for i in range(0, steps, block)]
    median = statistics.median(blocks)
    return {"steps_per_second": 1 / median, "ms_per_step": 1000 * median, "mean_ms_per_step": 1000 * seconds / steps,
            "block_ms_per_step": [round(1000 * b, 3) for b in blocks],
            "first_steps_ms": [round(1000 * (b - a), 2) for a, b in zip(stamps[:warmup], stamps[1:warmup + 1])],
            "timed_steps": steps, "warmup_steps": warmup, "batch_size": batch_size,
            "parameters": sum(p.numel() for p in model.parameters()), "wall_seconds": total}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=1, help="torch.set_num_threads (default 1)")
    parser.add_argument("--warmup", type=int, default=10, help="untimed steps first (default 10)")
    parser.add_argument("--steps", type=int, default=200, help="timed steps per model (default 200)")
    parser.add_argument("--block", type=int, default=25, help="steps per timed block (default 25)")
    parser.add_argument("--label", default="after", help="section of the JSON file (e.g. before, after)")
    parser.add_argument("--only", nargs="*", default=None, help="keys (e.g. toy50/argmax-gumbel) or prefixes (toy50)")
    parser.add_argument("--squares-train", type=int, default=2000,
                        help="squares training maps generated (rows drawn from; default 2000)")
    parser.add_argument("--compile", action="store_true", help="fit(..., compile=True)")
    parser.add_argument("--note", default=None,
                        help="describes the code measured instead of this checkout's git state, e.g. when catlib "
                             "is imported from an exported commit through PYTHONPATH")
    parser.add_argument("--commit", default=None, help="with --note: the commit of the code measured")
    parser.add_argument("--json", default=str(DEFAULT_JSON))
    parser.add_argument("--no-json", action="store_true", help="print only")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    fit_options = {"compile": True} if args.compile else {}
    env = machine()
    print(", ".join(f"{k} {v}" for k, v in env.items()), flush=True)
    results = {}
    for key, make in cases(args.squares_train):
        if args.only and not any(key == o or key.startswith(o.rstrip("/") + "/") for o in args.only):
            continue
        r = measure(make, args.warmup, args.steps, args.block, fit_options)
        results[key] = r
        print(f"{key:40s} {r['steps_per_second']:8.2f} steps/s {r['ms_per_step']:9.2f} ms/step "
              f"(batch {r['batch_size']}, {r['parameters']:,} parameters, {r['wall_seconds']:.1f} s)", flush=True)
    if args.no_json:
        return
    path = Path(args.json)
    out = json.loads(path.read_text()) if path.exists() else {}
    out.setdefault("description", "catlib.train.fit steps per second on the CPU at the 'cpu' profiles' model and "
                                  "batch sizes; see benchmarks/speed_training_steps.py")
    import catlib

    code = git_state() if args.note is None else {"commit": args.commit, "dirty": False, "note": args.note}
    code["catlib_imported_from"] = str(Path(catlib.__file__).parent)
    command = "python benchmarks/speed_training_steps.py " + " ".join(argv if argv is not None else os.sys.argv[1:])
    section = out.get(args.label, {})
    runs = section.get("runs", []) + [{"machine": env, "code": code, "command": command, "models": list(results)}]
    out[args.label] = {"runs": runs, "fit_options": fit_options, "results": {**section.get("results", {}), **results}}
    if "before" in out and "after" in out:
        before, after = out["before"]["results"], out["after"]["results"]
        out["speedup"] = {k: round(after[k]["steps_per_second"] / before[k]["steps_per_second"], 3)
                          for k in after if k in before}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote section {args.label!r} of {path}")


if __name__ == "__main__":
    main()

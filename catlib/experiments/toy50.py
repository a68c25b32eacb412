"""The workshop paper's Table 2: six models on the 50-class toy, ELBO and IWBO in bits.

``run_toy50(profile)`` trains (or reloads from checkpoints) every model of the table and
returns one row per model; a finished run's metrics live in its checkpoint, so a second call
only reads them. Run it from the shell with ``python -m catlib.experiments.toy50 --profile full``.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

import catlib
from catlib.data import Toy50
from catlib.metrics import expected_bound_bits
from catlib.experiments import check_profile, checkpoint_folder, experiment_parser
from catlib.train import fit, finished_run_metrics, load_checkpoint, save_metrics, select_device

__all__ = ["PROFILES", "TABLE2", "Toy50Config", "run_toy50", "run_one", "load_model", "STEPS_PATH", "steps_benchmark"]

#: The bounds at several training lengths, measured by ``benchmarks/toy50_steps.py`` and committed.
STEPS_PATH = Path(__file__).resolve().parents[2] / "benchmarks" / "results" / "toy50_steps.json"

#: (model name, row label, paper ELBO, paper IWBO) in the order of the paper's Table 2; the
#: binary Cartesian product is our extra row (the paper does not run it on the toy).
TABLE2 = [
    ("uniform-dequantization", "Hypercube / uniform", 9.78, 7.64),
    ("variational-dequantization", "Hypercube / variational", 5.32, 4.91),
    ("argmax-threshold", "Argmax / thresholding", 5.00, 4.82),
    ("argmax-gumbel", "Argmax / Gumbel distribution", 4.86, 4.82),
    ("argmax-gumbel-threshold", "Argmax / Gumbel thresholding", 4.88, 4.82),
    ("argmax-binary", "Argmax / binary product (ours)", None, None),
]


@dataclass
class Toy50Config:
    """Sizes of one profile: ``iwbo_k`` importance samples; ``*_repeats`` estimates per class, averaged."""

    steps: int
    batch_size: int = 256
    lr: float = 1e-3
    train_size: int = 50_000
    iwbo_k: int = 1000
    elbo_repeats: int = 100
    iwbo_repeats: int = 5
    model: dict = field(default_factory=dict)


PROFILES = {
    "smoke": Toy50Config(steps=40, batch_size=64, train_size=2000, iwbo_k=20, elbo_repeats=2, iwbo_repeats=1,
                         model={"flow_steps": 2, "hidden": (32,)}),
    "full": Toy50Config(steps=5000, batch_size=256, lr=2e-3, train_size=50_000, iwbo_k=1000, elbo_repeats=100,
                        model={"flow_steps": 4, "hidden": (128, 128)}),
}


def run_one(name: str, config: Toy50Config, toy: Toy50, checkpoint: Path | None, seed: int = 0,
            device: torch.device | None = None, progress: bool = True) -> dict:
    """Train one model of the table (or reload it) and evaluate it; returns the stored metrics."""
    device = select_device(device)
    torch.manual_seed(seed)
    model = catlib.build_model(name, toy.data_shape, toy.num_classes, **config.model)
    wanted = {"config": asdict(config), "seed": seed}
    finished = finished_run_metrics(checkpoint, wanted, config.steps)
    if finished is not None:
        return finished
    train = toy.sample(config.train_size, seed=seed + 1)
    result = fit(model, train, steps=config.steps, batch_size=config.batch_size, lr=config.lr, seed=seed,
                 device=device, checkpoint=checkpoint, progress=progress, desc=name, settings=wanted)
    start = time.perf_counter()
    support = toy.support.to(device)
    elbo = expected_bound_bits(model, support, toy.probs, k=1, repeats=config.elbo_repeats, progress=progress)
    iwbo = expected_bound_bits(model, support, toy.probs, k=config.iwbo_k, repeats=config.iwbo_repeats,
                               progress=progress)
    metrics = {"elbo_bits": elbo, "iwbo_bits": iwbo, "steps": result.steps, "train_seconds": result.seconds,
               "eval_seconds": time.perf_counter() - start, "device": str(device),
               "parameters": sum(p.numel() for p in model.parameters()), "losses": result.losses,
               "run": wanted}
    if checkpoint is not None:
        save_metrics(checkpoint, metrics)
    return metrics


def load_model(name: str, profile: str, checkpoint_dir: str | Path = "checkpoints/toy50",
               device: str | torch.device | None = None) -> torch.nn.Module:
    """The trained model ``name`` of a finished :func:`run_toy50` run, in eval mode."""
    config = check_profile(profile, PROFILES)
    toy = Toy50()
    model = catlib.build_model(name, toy.data_shape, toy.num_classes, **config.model)
    model.load_state_dict(load_checkpoint(Path(checkpoint_dir) / profile / f"{name}.pt")["model"])
    return model.to(select_device(device)).eval()


def run_toy50(profile: str = "full", checkpoint_dir: str | Path | None = "checkpoints/toy50", seed: int = 0,
              device: str | torch.device | None = None, names: list[str] | None = None,
              progress: bool = True) -> list[dict]:
    """Every row of Table 2 for ``profile`` (``"smoke"`` or ``"full"``).

    Returns one dict per model: ``name``, ``label``, ``elbo_bits``, ``iwbo_bits``, the paper's
    ``paper_elbo`` / ``paper_iwbo``, ``steps``, ``seconds`` (training + evaluation),
    ``device``, ``parameters`` and the loss history ``losses`` (nats per example).
    """
    config = check_profile(profile, PROFILES)
    toy = Toy50()
    rows = []
    for name, label, paper_elbo, paper_iwbo in TABLE2:
        if names is not None and name not in names:
            continue
        ckpt = Path(checkpoint_dir) / profile / f"{name}.pt" if checkpoint_dir is not None else None
        m = run_one(name, config, toy, ckpt, seed, select_device(device), progress)
        rows.append({"name": name, "label": label, "paper_elbo": paper_elbo, "paper_iwbo": paper_iwbo,
                     "elbo_bits": m["elbo_bits"], "iwbo_bits": m["iwbo_bits"], "steps": m["steps"],
                     "seconds": m["train_seconds"] + m["eval_seconds"], "device": m["device"],
                     "parameters": m["parameters"], "losses": m["losses"]})
    return rows


def steps_benchmark(path: str | Path = STEPS_PATH) -> dict:
    """The committed run of ``benchmarks/toy50_steps.py`` (``{}`` without the file): ``rows`` of
    ``model, steps, elbo_bits, iwbo_bits, loss_quarters_nats, seconds`` and the machine and commit."""
    import json

    path = Path(path)
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}


def main(argv: list[str] | None = None) -> None:
    parser = experiment_parser(__doc__, PROFILES, "checkpoints/toy50", names=[row[0] for row in TABLE2])
    args = parser.parse_args(argv)
    checkpoint_folder(parser, args)
    toy = Toy50()
    print(f"data entropy {toy.entropy_bits:.3f} bits")
    for r in run_toy50(args.profile, args.checkpoint_dir, args.seed, args.device, args.only):
        print(f"{r['label']:34s} ELBO {r['elbo_bits']:.3f} IWBO {r['iwbo_bits']:.3f} "
              f"(paper {r['paper_elbo']} / {r['paper_iwbo']})  {r['seconds']:.0f} s")


if __name__ == "__main__":
    main()

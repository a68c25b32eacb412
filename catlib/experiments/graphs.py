"""The TRUFL paper's Table 1 (graph colouring, small graphs) on our generated graphs.

``run_graphs(profile)`` trains (or reloads from checkpoints) CatNF, the argmax flow with
thresholding and TRUFL, each a per-node categorical layer under a graph-conditioned flow prior
(:class:`catlib.graph_models.GraphColouringModel`), and evaluates them on the test graphs: the
ELBO and IWBO in bits per node, and the validity of one sampled colouring per test graph. TRUFL
gives two rows, sampled with and without rejection sampling; its rejection rate is measured
every ``rejection_every`` training steps (the paper's Figure 3). A finished run's metrics live
in its checkpoint, so a second call only reads them. From the shell:
``python -m catlib.experiments.graphs --profile cpu --checkpoint-dir checkpoints/09_graph_colouring``.

Profiles: ``smoke`` (CI) and ``cpu`` (the committed results: 6000 steps of 64 graphs per model).
The ``paper`` profile, CatNF's setting that TRUFL uses (:data:`PAPER_SETTINGS`: 200,000
iterations of 384 small graphs), is not built yet (:class:`~catlib.experiments.NotYet`).
"""
from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import Tensor, nn

from catlib.data.graphs import GraphColouring, is_valid_colouring
from catlib.experiments import (NOT_GIVEN, NotYet, Setting, budget_ratio, canonical_profile, check_profile,
                                checkpoint_folder, experiment_parser, writable_dir_or_error)
from catlib.graph_models import GRAPH_MODELS, GraphColouringModel, bits_per_node
from catlib.results import row_status
from catlib.train import fit, finished_run_metrics, load_checkpoint, save_metrics, select_device

__all__ = ["PROFILES", "PAPER_SETTINGS", "PAPER_BUDGET", "run_budget_ratio", "TOLERANCES",
           "result_fields", "TABLE1", "ROWS", "GraphsConfig", "build", "load_data", "run_one", "run_graphs",
           "load_model", "evaluate_samples"]

#: The TRUFL paper's Table 1 (means over 3 seeds): ``(key, label, small validity, small bpd,
#: large validity, large bpd)``; validity as a fraction, bpd in bits per node. The RNN row is
#: CatNF's autoregressive baseline, which we do not run. For large graphs the paper also
#: reports CatNF with other hyperparameters (68.06% / 0.45); the bpd of TRUFL without rejection
#: sampling is the same model's as with it (the bound does not depend on how we sample).
TABLE1 = [
    ("rnn-largest-first", "RNN + largest first", 0.9341, 0.68, 0.7132, 0.43),
    ("catnf", "CatNF", 0.9456, 0.67, 0.6680, 0.45),
    ("argmax-threshold", "Argmax flow (thresh.)", 0.9481, 0.66, 0.6365, 0.46),
    ("trufl", "TRUFL, no rejection sampling", 0.9540, 0.65, 0.6810, 0.45),
    ("trufl-rs", "TRUFL, rejection sampling", 0.9590, 0.65, 0.7420, 0.45),
]
#: Our rows: ``(row key, trained model, rejection sampling)``.
ROWS = [("catnf", "catnf", False), ("argmax-threshold", "argmax-threshold", False),
        ("trufl", "trufl", False), ("trufl-rs", "trufl", True)]


@dataclass
class GraphsConfig:
    """Sizes of one profile.

    Training draws ``batch_size`` graphs with replacement from ``train_size`` small graphs and
    renames their colours by a random permutation each time. Evaluation: the ELBO on all
    ``test_size`` test graphs, the IWBO with ``iwbo_k`` samples on the first ``iwbo_size``,
    one sampled colouring per test graph. TRUFL's rejection rate is measured every
    ``rejection_every`` steps with ``rejection_draws`` prior draws on each of the first
    ``rejection_graphs`` test graphs. ``model`` holds :class:`GraphColouringModel` options of
    every model, ``encoding`` extra options by model name.
    """

    steps: int
    train_size: int = 4000
    test_size: int = 500
    batch_size: int = 64
    lr: float = 1e-3
    size: str = "small"
    iwbo_k: int = 32
    iwbo_size: int = 500
    eval_batch: int = 256
    rejection_every: int = 100
    rejection_graphs: int = 64
    rejection_draws: int = 4
    model: dict = field(default_factory=dict)
    encoding: dict = field(default_factory=dict)


#: TRUFL trains with soft support edges (:class:`catlib.encodings.CategoricalEncoding`). Unlike
#: chapter 07 it starts close to CatNF (wide supports): narrow supports apart at the start leave
#: most of the prior outside them, and a graph's sample needs *every* node inside a support, so
#: rejection sampling would accept almost nothing until the prior has learned.
ENCODING = {"trufl": {"support_temperature": 0.02}}

PROFILES = {
    "smoke": GraphsConfig(steps=60, train_size=64, test_size=32, batch_size=16, iwbo_k=4, iwbo_size=16,
                          rejection_every=20, rejection_graphs=16, rejection_draws=2,
                          model={"flow_steps": 2, "hidden": 16, "gnn_layers": 2, "q_flow_steps": 1,
                                 "q_hidden": (16,)}, encoding=ENCODING),
    "cpu": GraphsConfig(steps=6000, train_size=4000, test_size=500, batch_size=64, lr=5e-4, iwbo_k=32,
                        iwbo_size=500, rejection_every=100, rejection_graphs=64, rejection_draws=4,
                        model={"flow_steps": 6, "hidden": 64, "gnn_layers": 3, "q_flow_steps": 2,
                               "q_hidden": (64,)}, encoding=ENCODING),
    "paper": NotYet("graph colouring at TRUFL's setting (CatNF's generator and prior, 200k iterations of 384 "
                    "graphs) is issue 15; use --profile cpu"),
}

_CATNF_README = "CatNF code, experiments/graph_coloring/README.md (small graphs)"
_CATNF_TRAIN = "CatNF code, experiments/graph_coloring/train.py default"
#: CatNF's small-graph setting, which TRUFL's Table 1 uses (its appendix C.2 changes only the
#: large graphs' run). The ``paper`` profile that will hold it is not built yet, so no test
#: compares it with a config; :func:`run_budget_ratio` uses its steps and batch.
PAPER_SETTINGS = [
    Setting("training steps", "steps", 200_000, _CATNF_README),
    Setting("batch size (graphs)", "batch_size", 384, _CATNF_README),
    Setting("learning rate", "lr", 7.5e-4, _CATNF_README + ", optimiser RAdam"),
    Setting("training graphs", "train_size", 192_000, _CATNF_README),
    Setting("test graphs", "test_size", 24_000, _CATNF_README),
    Setting("prior: coupling steps", "model.flow_steps", 8, _CATNF_TRAIN + " (coupling_num_flows)"),
    Setting("prior: hidden size", "model.hidden", 384, _CATNF_TRAIN + " (coupling_hidden_size)"),
    Setting("prior: layers per coupling network", "model.gnn_layers", 4, _CATNF_TRAIN + " (coupling_hidden_layers)"),
    Setting("IWBO samples", "iwbo_k", NOT_GIVEN),
]
#: Graphs the paper's run trained on, by graph size: CatNF's 200,000 iterations of 384 small
#: graphs or 128 large ones (TRUFL's appendix C.2 keeps 128 for the large graphs).
PAPER_BUDGET = {"small": 200_000 * 384, "large": 200_000 * 128}


def run_budget_ratio(config: GraphsConfig, name: str | None = None) -> float | None:
    """Graphs our run trains on (steps x batch) over the paper's run's (:data:`PAPER_BUDGET`);
    every model trains equally long, so ``name`` does not matter.

    >>> round(run_budget_ratio(PROFILES["cpu"]), 4)
    0.005
    """
    return budget_ratio(config.steps * config.batch_size, PAPER_BUDGET.get(config.size))


#: A results row is "reproduced" within this distance of the paper's number (``"close"`` within
#: twice it): validity as a fraction (Table 1's rows lie 0.5 to 1.5 points apart) and
#: bits per node (its rows lie 0.01 apart).
TOLERANCES = {"validity": 0.01, "bits": 0.02}


def result_fields(kind: str, ours: float | None, paper: float | None, profile: str, config: GraphsConfig) -> dict:
    """``status`` and ``budget_ratio`` of one results row; ``kind`` is ``"validity"`` or ``"bits"``
    (:data:`TOLERANCES`).

    >>> result_fields("validity", 0.366, 0.9456, "cpu", PROFILES["cpu"])["status"]
    'undertrained'
    """
    ratio = run_budget_ratio(config)
    return {"status": row_status(ours, paper, TOLERANCES[kind], profile=profile, budget_ratio=ratio),
            "budget_ratio": ratio}


def build(name: str, config: GraphsConfig, seed: int = 0) -> GraphColouringModel:
    """The untrained model ``name`` at the sizes of ``config``."""
    return GraphColouringModel(name, **config.model, **config.encoding.get(name, {}), seed=seed)


def load_data(config: GraphsConfig, seed: int = 0, data_dir: str | Path | None = None) -> dict[str, GraphColouring]:
    """``{"train": ..., "test": ...}`` of ``config``; cached under ``data_dir/graph_colouring`` if given."""
    out = {}
    for split, n in (("train", config.train_size), ("test", config.test_size)):
        if data_dir is None:
            out[split] = GraphColouring(n, config.size, seed, split)
        else:
            path = Path(data_dir) / "graph_colouring" / f"{config.size}_{split}_{n}_seed{seed}.pt"
            out[split] = GraphColouring.load_or_generate(path, n, config.size, seed, split)
    return out


class _Packed(nn.Module):
    """``fit`` passes one tensor per batch: colours, mask and adjacency packed as ``[B, N, N + 2]``."""

    def __init__(self, model: GraphColouringModel):
        super().__init__()
        self.model = model

    @staticmethod
    def pack(colours: Tensor, adjacency: Tensor, mask: Tensor) -> Tensor:
        return torch.cat([colours.unsqueeze(-1), mask.long().unsqueeze(-1), adjacency.long()], -1)

    def log_prob(self, packed: Tensor) -> Tensor:
        return self.model.log_prob(packed[..., 0], packed[..., 2:].bool(), packed[..., 1].bool())


@torch.no_grad()
def _bounds_bpn(model: GraphColouringModel, data: GraphColouring, count: int, k: int, graphs_per_batch: int) -> float:
    """Mean over the first ``count`` graphs of the bound's bits per node."""
    out = []
    for start in range(0, count, graphs_per_batch):
        c, a, m = data.batch(range(start, min(count, start + graphs_per_batch)))
        dev = model.device
        lp = model.log_prob(c.to(dev), a.to(dev), m.to(dev), k=k).cpu().double()
        out.append(bits_per_node(lp, m))
    return float(torch.cat(out).mean())


@torch.no_grad()
def evaluate_samples(model: GraphColouringModel, data: GraphColouring, rejection: bool, greedy: bool = False,
                     seed: int = 0, graphs_per_batch: int = 256) -> dict:
    """One sampled colouring per graph of ``data``: ``validity`` (fraction of valid colourings),
    ``samples`` (a list of per-graph colour lists) and, with rejection sampling, the draws
    ``drawn`` / ``accepted``."""
    gen = torch.Generator(device=model.device).manual_seed(seed)
    samples, valid, drawn, accepted = [], [], 0, 0
    for start in range(0, len(data), graphs_per_batch):
        _, a, m = data.batch(range(start, min(len(data), start + graphs_per_batch)))
        x = model.sample(a.to(model.device), m.to(model.device), rejection=rejection, greedy=greedy,
                         generator=gen).cpu()
        valid.append(is_valid_colouring(x, a, m))
        samples += [row[:n].tolist() for row, n in zip(x, m.sum(-1).tolist())]
        if model.last_rejection is not None:
            drawn, accepted = drawn + model.last_rejection.drawn, accepted + model.last_rejection.accepted
    out = {"validity": float(torch.cat(valid).double().mean()), "samples": samples}
    if rejection and model.truncated:
        out.update(drawn=drawn, accepted=accepted, rejection_rate=1 - accepted / drawn)
    return out


def run_one(name: str, config: GraphsConfig, checkpoint: Path | None, seed: int = 0,
            device: torch.device | None = None, progress: bool = True,
            data: dict[str, GraphColouring] | None = None) -> dict:
    """Train one model (or reload it) and evaluate it; returns the stored metrics."""
    device = select_device(device)
    wanted = {"config": asdict(config), "seed": seed, "name": name}
    finished = finished_run_metrics(checkpoint, wanted, config.steps)
    if finished is not None:
        return finished
    data = data or load_data(config, seed)
    train, test = data["train"], data["test"]
    torch.manual_seed(seed)
    model = build(name, config, seed).to(device)
    packed = _Packed(model)

    # TRUFL's rejection rate during training (Figure 3), measured on fixed test graphs with its
    # own generator, so the training run is the same with or without the measurements
    trace: list[dict] = []
    trace_path = checkpoint.with_suffix(".trace.json") if checkpoint is not None else None
    step = {"next": 0}
    if checkpoint is not None and checkpoint.exists():
        step["next"] = int(load_checkpoint(checkpoint)["step"])
        if trace_path.exists():
            trace = [t for t in json.loads(trace_path.read_text()) if t["step"] < step["next"]]
    _, probe_a, probe_m = test.batch(range(min(config.rejection_graphs, len(test))))
    probe_a, probe_m = probe_a.to(device), probe_m.to(device)

    def measure(at: int) -> None:
        gen = torch.Generator(device=device).manual_seed(seed + 1 + at)
        trace.append({"step": at, **model.support_rate(probe_a, probe_m, config.rejection_draws, gen)})
        if trace_path is not None:
            trace_path.parent.mkdir(parents=True, exist_ok=True)
            trace_path.write_text(json.dumps(trace))

    def draw(n: int, g: torch.Generator) -> Tensor:
        if model.truncated and step["next"] % config.rejection_every == 0:
            measure(step["next"])
        step["next"] += 1
        idx = torch.randint(len(train), (n,), generator=g)
        return packed.pack(*train.batch(idx, permute_colours=True, generator=g))

    result = fit(packed, draw, steps=config.steps, batch_size=config.batch_size, lr=config.lr, seed=seed,
                 device=device, checkpoint=checkpoint, progress=progress, desc=name, settings=wanted)
    model.eval()
    if model.truncated:
        measure(config.steps)
    start = time.perf_counter()
    torch.manual_seed(seed)
    elbo = _bounds_bpn(model, test, len(test), 1, config.eval_batch)
    iwbo = _bounds_bpn(model, test, min(config.iwbo_size, len(test)), config.iwbo_k,
                       max(1, config.eval_batch // config.iwbo_k))
    samplings = {}
    for rejection in ((False, True) if model.truncated else (False,)):
        for greedy in (False, True):
            key = f"{'rejection' if rejection else 'plain'}{'_greedy' if greedy else ''}"
            samplings[key] = evaluate_samples(model, test, rejection, greedy, seed, config.eval_batch)
    metrics = {"elbo_bpn": elbo, "iwbo_bpn": iwbo, "iwbo_k": config.iwbo_k,
               "iwbo_graphs": min(config.iwbo_size, len(test)), "test_graphs": len(test),
               "samplings": samplings, "rejection_trace": trace, "steps": result.steps,
               "train_seconds": result.seconds, "eval_seconds": time.perf_counter() - start,
               "device": str(device), "parameters": sum(p.numel() for p in model.parameters()),
               "losses": result.losses, "run": wanted}
    if checkpoint is not None:
        save_metrics(checkpoint, metrics)
    return metrics


def load_model(name: str, profile: str, checkpoint_dir: str | Path = "checkpoints/09_graph_colouring",
               device: str | torch.device | None = None, seed: int = 0) -> GraphColouringModel:
    """The trained model ``name`` of a finished :func:`run_graphs` run, in eval mode."""
    profile = canonical_profile(profile)
    model = build(name, check_profile(profile, PROFILES), seed)
    state = load_checkpoint(Path(checkpoint_dir) / profile / f"{name}.pt")["model"]
    model.load_state_dict({k.removeprefix("model."): v for k, v in state.items()})
    return model.to(select_device(device)).eval()


def run_graphs(profile: str = "cpu", checkpoint_dir: str | Path | None = "checkpoints/09_graph_colouring",
               seed: int = 0, device: str | torch.device | None = None, names: list[str] | None = None,
               progress: bool = True, data_dir: str | Path | None = None) -> list[dict]:
    """The rows of Table 1 (small graphs) for ``profile`` (``"smoke"`` or ``"cpu"``).

    Returns one dict per row of :data:`ROWS`: ``key``, ``name`` (the trained model), ``label``,
    ``rejection`` (TRUFL sampled with rejection sampling), ``validity`` and ``validity_greedy``
    (decoding the most likely colour), ``elbo_bpn`` / ``iwbo_bpn`` (bits per node), ``iwbo_k``,
    the paper's ``paper_validity`` / ``paper_bpn``, ``steps``, ``seconds`` (training and
    evaluation of the model, shared by TRUFL's two rows), ``device``, ``parameters``,
    ``losses``, ``samples`` (one colour list per test graph), ``rejection_trace`` and, with
    rejection sampling, ``drawn`` / ``accepted``.
    """
    config, profile = check_profile(profile, PROFILES), canonical_profile(profile)
    unknown = sorted(set(names or []) - set(GRAPH_MODELS))
    if unknown:
        raise ValueError(f"unknown model(s) {unknown}; expected some of {list(GRAPH_MODELS)}")
    data = load_data(config, seed, data_dir)
    device = select_device(device)
    paper = {row[0]: row for row in TABLE1}
    metrics, rows = {}, []
    for key, name, rejection in ROWS:
        if names is not None and name not in names:
            continue
        if name not in metrics:
            ckpt = Path(checkpoint_dir) / profile / f"{name}.pt" if checkpoint_dir is not None else None
            metrics[name] = run_one(name, config, ckpt, seed, device, progress, data)
        m = metrics[name]
        plain = "rejection" if rejection else "plain"
        s, g = m["samplings"][plain], m["samplings"][f"{plain}_greedy"]
        rows.append({"key": key, "name": name, "label": paper[key][1], "rejection": rejection,
                     "validity": s["validity"], "validity_greedy": g["validity"], "samples": s["samples"],
                     "paper_validity": paper[key][2], "paper_bpn": paper[key][3],
                     "seconds": m["train_seconds"] + m["eval_seconds"],
                     **{k: s[k] for k in ("drawn", "accepted", "rejection_rate") if k in s},
                     **{k: m[k] for k in ("elbo_bpn", "iwbo_bpn", "iwbo_k", "steps", "device", "parameters",
                                          "losses", "rejection_trace", "train_seconds", "eval_seconds")}})
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = experiment_parser(__doc__, PROFILES, "checkpoints/09_graph_colouring", names=GRAPH_MODELS)
    parser.add_argument("--data-dir", default=None,
                        help="cache folder for the generated graphs (written to <dir>/graph_colouring)")
    args = parser.parse_args(argv)
    checkpoint_folder(parser, args)
    if args.data_dir is not None:
        writable_dir_or_error(parser, Path(args.data_dir) / "graph_colouring", "--data-dir", "graph cache folder")
    start = time.perf_counter()
    for r in run_graphs(args.profile, args.checkpoint_dir, args.seed, args.device, args.only,
                        data_dir=args.data_dir):
        print(f"{r['label']:30s} validity {r['validity']:.2%} (greedy {r['validity_greedy']:.2%}; paper "
              f"{r['paper_validity']:.2%})  ELBO {r['elbo_bpn']:.3f} IWBO({r['iwbo_k']}) {r['iwbo_bpn']:.3f} bits "
              f"per node (paper {r['paper_bpn']})  {r['steps']} steps, {r['seconds']:.0f} s", flush=True)
    print(f"total {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()

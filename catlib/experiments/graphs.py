"""The TRUFL paper's Table 1 (graph colouring, small and large graphs) on graphs made with CatNF's recipe.

``run_graphs(profile)`` trains (or reloads from checkpoints) CatNF's autoregressive baseline
(:class:`catlib.graph_rnn.GraphColouringRNN`, largest-first order), CatNF, the argmax flow with
thresholding and TRUFL, the last three a per-node categorical layer under a graph-conditioned
flow prior (:class:`catlib.graph_models.GraphColouringModel`), and evaluates them on the test
graphs: the ELBO and IWBO in bits per node (the baseline's exact likelihood), and the validity of
one sampled colouring per test graph. TRUFL gives two rows, sampled with and without rejection
sampling; its rejection rate is measured every ``rejection_every`` training steps (the paper's
Figure 3). A finished run's metrics live in its checkpoint, so a second call only reads them.
From the shell:
``python -m catlib.experiments graphs --profile cpu --checkpoint-dir checkpoints/09_graph_colouring``.

Profiles, each for small graphs (10-20 nodes) and, with the suffix ``-large``, large ones
(25-50 nodes): ``smoke`` (CI), ``cpu`` (the committed results) and ``paper``: CatNF's setting,
which TRUFL's Table 1 uses (:data:`PAPER_SETTINGS`, :data:`PAPER_SETTINGS_LARGE`): 200,000
iterations of 384 small graphs (128 large ones) with RAdam, over a prior of 8 mixture-of-logistics
couplings (TRUFL's large graphs: 10) whose graph attention networks have 4 layers of width 384.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import Tensor, nn

from catlib.data.graphs import GraphColouring, is_valid_colouring
from catlib.experiments import (NOT_GIVEN, Setting, budget_ratio, canonical_profile, check_profile,
                                checkpoint_folder, checkpoint_path, experiment_parser, seed_type, writable_dir_or_error)
from catlib.graph_models import GRAPH_MODELS, GraphColouringModel, bits_per_node
from catlib.graph_rnn import GraphColouringRNN
from catlib.results import row_status
from catlib.train import StepLog, curve_trend, fit, finished_run_metrics, load_checkpoint, save_metrics, select_device

__all__ = ["PROFILES", "PAPER_SETTINGS", "PAPER_SETTINGS_LARGE", "PAPER_BUDGET", "run_budget_ratio", "TOLERANCES",
           "result_fields", "TABLE1", "ROWS", "NAMES", "RNN", "GraphsConfig", "build", "load_data", "run_one",
           "run_graphs", "load_model", "evaluate_samples", "paper_columns", "curve_trend",
           "checkpoint_path"]

#: The TRUFL paper's Table 1 (means over 3 seeds): ``(key, label, small validity, small bpd,
#: large validity, large bpd)``; validity as a fraction, bpd in bits per node. The RNN row is
#: CatNF's autoregressive baseline. For large graphs the paper also reports CatNF with TRUFL's
#: hyperparameters (68.06% / 0.45); the bpd of TRUFL without rejection sampling is the same
#: model's as with it (the bound does not depend on how we sample).
TABLE1 = [
    ("rnn-largest-first", "RNN + largest first", 0.9341, 0.68, 0.7132, 0.43),
    ("catnf", "CatNF", 0.9456, 0.67, 0.6680, 0.45),
    ("argmax-threshold", "Argmax flow (thresh.)", 0.9481, 0.66, 0.6365, 0.46),
    ("trufl", "TRUFL, no rejection sampling", 0.9540, 0.65, 0.6810, 0.45),
    ("trufl-rs", "TRUFL, rejection sampling", 0.9590, 0.65, 0.7420, 0.45),
]
#: The autoregressive baseline's model name.
RNN = "rnn-largest-first"
#: Every model the experiment trains.
NAMES = (RNN, *GRAPH_MODELS)
#: Our rows: ``(row key, trained model, rejection sampling)``.
ROWS = [(RNN, RNN, False), ("catnf", "catnf", False), ("argmax-threshold", "argmax-threshold", False),
        ("trufl", "trufl", False), ("trufl-rs", "trufl", True)]


def paper_columns(size: str) -> tuple[int, int]:
    """The indices of a :data:`TABLE1` row's validity and bits per node for ``size`` (``"small"`` / ``"large"``)."""
    return (2, 3) if size == "small" else (4, 5)


@dataclass
class GraphsConfig:
    """Sizes of one profile.

    Training draws ``batch_size`` graphs with replacement from ``train_size`` graphs of ``size``
    (made by ``method``, :class:`catlib.data.graphs.GraphColouring`) and renames their colours by
    a random permutation each time, for ``steps`` steps of ``optimizer`` (``"adam"`` or
    ``"radam"``) at ``lr`` (``model_lr[name]`` for the model ``name``) with ``warmup`` steps of
    warm-up, a cosine decay (``lr_decay=None``) or a factor ``lr_decay`` per step, and gradients
    clipped to norm ``grad_clip``. Evaluation: the ELBO on all ``test_size`` test graphs, the IWBO
    with ``iwbo_k`` samples on the first ``iwbo_size``, one sampled colouring per test graph.
    TRUFL's rejection rate is measured every ``rejection_every`` steps with ``rejection_draws``
    prior draws on each of the first ``rejection_graphs`` test graphs; every ``curve_every`` steps
    (0: never) the learning curve gets the validity of one plain sample and the ELBO in bits per
    node on the first ``curve_graphs`` test graphs. ``model`` holds
    :class:`GraphColouringModel` options of every flow model, ``encoding`` extra options by model
    name; the autoregressive baseline takes ``rnn`` (:class:`GraphColouringRNN` options) and trains
    ``rnn_steps`` steps of ``rnn_batch_size`` graphs (``None``: ``steps`` / ``batch_size``).
    """

    steps: int
    train_size: int = 4000
    test_size: int = 500
    batch_size: int = 64
    lr: float = 1e-3
    size: str = "small"
    method: str = "erdos-renyi"
    optimizer: str = "adam"
    lr_decay: float | None = None
    grad_clip: float | None = 10.0
    warmup: int = 100
    iwbo_k: int = 32
    iwbo_size: int = 500
    eval_batch: int = 256
    rejection_every: int = 100
    rejection_graphs: int = 64
    rejection_draws: int = 4
    curve_every: int = 0
    curve_graphs: int = 128
    model: dict = field(default_factory=dict)
    encoding: dict = field(default_factory=dict)
    model_lr: dict = field(default_factory=dict)
    rnn: dict = field(default_factory=dict)
    rnn_steps: int | None = None
    rnn_batch_size: int | None = None

    def training(self, name: str) -> dict:
        """``steps``, ``batch_size`` and ``lr`` of the model ``name``."""
        rnn = name == RNN
        return {"steps": self.rnn_steps if rnn and self.rnn_steps else self.steps,
                "batch_size": self.rnn_batch_size if rnn and self.rnn_batch_size else self.batch_size,
                "lr": self.model_lr.get(name, self.lr)}


#: TRUFL trains with soft support edges (:class:`catlib.encodings.CategoricalEncoding`). Unlike
#: chapter 07 it starts close to CatNF (wide supports): narrow supports apart at the start leave
#: most of the prior outside them, and a graph's sample needs *every* node inside a support, so
#: rejection sampling would accept almost nothing until the prior has learned.
ENCODING = {"trufl": {"support_temperature": 0.02}}
#: CatNF's optimiser (general/train.py defaults of its code): RAdam, the learning rate times
#: 0.999975 after every step, no warm-up, gradients clipped to norm 0.25.
_CATNF_OPT = {"optimizer": "radam", "lr_decay": 0.999975, "grad_clip": 0.25, "warmup": 0}
#: CatNF's graph prior (graph_node_flow.py): mixture-of-logistics couplings over relational graph
#: attention networks of 4 layers of width 384.
_CATNF_PRIOR = {"hidden": 384, "gnn_layers": 4, "coupling": "mixture", "net": "attention", "heads": 4}
#: CatNF's RNN command (its README, large graphs): 100,000 iterations of 128 graphs, 5 layers of 384.
_CATNF_RNN = {"rnn": {"hidden": 384, "gnn_layers": 5, "net": "attention", "heads": 4}, "rnn_steps": 100_000,
              "rnn_batch_size": 128}
_SMOKE = dict(steps=60, train_size=64, test_size=32, batch_size=16, iwbo_k=4, iwbo_size=16, rejection_every=20,
              rejection_graphs=16, rejection_draws=2, curve_every=20, curve_graphs=16,
              model={"flow_steps": 2, "latent_dim": 2, "hidden": 16, "gnn_layers": 2, "q_flow_steps": 1,
                     "q_hidden": (16,), "coupling": "mixture", "num_mixtures": 4, "net": "attention"},
              rnn={"hidden": 16, "gnn_layers": 2}, encoding=ENCODING, **_CATNF_OPT)
#: The cpu profiles, sized from one-thread timings of a training step with two runs side by side
#: (2 cores, 2026-12-02, batch 64): small graphs 134 ms (CatNF), 140 ms (argmax), 132 ms (TRUFL), 22 ms
#: (RNN); large graphs 437, 401, 387 and 76 ms. Width 128 cost 1.6x (small) to 1.4x (large) per
#: step, so the budget goes to steps: 10,000 small-graph steps (about 23 minutes a flow) and 4,000
#: large-graph steps (about 28), all seven runs in about 2.7 hours of one core.
_CPU = dict(steps=10_000, test_size=500, batch_size=64, lr=7.5e-4, iwbo_k=32, iwbo_size=500, rejection_every=100,
            rejection_graphs=64, rejection_draws=4, curve_every=500, curve_graphs=128,
            model={"flow_steps": 6, "latent_dim": 2, "hidden": 64, "gnn_layers": 3, "q_flow_steps": 2,
                   "q_hidden": (64,), "coupling": "mixture", "num_mixtures": 8, "net": "attention"},
            rnn={"hidden": 64, "gnn_layers": 4}, encoding=ENCODING, **_CATNF_OPT)

PROFILES = {
    "smoke": GraphsConfig(**_SMOKE),
    "smoke-large": GraphsConfig(**{**_SMOKE, "train_size": 32, "test_size": 16, "iwbo_size": 8, "rejection_graphs": 8,
                                   "encoding": {**ENCODING, "catnf": {"flow_steps": 2, "latent_dim": 6}}},
                                size="large", model_lr={"catnf": 7.5e-4}),
    "cpu": GraphsConfig(train_size=20_000, **_CPU),
    # large graphs: CatNF's row with CatNF's 6 latent numbers per node, as in the paper profile
    "cpu-large": GraphsConfig(**{**_CPU, "steps": 4000, "curve_every": 250, "encoding": {
        **ENCODING, "catnf": {"flow_steps": 6, "latent_dim": 6}}}, train_size=10_000, size="large",
                              model_lr={"catnf": 7.5e-4}),
    "paper": GraphsConfig(
        steps=200_000, train_size=192_000, test_size=24_000, batch_size=384, lr=7.5e-4, iwbo_k=32,
        iwbo_size=24_000, eval_batch=512, curve_every=5000, curve_graphs=512, model={"flow_steps": 8, "latent_dim": 2, "num_mixtures": 8, "q_flow_steps": 2,
                                                 "q_hidden": (384,), **_CATNF_PRIOR},
        encoding=ENCODING, **_CATNF_OPT, **_CATNF_RNN),
    # TRUFL's appendix C.2 (Table 6) for its own rows; CatNF's row at CatNF's README setting
    "paper-large": GraphsConfig(
        steps=200_000, train_size=450_000, test_size=30_000, batch_size=128, lr=3e-4, size="large", iwbo_k=32,
        iwbo_size=30_000, eval_batch=256, curve_every=5000, curve_graphs=512, model={"flow_steps": 10, "latent_dim": 2, "num_mixtures": 16,
                                                 "q_flow_steps": 2, "q_hidden": (384,), **_CATNF_PRIOR},
        encoding={**ENCODING, "catnf": {"flow_steps": 8, "latent_dim": 6}}, model_lr={"catnf": 7.5e-4, RNN: 7.5e-4},
        **_CATNF_OPT, **_CATNF_RNN),
}

_CATNF_README = "CatNF code, experiments/graph_coloring/README.md"
_CATNF_TRAIN = "CatNF code, general/train.py default"
_CATNF_FLOW = "CatNF code, experiments/graph_coloring/graph_node_flow.py"
_CATNF_GEN = "CatNF code, datasets/graph_coloring_generation.py"
_TRUFL_C2 = "TRUFL paper, appendix C.2, Table 6"
_COMMON = [
    Setting("graph generator", "method", "erdos-renyi", _CATNF_GEN),
    Setting("optimiser", "optimizer", "radam", _CATNF_TRAIN + " (optimizer 4)"),
    Setting("learning-rate factor per step", "lr_decay", 0.999975, _CATNF_TRAIN + " (lr_decay_factor)"),
    Setting("gradient clipping (max norm)", "grad_clip", 0.25, _CATNF_TRAIN + " (max_gradient_norm)"),
    Setting("prior: hidden size", "model.hidden", 384, _CATNF_FLOW + " (coupling_hidden_size)"),
    Setting("prior: layers per coupling network", "model.gnn_layers", 4, _CATNF_FLOW + " (coupling_hidden_layers)"),
    Setting("prior: coupling", "model.coupling", "mixture", _CATNF_FLOW + " (MixtureCDFCoupling)"),
    Setting("prior: graph network", "model.net", "attention", _CATNF_FLOW + " (RelationGraphAttention)"),
    Setting("RNN: training steps", "rnn_steps", 100_000, _CATNF_README + " (RNN command, large graphs)"),
    Setting("RNN: batch size", "rnn_batch_size", 128, _CATNF_README + " (RNN command, large graphs)"),
    Setting("RNN: layers", "rnn.gnn_layers", 5, _CATNF_README + " (RNN command, large graphs)"),
    Setting("RNN: hidden size", "rnn.hidden", 384, "CatNF code, graph_node_rnn.py default"),
    Setting("warm-up steps", "warmup", 0, _CATNF_TRAIN + " (warm-up only for optimizer 5)"),
    Setting("argmax: steps of q(u|x)'s flow", "model.q_flow_steps", NOT_GIVEN),
    Setting("argmax: hidden sizes of q(u|x)'s flow", "model.q_hidden", NOT_GIVEN),
    Setting("IWBO samples", "iwbo_k", NOT_GIVEN),
]
#: CatNF's small-graph setting, which TRUFL's Table 1 uses for small graphs.
PAPER_SETTINGS = [
    Setting("training steps", "steps", 200_000, _CATNF_README),
    Setting("batch size (graphs)", "batch_size", 384, _CATNF_README),
    Setting("learning rate", "lr", 7.5e-4, _CATNF_README),
    Setting("training graphs", "train_size", 192_000, _CATNF_README),
    Setting("test graphs", "test_size", 24_000, _CATNF_README),
    Setting("prior: coupling steps", "model.flow_steps", 8, _CATNF_FLOW + " (coupling_num_flows)"),
    Setting("prior: logistics per coupling", "model.num_mixtures", 8, _CATNF_README + " (coupling_num_mixtures)"),
    Setting("latent numbers per node", "model.latent_dim", 2, _CATNF_README + " (encoding_dim)"),
    *_COMMON,
]
#: The large graphs: TRUFL's own hyperparameters for its rows (and argmax's), CatNF's for CatNF's row.
PAPER_SETTINGS_LARGE = [
    Setting("training steps", "steps", 200_000, _CATNF_README),
    Setting("batch size (graphs)", "batch_size", 128, _TRUFL_C2),
    Setting("learning rate", "lr", 3e-4, _TRUFL_C2),
    Setting("training graphs", "train_size", 450_000, _CATNF_README),
    Setting("test graphs", "test_size", 30_000, _CATNF_README),
    Setting("prior: coupling steps", "model.flow_steps", 10, _TRUFL_C2),
    Setting("prior: logistics per coupling", "model.num_mixtures", 16, _CATNF_README + " (coupling_num_mixtures)"),
    Setting("latent numbers per node", "model.latent_dim", 2, _TRUFL_C2),
    Setting("CatNF: coupling steps", "encoding.catnf.flow_steps", 8, _CATNF_FLOW + " (default)"),
    Setting("CatNF: latent numbers per node", "encoding.catnf.latent_dim", 6, _CATNF_README),
    Setting("CatNF: learning rate", "model_lr.catnf", 7.5e-4, _CATNF_README),
    *_COMMON,
]
#: Graphs the paper's run trained on, by graph size: CatNF's 200,000 iterations of 384 small
#: graphs or 128 large ones (TRUFL's appendix C.2 keeps 128 for the large graphs).
PAPER_BUDGET = {"small": 200_000 * 384, "large": 200_000 * 128}
#: Graphs CatNF's RNN command trains on (given for the large graphs; we use it for both sizes).
PAPER_BUDGET_RNN = 100_000 * 128


def run_budget_ratio(config: GraphsConfig, name: str | None = None) -> float | None:
    """Graphs our run of ``name`` trains on (steps x batch) over the paper's run's
    (:data:`PAPER_BUDGET`, :data:`PAPER_BUDGET_RNN` for the RNN); ``name=None``: the flows.

    >>> round(run_budget_ratio(PROFILES["cpu"]), 4)
    0.0083
    """
    t = config.training(name or "catnf")
    paper = PAPER_BUDGET_RNN if name == RNN else PAPER_BUDGET.get(config.size)
    return budget_ratio(t["steps"] * t["batch_size"], paper)


#: A results row is "reproduced" within this distance of the paper's number (``"close"`` within
#: twice it): validity as a fraction (Table 1's rows lie 0.5 to 1.5 points apart) and
#: bits per node (its rows lie 0.01 apart).
TOLERANCES = {"validity": 0.01, "bits": 0.02}


def result_fields(kind: str, ours: float | None, paper: float | None, profile: str, config: GraphsConfig,
                  name: str | None = None) -> dict:
    """``status`` and ``budget_ratio`` of one results row of the model ``name`` (``None``: a
    flow); ``kind`` is ``"validity"`` or ``"bits"`` (:data:`TOLERANCES`).

    >>> result_fields("validity", 0.366, 0.9456, "cpu", PROFILES["cpu"])["status"]
    'undertrained'
    """
    ratio = run_budget_ratio(config, name)
    return {"status": row_status(ours, paper, TOLERANCES[kind], profile=profile, budget_ratio=ratio),
            "budget_ratio": ratio}


def build(name: str, config: GraphsConfig, seed: int = 0) -> GraphColouringModel | GraphColouringRNN:
    """The untrained model ``name`` at the sizes of ``config``."""
    if name == RNN:
        return GraphColouringRNN(**config.rnn)
    return GraphColouringModel(name, **{**config.model, **config.encoding.get(name, {})}, seed=seed)


def load_data(config: GraphsConfig, seed: int = 0, data_dir: str | Path | None = None, workers: int = 1,
              progress: bool = True) -> dict[str, GraphColouring]:
    """``{"train": ..., "test": ...}`` of ``config``, drawn by ``workers`` processes; cached under
    ``data_dir/graph_colouring`` if given (made once, read afterwards)."""
    out = {}
    for split, n in (("train", config.train_size), ("test", config.test_size)):
        if data_dir is None:
            out[split] = GraphColouring(n, config.size, seed, split, config.method, workers, progress)
        else:
            path = Path(data_dir) / "graph_colouring" / f"{config.size}_{config.method}_{split}_{n}_seed{seed}.pt"
            out[split] = GraphColouring.load_or_generate(path, n, config.size, seed, split, config.method, workers,
                                                         progress)
    return out


class _Packed(nn.Module):
    """``fit`` passes one tensor per batch: colours, mask and adjacency packed as ``[B, N, N + 2]``.

    The RNN trains on its one-position estimate of the log-likelihood (one network pass), the
    flows on their one-sample ELBO."""

    def __init__(self, model: GraphColouringModel | GraphColouringRNN):
        super().__init__()
        self.model = model

    @staticmethod
    def pack(colours: Tensor, adjacency: Tensor, mask: Tensor) -> Tensor:
        return torch.cat([colours.unsqueeze(-1), mask.long().unsqueeze(-1), adjacency.long()], -1)

    def log_prob(self, packed: Tensor) -> Tensor:
        objective = self.model.log_prob_estimate if isinstance(self.model, GraphColouringRNN) else self.model.log_prob
        return objective(packed[..., 0], packed[..., 2:].bool(), packed[..., 1].bool())


@torch.no_grad()
def _bounds_bpn(model: GraphColouringModel | GraphColouringRNN, data: GraphColouring, count: int, k: int, graphs_per_batch: int) -> float:
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
            data: dict[str, GraphColouring] | None = None, data_seed: int = 0) -> dict:
    """Train one model with training seed ``seed`` (or reload it) on ``data``, the graphs drawn
    with ``data_seed`` (drawn here if not given), and evaluate it; returns the stored metrics."""
    device = select_device(device)
    # the run's record; data_seed 0 is left out, so checkpoints made before it existed still match
    wanted = {"config": asdict(config), "seed": seed, "name": name, **({"data_seed": data_seed} if data_seed else {})}
    training = config.training(name)
    finished = finished_run_metrics(checkpoint, wanted, training["steps"])
    if finished is not None:
        return finished
    data = data or load_data(config, data_seed)
    train, test = data["train"], data["test"]
    torch.manual_seed(seed)
    model = build(name, config, seed).to(device)
    packed = _Packed(model)

    # measured during training on fixed test graphs, with their own random numbers, so the training
    # run is the same with or without them: TRUFL's rejection rate (Figure 3) and the learning curve
    resumed_at = int(load_checkpoint(checkpoint)["step"]) if checkpoint is not None and checkpoint.exists() else 0
    step = {"next": resumed_at}
    trace = StepLog(checkpoint.with_suffix(".trace.json") if checkpoint is not None else None, resumed_at)
    curve = StepLog(checkpoint.with_suffix(".curve.json") if checkpoint is not None else None, resumed_at)
    _, probe_a, probe_m = test.batch(range(min(config.rejection_graphs, len(test))))
    probe_a, probe_m = probe_a.to(device), probe_m.to(device)
    curve_c, curve_a, curve_m = (t.to(device) for t in test.batch(range(min(config.curve_graphs, len(test)))))

    def measure(at: int) -> None:
        gen = torch.Generator(device=device).manual_seed(seed + 1 + at)
        trace.add({"step": at, **model.support_rate(probe_a, probe_m, config.rejection_draws, gen)})

    def curve_point(at: int) -> None:
        cpu_state = torch.get_rng_state()
        cuda_state = torch.cuda.get_rng_state(device) if device.type == "cuda" else None
        model.eval()
        try:
            torch.manual_seed(seed + 2 + at)
            with torch.no_grad():
                bpn = bits_per_node(model.log_prob(curve_c, curve_a, curve_m).double(), curve_m)
                gen = torch.Generator(device=device).manual_seed(seed + 2 + at)
                x = model.sample(curve_a, curve_m, rejection=False, generator=gen)
            valid = is_valid_colouring(x.cpu(), curve_a.cpu(), curve_m.cpu())
        finally:
            model.train()
            torch.set_rng_state(cpu_state)
            if cuda_state is not None:
                torch.cuda.set_rng_state(cuda_state, device)
        curve.add({"step": at, "graphs_seen": at * training["batch_size"], "validity": float(valid.double().mean()),
                   "elbo_bpn": float(bpn.mean())})

    def draw(n: int, g: torch.Generator) -> Tensor:
        if model.truncated and step["next"] % config.rejection_every == 0:
            measure(step["next"])
        if config.curve_every and step["next"] % config.curve_every == 0:
            curve_point(step["next"])
        step["next"] += 1
        idx = torch.randint(len(train), (n,), generator=g)
        return packed.pack(*train.batch(idx, permute_colours=True, generator=g))

    result = fit(packed, draw, **training, seed=seed, device=device, checkpoint=checkpoint, progress=progress,
                 desc=name, settings=wanted, optimizer=config.optimizer, lr_decay=config.lr_decay,
                 grad_clip=config.grad_clip, warmup=config.warmup)
    if model.truncated:
        measure(training["steps"])
    if config.curve_every:
        curve_point(training["steps"])
    model.eval()
    start = time.perf_counter()
    torch.manual_seed(seed)
    exact = name == RNN  # the RNN's likelihood is exact: its "ELBO" and "IWBO" are that number
    per_graph_passes = int(test.num_nodes.max()) if exact else 1
    elbo = _bounds_bpn(model, test, len(test), 1, max(1, config.eval_batch // per_graph_passes))
    iwbo = elbo if exact else _bounds_bpn(model, test, min(config.iwbo_size, len(test)), config.iwbo_k,
                                          max(1, config.eval_batch // config.iwbo_k))
    samplings = {}
    for rejection in ((False, True) if model.truncated else (False,)):
        for greedy in (False, True):
            key = f"{'rejection' if rejection else 'plain'}{'_greedy' if greedy else ''}"
            samplings[key] = evaluate_samples(model, test, rejection, greedy, seed, config.eval_batch)
    metrics = {"elbo_bpn": elbo, "iwbo_bpn": iwbo, "iwbo_k": 1 if exact else config.iwbo_k, "exact": exact,
               "iwbo_graphs": len(test) if exact else min(config.iwbo_size, len(test)), "test_graphs": len(test),
               "samplings": samplings, "rejection_trace": trace.rows, "curve": curve.rows, "steps": result.steps,
               "train_seconds": result.seconds, "eval_seconds": time.perf_counter() - start,
               "device": str(device), "parameters": sum(p.numel() for p in model.parameters()),
               "losses": result.losses, "run": wanted}
    if checkpoint is not None:
        save_metrics(checkpoint, metrics)
    return metrics


def load_model(name: str, profile: str, checkpoint_dir: str | Path = "checkpoints/09_graph_colouring",
               device: str | torch.device | None = None, seed: int = 0) -> GraphColouringModel | GraphColouringRNN:
    """The trained model ``name`` of a finished :func:`run_graphs` run, in eval mode."""
    profile = canonical_profile(profile)
    model = build(name, check_profile(profile, PROFILES), seed)
    state = load_checkpoint(checkpoint_path(checkpoint_dir, profile, name, seed))["model"]
    model.load_state_dict({k.removeprefix("model."): v for k, v in state.items()})
    return model.to(select_device(device)).eval()


def run_graphs(profile: str = "cpu", checkpoint_dir: str | Path | None = "checkpoints/09_graph_colouring",
               seed: int = 0, device: str | torch.device | None = None, names: list[str] | None = None,
               progress: bool = True, data_dir: str | Path | None = None, workers: int = 1,
               data_seed: int = 0) -> list[dict]:
    """The rows of Table 1 for ``profile`` (small graphs, or large ones for a ``-large`` profile).

    ``seed`` seeds the training (initialisation, batches, sampling); the graphs are the same for
    every seed, drawn with ``data_seed``, as the paper averages its seeds over one data set.

    Returns one dict per row of :data:`ROWS`: ``key``, ``name`` (the trained model), ``label``,
    ``rejection`` (TRUFL sampled with rejection sampling), ``validity`` and ``validity_greedy``
    (decoding the most likely colour), ``elbo_bpn`` / ``iwbo_bpn`` (bits per node; the RNN's
    exact likelihood in both, ``exact`` True), ``iwbo_k``, the paper's ``paper_validity`` /
    ``paper_bpn`` for the profile's graph size, ``size``, ``steps``, ``budget_ratio``, ``seconds``
    (training and evaluation of the model, shared by TRUFL's two rows), ``device``,
    ``parameters``, ``losses``, ``samples`` (one colour list per test graph), ``rejection_trace``,
    ``curve`` (the learning curve: ``step``, ``graphs_seen``, ``validity``, ``elbo_bpn``) and, with
    rejection sampling, ``drawn`` / ``accepted``. The graphs are drawn by ``workers``
    processes and cached under ``data_dir`` if given.
    """
    config, profile = check_profile(profile, PROFILES), canonical_profile(profile)
    unknown = sorted(set(names or []) - set(NAMES))
    if unknown:
        raise ValueError(f"unknown model(s) {unknown}; expected some of {list(NAMES)}")
    data = load_data(config, data_seed, data_dir, workers, progress)
    device = select_device(device)
    paper = {row[0]: row for row in TABLE1}
    v_col, b_col = paper_columns(config.size)
    metrics, rows = {}, []
    for key, name, rejection in ROWS:
        if names is not None and name not in names:
            continue
        if name not in metrics:
            ckpt = checkpoint_path(checkpoint_dir, profile, name, seed) if checkpoint_dir is not None else None
            metrics[name] = run_one(name, config, ckpt, seed, device, progress, data, data_seed)
        m = metrics[name]
        plain = "rejection" if rejection else "plain"
        s, g = m["samplings"][plain], m["samplings"][f"{plain}_greedy"]
        rows.append({"key": key, "name": name, "label": paper[key][1], "rejection": rejection, "size": config.size,
                     "validity": s["validity"], "validity_greedy": g["validity"], "samples": s["samples"],
                     "paper_validity": paper[key][v_col], "paper_bpn": paper[key][b_col],
                     "seconds": m["train_seconds"] + m["eval_seconds"], "exact": m.get("exact", False),
                     "budget_ratio": run_budget_ratio(config, name),
                     **{k: s[k] for k in ("drawn", "accepted", "rejection_rate") if k in s},
                     **{k: m[k] for k in ("elbo_bpn", "iwbo_bpn", "iwbo_k", "steps", "device", "parameters",
                                          "losses", "rejection_trace", "curve", "train_seconds", "eval_seconds")}})
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = experiment_parser(__doc__, PROFILES, "checkpoints/09_graph_colouring", names=NAMES)
    parser.add_argument("--data-dir", default=None,
                        help="cache folder for the generated graphs (written to <dir>/graph_colouring)")
    parser.add_argument("--workers", type=int, default=1,
                        help="processes drawing the graphs (the set is the same for any number; default: 1)")
    parser.add_argument("--data-seed", type=seed_type, default=0,
                        help="seed of the graphs; --seed seeds the training only (default: 0)")
    args = parser.parse_args(argv)
    checkpoint_folder(parser, args)
    if args.data_dir is not None:
        writable_dir_or_error(parser, Path(args.data_dir) / "graph_colouring", "--data-dir", "graph cache folder")
    start = time.perf_counter()
    if args.workers < 1:
        parser.error(f"--workers must be at least 1, got {args.workers}")
    for r in run_graphs(args.profile, args.checkpoint_dir, args.seed, args.device, args.only,
                        data_dir=args.data_dir, workers=args.workers, data_seed=args.data_seed):
        print(f"{r['label']:30s} validity {r['validity']:.2%} (greedy {r['validity_greedy']:.2%}; paper "
              f"{r['paper_validity']:.2%})  ELBO {r['elbo_bpn']:.3f} IWBO({r['iwbo_k']}) {r['iwbo_bpn']:.3f} bits "
              f"per node (paper {r['paper_bpn']})  {r['steps']} steps, {r['seconds']:.0f} s", flush=True)
    print(f"total {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()

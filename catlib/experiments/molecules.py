"""Molecule generation on MOSES: argmax thresholding, CatNF and TRUFL (with and without rejection sampling).

``run_molecules(profile)`` trains (or reloads from checkpoints) :class:`catlib.molecule_models.MoleculeModel`
with each categorical layer on MOSES molecules (:func:`catlib.data.molecules.load_moses`) and
evaluates it: the ELBO and IWBO in bits per node on test molecules, and validity, validity of the
largest sub-graph, uniqueness and novelty of sampled molecules
(:func:`catlib.data.molecules.molecule_metrics`). TRUFL gives two rows, sampled with and without
rejection sampling. A finished run's metrics live in its checkpoint, so a second call only reads
them. From the shell:
``python -m catlib.experiments molecules --profile smoke --checkpoint-dir checkpoints/13_molecules --data-dir data``.

The numbers to compare with: TRUFL's Table 2 (Tan et al., 2022; Zinc250k, which cannot be
downloaded here: :data:`TABLE2`) and CatNF's own MOSES results (its repository's
``experiments/molecule_generation/README.md``: :data:`CATNF_MOSES`).

Profiles: ``smoke`` (CI: a few hundred molecules, a tiny model), ``cpu`` (50,000 training
molecules, 10,000 steps of 32 of a 0.2M-parameter model, sized from timed steps: about two hours
per model with three side by side on 2 cores) and ``paper`` (CatNF's MOSES configuration:
:data:`PAPER_SETTINGS`).
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import Tensor, nn

from catlib.data.molecules import (ATOM_TYPES, MAX_ATOMS, MoleculeGraphs, graph_to_smiles, load_moses, molecule_metrics,
                                   moses_smiles)
from catlib.experiments import (NOT_GIVEN, Setting, budget_ratio, canonical_profile, check_profile,
                                checkpoint_folder, checkpoint_path, experiment_parser, writable_dir_or_error)
from catlib.graph_models import bits_per_node
from catlib.molecule_models import MoleculeModel
from catlib.position_layers import POSITION_LAYERS
from catlib.results import row_status
from catlib.train import StepLog, fit, finished_run_metrics, load_checkpoint, save_metrics, select_device

__all__ = ["TABLE2", "CATNF_MOSES", "ROWS", "NAMES", "MoleculesConfig", "PROFILES", "PAPER_SETTINGS", "PAPER_BUDGET",
           "TOLERANCES", "run_budget_ratio", "result_fields", "build", "load_data", "evaluate_samples", "run_one", "run_molecules",
           "load_model"]

#: TRUFL's Table 2 (Zinc250k, 10,000 samples, mean over 4 seeds), by our row keys: validity,
#: uniqueness and novelty of whole molecules and ("fragments_") of their largest sub-graph, as
#: fractions; ``None`` where the table has no sub-graph row.
TABLE2 = {
    "argmax-threshold": {"label": "Argmax flow (thresh.)", "validity": 0.7836, "uniqueness": 1.0, "novelty": 0.9999,
                         "fragments_validity": None, "fragments_uniqueness": None, "fragments_novelty": None},
    "catnf": {"label": "CatNF", "validity": 0.8341, "uniqueness": 0.9999, "novelty": 1.0,
              "fragments_validity": 0.9635, "fragments_uniqueness": 0.9998, "fragments_novelty": 0.9998},
    "trufl": {"label": "TRUFL, no rejection sampling", "validity": 0.8446, "uniqueness": 1.0, "novelty": 1.0,
              "fragments_validity": 0.9751, "fragments_uniqueness": 0.9998, "fragments_novelty": 0.9999},
    "trufl-rs": {"label": "TRUFL, rejection sampling", "validity": 0.8501, "uniqueness": 1.0, "novelty": 1.0,
                 "fragments_validity": 0.9787, "fragments_uniqueness": 1.0, "fragments_novelty": 1.0},
}
#: CatNF's results on MOSES (its repository's molecule README): the same metrics, and bits per node.
CATNF_MOSES = {"validity": 0.8256, "uniqueness": 1.0, "novelty": 1.0, "fragments_validity": 0.9566,
               "fragments_uniqueness": 0.9998, "fragments_novelty": 1.0, "bits_per_node": 4.94}
#: Every model the experiment trains (one categorical layer each).
NAMES = POSITION_LAYERS
#: Our rows: ``(row key, trained model, rejection sampling)``.
ROWS = [("argmax-threshold", "argmax-threshold", False), ("catnf", "catnf", False), ("trufl", "trufl", False),
        ("trufl-rs", "trufl", True)]


@dataclass
class MoleculesConfig:
    """Sizes of one profile.

    Training draws ``batch_size`` molecules with replacement from ``train_size`` MOSES training
    molecules (a seeded sample; ``None``: all 1,584,663) for ``steps`` steps of ``optimizer`` at
    ``lr`` with ``warmup`` steps of warm-up, a factor ``lr_decay`` per step (``None``: cosine)
    and gradients clipped to ``grad_clip``. Evaluation: the ELBO on ``test_size`` test molecules
    and the IWBO with ``iwbo_k`` samples on the first ``iwbo_size``; ``samples`` generated
    molecules per row for the metrics. Every ``curve_every`` steps (0: never) the learning curve
    gets the ELBO of the first ``curve_molecules`` test molecules and the validity of
    ``curve_samples`` samples. TRUFL's rejection sampling gives up after ``rejection_rounds``
    rounds (the row then has no sample metrics, :func:`evaluate_samples`). ``model`` holds :class:`MoleculeModel` options, ``encoding`` extra
    options by model name.
    """

    steps: int
    batch_size: int = 96
    lr: float = 5e-4
    train_size: int | None = 100_000
    test_size: int = 2000
    samples: int = 2000
    optimizer: str = "radam"
    lr_decay: float | None = 0.999975
    grad_clip: float | None = 0.25
    warmup: int = 0
    iwbo_k: int = 32
    iwbo_size: int = 500
    eval_batch: int = 256
    curve_every: int = 0
    curve_molecules: int = 256
    curve_samples: int = 256
    rejection_rounds: int = 1000
    model: dict = field(default_factory=dict)
    encoding: dict = field(default_factory=dict)


#: TRUFL's supports start wide and soft, as in chapter 09: a molecule's sample needs every atom
#: and every pair inside a support, so narrow supports at the start would reject almost every draw.
ENCODING = {"trufl": {"support_temperature": 0.02}}

_SMOKE = MoleculesConfig(steps=40, batch_size=16, lr=1e-3, train_size=300, test_size=64, samples=64, iwbo_k=4,
                         iwbo_size=16, curve_every=20, curve_molecules=16, curve_samples=16, lr_decay=None,
                         grad_clip=10.0, optimizer="adam", warmup=5, encoding=ENCODING, rejection_rounds=50,
                         model={"atom_dim": 2, "bond_dim": 2, "atom_flow_steps": 1, "atom_hidden": 16,
                                "atom_layers": 1, "atom_mixtures": 2, "bond_flow_steps": 1, "bond_hidden": 16,
                                "bond_layers": 1, "bond_mixtures": 2, "q_hidden": (16,)})
#: CatNF's MOSES configuration: its molecule README (batch 96 for MOSES, 150,000 iterations,
#: encoding dimensions 6 / 2, optimizer 4 = RAdam, learning rate 5e-4) and the defaults of its
#: ``train.py`` (node / edge networks of width 384 / 192 with 3 / 4 layers, 4 node coupling steps
#: and 6 + 6 edge steps, 16 / 8 logistics); gradient clipping and the decay are its
#: ``general/train.py`` defaults, as in chapter 09.
_PAPER = MoleculesConfig(steps=150_000, batch_size=96, lr=5e-4, train_size=None, test_size=10_000, samples=10_000,
                         iwbo_k=32, iwbo_size=2000, curve_every=5000, encoding=ENCODING,
                         model={"atom_dim": 6, "bond_dim": 2, "atom_flow_steps": 4, "atom_hidden": 384,
                                "atom_layers": 3, "atom_mixtures": 16, "bond_flow_steps": 12, "bond_hidden": 192,
                                "bond_layers": 4, "bond_mixtures": 8, "q_hidden": (128,)})
#: Sized from timed training steps on one core (2026-12-03, RDKit 2026.9.1, torch 2.13): this
#: model takes 0.34-0.46 s per step of 32 molecules alone on a core (a model of 0.5M parameters
#: took 1.6-2.1 s per step of 64). Three models side by side on 2 cores train 10,000 steps
#: (320,000 molecules, 2.2% of CatNF's 14.4 million) in about two hours each (the committed run:
#: the ``seconds`` of results/13_molecules.json). The optimiser is CatNF's;
#: the networks are 6 times narrower (64 and 32 against 384 and 192) and the flows shorter (3 and 4
#: coupling steps against 4 and 12) than at ``paper``.
_CPU = MoleculesConfig(steps=10_000, batch_size=32, lr=5e-4, train_size=50_000, test_size=1000, samples=2000,
                       iwbo_k=32, iwbo_size=250, curve_every=500, curve_molecules=128, curve_samples=128,
                       encoding=ENCODING,
                       model={"atom_dim": 4, "bond_dim": 2, "atom_flow_steps": 3, "atom_hidden": 64, "atom_layers": 2,
                              "atom_mixtures": 8, "bond_flow_steps": 4, "bond_hidden": 32, "bond_layers": 2,
                              "bond_mixtures": 4, "q_hidden": (64,)})
PROFILES = {"smoke": _SMOKE, "cpu": _CPU, "paper": _PAPER}

_README = "CatNF code, experiments/molecule_generation/README.md"
_TRAIN = "CatNF code, experiments/molecule_generation/train.py default"
#: The ``paper`` profile's settings beside what CatNF's code says (the TRUFL paper gives none of
#: its own for molecules: "the same as the ones detailed in CatNF").
PAPER_SETTINGS = [
    Setting("training steps", "steps", 150_000, _README),
    Setting("batch size (molecules)", "batch_size", 96, _README + " (MOSES)"),
    Setting("learning rate", "lr", 5e-4, _README),
    Setting("optimiser", "optimizer", "radam", _README + " (optimizer 4)"),
    Setting("latent numbers per atom", "model.atom_dim", 6, _README + " (encoding_dim_nodes)"),
    Setting("latent numbers per pair", "model.bond_dim", 2, _README + " (encoding_dim_edges)"),
    Setting("atoms' prior: coupling steps", "model.atom_flow_steps", 4, _TRAIN + " (coupling_num_flows 4,6,6)"),
    Setting("bonds' prior: coupling steps", "model.bond_flow_steps", 12, _TRAIN + " (6 + 6 edge steps)"),
    Setting("atoms' prior: width", "model.atom_hidden", 384, _TRAIN + " (coupling_hidden_size_nodes)"),
    Setting("bonds' prior: width", "model.bond_hidden", 192, _TRAIN + " (coupling_hidden_size_edges)"),
    Setting("atoms' prior: layers", "model.atom_layers", 3, _TRAIN + " (coupling_hidden_layers 3,4,4)"),
    Setting("bonds' prior: layers", "model.bond_layers", 4, _TRAIN + " (coupling_hidden_layers 3,4,4)"),
    Setting("atoms' prior: logistics", "model.atom_mixtures", 16, _TRAIN + " (coupling_num_mixtures_nodes)"),
    Setting("bonds' prior: logistics", "model.bond_mixtures", 8, _TRAIN + " (coupling_num_mixtures_edges)"),
    Setting("training molecules", "train_size", None, "MOSES train split (all of it)"),
    Setting("generated molecules for the metrics", "samples", 10_000, "TRUFL, Table 2 caption"),
    Setting("argmax: q(u|x) hidden sizes", "model.q_hidden", NOT_GIVEN),
]
#: Molecules the paper's run trains on (steps x batch).
PAPER_BUDGET = 150_000 * 96
#: A results row is "reproduced" within this distance of the paper's number ("close" within twice it).
TOLERANCES = {"validity": 0.01, "bits": 0.05}


def run_budget_ratio(config: MoleculesConfig) -> float:
    """Molecules our run trains on (steps x batch) over CatNF's MOSES run's (:data:`PAPER_BUDGET`).

    >>> round(run_budget_ratio(PROFILES["cpu"]), 4)
    0.0222
    """
    return budget_ratio(config.steps * config.batch_size, PAPER_BUDGET)


def result_fields(kind: str, ours: float | None, paper: float | None, profile: str, config: MoleculesConfig,
                  same_data: bool) -> dict:
    """``status`` and ``budget_ratio`` of one results row; ``same_data`` is False for TRUFL's
    Zinc250k numbers (our data are MOSES)."""
    ratio = run_budget_ratio(config)
    return {"status": row_status(ours, paper, TOLERANCES[kind], profile=profile, budget_ratio=ratio,
                                 same_data=same_data), "budget_ratio": ratio}


def load_data(config: MoleculesConfig, data_dir: str | Path = "data", seed: int = 0,
              progress: bool = True) -> dict[str, MoleculeGraphs]:
    """``{"train": ..., "test": ...}``: seeded samples of MOSES's train and test splits, cached
    under ``data_dir/moses``."""
    return {"train": load_moses("train", config.train_size, seed, data_dir, progress),
            "test": load_moses("test", config.test_size, seed, data_dir, progress)}


def build(name: str, config: MoleculesConfig, train: MoleculeGraphs, seed: int = 0) -> MoleculeModel:
    """The untrained model ``name`` at the sizes of ``config``, sampling sizes as ``train`` holds them."""
    counts = torch.bincount(train.num_atoms, minlength=MAX_ATOMS + 1).float()
    return MoleculeModel(name, num_atom_types=len(ATOM_TYPES), size_counts=counts, max_atoms=len(counts) - 1,
                         **{**config.model, **config.encoding.get(name, {})}, seed=seed)


class _Packed(nn.Module):
    """``fit`` passes one tensor per batch: atoms, mask and bonds packed as ``[B, N, N + 2]``."""

    def __init__(self, model: MoleculeModel):
        super().__init__()
        self.model = model

    @staticmethod
    def pack(atoms: Tensor, bonds: Tensor, mask: Tensor) -> Tensor:
        return torch.cat([atoms.unsqueeze(-1), mask.long().unsqueeze(-1), bonds], -1)

    def log_prob(self, packed: Tensor) -> Tensor:
        return self.model.log_prob(packed[..., 0], packed[..., 2:], packed[..., 1].bool())


@torch.no_grad()
def _bounds_bpn(model: MoleculeModel, data: MoleculeGraphs, count: int, k: int, per_batch: int) -> float:
    """Mean over the first ``count`` molecules of the bound's bits per node (atom)."""
    out = []
    for start in range(0, count, per_batch):
        a, b, m = (t.to(model.device) for t in data.batch(range(start, min(count, start + per_batch))))
        out.append(bits_per_node(model.log_prob(a, b, m, k=k).cpu().double(), m.cpu()))
    return float(torch.cat(out).mean())


@torch.no_grad()
def evaluate_samples(model: MoleculeModel, count: int, train_smiles: set[str] | frozenset[str], rejection: bool,
                     seed: int = 0, per_batch: int = 256, max_rounds: int = 1000) -> dict:
    """``count`` sampled molecules: the metrics of :func:`~catlib.data.molecules.molecule_metrics`,
    ``smiles`` (canonical SMILES or ``None`` for each of the first 64 samples, for pictures) and,
    with rejection sampling, the draws ``drawn`` / ``accepted`` of atoms and bonds.

    Rejection sampling that still rejects some molecule after ``max_rounds`` rounds (a prior
    with almost no mass inside the supports, as early in training) gives no metrics:
    ``{"count": count, "failed": <why>}`` instead of a number that would describe other samples.
    """
    gen = torch.Generator(device=model.device).manual_seed(seed)
    graphs, drawn, accepted = [], 0, 0
    for start in range(0, count, per_batch):
        try:
            a, b, m = (t.cpu() for t in model.sample(min(per_batch, count - start), rejection=rejection,
                                                      generator=gen, max_rounds=max_rounds))
        except RuntimeError as err:
            if not (rejection and "rejection sampling" in str(err)):
                raise
            return {"count": count, "failed": str(err)}
        for atoms, bonds, n in zip(a, b, m.sum(-1).tolist()):
            graphs.append((atoms[:n], bonds[:n, :n]))
        for stats in model.last_rejection.values():
            if stats is not None:
                drawn, accepted = drawn + stats.drawn, accepted + stats.accepted
    out = molecule_metrics(graphs, train_smiles)
    out["smiles"] = [graph_to_smiles(*g) for g in graphs[:64]]
    if rejection and model.truncated:
        out.update(drawn=drawn, accepted=accepted, rejection_rate=1 - accepted / drawn)
    return out


def run_one(name: str, config: MoleculesConfig, checkpoint: Path | None, data: dict[str, MoleculeGraphs],
            train_smiles: set[str] | frozenset[str], seed: int = 0, device: torch.device | None = None,
            progress: bool = True) -> dict:
    """Train one model (or reload it) and evaluate it; returns the stored metrics."""
    device = select_device(device)
    wanted = {"config": asdict(config), "seed": seed, "name": name}
    finished = finished_run_metrics(checkpoint, wanted, config.steps)
    if finished is not None:
        return finished
    train, test = data["train"], data["test"]
    torch.manual_seed(seed)
    model = build(name, config, train, seed).to(device)
    packed = _Packed(model)
    resumed_at = int(load_checkpoint(checkpoint)["step"]) if checkpoint is not None and checkpoint.exists() else 0
    step = {"next": resumed_at}
    curve = StepLog(checkpoint.with_suffix(".curve.json") if checkpoint is not None else None, resumed_at)
    probe = [t.to(device) for t in test.batch(range(min(config.curve_molecules, len(test))))]

    def curve_point(at: int) -> None:  # with its own random numbers: training is the same without it
        cpu_state = torch.get_rng_state()
        cuda_state = torch.cuda.get_rng_state(device) if device.type == "cuda" else None
        model.eval()
        try:
            torch.manual_seed(seed + 2 + at)
            bpn = bits_per_node(model.log_prob(*probe).double().detach(), probe[2])
            m = evaluate_samples(model, config.curve_samples, train_smiles, rejection=False, seed=seed + 2 + at)
        finally:
            model.train()
            torch.set_rng_state(cpu_state)
            if cuda_state is not None:
                torch.cuda.set_rng_state(cuda_state, device)
        curve.add({"step": at, "molecules_seen": at * config.batch_size, "elbo_bpn": float(bpn.mean()),
                   "validity": m["validity"], "fragments_validity": m["fragments_validity"]})

    def draw(n: int, g: torch.Generator) -> Tensor:
        if config.curve_every and step["next"] % config.curve_every == 0:
            curve_point(step["next"])
        step["next"] += 1
        idx = torch.randint(len(train), (n,), generator=g)
        atoms, bonds, mask = train.batch(idx)
        return packed.pack(atoms, bonds, mask)

    result = fit(packed, draw, config.steps, config.batch_size, config.lr, seed=seed, device=device,
                 checkpoint=checkpoint, progress=progress, desc=name, settings=wanted, optimizer=config.optimizer,
                 lr_decay=config.lr_decay, grad_clip=config.grad_clip, warmup=config.warmup)
    if config.curve_every:
        curve_point(config.steps)
    model.eval()
    start = time.perf_counter()
    torch.manual_seed(seed)
    elbo = _bounds_bpn(model, test, len(test), 1, config.eval_batch)
    iwbo = _bounds_bpn(model, test, min(config.iwbo_size, len(test)), config.iwbo_k,
                       max(1, config.eval_batch // config.iwbo_k))
    samplings = {("rejection" if rejection else "plain"): evaluate_samples(
        model, config.samples, train_smiles, rejection, seed, config.eval_batch, config.rejection_rounds)
        for rejection in ((False, True) if model.truncated else (False,))}
    metrics = {"elbo_bpn": elbo, "iwbo_bpn": iwbo, "iwbo_k": config.iwbo_k, "test_molecules": len(test),
               "iwbo_molecules": min(config.iwbo_size, len(test)), "samplings": samplings, "curve": curve.rows,
               "steps": result.steps, "train_seconds": result.seconds, "eval_seconds": time.perf_counter() - start,
               "device": str(device), "parameters": sum(p.numel() for p in model.parameters()),
               "losses": result.losses, "run": wanted}
    if checkpoint is not None:
        save_metrics(checkpoint, metrics)
    return metrics


def load_model(name: str, profile: str, data: dict[str, MoleculeGraphs],
               checkpoint_dir: str | Path = "checkpoints/13_molecules", device: str | torch.device | None = None,
               seed: int = 0) -> MoleculeModel:
    """The trained model ``name`` of a finished :func:`run_molecules` run, in eval mode."""
    model = build(name, check_profile(profile, PROFILES), data["train"], seed)
    state = load_checkpoint(checkpoint_path(checkpoint_dir, profile, name, seed))["model"]
    model.load_state_dict({k.removeprefix("model."): v for k, v in state.items()})
    return model.to(select_device(device)).eval()


_SAMPLE_METRICS = ("validity", "uniqueness", "novelty", "fragments_validity", "fragments_uniqueness",
                   "fragments_novelty")


def run_molecules(profile: str = "smoke", checkpoint_dir: str | Path | None = "checkpoints/13_molecules",
                  data_dir: str | Path = "data", seed: int = 0, device: str | torch.device | None = None,
                  names: list[str] | None = None, progress: bool = True) -> list[dict]:
    """Our rows for ``profile``, one dict per row of :data:`ROWS`.

    Each holds ``key``, ``name`` (the trained model), ``label``, ``rejection``, the metrics of its
    samples (``validity``, ``uniqueness``, ``novelty`` and the ``fragments_`` ones, ``smiles`` of
    the first samples), ``elbo_bpn`` / ``iwbo_bpn`` / ``iwbo_k``, ``paper`` (TRUFL's Table 2 row,
    Zinc250k), ``steps``, ``budget_ratio``, ``seconds``, ``device``, ``parameters``, ``losses``,
    ``curve`` and, with rejection sampling, ``drawn`` / ``accepted`` / ``rejection_rate``.
    Novelty compares canonical SMILES of the samples with MOSES's training SMILES, all 1,584,663.
    A row whose rejection sampling gave up has ``failed`` (why) and ``None`` for the sample metrics;
    uniqueness and novelty are ``None`` when no sample is valid.
    """
    config, profile = check_profile(profile, PROFILES), canonical_profile(profile)
    unknown = sorted(set(names or []) - set(NAMES))
    if unknown:
        raise ValueError(f"unknown model(s) {unknown}; expected some of {list(NAMES)}")
    data = load_data(config, data_dir, 0, progress)
    train_smiles = frozenset(moses_smiles("train"))
    device = select_device(device)
    metrics, rows = {}, []
    for key, name, rejection in ROWS:
        if names is not None and name not in names:
            continue
        if name not in metrics:
            ckpt = checkpoint_path(checkpoint_dir, profile, name, seed) if checkpoint_dir is not None else None
            metrics[name] = run_one(name, config, ckpt, data, train_smiles, seed, device, progress)
        m = metrics[name]
        s = m["samplings"]["rejection" if rejection else "plain"]
        if "failed" in s:
            s = {**dict.fromkeys(_SAMPLE_METRICS), "smiles": [], **s}
        rows.append({"key": key, "name": name, "label": TABLE2[key]["label"], "rejection": rejection,
                     **{k: v for k, v in s.items() if k != "count"}, "paper": TABLE2[key],
                     "seconds": m["train_seconds"] + m["eval_seconds"],
                     "budget_ratio": run_budget_ratio(config),
                     **{k: m[k] for k in ("elbo_bpn", "iwbo_bpn", "iwbo_k", "steps", "device", "parameters",
                                          "losses", "curve", "train_seconds", "eval_seconds")}})
    return rows


def _percent(fraction: float | None) -> str:
    """``0.5`` -> ``"50.00%"``; ``None`` (no valid molecule to count) -> ``"undefined"``."""
    return "undefined" if fraction is None else f"{fraction:.2%}"


def main(argv: list[str] | None = None) -> None:
    parser = experiment_parser(__doc__, PROFILES, "checkpoints/13_molecules", names=NAMES)
    parser.add_argument("--data-dir", default="data",
                        help="cache folder for the molecule graphs (written to <dir>/moses; default: data)")
    args = parser.parse_args(argv)
    checkpoint_folder(parser, args)
    writable_dir_or_error(parser, Path(args.data_dir) / "moses", "--data-dir", "molecule cache folder")
    start = time.perf_counter()
    for r in run_molecules(args.profile, args.checkpoint_dir, args.data_dir, args.seed, args.device, args.only):
        if r.get("failed"):
            print(f"{r['label']:30s} no samples: {r['failed']}; ELBO {r['elbo_bpn']:.3f} bits per node", flush=True)
            continue
        print(f"{r['label']:30s} validity {r['validity']:.2%} (sub-graphs {r['fragments_validity']:.2%}), "
              f"uniqueness {_percent(r['uniqueness'])}, novelty {_percent(r['novelty'])}; ELBO {r['elbo_bpn']:.3f} "
              f"IWBO({r['iwbo_k']}) {r['iwbo_bpn']:.3f} bits per node; {r['steps']} steps, {r['seconds']:.0f} s",
              flush=True)
    print(f"total {time.perf_counter() - start:.0f} s")

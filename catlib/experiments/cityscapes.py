r"""The Argmax Flows paper's Table 4: six models of Cityscapes segmentation maps (32x64, 8 categories).

``run_cityscapes(profile)`` trains (or reloads from checkpoints) the models of section 6.2 of
Hoogeboom et al. (2021): the image flows of :mod:`catlib.flows.image` (affine couplings with
DenseNets) with four liftings of the 8 categories (uniform and variational dequantization of the
one-hot cube, the argmax surjection with softplus thresholding, the Gumbel distribution or
Gumbel thresholding) and multinomial diffusion with a time-conditioned UNet. Each row holds the
test ELBO and IWBO in bits per pixel (diffusion: its ELBO, all ``T`` terms; the paper gives no
IWBO for it), beside the paper's number, and seeded samples. Three profiles:

- ``"smoke"``: a labelled **stand-in, not Cityscapes** (:func:`catlib.data.synthetic_cityscapes`:
  street-like maps with the same 8 categories, here 16x32), tiny models, a few steps. These
  numbers show that the code runs end to end; they say nothing about Cityscapes.
- ``"cpu"``: the same stand-in at the paper's size (32x64) and split sizes (2500 / 475 / 500
  maps), flows of 4 coupling steps with DenseNets of depth 2 and growth 32 for 15,000 steps of
  32 maps, and multinomial diffusion with ``T = 4000`` and a UNet of 32 channels for 8,000 steps:
  1 to 2 hours per model on one CPU thread, the six in a working day on 2 cores, resumable.
  Still stand-in numbers: they say how the liftings compare on the stand-in, not on Cityscapes.
- ``"paper"`` (alias ``"full"``): Cityscapes from ``data_dir`` (:func:`catlib.data.load_cityscapes`;
  the licence does not allow a download for you, and a missing ``gtFine_trainvaltest.zip`` raises
  ``FileNotFoundError`` naming where to put it), 32x64 maps, 2500 train / 475 valid / 500 test maps;
  trained on the train maps, evaluated on all 500 test maps, the IWBO with 1000 samples. Multinomial
  diffusion follows the official command (``ehoogeboom/multinomial_diffusion``,
  ``segmentation_diffusion/README.md``): ``T = 4000``, a UNet of 64 channels with multipliers (1, 2,
  4, 8), two residual blocks per level, dropout 0.1, batch 64, learning rate 1e-4, 500 epochs, 5
  epochs of warm-up. Each run prints :func:`~catlib.train.fit`'s estimate of its time and memory
  before it trains. A paper run needs a GPU.

Where we differ from the official runs:

- The argmax-flow image experiments of ``didriknielsen/argmax_flows`` are not in our index of the
  official code, and the paper's appendix with their sizes is not in our copy of the paper; the
  flows' sizes (8 coupling steps after one squeeze, DenseNets of depth 4 and growth 64;
  variational flows of 4 steps, depth 2, growth 32), their batch (32), learning rate (1e-3) and
  epochs (500, as the diffusion run) are therefore **our choice**, not the paper's.
- catlib's UNet has a self-attention block at the lowest resolution only; the official one has a
  linear-attention block at every level.
- The official diffusion run trained with "shift" augmentation (random flips, padding, crops) and
  applied the same random transform to its **test set** as well; we neither augment the training
  maps nor the test maps, so its numbers and ours are not measured on exactly the same inputs.
- Adam with a warm-up and a cosine decay for every model (:func:`catlib.train.fit`); minibatches
  are drawn with replacement; ``steps = epochs * ceil(2500 / batch)``.

A finished run's metrics live in its checkpoint (``<checkpoint_dir>/<profile>/<name>.pt``), so
a second call only reads them and does not need the data. From the shell::

    python -m catlib.experiments cityscapes --profile cpu
    python -m catlib.experiments cityscapes --profile paper --data-dir data
    python -m catlib.experiments cityscapes --profile paper --only argmax-threshold

:data:`PAPER_SETTINGS` lists what the paper and the official code say for each setting of the
``paper`` profile, and :func:`run_budget_ratio` the maps a run trains on over the paper's run's.
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import torch

import catlib
from catlib.data.cityscapes import CITYSCAPES_SPLIT_SIZES, CityscapesMaps, load_cityscapes, synthetic_cityscapes
from catlib.experiments import (Setting, budget_ratio, canonical_profile, check_profile, checkpoint_folder,
                                experiment_parser, missing_data_error)
from catlib.metrics import bits_per_dim, evaluate_bound
from catlib.results import row_status
from catlib.train import fit, finished_run_metrics, load_checkpoint, save_metrics, select_device
from catlib.viz.speed import projected_gpu_hours

__all__ = ["TABLE4", "NAMES", "PAPER_DIFFUSION_FIXED", "CityscapesConfig", "PROFILES", "PAPER_SETTINGS",
           "TOLERANCE", "run_budget_ratio", "run_settings", "load_data", "build", "count_parameters",
           "load_model", "run_one", "run_cityscapes", "results_rows", "main"]

#: The rows of the paper's Table 4 (Cityscapes, bits per pixel): ``(model name, label, ELBO, IWBO(1000))``.
#: The paper gives no IWBO for multinomial diffusion.
TABLE4 = [
    ("uniform-dequantization", "Round / uniform dequantization", 1.010, 0.930),
    ("variational-dequantization", "Round / variational dequantization", 0.334, 0.315),
    ("argmax-threshold", "Argmax / softplus thresholding", 0.303, 0.290),
    ("argmax-gumbel", "Argmax / Gumbel distribution", 0.365, 0.341),
    ("argmax-gumbel-threshold", "Argmax / Gumbel thresholding", 0.307, 0.287),
    ("multinomial-diffusion", "Multinomial diffusion", 0.305, None),
]
NAMES = tuple(row[0] for row in TABLE4)
#: Multinomial diffusion's test bound after the official UNet fix (segmentation_diffusion/README.md).
PAPER_DIFFUSION_FIXED = 0.304
#: How close (bits per pixel) a bound of ours on Cityscapes must be to the paper's to count as reproduced.
TOLERANCE = 0.02
_DIFFUSION = "multinomial-diffusion"


def _steps(epochs: int, batch_size: int, maps: int = CITYSCAPES_SPLIT_SIZES[0]) -> int:
    return epochs * math.ceil(maps / batch_size)


@dataclass
class CityscapesConfig:
    """Sizes of one profile.

    ``data``: ``"stand-in"`` (:func:`~catlib.data.synthetic_cityscapes` with ``stand_in_sizes`` maps
    of ``size``) or ``"real"`` (:func:`~catlib.data.load_cityscapes`). ``model``: options of every flow
    (:func:`catlib.build_model`), ``models``: per-name overrides (the diffusion model takes only its
    own). ``training``: ``{"steps", "batch_size", "lr", "warmup"}`` of the flows, ``diffusion_training``
    the same for diffusion. The test ELBO uses the first ``test_size`` test maps (``None``: all), the
    IWBO with ``iwbo_k`` samples the first ``iwbo_size``; diffusion's ELBO (all ``T`` terms) the first
    ``diffusion_test_size``. ``num_samples`` samples are drawn, seeded. ``estimate``: passed to
    :func:`~catlib.train.fit` (``True`` prints the projected time and memory before training;
    ``None`` follows the command line).
    """

    data: str
    size: tuple[int, int]
    training: dict
    diffusion_training: dict
    stand_in_sizes: tuple[int, int, int] = CITYSCAPES_SPLIT_SIZES
    model: dict = field(default_factory=dict)
    models: dict = field(default_factory=dict)
    test_size: int | None = None
    iwbo_size: int | None = None
    iwbo_k: int = 1000
    diffusion_test_size: int | None = None
    eval_batch: int = 64
    num_samples: int = 16
    checkpoint_every: int = 500
    estimate: bool | None = None

    def options(self, name: str) -> dict:
        return {**(self.model if name != _DIFFUSION else {}), **self.models.get(name, {})}

    def train_options(self, name: str) -> dict:
        return dict(self.diffusion_training if name == _DIFFUSION else self.training)

    # what the settings table (:data:`PAPER_SETTINGS`) reads, besides the fields above
    @property
    def dataset(self) -> str:
        """The maps the models train on, in words."""
        return "Cityscapes" if self.data == "real" else "stand-in (synthetic street maps)"

    @property
    def split_sizes(self) -> tuple[int, int, int]:
        """Maps of (train, valid, test)."""
        return tuple(CITYSCAPES_SPLIT_SIZES if self.data == "real" else self.stand_in_sizes)

    @property
    def test_set(self) -> str:
        """The test maps the flows' ELBO is measured on, in words."""
        return "all test maps" if self.test_size is None else f"the first {self.test_size:,} test maps"


_SMOKE_Q = {"q_flow_steps": 1, "q_growth": 8, "q_depth": 1}
_CPU_Q = {"q_flow_steps": 2, "q_growth": 16, "q_depth": 1}
_FULL_Q = {"q_flow_steps": 4, "q_growth": 32, "q_depth": 2}

PROFILES = {
    "smoke": CityscapesConfig(
        data="stand-in", size=(16, 32), stand_in_sizes=(256, 16, 16),
        training={"steps": 100, "batch_size": 16, "lr": 2e-3, "warmup": 5},
        diffusion_training={"steps": 100, "batch_size": 16, "lr": 2e-3, "warmup": 5},
        model={"flow_steps": 1, "growth": 8, "depth": 1},
        models={**{n: dict(_SMOKE_Q) for n in ("variational-dequantization", "argmax-threshold",
                                               "argmax-gumbel-threshold")},
                _DIFFUSION: {"timesteps": 10, "channels": 8, "channel_mults": (1, 2)}},
        test_size=16, iwbo_size=4, iwbo_k=4, diffusion_test_size=8, eval_batch=16, num_samples=8,
        checkpoint_every=1000, estimate=None),
    # Measured on one CPU thread (torch.set_num_threads(1), 10 timed steps after one warm-up, a
    # shared 2-core machine), batch 32 at 32x64: uniform dequantization 177 ms/step, variational
    # 317, argmax thresholding 301, Gumbel 222, Gumbel thresholding 334; diffusion (UNet of 32
    # channels, multipliers (1, 2, 4)) 759 ms/step. So 15,000 flow steps take 0.7 to 1.4 hours and
    # 8,000 diffusion steps 1.7 hours: about 8 hours of one thread for the six, 4 on 2 cores, plus
    # the evaluation (diffusion's 4000-term bound on 50 test maps is the longest part, under an hour).
    "cpu": CityscapesConfig(
        data="stand-in", size=(32, 64), stand_in_sizes=CITYSCAPES_SPLIT_SIZES,
        training={"steps": 15_000, "batch_size": 32, "lr": 1e-3, "warmup": 500, "epochs": 192},
        diffusion_training={"steps": 8000, "batch_size": 32, "lr": 2e-4, "warmup": 200, "epochs": 102},
        model={"flow_steps": 4, "growth": 32, "depth": 2},
        models={**{n: dict(_CPU_Q) for n in ("variational-dequantization", "argmax-threshold",
                                             "argmax-gumbel-threshold")},
                _DIFFUSION: {"timesteps": 4000, "channels": 32, "channel_mults": (1, 2, 4), "num_res_blocks": 1,
                             "dropout": 0.1, "attention": True}},
        test_size=None, iwbo_size=None, iwbo_k=100, diffusion_test_size=50, eval_batch=64, num_samples=16,
        checkpoint_every=500, estimate=True),
    "paper": CityscapesConfig(
        data="real", size=(32, 64), stand_in_sizes=CITYSCAPES_SPLIT_SIZES,
        training={"steps": _steps(500, 32), "batch_size": 32, "lr": 1e-3, "warmup": _steps(5, 32), "epochs": 500},
        diffusion_training={"steps": _steps(500, 64), "batch_size": 64, "lr": 1e-4, "warmup": _steps(5, 64),
                            "epochs": 500},
        model={"flow_steps": 8, "growth": 64, "depth": 4},
        models={**{n: dict(_FULL_Q) for n in ("variational-dequantization", "argmax-threshold",
                                              "argmax-gumbel-threshold")},
                _DIFFUSION: {"timesteps": 4000, "channels": 64, "channel_mults": (1, 2, 4, 8), "num_res_blocks": 2,
                             "dropout": 0.1, "attention": True}},
        test_size=None, iwbo_size=None, iwbo_k=1000, diffusion_test_size=None, eval_batch=64, num_samples=32,
        checkpoint_every=2000, estimate=True),
}


_SEG = "official code (ehoogeboom/multinomial_diffusion), segmentation_diffusion"
_SEG_README = f"{_SEG}/README.md (run command)"
#: What the paper and the official code say about the ``paper`` profile. The flows' sizes and
#: schedule are not given (the paper's appendix with them is not in our copy, and the official
#: image code of ``didriknielsen/argmax_flows`` is not in our index): the ``paper`` profile holds
#: our choice. Not in the table, because our ``paper`` profile differs there: no "shift"
#: augmentation of the diffusion run's training and test maps, Adam with a cosine decay, and
#: catlib's UNet (attention at the lowest resolution only).
PAPER_SETTINGS = [
    Setting("data", "dataset", "Cityscapes", "NeurIPS paper, Sec. 6.2"),
    Setting("map size (pixels)", "size", (32, 64), "NeurIPS paper, Sec. 6.2"),
    Setting("maps: train / valid / test", "split_sizes", (2500, 475, 500),
            f"{_SEG}/cityscapes/data_to_npy.py"),
    Setting("flows: coupling steps", "model.flow_steps"),
    Setting("flows: DenseNet depth", "model.depth"),
    Setting("flows: DenseNet growth", "model.growth"),
    Setting("flows: q(u|x) coupling steps", "models.argmax-threshold.q_flow_steps"),
    Setting("flows: batch (maps)", "training.batch_size"),
    Setting("flows: learning rate", "training.lr"),
    Setting("flows: epochs", "training.epochs"),
    Setting("flows: steps", "training.steps"),
    Setting("flows: warm-up steps", "training.warmup"),
    Setting("diffusion: steps T", "models.multinomial-diffusion.timesteps", 4000, _SEG_README),
    Setting("diffusion: UNet channels", "models.multinomial-diffusion.channels", 64, f"{_SEG}/model.py (default)"),
    Setting("diffusion: UNet channel multipliers", "models.multinomial-diffusion.channel_mults", (1, 2, 4, 8),
            f"{_SEG}/model.py"),
    Setting("diffusion: residual blocks per level", "models.multinomial-diffusion.num_res_blocks", 2,
            f"{_SEG}/layers/layers.py"),
    Setting("diffusion: dropout", "models.multinomial-diffusion.dropout", 0.1, _SEG_README),
    Setting("diffusion: batch (maps)", "diffusion_training.batch_size", 64, _SEG_README),
    Setting("diffusion: learning rate", "diffusion_training.lr", 1e-4, _SEG_README),
    Setting("diffusion: epochs", "diffusion_training.epochs", 500, _SEG_README),
    Setting("diffusion: steps", "diffusion_training.steps", 20_000, "500 epochs of 40 batches of 2500 maps, as steps"),
    Setting("diffusion: warm-up steps", "diffusion_training.warmup", 200,
            f"{_SEG_README}: --warmup 5, read as 5 epochs of 40 steps"),
    Setting("test set", "test_set", "all test maps", "NeurIPS paper, Table 4"),
    Setting("IWBO samples k", "iwbo_k", 1000, "NeurIPS paper, Table 4"),
]


def run_budget_ratio(config: CityscapesConfig, name: str | None = None) -> float | None:
    """Maps the run of model ``name`` (default: the first of :data:`TABLE4`) trains on, ``steps x batch``,
    over the ``paper`` profile's run of it; ``None`` for a flow, whose schedule the paper does not give
    (the ``paper`` profile's is our choice), unless ``config`` is the ``paper`` profile itself.

    >>> run_budget_ratio(PROFILES["cpu"]), run_budget_ratio(PROFILES["cpu"], "multinomial-diffusion")
    (None, 0.2)
    """
    name = NAMES[0] if name is None else name
    _check_name(name)
    paper = PROFILES["paper"]
    if config is paper:
        return 1.0
    if name != _DIFFUSION:
        return None

    def maps(c: CityscapesConfig) -> int:
        t = c.train_options(name)
        return t["steps"] * t["batch_size"]

    return budget_ratio(maps(config), maps(paper))


def _check_name(name: str) -> None:
    if name not in NAMES:
        raise ValueError(f"name must be one of {list(NAMES)}, got {name!r}")


def run_settings(config: CityscapesConfig, name: str, seed: int) -> dict:
    """What identifies a run (stored as ``metrics["run"]``); independent of where the data live."""
    _check_name(name)
    data = ({"data": "stand-in", "sizes": list(config.stand_in_sizes)} if config.data == "stand-in"
            else {"data": "cityscapes"})
    c = asdict(config)
    return {"name": name, "data": data, "size": list(config.size), "model": config.options(name),
            "training": config.train_options(name),
            "eval": {k: c[k] for k in ("test_size", "iwbo_size", "iwbo_k", "diffusion_test_size", "num_samples")},
            "seed": seed}


def load_data(config: CityscapesConfig, data_dir: str | Path = "data", seed: int = 0) -> CityscapesMaps:
    """The maps of a profile: the labelled stand-in (``maps.stand_in``) or Cityscapes from ``data_dir``.

    Raises ``FileNotFoundError`` (where to put ``gtFine_trainvaltest.zip``) when Cityscapes is missing.
    """
    if config.data == "stand-in":
        return synthetic_cityscapes(config.stand_in_sizes, seed=seed, size=config.size)
    return load_cityscapes(data_dir, size=config.size)


def build(name: str, config: CityscapesConfig) -> torch.nn.Module:
    """The untrained model ``name`` of a profile (conv architecture / UNet for the 2-D maps)."""
    _check_name(name)
    return catlib.build_model(name, config.size, 8, **config.options(name))


def count_parameters(name: str, config: CityscapesConfig) -> int:
    """Parameters of the model ``name`` of a profile."""
    return sum(p.numel() for p in build(name, config).parameters())


def _checkpoint(checkpoint_dir: str | Path | None, profile: str, name: str) -> Path | None:
    return Path(checkpoint_dir) / profile / f"{name}.pt" if checkpoint_dir is not None else None


def load_model(name: str, profile: str, checkpoint_dir: str | Path = "checkpoints/12_cityscapes",
               device: str | torch.device | None = None) -> torch.nn.Module:
    """The trained model ``name`` of a :func:`run_cityscapes` run (``profile`` may be an alias), in eval mode."""
    model = build(name, check_profile(profile, PROFILES))
    model.load_state_dict(load_checkpoint(_checkpoint(checkpoint_dir, canonical_profile(profile), name))["model"])
    return model.to(select_device(device)).eval()


def _bound_bpp(model: torch.nn.Module, x: torch.Tensor, k: int, batch_size: int, progress: bool, **options) -> float:
    lp = evaluate_bound(model, x, k=k, batch_size=batch_size, progress=progress, **options)
    return float(bits_per_dim(lp.double(), x[0].numel()).mean())


def _stored_metrics(checkpoint: Path | None, wanted: dict) -> dict | None:
    if checkpoint is None or not checkpoint.is_file():
        return None
    metrics = load_checkpoint(checkpoint).get("metrics")
    return metrics if metrics and metrics.get("run") == wanted else None


def run_one(name: str, config: CityscapesConfig, maps: CityscapesMaps | Callable[[], CityscapesMaps],
            checkpoint: Path | None, seed: int = 0, device: str | torch.device | None = None, progress: bool = True,
            train: bool = True) -> dict | None:
    """Train one model (or reload its finished run) and evaluate it; returns the stored metrics.

    ``maps`` may be a function that loads them, called only when the run must train. With
    ``train=False`` an unfinished run is not trained (``None``) and no file is changed.

    Metrics: ``elbo_bpp``, ``iwbo_bpp`` (``None`` for diffusion), ``iwbo_k``, ``elbo_maps``,
    ``iwbo_maps``, ``stand_in``, ``data`` (in words), ``samples`` (maps as lists), ``steps``,
    ``train_seconds``, ``eval_seconds``, ``device``, ``parameters``, ``losses``, ``estimate``, ``run``.
    """
    wanted = run_settings(config, name, seed)
    opts = config.train_options(name)
    if not train:
        return _stored_metrics(checkpoint, wanted)
    finished = finished_run_metrics(checkpoint, wanted, opts["steps"])
    if finished is not None:
        return finished
    maps = maps() if callable(maps) else maps
    device = select_device(device)
    torch.manual_seed(seed)
    model = build(name, config)
    result = fit(model, maps.train, steps=opts["steps"], batch_size=opts["batch_size"], lr=opts["lr"], seed=seed,
                 device=device, checkpoint=checkpoint, checkpoint_every=config.checkpoint_every,
                 warmup=opts["warmup"], progress=progress, desc=f"cityscapes {name}", estimate=config.estimate,
                 settings=wanted)
    start = time.perf_counter()
    test = maps.test.to(device)
    model.eval()
    torch.manual_seed(seed)
    if name == _DIFFUSION:
        x = test[:config.diffusion_test_size]
        elbo = _bound_bpp(model, x, 1, config.eval_batch, progress, exact=True)
        iwbo, k, iwbo_maps = None, None, 0
    else:
        x = test[:config.test_size]
        elbo = _bound_bpp(model, x, 1, config.eval_batch, progress)
        xi = test[:config.iwbo_size]
        iwbo = _bound_bpp(model, xi, config.iwbo_k, max(1, config.eval_batch // 16), progress)
        k, iwbo_maps = config.iwbo_k, len(xi)
    torch.manual_seed(seed)
    with torch.no_grad():
        samples = model.sample(config.num_samples).cpu()
    metrics = {"elbo_bpp": elbo, "iwbo_bpp": iwbo, "iwbo_k": k, "elbo_maps": len(x), "iwbo_maps": iwbo_maps,
               "stand_in": bool(maps.stand_in), "data": maps.source, "samples": samples.tolist(),
               "steps": result.steps, "train_seconds": result.seconds, "eval_seconds": time.perf_counter() - start,
               "device": str(device), "parameters": sum(p.numel() for p in model.parameters()),
               "losses": result.losses, "estimate": result.estimate, "run": wanted}
    if checkpoint is not None:
        save_metrics(checkpoint, metrics)
    return metrics


def run_cityscapes(profile: str = "paper", checkpoint_dir: str | Path | None = "checkpoints/12_cityscapes",
                   data_dir: str | Path = "data", seed: int = 0, device: str | torch.device | None = None,
                   names: Sequence[str] | None = None, train: bool = True, progress: bool = True) -> list[dict]:
    """The rows of Table 4 for ``profile`` (``"smoke"``, ``"cpu"``: the stand-in; ``"paper"``, alias ``"full"``:
    Cityscapes; checkpoints go to ``<checkpoint_dir>/<profile>`` under the profile's own name).

    The data are loaded only when a run has to train, so finished runs re-render without them.
    With ``train=False`` only finished runs are returned (nothing trains, no file changes).

    Returns one dict per model: ``name``, ``label``, ``paper_elbo``, ``paper_iwbo``, ``profile``,
    ``budget_ratio`` (:func:`run_budget_ratio`), ``seconds`` (training + evaluation) and the metrics of
    :func:`run_one`.

    Raises ``FileNotFoundError`` (with the fix) when a run must train and Cityscapes is missing.
    """
    config = check_profile(profile, PROFILES)
    profile = canonical_profile(profile)
    if names is not None:
        unknown = sorted(set(names) - set(NAMES))
        if unknown:
            raise ValueError(f"unknown model name(s) {unknown}; expected some of {list(NAMES)}")
    cache: dict = {}

    def maps() -> CityscapesMaps:
        if "maps" not in cache:
            cache["maps"] = load_data(config, data_dir, seed)
        return cache["maps"]

    rows = []
    for name, label, paper_elbo, paper_iwbo in TABLE4:
        if names is not None and name not in names:
            continue
        m = run_one(name, config, maps, _checkpoint(checkpoint_dir, profile, name), seed, device, progress, train)
        if m is None:
            continue
        rows.append({"name": name, "label": label, "paper_elbo": paper_elbo, "paper_iwbo": paper_iwbo,
                     "profile": profile, "budget_ratio": run_budget_ratio(config, name),
                     **{k: v for k, v in m.items() if k != "run"},
                     "seconds": m["train_seconds"] + m["eval_seconds"]})
    return rows


def results_rows(rows: Sequence[dict], profile: str) -> list[dict]:
    """Rows for :func:`catlib.results.write_results`: the paper's numbers, ours, and the stand-in kept apart.

    Every paper row without a run of ours on Cityscapes is written with ``ours = None`` (device
    ``"none (no run)"``, status ``"not run"``, ``projected_gpu_hours`` from
    :func:`catlib.viz.speed.projected_gpu_hours`). A stand-in run never shares a row with a paper number:
    its rows say ``stand-in, not Cityscapes`` in the method and the metric, carry ``paper = None`` and
    status ``"different data"``. Every row has ``budget_ratio`` (:func:`run_budget_ratio`; ``None``
    without a run) and ``status`` (:func:`catlib.results.row_status`; ``"smoke"`` at the smoke profile).
    The stand-in's entropy is not known exactly, so its rows carry no ``entropy``.
    """
    profile = canonical_profile(profile)
    out = []
    real = {r["name"] for r in rows if not r["stand_in"]}
    for name, label, paper_elbo, paper_iwbo in TABLE4:
        if name in real:
            continue
        for metric, paper in (("ELBO", paper_elbo), ("IWBO(1000)", paper_iwbo)):
            if paper is not None:
                out.append({"method": label, "metric": f"Cityscapes test {metric} (bpp; paper only, no run of ours)",
                            "ours": None, "paper": paper, "status": row_status(None, paper, TOLERANCE, profile=profile),
                            "budget_ratio": None, "profile": profile, "steps": None, "device": "none (no run)",
                            "seconds": None, "projected_gpu_hours": projected_gpu_hours(f"cityscapes/{name}")})
    for r in rows:
        ratio = r.get("budget_ratio")
        common = {"budget_ratio": ratio, "profile": profile, "steps": int(r["steps"]), "device": r["device"],
                  "seconds": float(r["seconds"]), "parameters": int(r["parameters"]), "data": r["data"]}
        bounds = [("ELBO", r["elbo_bpp"], r["paper_elbo"])]
        if r["iwbo_bpp"] is not None:
            bounds.append((f"IWBO({r['iwbo_k']})", r["iwbo_bpp"], r["paper_iwbo"] if r["iwbo_k"] == 1000 else None))
        for metric, ours, paper in bounds:
            if r["stand_in"]:
                tag = "stand-in, not Cityscapes"
                out.append({"method": f"{r['label']} [{tag}]", "metric": f"test {metric} (bpp, {tag})",
                            "ours": float(ours), "paper": None,
                            "status": row_status(ours, None, TOLERANCE, profile=profile, budget_ratio=ratio,
                                                 same_data=False), **common})
            else:
                out.append({"method": r["label"], "metric": f"Cityscapes test {metric} (bpp)", "ours": float(ours),
                            "paper": paper,
                            "status": row_status(ours, paper, TOLERANCE, profile=profile, budget_ratio=ratio),
                            **common})
    return out


def main(argv: list[str] | None = None) -> None:
    parser = experiment_parser(__doc__.split("\n\n")[0], PROFILES, "checkpoints/12_cityscapes", names=NAMES)
    parser.add_argument("--data-dir", default="data", help="folder holding cityscapes/gtFine_trainvaltest.zip")
    args = parser.parse_args(argv)
    checkpoint_folder(parser, args)
    try:
        rows = run_cityscapes(args.profile, args.checkpoint_dir, args.data_dir, args.seed, args.device, args.only)
    except FileNotFoundError as err:  # no Cityscapes: say where to put it, without a traceback
        missing_data_error(parser, err, args.data_dir)
    if rows and rows[0]["stand_in"]:
        print(f"STAND-IN DATA, NOT CITYSCAPES: {rows[0]['data']}. The paper's numbers are for Cityscapes.")
    for r in rows:
        where = "stand-in" if r["stand_in"] else "Cityscapes"
        iwbo = "no IWBO" if r["iwbo_bpp"] is None else f"IWBO({r['iwbo_k']}) {r['iwbo_bpp']:.3f}"
        print(f"{r['label']:36s} ELBO {r['elbo_bpp']:.3f} {iwbo} bpp on {where} "
              f"(paper, Cityscapes: {r['paper_elbo']} / {r['paper_iwbo']})  {r['seconds']:.0f} s")


if __name__ == "__main__":
    main()

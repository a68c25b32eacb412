"""Chapter 14: masked (absorbing-state) diffusion beside multinomial diffusion, at equal budget.

``run_masking(profile)`` trains (or reloads from checkpoints) both diffusions on three data sets
whose entropy is known exactly (the TRUFL two-variable toy, our squares maps and the word-like
Markov text stand-in of chapter 11), each pair with the same network, steps, batch and learning
rate, and measures:

- the bounds in bits per dimension and their gaps to the data's entropy: the ELBO (exact on the
  toy, over every state or mask pattern; sampled elsewhere) and the IWBO;
- the bound of the sampler with ``S`` steps, and the quality of its samples (toy: total variation
  to the joint; squares: the share of maps the data can produce; text: their exact negative
  log-likelihood under the Markov chain), with the network calls each sampler made;
- the loss curves, seconds and parameter counts.

Multinomial diffusion is :func:`catlib.diffusion.build_diffusion`; masked diffusion is the
continuous-time bound of MDLM / MD4 (:func:`catlib.masked_diffusion.build_masked_diffusion`,
linear schedule), with the same network built over ``K + 1`` input states.

Profiles: ``smoke`` (CI), ``cpu`` (the committed results: one CPU thread per run, see
:data:`PROFILES`) and ``paper``: MD4's text8 configuration (:data:`PAPER_SETTINGS`) for the text
pair, on real text8, which is not run here. From the shell:
``python -m catlib.experiments masking --profile cpu --only squares.masked-diffusion``.
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Callable

import torch
from torch import Tensor

import catlib
from catlib.data import Squares, TwoVariableToy
from catlib.data.text import TEXT8_ALPHABET
from catlib.data.text_corpora import TEXT_CORPORA, load_text_corpus, synthetic_text_corpus
from catlib.diffusion import index_to_log_onehot
from catlib.experiments import (NOT_GIVEN, Setting, budget_ratio, canonical_profile, check_profile, checkpoint_folder,
                                checkpoint_path, experiment_parser)
from catlib.experiments.squares import PROFILES as SQUARES_PROFILES, sample_quality
from catlib.masked_diffusion import absorbing_log_marginal
from catlib.metrics import bits_per_dim, evaluate_bound
from catlib.results import code_commit, row_status
from catlib.train import fit, finished_run_metrics, load_checkpoint, save_metrics, select_device

__all__ = ["DATASETS", "MODELS", "NAMES", "LABELS", "DataRun", "MaskingConfig", "PROFILES", "PAPER_SETTINGS",
           "MD4_TEXT8_BPC", "MULTINOMIAL_TEXT8_BPC", "PAPER_TEXT8_BPC", "TEXT8_TOLERANCE", "DataSet", "load_data", "data_shape", "build", "run_one", "run_masking",
           "load_model", "results_rows", "denoiser_error", "run_budget_ratio", "main"]

DATASETS = ("two-variable", "squares", "text")
MODELS = ("multinomial-diffusion", "masked-diffusion")
#: Run names, ``"<data set>.<model>"``: what ``names=`` and ``--only`` choose from.
NAMES = tuple(f"{d}.{m}" for d in DATASETS for m in MODELS)
LABELS = {"multinomial-diffusion": "Multinomial diffusion", "masked-diffusion": "Masked diffusion"}
#: MD4 (Shi et al., 2024, Table 2): test bits per character on text8, at most this.
MD4_TEXT8_BPC = 1.37
#: Multinomial diffusion on text8 (Hoogeboom et al., 2021a, Table 3).
MULTINOMIAL_TEXT8_BPC = 1.72
#: The papers' text8 bits per character by model.
PAPER_TEXT8_BPC = {"multinomial-diffusion": MULTINOMIAL_TEXT8_BPC, "masked-diffusion": MD4_TEXT8_BPC}
#: A text8 ELBO within this many bits per character of the paper's counts as reproduced.
TEXT8_TOLERANCE = 0.05


@dataclass
class DataRun:
    """The run of both models on one data set.

    ``data``: the data set's options (squares: :class:`~catlib.data.Squares`'s; text: ``corpus``
    (``"stand-in"`` or ``"text8"``), ``chunk_len`` and ``split_sizes``). Both models get
    ``network`` (the denoiser's options) and ``timesteps`` (multinomial diffusion's ``T``, the
    masked model's time scale) and train ``steps`` Adam steps of ``batch_size`` examples from
    ``train_size`` at learning rate ``lr`` (``warmup`` steps of warm-up, cosine decay, gradients
    clipped to norm ``grad_clip``; ``None``: not clipped). Evaluation:
    the ELBO on ``test_size`` test examples (the masked bound with ``elbo_times`` draws each of
    :meth:`~catlib.masked_diffusion.ContinuousMaskedDiffusion.loss_given_count`), the IWBO with ``iwbo_k[model]`` samples on ``iwbo_size`` (0: skipped; on the toy,
    ``iwbo_size`` estimates of every outcome), the ``S``-step
    bounds on ``steps_size`` examples and ``num_samples`` samples for each ``S`` in ``sample_steps``.
    """

    steps: int
    network: dict
    timesteps: int = 1000
    batch_size: int = 64
    lr: float = 1e-3
    warmup: int = 100
    grad_clip: float | None = 10.0
    train_size: int = 20_000
    data: dict = field(default_factory=dict)
    test_size: int = 1000
    elbo_times: int = 8
    iwbo_size: int = 200
    iwbo_k: dict = field(default_factory=lambda: {"multinomial-diffusion": 0, "masked-diffusion": 100})
    steps_size: int = 200
    num_samples: int = 1000
    sample_steps: tuple[int, ...] = (1000, 100, 20, 5)


@dataclass
class MaskingConfig:
    """One profile: a :class:`DataRun` per data set of :data:`DATASETS`."""

    runs: dict

    def run(self, dataset: str) -> DataRun:
        if dataset not in self.runs:
            raise ValueError(f"data set must be one of {sorted(self.runs)}, got {dataset!r}")
        return self.runs[dataset]


_SMOKE_SQUARES = {"height": 8, "width": 8, "cell": 4, "sizes": (2, 3)}
_CPU_SQUARES = dict(SQUARES_PROFILES["cpu"].squares)      # chapter 06's maps
_STAND_IN = {"corpus": "stand-in", "chunk_len": 64}

PROFILES = {
    "smoke": MaskingConfig(runs={
        "two-variable": DataRun(steps=300, network={"hidden": (32,)}, timesteps=50, batch_size=128, train_size=2000,
                                iwbo_k={"multinomial-diffusion": 4, "masked-diffusion": 16}, steps_size=16,
                                num_samples=2000, sample_steps=(50, 5, 1)),
        "squares": DataRun(steps=30, network={"channels": 8}, timesteps=20, batch_size=16, train_size=500,
                           data=_SMOKE_SQUARES, test_size=32, elbo_times=2, iwbo_size=8,
                           iwbo_k={"multinomial-diffusion": 0, "masked-diffusion": 4}, steps_size=8, num_samples=16,
                           sample_steps=(20, 5)),
        "text": DataRun(steps=30, network={"network": "transformer", "layers": 1, "width": 32, "heads": 4, "local_heads": 2, "local_window": 8,
                                           "ff_mult": 2}, timesteps=20, batch_size=16, lr=3e-3,
                        data={"corpus": "stand-in", "chunk_len": 16, "split_sizes": (16_000, 1_024, 4_096)},
                        test_size=64, elbo_times=2, iwbo_size=8, iwbo_k={"multinomial-diffusion": 0,
                                                                          "masked-diffusion": 4},
                        steps_size=8, num_samples=16, sample_steps=(20, 5)),
    }),
    # cpu: one CPU thread per run. Toy: ~1 ms a step. Squares: the UNet of chapter 06's diffusion
    # (channels 24, T = 500). Text: chapter 11's cpu transformer (4 layers, width 128) on chunks
    # of 64 characters of the stand-in. A masked IWBO sample costs D network rows (256 maps per
    # squares map): 100 samples on 100 maps ran at ~15 min per 16 maps, so squares has 10 on 20.
    "cpu": MaskingConfig(runs={
        "two-variable": DataRun(steps=6000, network={"hidden": (128, 128)}, timesteps=1000, batch_size=256,
                                train_size=20_000, iwbo_k={"multinomial-diffusion": 20, "masked-diffusion": 1000},
                                steps_size=16, num_samples=20_000, sample_steps=(1000, 100, 10, 2, 1)),
        "squares": DataRun(steps=15_000, network={"channels": 24}, timesteps=500, batch_size=32, train_size=20_000,
                           data=_CPU_SQUARES, test_size=500, elbo_times=8, iwbo_size=20,
                           iwbo_k={"multinomial-diffusion": 0, "masked-diffusion": 10}, steps_size=100,
                           num_samples=256, sample_steps=(500, 100, 20, 5)),
        "text": DataRun(steps=8000, network={"network": "transformer", "layers": 4, "width": 128, "heads": 4, "local_heads": 2,
                                            "local_window": 32, "ff_mult": 4}, timesteps=1000, batch_size=32,
                        lr=5e-4, warmup=200, data={**_STAND_IN, "split_sizes": (5_120_000, 64_000, 64_000)},
                        test_size=256, elbo_times=8, iwbo_size=64,
                        iwbo_k={"multinomial-diffusion": 0, "masked-diffusion": 32}, steps_size=128,
                        num_samples=128, sample_steps=(1000, 100, 20, 5)),
    }),
}

_MD4 = "MD4 code (google-deepmind/md4 b9fbf29), md4/configs/md4/text8.py"
_MD4_NET = "MD4 code, md4/models/backward.py (width = feature_dim 64 x 12 heads)"
_MD4_J1 = "Shi et al. (2024), App. J.1 (the config's sweep says 5e-4)"
#: The ``paper`` profile: MD4's text8 run for the text pair (both models at MD4's size and budget,
#: our choice for the multinomial one, whose own setting is chapter 11's ``paper`` profile); the
#: toy and squares keep the cpu runs, which no paper reports. Where it differs from MD4 (so not in
#: :data:`PAPER_SETTINGS`): our transformer is chapter 11's (:class:`~catlib.nets.TimeTransformer`,
#: global attention only here), not MD4's adaLN-zero transformer with RMSNorm, rotary embeddings
#: and GLU MLPs; :func:`~catlib.train.fit` uses Adam without weight decay (MD4: AdamW, weight decay
#: 0.03, App. J.1) and keeps no moving average of the weights (MD4 evaluates an EMA of rate
#: 0.9999). Dropout 0.05 is App. J.1's (the config's base value is 0, its sweep 0.05).
PROFILES["paper"] = MaskingConfig(runs={
    "two-variable": PROFILES["cpu"].run("two-variable"), "squares": PROFILES["cpu"].run("squares"),
    "text": DataRun(steps=1_000_000, network={"network": "transformer", "layers": 12, "width": 768, "heads": 12,
                                              "local_heads": 0, "ff_mult": 4, "dropout": 0.05},
                    timesteps=1000, batch_size=512, lr=3e-4, warmup=2000, grad_clip=None,
                    data={"corpus": "text8", "chunk_len": 256}, test_size=None, elbo_times=1, iwbo_size=0,
                    iwbo_k={"multinomial-diffusion": 0, "masked-diffusion": 0}, steps_size=512, num_samples=64,
                    sample_steps=(1000, 100)),
})
#: What MD4's text8 configuration says for each setting of the ``paper`` profile's text run.
PAPER_SETTINGS = [
    Setting("data", "runs.text.data.corpus", "text8", _MD4),
    Setting("sequence length (characters)", "runs.text.data.chunk_len", 256, _MD4),
    Setting("time scale of the network (t x 1000)", "runs.text.timesteps", 1000, "MD4 code, md4/models/backward.py"),
    Setting("transformer layers", "runs.text.network.layers", 12, _MD4),
    Setting("attention heads", "runs.text.network.heads", 12, _MD4),
    Setting("transformer width", "runs.text.network.width", 768, _MD4_NET),
    Setting("batch (sequences)", "runs.text.batch_size", 512, _MD4),
    Setting("learning rate (cosine decay)", "runs.text.lr", 3e-4, _MD4_J1),
    Setting("warm-up steps", "runs.text.warmup", 2000, _MD4),
    Setting("gradient clipping", "runs.text.grad_clip", None, _MD4 + " (clip = 0.0: none)"),
    Setting("training steps", "runs.text.steps", 1_000_000, _MD4),
]


def run_budget_ratio(config: MaskingConfig, name: str | None = None) -> float | None:
    """Characters the text run trains on over MD4's text8 run's (the ``paper`` profile); ``None``
    for the toy and squares (no paper trains on them). ``name`` picks the data set from a run name."""
    dataset = "text" if name is None else name.split(".")[0]
    if dataset != "text":
        return None
    paper = PROFILES["paper"].run("text")

    def characters(r: DataRun) -> int:
        return r.steps * r.batch_size * r.data["chunk_len"]

    return budget_ratio(characters(config.run("text")), characters(paper))


# ----------------------------------------------------------------------------- data


@dataclass
class DataSet:
    """What the runs need of a data set: the splits, the exact entropy and a sample-quality measure.

    ``test_weights``: the toy's test set is every outcome with its probability (bounds are then
    exact expectations); ``None`` elsewhere (the test examples count equally).
    ``quality(samples) -> dict`` measures samples ``[n, *data_shape]`` against the true distribution;
    ``test_nll_bpd`` is the exact negative log-likelihood of the test examples (the best any bound
    can reach on them; the entropy on the toy), ``describe`` turns samples into something to show.
    """

    name: str
    data_shape: tuple[int, ...]
    num_classes: int
    train: Tensor
    test: Tensor
    entropy_bpd: float
    quality: Callable[[Tensor], dict]
    test_weights: Tensor | None = None
    test_nll_bpd: float | None = None
    describe: Callable[[Tensor], list] = field(default=lambda x: x.tolist())


def _toy_quality(toy: TwoVariableToy) -> Callable[[Tensor], dict]:
    def quality(x: Tensor) -> dict:
        hist = torch.zeros(4, 4, dtype=torch.float64)
        hist.index_put_((x[:, 0], x[:, 1]), torch.ones(len(x), dtype=torch.float64), accumulate=True)
        hist /= len(x)
        return {"tv": float(0.5 * (hist - toy.joint).abs().sum()), "impossible": float(hist[toy.joint == 0].sum()),
                "joint": hist.tolist()}
    return quality


def _text_quality(chain) -> Callable[[Tensor], dict]:
    def quality(x: Tensor) -> dict:
        return {"nll_bpc": float((-chain.log_prob_bits(x) / x.shape[1]).mean())}
    return quality


def load_data(dataset: str, run: DataRun, seed: int = 0, data_dir: str | Path = "data") -> DataSet:
    """The :class:`DataSet` ``dataset`` at the sizes of ``run``."""
    if dataset == "two-variable":
        toy = TwoVariableToy()
        keep = toy.probs > 0
        return DataSet(dataset, toy.data_shape, toy.num_classes, toy.sample(run.train_size, seed=seed + 1),
                       toy.support[keep], toy.entropy_bits / 2, _toy_quality(toy), toy.probs[keep].double(),
                       toy.entropy_bits / 2)
    if dataset == "squares":
        squares = Squares(**run.data)
        splits = squares.splits(train=run.train_size, val=1, test=run.test_size, seed=seed)
        nll = float(bits_per_dim(squares.log_prob(splits["test"]), math.prod(squares.data_shape)).mean())
        return DataSet(dataset, squares.data_shape, squares.num_classes, splits["train"], splits["test"],
                       squares.entropy_bpd, partial(sample_quality, squares), test_nll_bpd=nll)
    if dataset == "text":
        corpus_name, chunk_len = run.data["corpus"], run.data["chunk_len"]
        if corpus_name == "stand-in":
            corpus = synthetic_text_corpus(run.data["split_sizes"], chunk_len, seed=seed)
            quality, entropy = _text_quality(corpus.chain), corpus.entropy_bits_per_char
        else:
            corpus = load_text_corpus(corpus_name, data_dir, chunk_len=chunk_len)
            quality, entropy = (lambda x: {}), math.nan
        test = corpus.test if run.test_size is None else corpus.test[:run.test_size]
        nll = float((-corpus.chain.log_prob_bits(test) / chunk_len).mean()) if corpus_name == "stand-in" else None
        return DataSet(dataset, (chunk_len,), corpus.num_classes, corpus.train, test, entropy, quality,
                       test_nll_bpd=nll, describe=lambda x: [corpus.decode(row) for row in x])
    raise ValueError(f"data set must be one of {list(DATASETS)}, got {dataset!r}")


def build(name: str, config: MaskingConfig, data: DataSet | None = None) -> torch.nn.Module:
    """The untrained model of run ``name`` (``"<data set>.<model>"``) at the sizes of ``config``."""
    dataset, model = _split(name)
    run = config.run(dataset)
    if data is None:
        shape, classes = data_shape(dataset, run), _num_classes(dataset, run)
    else:
        shape, classes = data.data_shape, data.num_classes
    return catlib.build_model(model, shape, classes, timesteps=run.timesteps, **run.network)


def data_shape(dataset: str, run: DataRun) -> tuple[int, ...]:
    """The shape of one example of ``dataset`` at the sizes of ``run``, without loading the data.

    >>> data_shape("squares", PROFILES["cpu"].run("squares")), data_shape("text", PROFILES["cpu"].run("text"))
    ((16, 16), (64,))
    """
    if dataset == "two-variable":
        return TwoVariableToy.data_shape
    if dataset == "squares":
        return Squares(**run.data).data_shape
    return (run.data["chunk_len"],)


def _num_classes(dataset: str, run: DataRun) -> int:
    if dataset == "two-variable":
        return TwoVariableToy.num_classes
    return Squares(**run.data).num_classes if dataset == "squares" else len(TEXT8_ALPHABET)


def _split(name: str) -> tuple[str, str]:
    if name not in NAMES:
        raise ValueError(f"run name must be one of {list(NAMES)}, got {name!r}")
    dataset, model = name.split(".")
    return dataset, model


# ----------------------------------------------------------------------------- bounds


def _mean_bpd(bounds_nats: Tensor, dims: int, weights: Tensor | None) -> tuple[float, float | None]:
    """The mean negative bound in bits per dimension and its standard error (``None`` for an exact,
    probability-weighted mean)."""
    bpd = bits_per_dim(bounds_nats.double().cpu(), dims)
    if weights is not None:
        return float((weights * bpd).sum()), None
    return float(bpd.mean()), float(bpd.std() / math.sqrt(len(bpd))) if len(bpd) > 1 else None


@torch.no_grad()
def _elbo(model, data: DataSet, run: DataRun, progress: bool) -> Tensor:
    """The ELBO in nats per test example: exact on the toy (every state / mask pattern), else sampled."""
    x = data.test.to(model.device)
    exact = data.test_weights is not None
    if model.name == "multinomial-diffusion":
        if exact:
            return -(model.elbo_terms(x, progress, enumerate_xt=True).sum(1) + model.prior_kl(x))
        return evaluate_bound(model, x, batch_size=64, progress=progress, exact=True)
    if exact:
        return model.log_prob(x, exact=True)
    return evaluate_bound(model, x, batch_size=64, progress=progress, times=run.elbo_times)


def _iwbo(model, data: DataSet, run: DataRun, k: int, progress: bool) -> tuple[float, float]:
    """The IWBO with ``k`` samples in bits per dimension and its standard error. On the toy every
    outcome gets ``iwbo_size`` independent estimates (one IWBO is a random number that may even
    lie above the log-likelihood), weighted by the outcome's probability; elsewhere one estimate
    on each of the first ``iwbo_size`` test examples."""
    dims = math.prod(data.data_shape)
    if data.test_weights is None:
        x = data.test[:run.iwbo_size].to(model.device)
        return _mean_bpd(evaluate_bound(model, x, k=k, batch_size=16, progress=progress), dims, None)
    reps = run.iwbo_size
    x = data.test.repeat(reps, 1).to(model.device)
    bpd = bits_per_dim(evaluate_bound(model, x, k=k, batch_size=256, progress=progress).double(), dims)
    bpd = bpd.view(reps, -1)                                                   # [reps, outcomes]
    w = data.test_weights
    return float((w * bpd.mean(0)).sum()), float((w ** 2 * bpd.var(0) / reps).sum().sqrt())


@torch.no_grad()
def _steps_bound(model, x: Tensor, steps: int, exact: bool) -> Tensor:
    """The ELBO of the ``steps``-step sampler, nats per example."""
    if model.name == "multinomial-diffusion":
        terms = model.skip_elbo_terms(x, steps, enumerate_xt=exact)
        return -(terms.sum(1) + model.prior_kl(x))
    return model.discretized(steps).log_prob(x, exact=exact)


# ----------------------------------------------------------------------------- runs


def run_one(name: str, config: MaskingConfig, checkpoint: Path | None, seed: int = 0,
            device: torch.device | None = None, progress: bool = True, data_dir: str | Path = "data") -> dict:
    """Train one run (or reload a finished one) and evaluate it; returns the stored metrics."""
    dataset, model_name = _split(name)
    run = config.run(dataset)
    device = select_device(device)
    data = load_data(dataset, run, seed, data_dir)
    torch.manual_seed(seed)
    model = build(name, config, data)
    wanted = {"config": asdict(run), "name": name, "seed": seed}
    finished = finished_run_metrics(checkpoint, wanted, run.steps)
    if finished is not None:
        return finished
    result = fit(model, data.train, steps=run.steps, batch_size=run.batch_size, lr=run.lr, warmup=run.warmup,
                 grad_clip=run.grad_clip, seed=seed, device=device, checkpoint=checkpoint, progress=progress, desc=name, settings=wanted)
    model.eval()
    start = time.perf_counter()
    dims = math.prod(data.data_shape)
    torch.manual_seed(seed + 1)
    elbo, elbo_se = _mean_bpd(_elbo(model, data, run, progress), dims, data.test_weights)
    k = run.iwbo_k.get(model_name, 0)
    iwbo = iwbo_se = None
    if k > 0:
        iwbo, iwbo_se = _iwbo(model, data, run, k, progress)
    by_steps = []
    exact = data.test_weights is not None
    for steps in run.sample_steps:
        torch.manual_seed(seed + 2)
        x = data.test[:run.steps_size].to(device)
        bound, bound_se = _mean_bpd(_steps_bound(model, x, steps, exact), dims,
                                    data.test_weights[:len(x)] if exact else None)
        torch.manual_seed(seed + 3)
        tic = time.perf_counter()
        with torch.no_grad():
            samples = model.sample(run.num_samples, steps=steps, progress=progress).cpu()
        by_steps.append({"steps": steps, "bound_bpd": bound, "bound_se": bound_se,
                         "sample_seconds": time.perf_counter() - tic, "network_calls": model.last_sample_calls,
                         "shown": data.describe(samples[:8]), **data.quality(samples)})
    metrics = {"elbo_bpd": elbo, "elbo_se": elbo_se, "iwbo_bpd": iwbo, "iwbo_se": iwbo_se, "iwbo_k": k,
               "entropy_bpd": data.entropy_bpd, "test_nll_bpd": data.test_nll_bpd, "by_steps": by_steps,
               "steps": result.steps, "train_seconds": result.seconds, "eval_seconds": time.perf_counter() - start,
               "device": str(device), "parameters": sum(p.numel() for p in model.parameters()),
               "losses": result.losses, "run": wanted, "commit": code_commit()}
    if checkpoint is not None:
        save_metrics(checkpoint, metrics)
    return metrics


def load_model(name: str, profile: str, checkpoint_dir: str | Path = "checkpoints/14_masked_diffusion",
               device: str | torch.device | None = None) -> torch.nn.Module:
    """The trained model of run ``name`` of a finished :func:`run_masking`, in eval mode."""
    config = check_profile(profile, PROFILES)
    model = build(name, config)
    model.load_state_dict(load_checkpoint(checkpoint_path(checkpoint_dir, profile, name))["model"])
    return model.to(select_device(device)).eval()


def run_masking(profile: str = "cpu", checkpoint_dir: str | Path | None = "checkpoints/14_masked_diffusion",
                seed: int = 0, device: str | torch.device | None = None, names: list[str] | None = None,
                progress: bool = True, data_dir: str | Path = "data") -> list[dict]:
    """Every run of ``profile`` (or those of ``names``): the metrics of :func:`run_one` plus ``name``,
    ``dataset``, ``model``, ``label`` and ``seconds`` (training and evaluation)."""
    config, profile = check_profile(profile, PROFILES), canonical_profile(profile)
    unknown = sorted(set(names or []) - set(NAMES))
    if unknown:
        raise ValueError(f"unknown run(s) {unknown}; expected some of {list(NAMES)}")
    rows = []
    for name in NAMES:
        if names is not None and name not in names:
            continue
        dataset, model = _split(name)
        ckpt = checkpoint_path(checkpoint_dir, profile, name) if checkpoint_dir is not None else None
        m = run_one(name, config, ckpt, seed, select_device(device), progress, data_dir)
        rows.append({**m, "name": name, "dataset": dataset, "model": model, "label": LABELS[model],
                     "seconds": m["train_seconds"] + m["eval_seconds"]})
    return rows


def results_rows(rows: list[dict], profile: str, config: MaskingConfig) -> list[dict]:
    """The scoreboard rows (:func:`catlib.results.write_results`) of :func:`run_masking`'s ``rows``:
    per run its ELBO and (where measured) IWBO in bits per dimension, with ``entropy`` and
    ``gap_to_entropy`` where the data's entropy is known. The toy, squares and the stand-in are no
    paper's data: status ``"ours only"`` (``"smoke"`` at smoke). Text8's ELBOs are set beside MD4's
    and multinomial diffusion's numbers (:data:`PAPER_TEXT8_BPC`); without a text8 run those two
    numbers come as ``"not run"`` rows."""
    out, text8_run = [], False
    for r in rows:
        text8 = r["dataset"] == "text" and config.run("text").data["corpus"] == "text8"
        text8_run |= text8
        for metric, key in (("ELBO", "elbo_bpd"), (f"IWBO({r['iwbo_k']})", "iwbo_bpd")):
            if r[key] is None:
                continue
            paper = PAPER_TEXT8_BPC[r["model"]] if text8 and key == "elbo_bpd" else None
            known = r["entropy_bpd"] is not None and math.isfinite(r["entropy_bpd"])
            data = "text8" if text8 else ("text stand-in" if r["dataset"] == "text" else r["dataset"])
            out.append({"method": f"{r['label']} ({data})", "metric": f"{metric} ({_unit(r['dataset'])})",
                        "ours": r[key], "paper": paper, "status": row_status(r[key], paper, TEXT8_TOLERANCE,
                                                                             profile=profile),
                        "budget_ratio": run_budget_ratio(config, r["name"]) if text8 else None, "profile": profile,
                        "steps": r["steps"], "device": r["device"], "seconds": r["seconds"],
                        **({"entropy": r["entropy_bpd"], "gap_to_entropy": r[key] - r["entropy_bpd"]} if known else {}),
                        "parameters": r["parameters"]})
    if not text8_run:
        for model, paper in PAPER_TEXT8_BPC.items():
            out.append({"method": f"{LABELS[model]} (text8)", "metric": "ELBO (bpc), text8 (paper only, no run of ours)",
                        "ours": None, "paper": paper, "status": row_status(None, paper, TEXT8_TOLERANCE, profile=profile),
                        "budget_ratio": None, "profile": profile, "steps": None, "device": "none (no run)",
                        "seconds": None})
    return out


def _unit(dataset: str) -> str:
    return "bpc" if dataset == "text" else "bpd"


# ----------------------------------------------------------------------------- the denoiser


@torch.no_grad()
def denoiser_error(model, fractions: list[float]) -> list[dict]:
    r"""What the toy's denoiser has to learn, and how well it did, at times ``fractions`` of the way
    to the end (``t / T`` for multinomial diffusion, ``t`` for masked).

    For every corrupted pair :math:`x_t` the Bayes-optimal :math:`p(x_{0,d} \mid x_t) \propto
    \sum_{x_0} p(x_0)\,q(x_t \mid x_0)` is computed by enumeration; each entry holds the time, the
    expected KL (nats per variable, averaged over :math:`q(x_t)`) from it to the network's
    :math:`\hat p(x_{0,d} \mid x_t)` over the predictions the model uses (a masked model's only
    at masked variables: a visible one is the data, and its output there is never used), and the optimal and learned distributions of the first
    variable for every :math:`x_t` with its probability (``[states, 4]`` lists).
    """
    toy = TwoVariableToy()
    K = toy.num_classes
    x0 = toy.support.to(model.device)                                         # [16, 2]
    p0 = toy.probs.double().to(model.device)                                   # [16]
    masked = model.name == "masked-diffusion"
    S = K + 1 if masked else K
    idx = torch.arange(S * S, device=model.device)
    states = torch.stack([idx // S, idx % S], 1)                               # [S^2, 2]
    out = []
    for f in fractions:
        if masked:
            t = torch.full((len(states),), float(f), dtype=torch.float64, device=model.device)
            log_q = absorbing_log_marginal(x0, K, float(model.alpha(torch.tensor(f, dtype=torch.float64)).log()))
        else:
            step = max(1, round(f * model.num_timesteps))
            t = torch.full((len(states),), step, dtype=torch.long, device=model.device)
            log_q = model.q_log_marginal(index_to_log_onehot(x0, K), step)
        # q(x_t | x_0) for every (x_0, x_t): product over the two variables
        lq = log_q.double()                                                    # [16, 2, S]
        joint = (lq[:, 0, states[:, 0]] + lq[:, 1, states[:, 1]]).exp() * p0[:, None]   # [16, S^2]
        p_xt = joint.sum(0)
        keep = p_xt > 1e-12
        post = torch.zeros(len(states), 2, K, dtype=torch.float64, device=model.device)
        for d in range(2):
            post[:, d] = torch.zeros(len(states), K, dtype=torch.float64, device=model.device).index_add(
                1, x0[:, d], joint.T) / p_xt.clamp(min=1e-300)[:, None]
        learned = model.p_log_x0(states, t).double().exp()                    # [S^2, 2, K]
        kl = (post * (post.clamp(min=1e-300).log() - learned.clamp(min=1e-300).log())).sum(-1)   # [S^2, 2]
        # a masked model's prediction is used only where x_t is masked; a visible variable is the data
        used = (states == K) if masked else torch.ones_like(states, dtype=torch.bool)
        kl = (kl * used).sum(-1) / 2
        out.append({"fraction": float(f), "kl": float((p_xt[keep] * kl[keep]).sum()),
                    "states": states[keep].tolist(), "p_xt": p_xt[keep].tolist(),
                    "optimal": post[keep, 0].tolist(), "learned": learned[keep, 0].tolist()})
    return out


def main(argv: list[str] | None = None) -> None:
    parser = experiment_parser(__doc__, PROFILES, "checkpoints/14_masked_diffusion", names=NAMES)
    parser.add_argument("--data-dir", default="data", help="where text8 lives (paper profile; default: data)")
    args = parser.parse_args(argv)
    checkpoint_folder(parser, args)
    for r in run_masking(args.profile, args.checkpoint_dir, args.seed, args.device, args.only,
                         data_dir=args.data_dir):
        iwbo = "" if r["iwbo_bpd"] is None else f" IWBO({r['iwbo_k']}) {r['iwbo_bpd']:.4f}"
        print(f"{r['name']:32s} ELBO {r['elbo_bpd']:.4f}{iwbo} (entropy {r['entropy_bpd']:.4f})  "
              f"{r['seconds']:.0f} s")


if __name__ == "__main__":
    main()

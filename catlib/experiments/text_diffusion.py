"""The diffusion row of Table 3 (Hoogeboom et al., 2021): multinomial text diffusion on text8 and enwik8.

``run_text_diffusion(profile)`` trains (or reloads from its checkpoint) the transformer
multinomial diffusion of :data:`catlib.diffusion.TEXT8_DIFFUSION` (``"paper"``, alias ``"full"``) or
:data:`catlib.diffusion.ENWIK8_DIFFUSION` (``"paper-enwik8"``, alias ``"full-enwik8"``), evaluates the test bits per
character (the ELBO with all ``T`` terms summed, ``log_prob(x, exact=True)``), draws seeded samples
at several numbers of sampling steps and times them, and runs the one-step spell checker of
figure 5 on the paper's sentence and on corrupted held-out text. The ``"smoke"`` profile runs the
same code on a labelled **stand-in** (:func:`catlib.data.synthetic_text_corpus`: a word-like
Markov chain with an exactly known entropy, *not text8*) with a tiny transformer, in seconds on
a CPU. The ``"cpu"`` profile trains on the same stand-in at text8's length (256 characters,
``T = 1000``, 5.1 million training characters) a 4-layer transformer of width 128 for 12,000
steps of 32 sequences: about 2 hours on one CPU thread, resumable; still stand-in numbers, set
against the stand-in's exact entropy. A finished run's metrics live in its checkpoint, so a second
call only reads them. From the shell: ``python -m catlib.experiments text_diffusion --profile cpu``, or
``--profile paper --data-dir data`` (text8 must be in ``data/text8/text8``:
``catlib.data.download_text_corpus("text8", "data")``). :data:`PAPER_SETTINGS` lists what the
official code says for each setting of the ``paper`` profile, and :func:`run_budget_ratio` the
sequences a run trains on over the official run's.
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch import Tensor

from catlib.data.text import TEXT8_ALPHABET, encode_text
from catlib.data.text_corpora import TEXT_CORPORA, TextCorpus, load_text_corpus, synthetic_text_corpus
from catlib.diffusion import ENWIK8_DIFFUSION, TEXT8_DIFFUSION, MultinomialDiffusion, build_diffusion
from catlib.masked_diffusion import ContinuousMaskedDiffusion, build_masked_diffusion
from catlib.experiments import (Setting, budget_ratio, canonical_profile, check_profile, checkpoint_folder,
                                experiment_parser, missing_data_error)
from catlib.metrics import evaluate_bound
from catlib.results import row_status
from catlib.spellcheck import SPELLCHECK_CORRUPTED, SPELLCHECK_GROUND_TRUTH, corrupt, denoise_in_one_step
from catlib.timing import timed
from catlib.train import fit, finished_run_metrics, load_checkpoint, save_metrics, select_device
from catlib.viz.speed import projected_gpu_hours

__all__ = ["TABLE3_DIFFUSION", "TABLE3_CONTEXT", "UNITS", "STAND_IN", "NAMES", "MD4_TEXT8_BPC", "MASKED_ELBO_TIMES",
           "TextDiffusionConfig",
           "PROFILES", "PAPER_SETTINGS", "TOLERANCE", "run_budget_ratio", "NoFinishedRun",
           "full_run_command", "load_data", "build", "sampling_step_counts", "known_word_rate",
           "spellcheck_text", "chunk_text", "run_one", "run_text_diffusion", "load_model",
           "scoreboard_rows", "main"]

#: Multinomial Text Diffusion in Table 3 of the paper: test bits per character (text8) and per raw
#: byte (enwik8), the negative ELBO.
TABLE3_DIFFUSION = {"text8": 1.72, "enwik8": 1.75}
#: Other rows of Table 3 for context: (model, text8 bpc, enwik8 bpb).
TABLE3_CONTEXT = [
    ("64 Layer Transformer (Al-Rfou et al., 2019)", 1.13, 1.06),
    ("TransformerXL (Dai et al., 2019)", 1.08, 0.99),
    ("Argmax Flow, AR (paper)", 1.39, 1.42),
    ("Argmax Coupling Flow (paper)", 1.82, 1.93),
    ("Multinomial Text Diffusion (paper)", 1.72, 1.75),
]
#: The unit of each corpus's number.
UNITS = {"text8": "bpc", "enwik8": "bpb", "stand-in": "bpc"}
#: The corpus name of the synthetic stand-in; its rows say "stand-in, not text8".
STAND_IN = "stand-in"
#: The names of the rows that ``names=`` / ``--only`` choose from: multinomial diffusion (the
#: paper's row) and masked diffusion (:func:`catlib.masked_diffusion.build_masked_diffusion`, the
#: continuous-time bound of MDLM / MD4) with the same transformer, trained at the same budget.
NAMES = ("multinomial-text-diffusion", "masked-text-diffusion")
#: MD4 (Shi et al., 2024): masked diffusion's test bits per character on text8, at most this.
MD4_TEXT8_BPC = 1.37
#: The masked model's ELBO is estimated with this many draws per test chunk of
#: :meth:`~catlib.masked_diffusion.ContinuousMaskedDiffusion.loss_given_count`.
MASKED_ELBO_TIMES = 8
#: How close (bits per character or byte) our bound on the paper's data must be to count as reproduced.
TOLERANCE = 0.05
#: How much of the training split feeds the vocabulary of :func:`known_word_rate`.
_VOCAB_CHARS = 10_000_000


@dataclass
class TextDiffusionConfig:
    """One profile: the data, the model and how it is trained and evaluated.

    ``corpus`` is ``"text8"``, ``"enwik8"`` or :data:`STAND_IN`; ``split_sizes`` the characters of
    (train, valid, test) (``None``: the papers' 90M / 5M / 5M; for a real corpus three sizes take
    the start of the file, for tests). ``diffusion`` holds the arguments of
    :func:`catlib.diffusion.build_diffusion` (``data_shape`` ``(L,)``, ``num_classes``, ``timesteps``,
    ``network`` and the transformer's sizes). Training: ``steps`` Adam steps of ``batch_size``
    chunks (drawn with replacement from the train split), learning rate ``lr``, ``warmup`` steps
    of linear warm-up, ``grad_clip`` (``None``: none, as the official code). Evaluation: the exact
    ELBO (all ``T`` terms) on the first ``test_chunks`` test chunks (``None``: all) in batches of
    ``eval_batch``; the bound of the shortened ``S``-step chain on ``skip_bound_chunks``;
    ``num_samples`` samples at each step count of :func:`sampling_step_counts` (``sample_fractions``
    of ``T``); the spell checker on ``spell_chunks`` held-out chunks with ``spell_fraction`` of
    their characters replaced. ``epochs`` documents the official schedule that ``steps`` follows.
    ``print_estimate``: print :func:`catlib.train.format_estimate` before training.
    """

    corpus: str
    diffusion: dict
    steps: int
    batch_size: int = 32
    lr: float = 1e-4
    warmup: int = 0
    grad_clip: float | None = None
    split_sizes: tuple[int, int, int] | None = None
    epochs: int | None = None
    test_chunks: int | None = None
    eval_batch: int = 64
    skip_bound_chunks: int = 512
    num_samples: int = 32
    sample_fractions: tuple[float, ...] = (1.0, 0.25, 0.05)
    spell_chunks: int = 512
    spell_fraction: float = 12 / 256
    print_estimate: bool = False

    @property
    def seq_len(self) -> int:
        return int(self.diffusion["data_shape"][0])

    @property
    def timesteps(self) -> int:
        return int(self.diffusion["timesteps"])

    @property
    def unit(self) -> str:
        return UNITS[self.corpus]

    # what the settings table (:data:`PAPER_SETTINGS`) reads, besides the fields above
    @property
    def split_chars(self) -> tuple[int, int, int]:
        """Characters of (train, valid, test): ``split_sizes``, or the corpus's own (90M / 5M / 5M)."""
        if self.split_sizes is not None:
            return tuple(self.split_sizes)
        return (900_000, 50_000, 50_000) if self.corpus == STAND_IN else TEXT_CORPORA[self.corpus].split_sizes

    @property
    def test_set(self) -> str:
        """The test chunks the bound is measured on, in words."""
        return "all test chunks" if self.test_chunks is None else f"the first {self.test_chunks:,} test chunks"


def _official(corpus: str, diffusion: dict) -> TextDiffusionConfig:
    """The README's run command (``ehoogeboom/multinomial_diffusion``, ``text_diffusion/README.md``):
    ``--batch_size 32 --lr 0.0001 --epochs 1000`` (Adam, no warm-up, no clipping) on the train split."""
    spec = TEXT_CORPORA[corpus]
    train_chunks = spec.num_chunks()["train"]
    per_epoch = math.ceil(train_chunks / 32)    # a DataLoader without drop_last
    return TextDiffusionConfig(corpus=corpus, diffusion=dict(diffusion), steps=1000 * per_epoch, batch_size=32,
                               lr=1e-4, warmup=0, grad_clip=None, split_sizes=None, epochs=1000,
                               test_chunks=None, eval_batch=64, skip_bound_chunks=512, num_samples=32,
                               spell_chunks=512, spell_fraction=12 / 256, print_estimate=True)


PROFILES = {
    "smoke": TextDiffusionConfig(
        corpus=STAND_IN, split_sizes=(64_000, 2_048, 8_192),
        diffusion={"data_shape": (32,), "num_classes": 27, "timesteps": 50, "network": "transformer", "layers": 2,
                   "width": 32, "heads": 4, "local_heads": 2, "local_window": 16, "ff_mult": 2, "dropout": 0.0},
        steps=300, batch_size=32, lr=5e-3, warmup=20, grad_clip=10.0, test_chunks=128, eval_batch=128,
        skip_bound_chunks=128, num_samples=16, spell_chunks=128, spell_fraction=0.05),
    # Measured on one CPU thread (torch.set_num_threads(1), 20 timed steps after one warm-up, a
    # shared 2-core machine): 547 ms per step of 32 sequences, so 12,000 steps take about 1.8 hours;
    # the evaluation (128 test chunks x T = 1000 network calls, the shortened chains, samples)
    # adds well under an hour.
    "cpu": TextDiffusionConfig(
        corpus=STAND_IN, split_sizes=(5_120_000, 256_000, 256_000),
        diffusion={"data_shape": (256,), "num_classes": 27, "timesteps": 1000, "network": "transformer", "layers": 4,
                   "width": 128, "heads": 4, "local_heads": 2, "local_window": 64, "ff_mult": 4, "dropout": 0.0},
        steps=12_000, batch_size=32, lr=5e-4, warmup=200, grad_clip=None, epochs=19, test_chunks=128,
        eval_batch=64, skip_bound_chunks=128, num_samples=16, spell_chunks=256, spell_fraction=12 / 256,
        print_estimate=True),
    "paper": _official("text8", TEXT8_DIFFUSION),
    "paper-enwik8": _official("enwik8", ENWIK8_DIFFUSION),
}

_README = "official code (ehoogeboom/multinomial_diffusion), text_diffusion/README.md (text8 command)"
_DEFAULTS = "official code, text_diffusion/model.py and train.py (defaults; the README command does not set it)"
#: What the paper and the official code say about the ``paper`` profile (text8). Not in the table,
#: because our ``paper`` profile differs there: the learning-rate decay (a cosine over the run;
#: the official code multiplies by 0.99 after every epoch) and minibatches drawn with replacement.
PAPER_SETTINGS = [
    Setting("data", "corpus", "text8", "NeurIPS paper, Sec. 6.1"),
    Setting("characters: train / valid / test", "split_chars", (90_000_000, 5_000_000, 5_000_000),
            "official code, text_diffusion/datasets/dataset_text8.py"),
    Setting("classes", "diffusion.num_classes", 27, "NeurIPS paper, Sec. 6.1"),
    Setting("sequence length (characters)", "seq_len", 256, "official code, text_diffusion/datasets/data.py"),
    Setting("diffusion steps T", "timesteps", 1000, _README),
    Setting("transformer layers", "diffusion.layers", 12, _README),
    Setting("transformer width", "diffusion.width", 512, _DEFAULTS),
    Setting("attention heads", "diffusion.heads", 16, _README),
    Setting("of them local", "diffusion.local_heads", 8, _README),
    Setting("local window", "diffusion.local_window", 128, _DEFAULTS),
    Setting("dropout", "diffusion.dropout", 0.0, _DEFAULTS),
    Setting("batch (sequences)", "batch_size", 32, _README),
    Setting("learning rate", "lr", 1e-4, _README),
    Setting("epochs", "epochs", 1000, _README),
    Setting("steps", "steps", 10_987_000, "1000 epochs of 10,987 batches of the 351,562 train chunks, as steps"),
    Setting("warm-up steps", "warmup", 0, _DEFAULTS),
    Setting("gradient clipping", "grad_clip", None, _DEFAULTS),
    Setting("test set", "test_set", "all test chunks", "official code, text_diffusion/eval_loglik.py"),
]


def run_budget_ratio(config: TextDiffusionConfig, name: str | None = None) -> float | None:
    """Characters the run trains on, ``steps x batch x L``, over the official text8 run's (the ``paper``
    profile; for an enwik8 config, the ``paper-enwik8`` profile's). ``name``: the one model of
    :data:`NAMES` (``None`` or that name). At the ``cpu`` profile ``L`` is the paper's 256, so this
    is also the ratio of sequences.

    >>> round(run_budget_ratio(PROFILES["cpu"]), 5), run_budget_ratio(PROFILES["paper-enwik8"])
    (0.00109, 1.0)
    """
    if name is not None:
        _check_name(name)
    paper = PROFILES["paper-enwik8" if config.corpus == "enwik8" else "paper"]

    def characters(c: TextDiffusionConfig) -> int:
        return c.steps * c.batch_size * c.seq_len

    return budget_ratio(characters(config), characters(paper))


class NoFinishedRun(FileNotFoundError):
    """Raised by :func:`run_one` with ``train=False`` when the checkpoint holds no finished run of the config."""


def full_run_command(profile: str = "paper", data_dir: str | Path = "data",
                     checkpoint_dir: str | Path = "checkpoints/11_text_diffusion") -> str:
    """The shell command that trains (or resumes) the run of ``profile``.

    >>> full_run_command("paper-enwik8", "data", "ck")
    'python -m catlib.experiments text_diffusion --profile paper-enwik8 --data-dir data --checkpoint-dir ck'
    """
    profile = canonical_profile(profile)
    return (f"python -m catlib.experiments text_diffusion --profile {profile} --data-dir {data_dir} "
            f"--checkpoint-dir {checkpoint_dir}")


def load_data(config: TextDiffusionConfig, data_dir: str | Path = "data", seed: int = 0) -> TextCorpus:
    """The corpus of ``config``, chunked into sequences of ``L`` characters.

    The stand-in is generated (seeded, ``stand_in=True``, exact ``entropy_bits_per_char``); text8
    and enwik8 are read from ``data_dir/<name>/<name>`` (as ``uint8``) by
    :func:`catlib.data.load_text_corpus`, which raises ``FileNotFoundError`` with the command that
    fetches a missing file.
    """
    if config.corpus == STAND_IN:
        return synthetic_text_corpus(config.split_sizes or (900_000, 50_000, 50_000), chunk_len=config.seq_len,
                                     seed=seed)
    if config.corpus not in TEXT_CORPORA:
        raise ValueError(f"corpus must be one of {sorted(TEXT_CORPORA) + [STAND_IN]}, got {config.corpus!r}")
    return load_text_corpus(config.corpus, data_dir, chunk_len=config.seq_len, split_sizes=config.split_sizes,
                            dtype=torch.uint8)


def build(config: TextDiffusionConfig, name: str = NAMES[0]) -> MultinomialDiffusion | ContinuousMaskedDiffusion:
    """The untrained model ``name`` of ``config``: :func:`catlib.diffusion.build_diffusion` with
    ``config.diffusion``, or for ``"masked-text-diffusion"`` the masked diffusion with the same
    transformer (over one more input state) and ``timesteps`` as the scale of its time.

    >>> [type(build(PROFILES["smoke"], name)).__name__ for name in NAMES]
    ['MultinomialDiffusion', 'ContinuousMaskedDiffusion']
    """
    _check_name(name)
    if name == NAMES[0]:
        return build_diffusion(**config.diffusion)
    options = {k: v for k, v in config.diffusion.items() if k not in ("schedule", "timestep_sampling")}
    return build_masked_diffusion(**options)


def _check_name(name: str) -> None:
    if name not in NAMES:
        raise ValueError(f"name must be one of {list(NAMES)}, got {name!r}")


def sampling_step_counts(timesteps: int, fractions=(1.0, 0.25, 0.05)) -> list[int]:
    """The numbers of sampling steps (network calls) ``S``: ``round(f * T)`` for each fraction, distinct, largest first.

    >>> sampling_step_counts(1000), sampling_step_counts(50)
    ([1000, 250, 50], [50, 12, 2])
    """
    return sorted({max(1, min(timesteps, int(f * timesteps))) for f in fractions}, reverse=True)


def chunk_text(corpus: TextCorpus, x: Tensor) -> str:
    """One sequence ``[L]`` as a string of the same length: characters for an alphabet, bytes as latin-1
    (one character per byte) with unprintable ones (newlines, control bytes) shown as ``·``.

    >>> chunk_text(synthetic_text_corpus((512, 64, 64), chunk_len=16), torch.tensor([8, 9, 0, 1]))
    'hi a'
    """
    x = x.long().cpu()
    if corpus.alphabet is not None:
        return corpus.decode(x)
    return "".join(c if c.isprintable() else "·" for c in bytes(x.tolist()).decode("latin-1"))


def _flat_text(corpus: TextCorpus, chunks: Tensor, max_chars: int) -> str:
    """The first ``max_chars`` characters of consecutive chunks as one string (fast, through numpy)."""
    rows = max(1, min(len(chunks), -(-max_chars // chunks.shape[1])))
    flat = chunks[:rows].reshape(-1).numpy().astype(np.uint8)
    if corpus.alphabet is not None:
        table = np.frombuffer(corpus.alphabet.encode("latin-1"), dtype=np.uint8)
        return table[flat].tobytes().decode("latin-1")
    return flat.tobytes().decode("latin-1")


def known_word_rate(texts: list[str], vocabulary: set[str]) -> float | None:
    """The share of whole words of ``texts`` that occur in ``vocabulary``; ``None`` if there are none.

    A text is a chunk cut from a longer stream, so its first and last space-separated pieces may
    be parts of words and are not counted.

    >>> known_word_rate(["xx the cat sat on zzqv yy"], {"the", "cat", "on"})
    0.6
    """
    words = [w for t in texts for w in t.split(" ")[1:-1] if w]
    if not words:
        return None
    return sum(w in vocabulary for w in words) / len(words)


def spellcheck_text(model: MultinomialDiffusion, corpus: TextCorpus, text: str) -> str:
    """The one-step spell checker (:func:`catlib.spellcheck.denoise_in_one_step`, ``t = 1``) on a
    string of any length: cut into chunks of the model's length ``L`` (the last padded with spaces),
    denoised, joined and cut back to ``len(text)``.

    >>> corpus = synthetic_text_corpus((512, 64, 64), chunk_len=16)
    >>> model = build_diffusion((16,), 27, timesteps=5, network="transformer", width=16, heads=2)
    >>> len(spellcheck_text(model, corpus, "hello world"))
    11
    """
    length = model.data_shape[0]
    padded = text + " " * (-len(text) % length)
    x = corpus.encode(padded).view(-1, length).to(model.device)
    x0, _ = denoise_in_one_step(model, x)
    return chunk_text(corpus, x0.reshape(-1))[: len(text)]


def _positions(a: str, b: str) -> list[int]:
    return [i for i, (p, q) in enumerate(zip(a, b)) if p != q]


def _spell_example(name: str, truth: str, corrupted: str, suggestion: str) -> dict:
    wrong = set(_positions(truth, corrupted))
    still = set(_positions(truth, suggestion))
    return {"name": name, "truth": truth, "corrupted": corrupted, "suggestion": suggestion,
            "corrupted_at": sorted(wrong), "changed_at": _positions(corrupted, suggestion),
            "fixed": len(wrong - still), "broken": len(still - wrong), "errors_after": len(still)}


def _bits_per_char(model, x: Tensor, batch_size: int, progress: bool, steps: int | None = None) -> float:
    """Mean negative ELBO of ``x`` in bits per character. Multinomial diffusion: all terms summed
    (``exact=True``; with ``steps``, the shortened chain's). Masked diffusion: the continuous bound
    with :data:`MASKED_ELBO_TIMES` draws per chunk (``log_prob(x, times=...)``), or with ``steps`` the bound of the
    ``steps``-step sampler (:meth:`~catlib.masked_diffusion.ContinuousMaskedDiffusion.discretized`)."""
    with torch.no_grad():
        if isinstance(model, ContinuousMaskedDiffusion):
            if steps is None:
                lp = evaluate_bound(model, x, batch_size=batch_size, progress=progress, times=MASKED_ELBO_TIMES)
            else:
                lp = evaluate_bound(model.discretized(steps), x, batch_size=batch_size, progress=progress)
        else:
            lp = evaluate_bound(model, x, batch_size=batch_size, progress=progress, exact=True, steps=steps)
    return float(-lp.double().mean() / (math.log(2) * x.shape[1]))


def _spellcheck(model: MultinomialDiffusion, corpus: TextCorpus, config: TextDiffusionConfig, seed: int,
                device: torch.device) -> tuple[dict, dict, dict]:
    """The spell checker on the paper's sentence and on ``spell_chunks`` corrupted held-out chunks:
    ``(paper's example, held-out example, statistics)`` (see :func:`run_one`)."""
    official = _spell_example("the paper's sentence (figure 5)", SPELLCHECK_GROUND_TRUTH, SPELLCHECK_CORRUPTED,
                              spellcheck_text(model, corpus, SPELLCHECK_CORRUPTED))
    held = corpus.test[-config.spell_chunks:].long()    # the end of the test split: not the chunks shown above
    g = torch.Generator().manual_seed(seed)
    x_bad, mask = corrupt(held, config.spell_fraction, corpus.num_classes, g)
    x_fix, _ = denoise_in_one_step(model, x_bad.to(device))
    x_fix = x_fix.cpu()
    right = x_fix == held
    held_out = _spell_example("a corrupted held-out test chunk", chunk_text(corpus, held[0]),
                              chunk_text(corpus, x_bad[0]), chunk_text(corpus, x_fix[0]))
    spell_stats = {"chunks": len(held), "corrupted": int(mask.sum()), "fixed": int((right & mask).sum()),
                   "broken": int((~right & ~mask).sum()), "clean": int((~mask).sum()),
                   "accuracy_before": float((x_bad == held).double().mean()),
                   "accuracy_after": float(right.double().mean())}
    return official, held_out, spell_stats


def run_one(config: TextDiffusionConfig, checkpoint: Path | None, data_dir: str | Path = "data", seed: int = 0,
            device: str | torch.device | None = None, progress: bool = True, train: bool = True,
            name: str = NAMES[0]) -> dict:
    """Train the model ``name`` of ``config`` (or reload a finished run) and evaluate it; returns the stored metrics.

    Metrics: ``test_bits`` (negative ELBO per character on ``test_chunks`` test chunks, all ``T``
    terms), ``entropy_bits`` (stand-in only: the exact entropy per character of a chunk) and
    ``test_true_bits`` (stand-in only: the exact :math:`-\\log_2 P` of the same test chunks under
    the generating chain, per character), ``samples`` (one dict per step count ``S``: ``steps``,
    ``calls``, ``seconds``, ``texts``, ``bound_bits`` of the ``S``-step chain on
    ``skip_bound_chunks`` chunks, ``known_word_rate``), ``data_texts`` and ``data_known_word_rate``
    (test chunks, for comparison), ``spellcheck`` (the paper's sentence and the first corrupted
    held-out chunk, see :func:`_spell_example`) and ``spell_stats`` (over ``spell_chunks`` chunks),
    ``steps``, ``train_seconds``, ``eval_seconds``, ``device``, ``parameters``, ``losses`` (the
    training loss in nats per chunk, averaged over blocks of ``loss_every`` steps so that at most
    about 10,000 values are kept), ``loss_every``, ``source``, ``stand_in`` and ``run``.

    The masked model (``"masked-text-diffusion"``) gets the same metrics except the spell checker
    (``spellcheck`` and ``spell_stats`` are ``None``): its network only ever sees masked or true
    characters, so a wrong character is not a question it was trained to answer.

    With ``train=False`` only a finished run is read; without one :class:`NoFinishedRun` is raised
    (a chapter at the cpu or paper profile uses this: those runs take hours on a CPU, days on a GPU).

    Raises ``FileNotFoundError`` (naming the command that fetches it) when a real corpus is missing.
    """
    _check_name(name)
    masked = name != NAMES[0]
    device = select_device(device)
    wanted = {"config": asdict(config), "seed": seed, **({"model": name} if masked else {})}
    finished = finished_run_metrics(checkpoint, wanted, config.steps)
    if finished is not None:
        return finished
    if not train:
        raise NoFinishedRun(f"no finished run of this configuration (seed {seed}) at {checkpoint}; train it "
                            f"from the shell (hours on a CPU at cpu, days on a GPU at paper; it resumes from its "
                            f"checkpoint)")
    corpus = load_data(config, data_dir, seed)
    torch.manual_seed(seed)
    model = build(config, name)
    train_chunks = corpus.train

    def draw(n: int, g: torch.Generator) -> Tensor:
        return train_chunks[torch.randint(len(train_chunks), (n,), generator=g)].long()

    result = fit(model, draw, steps=config.steps, batch_size=config.batch_size, lr=config.lr, seed=seed,
                 device=device, checkpoint=checkpoint, grad_clip=config.grad_clip, warmup=config.warmup,
                 progress=progress, desc=f"{'masked' if masked else 'text'} diffusion ({config.corpus})",
                 estimate=True if config.print_estimate else None, settings=wanted)
    model.eval()
    start = time.perf_counter()
    L, T = config.seq_len, config.timesteps
    test = corpus.test if config.test_chunks is None else corpus.test[: config.test_chunks]
    test = test.long()
    torch.manual_seed(seed)
    test_bits = _bits_per_char(model, test.to(device), config.eval_batch, progress)

    vocabulary = set(_flat_text(corpus, corpus.train, _VOCAB_CHARS).split())
    data_texts = [chunk_text(corpus, x) for x in test[: config.num_samples]]
    samples = []
    for steps in sampling_step_counts(T, config.sample_fractions):
        torch.manual_seed(seed)
        x, seconds = timed(lambda: model.sample(config.num_samples, steps=steps), device)
        texts = [chunk_text(corpus, row) for row in x.cpu()]
        torch.manual_seed(seed)
        bound = _bits_per_char(model, test[: config.skip_bound_chunks].to(device), config.eval_batch, progress,
                               steps=steps)
        samples.append({"steps": steps, "calls": model.last_sample_calls, "seconds": seconds, "texts": texts,
                        "bound_bits": bound, "known_word_rate": known_word_rate(texts, vocabulary)})

    official = held_out = spell_stats = None
    if not masked:
        official, held_out, spell_stats = _spellcheck(model, corpus, config, seed, device)
    entropy = corpus.entropy_bits_per_char if corpus.stand_in else None
    true_bits = None
    if corpus.stand_in and getattr(corpus, "chain", None) is not None:
        true_bits = float(-corpus.chain.log_prob_bits(test).double().mean() / L)
    every = max(1, len(result.losses) // 10_000)
    losses = [float(np.mean(result.losses[i:i + every])) for i in range(0, len(result.losses), every)]
    metrics = {"test_bits": test_bits, "test_chunks": len(test), "unit": config.unit, "entropy_bits": entropy,
               "test_true_bits": true_bits, "samples": samples, "data_texts": data_texts,
               "data_known_word_rate": known_word_rate(data_texts, vocabulary),
               "spellcheck": None if masked else [official, held_out],
               "spell_stats": spell_stats, "steps": result.steps, "train_seconds": result.seconds,
               "eval_seconds": time.perf_counter() - start, "device": str(device),
               "parameters": sum(p.numel() for p in model.parameters()), "losses": losses, "loss_every": every,
               "source": corpus.source, "stand_in": bool(corpus.stand_in), "corpus": config.corpus, "run": wanted}
    if checkpoint is not None:
        save_metrics(checkpoint, metrics)
    return metrics


def _label(config: TextDiffusionConfig, name: str = NAMES[0]) -> str:
    model = "Multinomial text diffusion" if name == NAMES[0] else "Masked text diffusion"
    if config.corpus == STAND_IN:
        return f"{model} (stand-in, not text8)"
    return f"{model} ({config.corpus})"


#: The checkpoint file of each row in ``<checkpoint_dir>/<profile>/``.
CHECKPOINT_FILES = {NAMES[0]: "diffusion.pt", NAMES[1]: "masked.pt"}


def _paper_number(name: str, corpus: str) -> float | None:
    """The papers' number for row ``name`` on ``corpus``: Table 3's, or MD4's text8 number for the masked row."""
    if name == NAMES[0]:
        return TABLE3_DIFFUSION.get(corpus)
    return MD4_TEXT8_BPC if corpus == "text8" else None


def run_text_diffusion(profile: str = "paper", checkpoint_dir: str | Path | None = "checkpoints/11_text_diffusion",
                       data_dir: str | Path = "data", seed: int = 0, device: str | torch.device | None = None,
                       progress: bool = True, train: bool = True,
                       names: Sequence[str] | None = None) -> list[dict]:
    """The diffusion row of Table 3 at ``profile`` (``"smoke"``, ``"cpu"``, ``"paper"`` or ``"paper-enwik8"``;
    the aliases ``"full"`` and ``"full-enwik8"`` are resolved, and checkpoints go under the profile's own name).

    ``names``: the rows to run, some of :data:`NAMES` (``None``: all); a row left out is
    neither trained nor read, and an unknown name raises ``ValueError`` before anything runs.

    Returns one row per model of ``names`` (multinomial first): ``name``, ``label``, ``profile``,
    ``corpus``, ``unit``, ``ours`` (test negative ELBO in bits per character or byte), ``paper``
    (Table 3's number for this corpus, MD4's text8 number for the masked row; ``None`` for the
    stand-in, which is not text8),
    ``paper_text8`` / ``paper_enwik8``, ``entropy_bits`` (stand-in: exact), ``seconds``
    (training + evaluation), ``budget_ratio`` (:func:`run_budget_ratio`) and every metric of :func:`run_one`.

    Raises ``FileNotFoundError`` with the fetch command when ``"paper"`` finds no text8 in ``data_dir``,
    and :class:`NoFinishedRun` (with the command that trains it) when ``train=False`` finds no
    finished run.
    """
    config = check_profile(profile, PROFILES)
    profile = canonical_profile(profile)
    if names is not None:
        unknown = sorted(set(names) - set(NAMES))
        if unknown:
            raise ValueError(f"unknown model name(s) {unknown}; expected some of {list(NAMES)}")
    rows = []
    for name in NAMES:
        if names is not None and name not in names:
            continue
        ckpt = Path(checkpoint_dir) / profile / CHECKPOINT_FILES[name] if checkpoint_dir is not None else None
        try:
            m = run_one(config, ckpt, data_dir, seed, device, progress, train, name)
        except NoFinishedRun as err:
            command = full_run_command(profile, data_dir, checkpoint_dir or "checkpoints/11_text_diffusion")
            raise NoFinishedRun(f"{err}: {command} --only {name}") from None
        rows.append({"name": name, "label": _label(config, name), "profile": profile, "ours": m["test_bits"],
                     "paper": _paper_number(name, config.corpus), "paper_text8": _paper_number(name, "text8"),
                     "paper_enwik8": _paper_number(name, "enwik8"), "seconds": m["train_seconds"] + m["eval_seconds"],
                     "budget_ratio": run_budget_ratio(config), **m})
    return rows


def load_model(profile: str, checkpoint_dir: str | Path = "checkpoints/11_text_diffusion",
               device: str | torch.device | None = None,
               name: str = NAMES[0]) -> MultinomialDiffusion | ContinuousMaskedDiffusion:
    """The trained model ``name`` of a :func:`run_text_diffusion` run at ``profile`` (or its alias), in eval mode."""
    model = build(check_profile(profile, PROFILES), name)
    path = Path(checkpoint_dir) / canonical_profile(profile) / CHECKPOINT_FILES[name]
    model.load_state_dict(load_checkpoint(path)["model"])
    return model.to(select_device(device)).eval()


_ENTROPY_ROW = "exact entropy of the stand-in (not text8)"


def scoreboard_rows(rows: list[dict], profile: str) -> list[dict]:
    """Rows for :func:`catlib.results.write_results`: our bound beside the paper's number; for the
    stand-in our bound and its exact entropy, labelled "stand-in, not text8" with ``paper = None``,
    ``entropy`` and ``gap_to_entropy``. Every row has ``budget_ratio`` and ``status``
    (:func:`catlib.results.row_status`: ``"smoke"`` at the smoke profile, ``"different data"`` on the stand-in).
    Without a text8 run of a model, the papers' number gets a ``"not run"`` row (multinomial
    diffusion's with ``projected_gpu_hours``, :func:`catlib.viz.speed.projected_gpu_hours`).

    >>> [(r["paper"], r["ours"], r["status"]) for r in scoreboard_rows([], "cpu")]
    [(1.72, None, 'not run'), (1.37, None, 'not run')]
    """
    profile = canonical_profile(profile)
    out = []
    for r in rows:
        ratio = r.get("budget_ratio")
        common = {"budget_ratio": ratio, "profile": profile, "steps": int(r["steps"]), "device": r["device"],
                  "seconds": float(r["seconds"]), "parameters": int(r["parameters"])}
        if r["stand_in"]:
            entropy = float(r["entropy_bits"])
            status = row_status(r["ours"], None, TOLERANCE, profile=profile, budget_ratio=ratio, same_data=False)
            out.append({"method": r["label"], "metric": "test bits per character (ELBO), stand-in, not text8",
                        "ours": float(r["ours"]), "paper": None, "status": status, **common, "entropy": entropy,
                        "gap_to_entropy": float(r["ours"]) - entropy})
            if not any(row["method"] == _ENTROPY_ROW for row in out):
                out.append({"method": _ENTROPY_ROW, "metric": "bits per character", "ours": entropy, "paper": None,
                            "status": status, **common, "budget_ratio": None, "entropy": entropy,
                            "gap_to_entropy": 0.0})
        else:
            metric = f"test {'bits per character' if r['unit'] == 'bpc' else 'bits per byte'} (ELBO), {r['corpus']}"
            out.append({"method": r["label"], "metric": metric, "ours": float(r["ours"]), "paper": r["paper"],
                        "status": row_status(r["ours"], r["paper"], TOLERANCE, profile=profile, budget_ratio=ratio),
                        **common})
    for i, name in enumerate(NAMES):
        if not any(not r["stand_in"] and r["corpus"] == "text8" and r["name"] == name for r in rows):
            paper = _paper_number(name, "text8")
            source = "Table 3" if name == NAMES[0] else "MD4's number, at most"
            out.insert(i, {"method": _label(PROFILES["paper"], name),
                           "metric": f"test bits per character (ELBO), text8 ({source}; paper only, no run of ours)",
                           "ours": None, "paper": paper, "status": row_status(None, paper, TOLERANCE, profile=profile),
                           "budget_ratio": None, "profile": profile, "steps": None, "device": "none (no run)",
                           "seconds": None, **({"projected_gpu_hours": projected_gpu_hours("text8/diffusion")}
                                               if name == NAMES[0] else {})})
    return out


def main(argv: list[str] | None = None) -> None:
    parser = experiment_parser(__doc__, PROFILES, "checkpoints/11_text_diffusion", names=NAMES)
    parser.add_argument("--data-dir", default="data", help="folder holding text8/text8 or enwik8/enwik8")
    args = parser.parse_args(argv)
    checkpoint_folder(parser, args)
    try:
        rows = run_text_diffusion(args.profile, args.checkpoint_dir, args.data_dir, args.seed, args.device,
                                  names=args.only)
    except FileNotFoundError as err:  # the corpus is not downloaded: say how to get it, without a traceback
        missing_data_error(parser, err, args.data_dir)
    for r in rows:
        paper = "stand-in: no paper number" if r["paper"] is None else f"paper {r['paper']:.2f}"
        entropy = "" if r["entropy_bits"] is None else f", exact entropy {r['entropy_bits']:.3f}"
        print(f"{r['label']}: test {r['unit']} {r['ours']:.3f} ({paper}{entropy}); {r['steps']} steps, "
              f"{r['seconds']:.0f} s on {r['device']}; {r['source']}")
        for s in r["samples"]:
            words = "-" if s["known_word_rate"] is None else f"{s['known_word_rate']:.2f}"
            print(f"  {s['calls']:5d} sampling steps: {s['seconds']:.2f} s for {len(s['texts'])} samples, bound "
                  f"{s['bound_bits']:.3f} {r['unit']}, known words {words}: {s['texts'][0]!r}")
        st = r["spell_stats"]
        if st is None:
            continue
        print(f"  spell check on {st['chunks']} held-out chunks: fixed {st['fixed']} of {st['corrupted']} corrupted "
              f"characters, broke {st['broken']} of {st['clean']} clean ones")


if __name__ == "__main__":
    main()

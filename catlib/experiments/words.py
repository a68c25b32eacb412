"""TRUFL's figure 4: learned word embeddings of TRUFL and the binary argmax flow, seen through t-SNE.

``run_words(profile)`` trains (or reloads from checkpoints) TRUFL and the binary argmax flow on
windows of ``L`` words, at the same latent size per word (``ceil(log2 K)`` numbers, the size the
binary argmax flow needs; the ``paper`` profile gives TRUFL the paper's 12), evaluates the ELBO
and IWBO in bits per word on held-out windows, and draws 200 samples of :math:`q(z_t \\mid x_t)`
for every word of the vocabulary. From these come the within-group standard deviation (WGSD,
Tan et al., 2022, section 5.3), the nearest-neighbour structure of the word centroids, and the
t-SNE picture of ten chosen words. A finished run's metrics live in its checkpoint, so a second
call only reads them. From the shell:
``python -m catlib.experiments.words --profile cpu --checkpoint-dir checkpoints/08_tsne_embeddings``.

Profiles: ``smoke`` (CI), ``cpu`` (the committed results: 10,000 steps of 64 windows per model)
and ``paper``: what TRUFL's section 5.3 and Table 4 give (10,000 words, 12 numbers per word for
TRUFL, 200 samples per word), our choice for the rest (:data:`PAPER_SETTINGS`). The paper's data
(Penn Treebank sentences in the setting of Kim et al., 2019) and its prior (an LSTM with a MADE,
its appendix C.3) are not ours: text8 (or the generated stand-in) and a coupling flow.
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

import catlib
from catlib.data.words import PAPER_WORDS, WORD_CLASSES, WordCorpus, chosen_words, load_corpus
from catlib.encodings import elbo_breakdown, within_group_std
from catlib.experiments import (NOT_GIVEN, Setting, canonical_profile, check_profile, checkpoint_folder,
                                experiment_parser)
from catlib.metrics import bits_per_dim, evaluate_bound
from catlib.results import row_status
from catlib.train import fit, finished_run_metrics, load_checkpoint, save_metrics, select_device

__all__ = ["PROFILES", "PAPER_SETTINGS", "run_budget_ratio", "TOLERANCE", "result_fields", "NAMES", "LABELS",
           "PAPER_WGSD", "WordsConfig", "latent_dim_for", "load_words", "build", "pick_words", "word_windows",
           "embedding_samples", "word_samples", "tsne_embedding", "centroid_distances", "pair_ranks",
           "class_neighbour_rate", "unigram_bits", "run_one", "run_words", "load_model"]

NAMES = ("trufl", "argmax-binary")
LABELS = {"trufl": "TRUFL", "argmax-binary": "Argmax flow (binary)"}
#: WGSD of the paper (section 5.3, PTB words, 12 dimensions); it reports CatNF and TRUFL, not argmax.
PAPER_WGSD = {"catnf": 0.52, "trufl": 0.66}
#: Word pairs whose closeness the chapter reports (paper spellings; the corpus's are looked up).
PAIRS = (("walk", "fly"), ("walked", "flew"), ("walk", "walked"), ("fly", "flew"), ("one", "two"),
         ("two", "three"), ("one", "three"), ("Canada", "Singapore"))
#: Replacements for figure 4's words that a corpus lacks (text8 is lowercase and has no "N").
SUBSTITUTES = {"N": ("four", "five", "six", "seven", "eight", "nine", "ten")}


@dataclass
class WordsConfig:
    """Sizes of one profile.

    Windows of ``window`` words from the first 90% of the corpus train the models; ``test_windows``
    windows of the last 10% get the ELBO, the first ``iwbo_windows`` of them the IWBO with ``iwbo_k``
    samples. ``samples_per_word`` draws of :math:`q(z_t|x_t)` per word feed the WGSD (over every
    vocabulary word, or the ``wgsd_words`` most frequent) and the t-SNE (over the chosen words).
    ``model`` holds options of both models, ``models`` per-name overrides: TRUFL starts with its
    words' shifts spread with standard deviation 4 and trains with soft support edges
    (``support_temperature``, see :class:`catlib.encodings.CategoricalEncoding`); a ``latent_dim``
    there sets TRUFL's numbers per word (default ``ceil(log2 K)``). Without the soft edges our
    cpu run nearly collapsed (overlapping supports, an ELBO of 5.93 bits per word against the
    unigram model's 5.94; with catlib's default spread of 1 it did collapse).
    The corpus: text8 from the data folder with ``vocab_size`` words (of its first ``max_words``)
    when ``prefer_text8`` and the file is there, else the generated stand-in of ``num_sentences``.
    """

    steps: int
    window: int = 8
    num_sentences: int = 20_000
    prefer_text8: bool = True
    vocab_size: int = 1024
    max_words: int | None = 2_000_000
    batch_size: int = 64
    lr: float = 1e-3
    test_windows: int = 2000
    iwbo_windows: int = 500
    iwbo_k: int = 16
    samples_per_word: int = 200
    wgsd_words: int | None = None
    perplexity: float = 30.0
    model: dict = field(default_factory=dict)
    models: dict = field(default_factory=lambda: {"trufl": {"init_spread": 4.0, "support_temperature": 0.02}})

    @property
    def trufl_latent_dim(self) -> int | str:
        """TRUFL's numbers per word: ``models["trufl"]["latent_dim"]`` if set, else
        ``"ceil(log2 K)"`` (the binary argmax flow's size, :func:`latent_dim_for`).

        >>> WordsConfig(steps=1).trufl_latent_dim
        'ceil(log2 K)'
        """
        return self.models.get("trufl", {}).get("latent_dim", "ceil(log2 K)")


PROFILES = {
    "smoke": WordsConfig(steps=300, num_sentences=2000, prefer_text8=False, test_windows=200, iwbo_windows=50,
                         iwbo_k=4, model={"flow_steps": 2, "hidden": (64, 64)}),
    "cpu": WordsConfig(steps=10_000, num_sentences=20_000, batch_size=64, test_windows=2000, iwbo_windows=500,
                       iwbo_k=16, model={"flow_steps": 4, "hidden": (128, 128)}),
    # the paper's vocabulary, TRUFL's 12 numbers per word and 200 samples per word; the training
    # run is not given (steps, batch and learning rate are ours: 5 times the cpu profile's examples)
    "paper": WordsConfig(steps=50_000, vocab_size=10_000, batch_size=64, test_windows=2000, iwbo_windows=500,
                         iwbo_k=16, samples_per_word=200, model={"flow_steps": 4, "hidden": (128, 128)},
                         models={"trufl": {"init_spread": 4.0, "support_temperature": 0.02, "latent_dim": 12}}),
}

#: What TRUFL (section 5.3, Table 4, appendix C.3) says about the word-embedding run behind figure 4.
PAPER_SETTINGS = [
    Setting("vocabulary (words)", "vocab_size", 10_000, "TRUFL, Sec. 5.3 (PTB words, setting of Kim et al. 2019)"),
    Setting("TRUFL: numbers per word", "trufl_latent_dim", 12, "TRUFL, Table 4 (Dim.)"),
    Setting("samples of q(z|word) per word (WGSD, t-SNE)", "samples_per_word", 200, "TRUFL, Sec. 5.3"),
    Setting("words per example", "window", NOT_GIVEN, "TRUFL, Sec. 5.3: one PTB sentence per example"),
    Setting("training steps", "steps", NOT_GIVEN),
    Setting("batch size", "batch_size", NOT_GIVEN),
    Setting("learning rate", "lr", NOT_GIVEN),
    Setting("prior: coupling steps", "model.flow_steps", NOT_GIVEN,
            "TRUFL, App. C.3: an LSTM + MADE prior, 4 logistics per dimension"),
    Setting("IWBO samples", "iwbo_k", NOT_GIVEN),
]


def run_budget_ratio(config: WordsConfig, name: str | None = None) -> float | None:
    """Examples our run trains on over the paper's run's: ``None``, since the paper does not say
    how long it trained (``name``, a model, is accepted for a uniform interface).

    >>> run_budget_ratio(PROFILES["cpu"]) is None
    True
    """
    return None


#: The tolerance of a results row's status (WGSD units); moot while our corpus is not the paper's.
TOLERANCE = 0.05


def result_fields(ours: float | None, paper: float | None, profile: str, config: WordsConfig) -> dict:
    """``status`` and ``budget_ratio`` of one results row: our corpus (text8 or the generated
    stand-in) is never the paper's Penn Treebank, so every row of a run is ``"different data"``.

    >>> result_fields(0.646, 0.66, "cpu", PROFILES["cpu"])
    {'status': 'different data', 'budget_ratio': None}
    """
    ratio = run_budget_ratio(config)
    return {"status": row_status(ours, paper, TOLERANCE, profile=profile, budget_ratio=ratio, same_data=False),
            "budget_ratio": ratio}


def latent_dim_for(num_classes: int) -> int:
    """Numbers per word of the binary argmax flow, ``ceil(log2 K)``; TRUFL gets the same.

    >>> latent_dim_for(93), latent_dim_for(1024)
    (7, 10)
    """
    return max(1, math.ceil(math.log2(num_classes)))


def load_words(config: WordsConfig, data_dir: str | Path = "data", seed: int = 0) -> tuple[WordCorpus, str, dict]:
    """``(corpus, source, splits)``: the corpus of ``config`` (``source`` is ``"text8 (real)"`` or
    ``"generated stand-in"``) and its train/val windows ``{"train": [n, L], "val": [m, L]}``."""
    corpus, source = load_corpus(data_dir, config.vocab_size, config.prefer_text8, config.max_words,
                                 config.num_sentences, seed)
    return corpus, source, corpus.splits(config.window)


def build(name: str, config: WordsConfig, num_classes: int) -> torch.nn.Module:
    """The untrained model ``name`` for windows of ``config.window`` words over ``num_classes`` words."""
    if name not in NAMES:
        raise ValueError(f"name must be one of {list(NAMES)}, got {name!r}")
    options = {**config.model, **config.models.get(name, {})}
    if name == "trufl":
        options.setdefault("latent_dim", latent_dim_for(num_classes))
    return catlib.build_model(name, (config.window,), num_classes, **options)


def pick_words(corpus: WordCorpus, wanted: Sequence[str] = PAPER_WORDS) -> tuple[dict[str, str], dict[str, str]]:
    """Figure 4's words in ``corpus``: ``({label: spelling}, {missing word: substitute})``.

    A missing word is replaced by the first of :data:`SUBSTITUTES` that the corpus has and that is
    not chosen already (text8 has no "N": a number word takes its place); one with no substitute
    is left out.
    """
    found, missing = chosen_words(corpus, wanted)
    out, substitutes = {}, {}
    for word in wanted:
        if word in found:
            out[word] = found[word]
            continue
        taken = set(found.values()) | set(substitutes.values())
        spare = [s for s in chosen_words(corpus, SUBSTITUTES.get(word, ()))[0].values() if s not in taken]
        if spare:
            substitutes[word] = spare[0]
            out[f"{spare[0]} (for {word})"] = spare[0]
    return out, substitutes


def word_windows(corpus: WordCorpus, word: int, n: int, length: int,
                 generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
    """``n`` windows ``[n, length]`` of the corpus that hold ``word``, and its position in each ``[n]``.

    Occurrences and the word's place in the window are drawn uniformly (with replacement), so
    context-dependent encoders see the contexts of real text. A word that never occurs gets the
    window holding only that word (position 0).
    """
    where = (corpus.tokens == word).nonzero()[:, 0]
    if len(where) == 0:
        return torch.full((n, length), word, dtype=torch.long), torch.zeros(n, dtype=torch.long)
    at = where[torch.randint(len(where), (n,), generator=generator)]
    lo = (at - (length - 1)).clamp(min=0)
    hi = at.clamp(max=len(corpus) - length)
    start = lo + (torch.rand(n, generator=generator) * (hi - lo + 1)).long().clamp(max=hi - lo)
    windows = corpus.tokens[start[:, None] + torch.arange(length)]
    return windows, at - start


@torch.no_grad()
def embedding_samples(model: torch.nn.Module, windows: Tensor, positions: Tensor) -> Tensor:
    """One sample of the embedding :math:`z_t \\sim q(z_t \\mid x)` of the word at ``positions [n]``
    in each of ``windows [n, L]``: ``[n, d]``.

    TRUFL's :math:`q(z_t|x_t)` depends on the word only (``layer.sample_q``); the binary argmax
    flow's :math:`q(v|x)` is one conditional flow over all ``L * d`` bits of the window, from which
    we keep the ``d`` numbers of position ``t`` (their signs are the word's bits).
    """
    windows, positions = windows.to(model.device), positions.to(model.device)
    rows = torch.arange(len(windows), device=windows.device)
    if model.name == "trufl":
        z, _ = model.layer.sample_q(windows)                      # [n, L, d]
    else:
        bits = model._layer_input(windows)                      # [n, L * d]
        v, _ = model.layer.q.sample(bits)
        z = v.view(len(windows), windows.shape[1], -1)
    return z[rows, positions].cpu()


@torch.no_grad()
def word_samples(model: torch.nn.Module, corpus: WordCorpus, words: Sequence[int], n: int, length: int,
                 seed: int = 0, chunk: int = 16_384) -> Tensor:
    """``n`` samples of each word's embedding: ``[len(words), n, d]`` (seeded)."""
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    windows, positions = zip(*(word_windows(corpus, int(w), n, length, g) for w in words))
    windows, positions = torch.cat(windows), torch.cat(positions)
    out = torch.cat([embedding_samples(model, w, p) for w, p in zip(windows.split(chunk), positions.split(chunk))])
    return out.view(len(words), n, -1)


def tsne_embedding(samples: Tensor, seed: int = 0, perplexity: float = 30.0) -> np.ndarray:
    """scikit-learn's t-SNE (PCA initialisation, seeded) of ``samples [groups, n, d]``: ``[groups * n, 2]``."""
    from sklearn.manifold import TSNE

    flat = samples.reshape(-1, samples.shape[-1]).double().numpy()
    perplexity = min(perplexity, (len(flat) - 1) / 3)
    return TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(flat)


def centroid_distances(samples: Tensor) -> tuple[Tensor, float]:
    """Distances between group centroids after WGSD's standardisation, ``[groups, groups]``, and the
    mean distance of a sample to its own centroid (the within-group spread on the same scale)."""
    flat = samples.reshape(-1, samples.shape[-1]).double()
    standard = (samples.double() - flat.mean(0)) / flat.std(0)
    centroids = standard.mean(1)
    within = float((standard - centroids[:, None]).norm(dim=-1).mean())
    return torch.cdist(centroids, centroids), within


def pair_ranks(distances: Tensor, names: Sequence[str], pairs: Sequence[tuple[str, str]]) -> list[dict]:
    """For each pair ``(a, b)`` of ``names``: the distance of their centroids and the rank of ``b``
    among ``a``'s neighbours (1: ``b`` is the nearest of the other groups; chance: ``groups / 2``)."""
    index = {w: i for i, w in enumerate(names)}
    out = []
    for a, b in pairs:
        if a not in index or b not in index:
            continue
        row = distances[index[a]].clone()
        row[index[a]] = math.inf
        out.append({"pair": f"{a} / {b}", "distance": float(row[index[b]]),
                    "rank": int((row < row[index[b]]).sum()) + 1, "others": len(names) - 1})
    return out


def class_neighbour_rate(distances: Tensor, words: Sequence[str]) -> tuple[float | None, float | None, int]:
    """How often a word's nearest centroid belongs to its own :data:`WORD_CLASSES` class.

    Over the ``words`` that have a class (lower-case matches of words longer than one letter count,
    for text8): ``(rate, chance, n)``
    where ``chance`` is the rate of a random neighbour; ``(None, None, 0)`` if no word has a class.
    """
    exact = {w: c for c, ws in WORD_CLASSES.items() for w in ws}
    folded = {w.lower(): c for w, c in exact.items() if len(w) > 1}   # in text8 "n" is a letter
    cls = [exact.get(w, folded.get(w.lower())) for w in words]
    keep = [i for i, c in enumerate(cls) if c is not None]
    if len(keep) < 2:
        return None, None, 0
    d = distances[keep][:, keep].clone()
    d.fill_diagonal_(math.inf)
    nearest = d.argmin(1).tolist()
    labels = [cls[i] for i in keep]
    rate = sum(labels[i] == labels[j] for i, j in enumerate(nearest)) / len(keep)
    chance = sum((labels.count(c) - 1) / (len(keep) - 1) for c in labels) / len(keep)
    return rate, chance, len(keep)


def unigram_bits(corpus: WordCorpus, train: Tensor, test: Tensor) -> float:
    """Bits per word of ``test`` under the add-one unigram distribution of ``train``: a model that
    ignores context; a model of windows should beat it."""
    counts = torch.bincount(train.flatten(), minlength=corpus.num_classes).double() + 1
    log_p = (counts / counts.sum()).log()
    return float(-log_p[test.flatten()].mean() / math.log(2))


def _bound_bpw(model: torch.nn.Module, x: Tensor, k: int, batch_size: int, progress: bool) -> float:
    lp = evaluate_bound(model, x, k=k, batch_size=batch_size, progress=progress)
    return float(bits_per_dim(lp.double(), x.shape[1]).mean())


def run_one(name: str, config: WordsConfig, corpus: WordCorpus, splits: dict, source: str,
            checkpoint: Path | None, seed: int = 0, device: torch.device | None = None,
            progress: bool = True) -> tuple[dict, torch.nn.Module]:
    """Train one model (or reload it) and evaluate it: ``(metrics, model)`` (the model in eval mode).

    Metrics: ``elbo_bpw``, ``iwbo_bpw`` (bits per word), ``iwbo_k``, ``reconstruction`` and ``kl``
    (nats per window, :func:`~catlib.encodings.elbo_breakdown`), ``wgsd`` (over ``wgsd_vocab``
    words), ``class_neighbour_rate`` / ``class_neighbour_chance`` / ``class_words``, ``steps``,
    ``train_seconds``, ``eval_seconds``, ``device``, ``parameters``, ``losses`` and ``run``.
    """
    device = select_device(device)
    torch.manual_seed(seed)
    model = build(name, config, corpus.num_classes)
    wanted = {"config": asdict(config), "seed": seed, "source": source, "num_classes": corpus.num_classes}
    finished = finished_run_metrics(checkpoint, wanted, config.steps)
    if finished is not None:
        model.load_state_dict(load_checkpoint(checkpoint)["model"])
        return finished, model.to(device).eval()
    if name == "trufl":
        model.layer.set_class_prior(splits["train"])
    result = fit(model, splits["train"], steps=config.steps, batch_size=config.batch_size, lr=config.lr,
                 seed=seed, device=device, checkpoint=checkpoint, progress=progress, desc=name, settings=wanted)
    start = time.perf_counter()
    test = splits["val"][: config.test_windows].to(device)
    torch.manual_seed(seed)
    elbo = _bound_bpw(model, test, 1, 500, progress)
    iwbo = _bound_bpw(model, test[: config.iwbo_windows], config.iwbo_k, 50, progress)
    torch.manual_seed(seed)
    breakdown = elbo_breakdown(model, test)
    vocab = list(range(corpus.num_classes if config.wgsd_words is None else min(config.wgsd_words,
                                                                                  corpus.num_classes)))
    samples = word_samples(model, corpus, vocab, config.samples_per_word, config.window, seed)
    distances, within = centroid_distances(samples)
    rate, chance, n_class = class_neighbour_rate(distances, [corpus.vocab[i] for i in vocab])
    metrics = {"elbo_bpw": elbo, "iwbo_bpw": iwbo, "iwbo_k": config.iwbo_k, "test_windows": len(test),
               "iwbo_windows": min(config.iwbo_windows, len(test)), **breakdown,
               "wgsd": within_group_std(samples), "wgsd_vocab": len(vocab),
               "mean_within_distance": within,
               "mean_centroid_distance": float(distances.sum() / (len(vocab) * (len(vocab) - 1))),
               "class_neighbour_rate": rate, "class_neighbour_chance": chance, "class_words": n_class,
               "latent_dim": samples.shape[-1], "steps": result.steps, "train_seconds": result.seconds,
               "eval_seconds": time.perf_counter() - start, "device": str(device),
               "parameters": sum(p.numel() for p in model.parameters()), "losses": result.losses, "run": wanted}
    if checkpoint is not None:
        save_metrics(checkpoint, metrics)
    return metrics, model.eval()


def load_model(name: str, profile: str, num_classes: int, checkpoint_dir: str | Path = "checkpoints/08_tsne_embeddings",
               device: str | torch.device | None = None) -> torch.nn.Module:
    """The trained model ``name`` of a finished :func:`run_words` run, in eval mode."""
    profile = canonical_profile(profile)
    model = build(name, check_profile(profile, PROFILES), num_classes)
    model.load_state_dict(load_checkpoint(Path(checkpoint_dir) / profile / f"{name}.pt")["model"])
    return model.to(select_device(device)).eval()


def run_words(profile: str = "cpu", checkpoint_dir: str | Path | None = "checkpoints/08_tsne_embeddings",
              data_dir: str | Path = "data", seed: int = 0, device: str | torch.device | None = None,
              names: Sequence[str] | None = None, progress: bool = True) -> dict:
    """Both models of figure 4 for ``profile``, trained or reloaded, evaluated, and sampled.

    Returns ``{"source", "corpus", "splits", "config", "unigram_bpw", "words" ({label: spelling}),
    "substitutes", "rows"}``; each row has ``name``, ``label``, ``model`` (trained, eval mode),
    ``samples`` ``[10, samples_per_word, d]`` of the chosen words, ``tsne`` ``[10 * n, 2]``,
    ``pairs`` (:func:`pair_ranks` of :data:`PAIRS`), ``paper_wgsd`` and the metrics of
    :func:`run_one` (with ``seconds``: training + evaluation + t-SNE).
    """
    config, profile = check_profile(profile, PROFILES), canonical_profile(profile)
    names = list(NAMES if names is None else names)
    unknown = sorted(set(names) - set(NAMES))
    if unknown:
        raise ValueError(f"unknown model(s) {unknown}; expected some of {list(NAMES)}")
    device = select_device(device)
    corpus, source, splits = load_words(config, data_dir, seed)
    words, substitutes = pick_words(corpus)
    ids = [corpus.word_to_index[s] for s in words.values()]
    label_of = {**{w: w for w in words}, **{w: f"{s} (for {w})" for w, s in substitutes.items()}}
    pair_names = [(label_of.get(a, a), label_of.get(b, b)) for a, b in PAIRS]
    rows = []
    for name in names:
        ckpt = Path(checkpoint_dir) / profile / f"{name}.pt" if checkpoint_dir is not None else None
        metrics, model = run_one(name, config, corpus, splits, source, ckpt, seed, device, progress)
        start = time.perf_counter()
        samples = word_samples(model, corpus, ids, config.samples_per_word, config.window, seed + 1)
        tsne = tsne_embedding(samples, seed, config.perplexity)
        distances, _ = centroid_distances(samples)
        rows.append({"name": name, "label": LABELS[name], "model": model, "samples": samples, "tsne": tsne,
                     "word_ids": ids, "pairs": pair_ranks(distances, list(words), pair_names),
                     "paper_wgsd": PAPER_WGSD.get(name), **metrics,
                     "seconds": metrics["train_seconds"] + metrics["eval_seconds"] + time.perf_counter() - start})
    return {"source": source, "corpus": corpus, "splits": splits, "config": config, "words": words,
            "substitutes": substitutes, "unigram_bpw": unigram_bits(corpus, splits["train"],
                                                                    splits["val"][: config.test_windows]),
            "rows": rows}


def main(argv: list[str] | None = None) -> None:
    parser = experiment_parser(__doc__, PROFILES, "checkpoints/08_tsne_embeddings", names=NAMES)
    parser.add_argument("--data-dir", default="data", help="folder holding text8/text8 (read only; default: data)")
    args = parser.parse_args(argv)
    checkpoint_folder(parser, args)
    out = run_words(args.profile, args.checkpoint_dir, args.data_dir, args.seed, args.device, args.only)
    corpus = out["corpus"]
    print(f"corpus: {out['source']}, {len(corpus)} words, K = {corpus.num_classes}; unigram "
          f"{out['unigram_bpw']:.3f} bits per word; words {list(out['words'])}")
    for r in out["rows"]:
        print(f"{r['label']:22s} d={r['latent_dim']} ELBO {r['elbo_bpw']:.3f} IWBO({r['iwbo_k']}) {r['iwbo_bpw']:.3f} "
              f"bits/word; recon {r['reconstruction']:.3f} KL {r['kl']:.3f} nats/window; WGSD {r['wgsd']:.3f} "
              f"(paper {r['paper_wgsd']}); same-class nearest neighbour {r['class_neighbour_rate']} "
              f"(chance {r['class_neighbour_chance']}); {r['steps']} steps, {r['seconds']:.0f} s")
        for p in r["pairs"]:
            print(f"    {p['pair']:22s} distance {p['distance']:.2f}, rank {p['rank']} of {p['others']}")


if __name__ == "__main__":
    main()

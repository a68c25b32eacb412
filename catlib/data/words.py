r"""Words as classes: a word stream over a vocabulary, from real text8 or from a small grammar.

TRUFL's figure 4 (Tan et al., 2022) shows t-SNE plots of samples of :math:`q(z \mid \text{word})`
for ten words (:data:`PAPER_WORDS`). Models see windows ``[batch, L]`` of word indices in
``[0, K)`` from :func:`text8_corpus` (real text, the ``K - 1`` most frequent words plus ``<unk>``)
or :func:`generated_corpus` (a stand-in grammar whose word classes have a function: numbers
before nouns, places after prepositions, verb tense set by time words). Vocabulary order
everywhere: descending count, ties in Python string order (upper case first); ``<unk>``, when
present, is the last index.
"""
from __future__ import annotations

import random
import re
from collections import Counter
from pathlib import Path
from typing import Iterable, Sequence

import torch
from torch import Tensor

from catlib.validation import check_positive_int

__all__ = ["PAPER_WORDS", "WORD_CLASSES", "VERB_FORMS", "PAST_MARKERS", "TEXT8_URL", "WordCorpus",
           "generated_sentences", "generated_corpus", "text8_corpus", "load_corpus", "chosen_words"]

#: The ten words of TRUFL's figure 4 (Penn Treebank spelling; ``N`` stands for a number there).
PAPER_WORDS = ("N", "two", "Canada", "walk", "fly", "one", "three", "Singapore", "walked", "flew")
TEXT8_URL = "http://mattmahoney.net/dc/text8.zip"
UNK, EOS = "<unk>", "."

#: Motion verbs of the grammar, base form -> past form.
VERB_FORMS = {"walk": "walked", "fly": "flew", "run": "ran", "swim": "swam", "drive": "drove",
              "sail": "sailed", "ride": "rode", "travel": "traveled", "go": "went", "move": "moved"}
_NOUNS = {"bird": "birds", "man": "men", "woman": "women", "child": "children", "student": "students",
          "pilot": "pilots", "tourist": "tourists", "dog": "dogs"}
_UNITS = {"day": "days", "week": "weeks", "month": "months", "year": "years"}
_NUMBERS = ("one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "N")
_PLACES = ("Canada", "Singapore", "France", "Japan", "Brazil", "India", "Egypt", "Paris", "London", "Tokyo")
_WANTED = ("wanted", "planned", "hoped", "tried")
_PREPOSITIONS = ("to", "from", "across", "near", "in")
#: Words that make a generated sentence past tense (its motion verbs not after will/to are past).
PAST_MARKERS = ("yesterday", "last", "ago")

#: Every word of the generated grammar by class (each word in one class), e.g. to colour plots.
WORD_CLASSES: dict[str, tuple[str, ...]] = {
    "number": _NUMBERS, "place": _PLACES, "verb (base)": tuple(VERB_FORMS), "verb (past)": tuple(VERB_FORMS.values()),
    "noun (singular)": tuple(_NOUNS), "noun (plural)": tuple(_NOUNS.values()),
    "pronoun": ("I", "you", "he", "she", "we", "they"), "determiner": ("the", "a", "some", "many"),
    "preposition": _PREPOSITIONS, "time unit": tuple(_UNITS) + tuple(_UNITS.values()),
    "time word": PAST_MARKERS + ("tomorrow", "next", "every"), "other": _WANTED + ("will", "and", EOS)}


def _ranked(counts: dict[str, int], vocab_size: int | None, unk: str = UNK) -> list[str]:
    """Words by descending count, ties in string order; with ``vocab_size``, the top ``vocab_size - 1`` + unk."""
    ranked = sorted((w for w in counts if vocab_size is None or w != unk), key=lambda w: (-counts[w], w))
    return ranked if vocab_size is None else ranked[: check_positive_int("vocab_size", vocab_size, 2) - 1] + [unk]


class WordCorpus:
    """A stream of word indices ``tokens [N]`` over ``vocab`` (``K`` words, ``vocab[i]`` has index ``i``).

    Args:
        tokens: LongTensor ``[N]`` with entries in ``[0, K)``; vocab: the ``K`` distinct words in index order.
        unk: the word of ``vocab`` that :meth:`encode` maps unknown words to; ``None``: they raise.

    Attributes ``vocab``, ``word_to_index``, ``num_classes`` (``K``), ``tokens`` and ``unk``.

    >>> c = WordCorpus.from_words("the cat saw the dog".split())
    >>> c.vocab, c.tokens.tolist()
    (['the', 'cat', 'dog', 'saw'], [0, 1, 3, 0, 2])
    >>> c.decode(c.encode("the dog"))
    ['the', 'dog']
    >>> c.windows(2)
    tensor([[0, 1],
            [3, 0]])
    """

    def __init__(self, tokens: Tensor, vocab: Sequence[str], unk: str | None = None):
        self.vocab, self.num_classes = list(vocab), len(vocab)   # num_classes: K
        self.word_to_index = {w: i for i, w in enumerate(self.vocab)}
        if len(self.word_to_index) != len(self.vocab):
            raise ValueError(f"vocab must hold distinct words, got {len(self.vocab)} with duplicates")
        if unk is not None and unk not in self.word_to_index:
            raise ValueError(f"unk must be a word of vocab, got {unk!r}")
        self.unk = unk
        self.tokens = self._check_indices(tokens, "tokens")

    @classmethod
    def from_words(cls, words: Iterable[str], vocab_size: int | None = None, unk: str = UNK,
                   also: Iterable[str] = ()) -> "WordCorpus":
        """Count ``words``, order the vocabulary (module docstring), encode the stream. With ``vocab_size``,
        keep the ``vocab_size - 1`` most frequent words plus ``unk`` (last index, for all others);
        without, every word and no ``unk``. Words in ``also`` join the ranking with count 0 if absent."""
        words = list(words)
        counts = {**dict.fromkeys(also, 0), **Counter(words)}
        corpus = cls(torch.zeros(0, dtype=torch.long), _ranked(counts, vocab_size, unk), unk if vocab_size else None)
        corpus.tokens = corpus.encode(words)
        return corpus

    def __len__(self) -> int:
        return len(self.tokens)

    def __repr__(self) -> str:
        return f"WordCorpus({len(self)} words, K={self.num_classes}, unk={self.unk!r})"

    @property
    def counts(self) -> Tensor:
        """How often each word occurs in the stream, ``[K]``."""
        return torch.bincount(self.tokens, minlength=self.num_classes)

    def _check_indices(self, x, name: str) -> Tensor:
        x = torch.as_tensor(x)
        if x.dim() != 1 or x.is_floating_point() or x.is_complex() or x.dtype == torch.bool:
            raise ValueError(f"{name} must be a 1-D integer tensor of word indices, got {list(x.shape)} {x.dtype}")
        bad = (x < 0) | (x >= self.num_classes)
        if bad.any():
            i = int(bad.nonzero()[0])
            raise ValueError(f"{name} must hold word indices in [0, {self.num_classes}), got {int(x[i])} at {i}")
        return x.long()

    def encode(self, words: str | Sequence[str]) -> Tensor:
        """Words (a sequence, or one string split at whitespace) to indices ``[len(words)]``."""
        words = words.split() if isinstance(words, str) else list(words)
        ids = [self.word_to_index.get(w, self.word_to_index.get(self.unk)) for w in words]
        if None in ids:
            raise ValueError(f"words holds {words[ids.index(None)]!r} at position {ids.index(None)}, which is not "
                             f"in the vocabulary, and the corpus has no unk word")
        return torch.tensor(ids, dtype=torch.long)

    def decode(self, indices: Tensor | Sequence[int]) -> list[str]:
        """Indices ``[L]`` back to words."""
        return [self.vocab[i] for i in self._check_indices(indices, "indices").tolist()]

    def windows(self, length: int) -> Tensor:
        """Non-overlapping windows ``[N // length, length]`` of the stream; the tail is dropped."""
        return _windows(self.tokens, length, "the corpus")

    def sample_windows(self, n: int, length: int, generator: torch.Generator | None = None) -> Tensor:
        """``n`` windows ``[n, length]`` starting at uniform random positions (they may overlap)."""
        n, length = check_positive_int("n", n), _windows(self.tokens, length, "the corpus").shape[1]
        start = torch.randint(0, len(self) - length + 1, (n,), generator=generator)
        return self.tokens[start[:, None] + torch.arange(length)]

    def splits(self, length: int, val_fraction: float = 0.1) -> dict[str, Tensor]:
        """Windows of a contiguous split: the first ``1 - val_fraction`` of the stream is ``"train"``,
        the rest ``"val"``; each ``[n, length]``, no window crosses the cut.

        >>> {k: tuple(v.shape) for k, v in WordCorpus.from_words("abcdefghij").splits(2, 0.2).items()}
        {'train': (4, 2), 'val': (1, 2)}
        """
        if not 0 < val_fraction < 1:
            raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
        cut = round(len(self) * (1 - val_fraction))
        parts = {"train": self.tokens[:cut], "val": self.tokens[cut:]}
        return {k: _windows(part, length, f"the {k} part") for k, part in parts.items()}


def _windows(tokens: Tensor, length: int, where: str) -> Tensor:
    if check_positive_int("length", length) > len(tokens):
        raise ValueError(f"length must be at most the number of words in {where} ({len(tokens)}), got {length}")
    return tokens[: len(tokens) // length * length].view(-1, length)


def _sentence(r: random.Random) -> list[str]:
    """One sentence of the grammar described in :func:`generated_sentences`."""
    kind = r.choice(("past", "future", "every", "wanted"))
    unit, later, number = r.choice(tuple(_UNITS)), r.choice(("week", "month", "year")), r.choice(_NUMBERS)
    amount = [number, unit if number == "one" else _UNITS[unit]]             # "one day", "N weeks"
    time = r.choice({"past": [["yesterday"], ["last", later], amount + ["ago"]],
                     "future": [["tomorrow"], ["next", later], ["in"] + amount],
                     "every": [["every", unit]]}["past" if kind == "wanted" else kind])
    predicate = {"future": ["will"], "wanted": [r.choice(_WANTED), "to"]}.get(kind, [])
    for i in range(2 if kind != "wanted" and r.random() < 0.25 else 1):   # "walked to X and flew to Y"
        verb, (a, b) = r.choice(tuple(VERB_FORMS)), r.sample(_PLACES, 2)
        trip = ["from", a, "to", b] if r.random() < 0.2 else [r.choice(_PREPOSITIONS), a]
        predicate += (["and"] if i else []) + [VERB_FORMS[verb] if kind == "past" else verb] + trip
    noun = r.choice(tuple(_NOUNS))
    if r.random() < 0.3:   # a pronoun; habitual sentences need one that takes the base form
        subject = [r.choice(("I", "you", "we", "they") if kind == "every" else WORD_CLASSES["pronoun"])]
    elif kind == "every" or r.random() < 0.5:   # plural, after a number (not "one") half of the time
        subject = [r.choice(_NUMBERS[1:]) if r.random() < 0.5 else r.choice(("the", "some", "many")), _NOUNS[noun]]
    else:
        subject = [r.choice(("the", "a", "one", "one")), noun]
    return time + subject + predicate if r.random() < 0.3 else subject + predicate + time


def generated_sentences(num_sentences: int, seed: int = 0) -> list[list[str]]:
    """Sentences of the grammar, seeded. Four kinds, equally likely, the time phrase first (30%) or last:
    past ("two birds flew to Japan N days ago"), future ("they will fly to Singapore tomorrow"),
    habitual ("N birds fly to Singapore every day") and wanted-to ("she wanted to walk to France last
    year"). Tense rule: a motion verb right after "will" or "to" is in the base form; any other is in
    the past form exactly when its sentence holds a :data:`PAST_MARKERS` word. "one" goes with a
    singular noun or unit, other numbers with plurals; places follow a preposition.

    >>> for s in generated_sentences(3, seed=0):
    ...     print(" ".join(s))
    I tried to ride from Brazil five years ago
    the dogs fly from India every week
    the children sailed to Japan seven days ago
    """
    check_positive_int("num_sentences", num_sentences)
    r = random.Random(seed)
    return [_sentence(r) for _ in range(num_sentences)]


def generated_corpus(num_sentences: int = 20_000, seed: int = 0, eos: bool = True) -> WordCorpus:
    """The stand-in corpus: :func:`generated_sentences` concatenated, each followed by ``"."`` when
    ``eos``. The vocabulary is every word of :data:`WORD_CLASSES` (fixed, whatever the size;
    without ``eos`` it lacks ``"."``), ordered by count in this stream; there is no ``<unk>``.

    >>> c = generated_corpus(1000, seed=0)
    >>> c.num_classes, len(c), all(w in c.word_to_index for w in PAPER_WORDS)
    (93, 9654, True)
    """
    words = [w for s in generated_sentences(num_sentences, seed) for w in s + ([EOS] if eos else [])]
    return WordCorpus.from_words(words, also=[w for ws in WORD_CLASSES.values() for w in ws if eos or w != EOS])


_NOT_TEXT8 = re.compile(rb"[^a-z ]")
_BLOCK = 1 << 24   # bytes of text8 read at a time


def _text8_file(path: str | Path) -> Path:
    """``path`` itself, or ``path/text8`` (also ``path/text8/text8``) when ``path`` is a folder."""
    p = Path(path)
    for _ in range(2):
        p = p / "text8" if p.is_dir() else p
    if not p.is_file():
        d = p.parent if p.name == "text8" else p
        raise FileNotFoundError(f"text8 not found at {p}; get it with: mkdir -p {d} && curl -L -o {d}/text8.zip "
                                f"{TEXT8_URL} && unzip {d}/text8.zip -d {d}")
    return p


def text8_corpus(path: str | Path, vocab_size: int = 10_000, max_words: int | None = None) -> WordCorpus:
    """Real words from text8 (Mahoney, 2011: 100M characters of Wikipedia, lowercase a-z and spaces):
    the ``vocab_size - 1`` most frequent words (of the first ``max_words``) plus ``<unk>`` (last).
    ``path`` is the file or a folder holding it (``data/``). A missing file raises ``FileNotFoundError``
    with the command that fetches it; other characters, or no words, raise ``ValueError``."""
    file = _text8_file(path)
    if max_words is not None:
        check_positive_int("max_words", max_words)
    table: dict[bytes, int] = {}   # word -> provisional id, in order of first sight
    parts, seen, rest, start = [], 0, b"", 0   # start: file offset of data[0]
    with open(file, "rb") as f:
        while True:   # read a block, cut after its last space
            block = f.read(_BLOCK)
            data = rest + block if block else rest.rstrip(b"\n")   # tolerate a final newline
            cut = data.rfind(b" ") + 1 if block else len(data)   # the rest waits for the next block
            bad = _NOT_TEXT8.search(data, 0, cut)
            if bad:
                hint = " (a zip archive: unzip it first)" if data[:2] == b"PK" and start == 0 else ""
                raise ValueError(f"{file} is not text8-like: expected lowercase words a-z separated by spaces, "
                                 f"found {data[bad.start():bad.start() + 1]!r} at byte {start + bad.start()}{hint}")
            words = data[:cut].split()[: None if max_words is None else max_words - seen]
            parts.append(torch.tensor([table.setdefault(w, len(table)) for w in words], dtype=torch.long))
            seen, rest, start = seen + len(words), data[cut:], start + cut
            if not block or seen == max_words:
                break
    if not table:
        raise ValueError(f"{file} holds no words; expected text8: lowercase words a-z separated by spaces")
    ids, names = torch.cat(parts), [w.decode("ascii") for w in table]
    vocab = _ranked(dict(zip(names, torch.bincount(ids).tolist())), vocab_size)
    rank = {w: i for i, w in enumerate(vocab[:-1])}
    remap = torch.tensor([rank.get(w, len(vocab) - 1) for w in names], dtype=torch.long)
    return WordCorpus(remap[ids], vocab, unk=UNK)


def load_corpus(data_dir: str | Path, vocab_size: int = 10_000, prefer_text8: bool = True, max_words: int | None = None,
                num_sentences: int = 20_000, seed: int = 0) -> tuple[WordCorpus, str]:
    """``(corpus, source)``: text8 from ``data_dir`` when ``prefer_text8`` and the file is there
    (``source = "text8 (real)"``), else :func:`generated_corpus` (``source = "generated stand-in"``,
    whose vocabulary is fixed and ignores ``vocab_size``). A corrupt text8 file still raises.

    >>> load_corpus("/nonexistent", num_sentences=10)[1]
    'generated stand-in'
    """
    if prefer_text8:
        try:
            return text8_corpus(data_dir, vocab_size, max_words), "text8 (real)"
        except FileNotFoundError:
            pass
    return generated_corpus(num_sentences, seed), "generated stand-in"


def chosen_words(corpus: WordCorpus, wanted: Sequence[str] = PAPER_WORDS) -> tuple[dict[str, str], list[str]]:
    """Map each wanted word to its spelling in ``corpus``: ``({wanted: spelling}, [missing])``.

    An exact match first, else a case-insensitive one (the most frequent spelling), except for one-letter
    words: in lowercase text "n" is a letter, not the Penn Treebank's number "N". ``<unk>`` is never found.

    >>> chosen_words(WordCorpus.from_words("canada n two two".split()), ["two", "Canada", "N", "fly"])
    ({'two': 'two', 'Canada': 'canada'}, ['N', 'fly'])
    """
    folded = {w.lower(): w for w in reversed(corpus.vocab)}   # the most frequent spelling wins
    hits = {w: w if w in corpus.word_to_index else folded.get(w.lower()) if len(w) > 1 else None for w in wanted}
    found = {w: hit for w, hit in hits.items() if hit is not None and hit != corpus.unk}
    return found, [w for w in wanted if w not in found]

r"""Character corpora text8 and enwik8 (Mahoney, 2011), loaded as in the papers, plus a Markov stand-in.

Both files are the first :math:`10^8` bytes of an English Wikipedia dump: enwik8 raw (XML,
markup, UTF-8), text8 cleaned to lowercase ``a-z`` and single spaces. We follow the official
code of Argmax Flows (``didriknielsen/argmax_flows``, ``data/dataset_text8.py`` and
``data/dataset_enwik8.py``) and Multinomial Diffusion (``ehoogeboom/multinomial_diffusion``,
``text_diffusion/datasets/``):

- **splits**: the first 90M characters are ``"train"``, the next 5M ``"valid"``, the last 5M
  ``"test"``, in file order (no shuffling). The official code reports test numbers after training
  on train + valid (``--validation False`` concatenates them); :meth:`TextCorpus.train_and_valid`
  gives that set.
- **chunks**: each split is cut into non-overlapping chunks of ``chunk_len`` characters, 256 for
  text8 and 320 for enwik8 (the official ``text8_f256`` / ``enwik8_f320``); a split's tail
  shorter than a chunk is dropped, as the official text8 code does (the enwik8 code reshapes
  without dropping, which only works because 320 divides 90M and 5M). So text8 has
  351,562 / 19,531 / 19,531 chunks (128, 64 and 64 characters dropped), enwik8 281,250 / 15,625 /
  15,625 (nothing dropped).
- **vocabulary**: text8 has 27 classes in the order of :data:`catlib.data.text.TEXT8_ALPHABET`
  (space = 0, ``a`` = 1, ..., ``z`` = 26), which is the official ``sorted(set(text))``;
  enwik8 has 256 classes, class ``i`` is byte value ``i`` (the official identity ``stoi``;
  only 205 byte values occur in the file, the others are never seen).

Files live at ``data_dir/<name>/<name>`` (the zip beside them); :func:`download_text_corpus`
fetches and unpacks them. Checks (each failure raises, nothing is repaired silently): the size
(exactly 100,000,000 bytes), the content (text8: only ``' '`` and ``a-z``, the first bad byte is
named) and the SHA-256 of the unpacked file. The checksums in :data:`TEXT8` and :data:`ENWIK8`
are not published by the official repositories; we took them from several independent public
projects that pin these files and agree on them, and verify the unpacked file (not the zip,
whose bytes a mirror may re-pack).

:class:`MarkovText` and :func:`synthetic_text_corpus` give a clearly labelled **stand-in**: a
word-like Markov chain over the text8 alphabet whose entropy rate (and the exact entropy of a
chunk) is known in closed form, so that a model's bits per character can be compared with the
truth. Its :class:`TextCorpus` says ``stand_in=True`` and
``source="synthetic stand-in (not text8): ..."``.
"""
from __future__ import annotations

import hashlib
import http.client
import os
import shutil
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from torch import Tensor

from catlib.data.splits import SPLITS, Splits
from catlib.data.text import TEXT8_ALPHABET, decode_text, encode_text
from catlib.validation import check_positive_int

__all__ = ["TextCorpusSpec", "TEXT8", "ENWIK8", "TEXT_CORPORA", "TextCorpus", "download_text_corpus",
           "load_text_corpus", "MarkovText", "synthetic_text", "synthetic_text_corpus"]



@dataclass(frozen=True)
class TextCorpusSpec:
    """What a character corpus is and how the papers split it.

    Args:
        name: file name inside the zip and folder name under ``data_dir``.
        url: where the zip is downloaded from.
        num_bytes: size of the unpacked file.
        sha256: SHA-256 of the unpacked file (hex).
        zip_bytes, zip_sha256: size and SHA-256 of the zip as served (for reference; not enforced).
        split_sizes: characters of ``(train, valid, test)``, in file order.
        chunk_len: characters per chunk.
        alphabet: the characters in class order, or ``None`` for raw bytes (class ``i`` = byte ``i``).

    >>> TEXT8.num_chunks()
    {'train': 351562, 'valid': 19531, 'test': 19531}
    >>> ENWIK8.num_chunks(), ENWIK8.num_classes
    ({'train': 281250, 'valid': 15625, 'test': 15625}, 256)
    """

    name: str
    url: str
    num_bytes: int
    sha256: str
    zip_bytes: int
    zip_sha256: str
    split_sizes: tuple[int, int, int]
    chunk_len: int
    alphabet: str | None

    @property
    def num_classes(self) -> int:
        return 256 if self.alphabet is None else len(self.alphabet)

    def num_chunks(self, chunk_len: int | None = None) -> dict[str, int]:
        """Chunks per split at the official sizes (a split's tail shorter than a chunk is dropped)."""
        length = check_positive_int("chunk_len", self.chunk_len if chunk_len is None else chunk_len)
        return {k: n // length for k, n in zip(SPLITS, self.split_sizes)}


#: text8: 100M characters, 27 classes, chunks of 256.
TEXT8 = TextCorpusSpec(
    name="text8", url="http://mattmahoney.net/dc/text8.zip", num_bytes=100_000_000,
    sha256="6e890197040d37d85beb962ae1f041ff1d9a9ca8d20c7d99c85027eebf51dca7",
    zip_bytes=31_344_016, zip_sha256="a6640522afe85d1963ad56c05b0ede0a0c000dddc9671758a6cc09b7a38e5232",
    split_sizes=(90_000_000, 5_000_000, 5_000_000), chunk_len=256, alphabet=TEXT8_ALPHABET)
#: enwik8: 100M bytes, 256 classes (byte values), chunks of 320.
ENWIK8 = TextCorpusSpec(
    name="enwik8", url="http://mattmahoney.net/dc/enwik8.zip", num_bytes=100_000_000,
    sha256="2b49720ec4d78c3c9fabaee6e4179a5e997302b3a70029f30f2d582218c024a8",
    zip_bytes=36_445_475, zip_sha256="547994d9980ebed1288380d652999f38a14fe291a6247c157c3d33d4932534bc",
    split_sizes=(90_000_000, 5_000_000, 5_000_000), chunk_len=320, alphabet=None)
#: The corpora by name (functions look them up here at call time).
TEXT_CORPORA: dict[str, TextCorpusSpec] = {"text8": TEXT8, "enwik8": ENWIK8}


def _spec(name: str) -> TextCorpusSpec:
    if name not in TEXT_CORPORA:
        raise ValueError(f"name must be one of {sorted(TEXT_CORPORA)}, got {name!r}")
    return TEXT_CORPORA[name]


def _manual_command(spec: TextCorpusSpec, data_dir: str | Path) -> str:
    d = Path(data_dir) / spec.name
    return f"mkdir -p {d} && curl -L -o {d}/{spec.name}.zip {spec.url} && unzip -o {d}/{spec.name}.zip -d {d}"


def _fix(spec: TextCorpusSpec, data_dir: str | Path) -> str:
    return (f"catlib.data.download_text_corpus({spec.name!r}, {str(data_dir)!r}), or by hand: "
            f"{_manual_command(spec, data_dir)}")


class TextCorpus(Splits):
    """Chunked character splits of one corpus: ``splits[k]`` is ``[num_chunks, chunk_len]``.

    Args:
        name: ``"text8"``, ``"enwik8"`` or a stand-in's name.
        splits: ``{"train", "valid", "test"}`` -> integer tensors ``[n_k, chunk_len]`` in ``[0, K)``.
        alphabet: characters in class order, or ``None`` for bytes (``K = 256``).
        source: where the data came from, in words (a stand-in says so here).
        stand_in: ``True`` for synthetic data that only stands in for the real corpus.
        path: the file read, if any.
        checksum_verified: whether the file's SHA-256 was checked against the spec.
        entropy_bits_per_char: exact entropy of a chunk per character, where known (stand-ins).

    Attributes ``num_classes`` (``K``) and ``chunk_len``; ``corpus["train"]`` or ``corpus.train``.

    >>> c = synthetic_text_corpus((64, 32, 32), chunk_len=16, seed=0)
    >>> c  # doctest: +ELLIPSIS
    TextCorpus('synthetic', train [4, 16], valid [2, 16], test [2, 16], K=27, synthetic stand-in (not text8): ...)
    >>> c.stand_in, c.decode(c.train[0]) == decode_text(c.train[0])
    (True, True)
    """

    def __init__(self, name: str, splits: dict[str, Tensor], alphabet: str | None, source: str,
                 stand_in: bool = False, path: Path | None = None, checksum_verified: bool = False,
                 entropy_bits_per_char: float | None = None):
        if set(splits) != set(SPLITS):
            raise ValueError(f"splits must have the keys {list(SPLITS)}, got {list(splits)}")
        lengths = {int(x.shape[-1]) for x in splits.values()}
        if len(lengths) != 1 or any(x.dim() != 2 for x in splits.values()):
            raise ValueError(f"splits must be [num_chunks, chunk_len] with one chunk_len, got "
                             f"{ {k: list(x.shape) for k, x in splits.items()} }")
        self.name, self.splits, self.alphabet, self.source = name, {k: splits[k] for k in SPLITS}, alphabet, source
        self.stand_in, self.path, self.checksum_verified = stand_in, path, checksum_verified
        self.entropy_bits_per_char = entropy_bits_per_char
        self.num_classes = 256 if alphabet is None else len(alphabet)
        self.chunk_len = lengths.pop()

    def train_and_valid(self) -> Tensor:
        """``train`` and ``valid`` chunks stacked, ``[n_train + n_valid, chunk_len]``: what the official code
        trains on before it reports test numbers."""
        return torch.cat([self.train, self.valid])

    def __repr__(self) -> str:
        shapes = ", ".join(f"{k} {list(x.shape)}" for k, x in self.splits.items())
        return f"TextCorpus({self.name!r}, {shapes}, K={self.num_classes}, {self.source})"

    def encode(self, text: str | bytes) -> Tensor:
        """A string (text8-like) or bytes (enwik8) to class indices ``[len(text)]``."""
        if self.alphabet is None:
            data = text.encode("utf-8") if isinstance(text, str) else bytes(text)
            return torch.tensor(list(data), dtype=torch.long)
        return encode_text(text, self.alphabet)

    def decode(self, x: Tensor) -> str | bytes:
        """Class indices ``[L]`` back to a string (or ``bytes`` for a byte corpus)."""
        if self.alphabet is not None:
            return decode_text(x.long(), self.alphabet)
        if x.dim() != 1:
            raise ValueError(f"x must be one sequence [L] of byte values, got shape {list(x.shape)}")
        bad = (x < 0) | (x > 255)
        if bad.any():
            i = int(bad.nonzero()[0])
            raise ValueError(f"x must hold byte values in [0, 256), got {int(x[i])} at position {i}")
        return bytes(x.tolist())


def _fetch_url(url: str, dest: Path) -> None:
    """Download ``url`` to ``dest`` (the default ``fetch`` of :func:`download_text_corpus`)."""
    with urllib.request.urlopen(url, timeout=60) as response, open(dest, "wb") as out:
        shutil.copyfileobj(response, out, length=1 << 20)


def download_text_corpus(name: str, data_dir: str | Path = "data",
                         fetch: Callable[[str, Path], None] | None = None) -> Path:
    """Make ``data_dir/<name>/<name>`` exist and verify it; returns its path.

    Steps, each skipped when its result is already there: download the zip from the spec's URL to
    ``data_dir/<name>/<name>.zip`` (through ``fetch(url, dest)``, by default ``urllib``); unpack the
    member ``<name>``; check size, content and SHA-256 (see the module docstring).

    Raises ``ConnectionError`` when the download fails (offline), naming the URL and the command
    that fetches the file by hand; ``ValueError`` for a damaged zip or a file that fails a check.
    """
    spec = _spec(name)
    folder = Path(data_dir) / spec.name
    target, zip_path = folder / spec.name, folder / f"{spec.name}.zip"
    if target.is_file():
        _verify(np.fromfile(target, dtype=np.uint8), spec, target, data_dir, None)
        return target
    folder.mkdir(parents=True, exist_ok=True)
    if not zip_path.is_file():
        part = folder / f"{spec.name}.zip.part"
        try:
            (fetch or _fetch_url)(spec.url, part)
        except (OSError, http.client.HTTPException) as err:
            part.unlink(missing_ok=True)
            raise ConnectionError(f"could not download {spec.name} from {spec.url} ({err}). Fetch it by hand "
                                  f"(on a machine with internet access, then copy {folder} here): "
                                  f"{_manual_command(spec, data_dir)}") from err
        os.replace(part, zip_path)
    part = folder / f"{spec.name}.part"
    try:
        with zipfile.ZipFile(zip_path) as z:
            if spec.name not in z.namelist():
                raise ValueError(f"{zip_path} holds {z.namelist()[:5]}, not the file {spec.name!r}; delete it and "
                                 f"run {_fix(spec, data_dir)}")
            with z.open(spec.name) as src, open(part, "wb") as out:
                shutil.copyfileobj(src, out, length=1 << 20)
    except (zipfile.BadZipFile, EOFError) as err:
        part.unlink(missing_ok=True)
        raise ValueError(f"{zip_path} is not a complete zip archive ({err}; partial download?); delete it and "
                         f"run {_fix(spec, data_dir)}") from err
    os.replace(part, target)
    _verify(np.fromfile(target, dtype=np.uint8), spec, target, data_dir, None)
    return target


def _verify(data: np.ndarray, spec: TextCorpusSpec, path: Path, data_dir: str | Path,
            split_sizes: tuple[int, int, int] | None, check_sum: bool = True) -> bool:
    """Check size (when ``split_sizes`` is None), content and checksum; returns whether the checksum was checked."""
    size = len(data)
    if split_sizes is None and size != spec.num_bytes:
        raise ValueError(f"{path} has {size} bytes, expected {spec.num_bytes} (partial download?); delete it and "
                         f"run {_fix(spec, data_dir)}")
    if bytes(data[:4]) == b"PK\x03\x04":
        raise ValueError(f"{path} is a zip archive, not the unpacked {spec.name}; rename and unzip it: "
                         f"mv {path} {path}.zip && unzip -o {path}.zip -d {path.parent}")
    if spec.alphabet is not None:
        table = np.full(256, 255, dtype=np.uint8)
        table[np.frombuffer(spec.alphabet.encode("ascii"), dtype=np.uint8)] = np.arange(len(spec.alphabet))
        bad = table[data] == 255
        if bad.any():
            pos = int(np.argmax(bad))
            raise ValueError(f"{path} is not {spec.name}: byte {pos} is {bytes(data[pos:pos + 1])!r}, expected only "
                             f"the characters {spec.alphabet!r}; delete it and run {_fix(spec, data_dir)}")
    if size != spec.num_bytes or not check_sum:
        return False
    digest = hashlib.sha256(data).hexdigest()
    if digest != spec.sha256:
        raise ValueError(f"{path} has SHA-256 {digest}, expected {spec.sha256} (a corrupt or different file); "
                         f"delete it and run {_fix(spec, data_dir)}")
    return True


def _split_sizes(split_sizes, size: int, path: Path) -> tuple[int, int, int] | None:
    if split_sizes is None:
        return None
    if isinstance(split_sizes, str):
        if split_sizes != "proportional":
            raise ValueError(f"split_sizes must be None, 'proportional' or three positive integers, "
                             f"got {split_sizes!r}")
        train, valid = size * 90 // 100, size * 5 // 100
        return train, valid, size - train - valid
    sizes = tuple(split_sizes)
    if len(sizes) != 3:
        raise ValueError(f"split_sizes must be three sizes (train, valid, test), got {split_sizes!r}")
    for k, n in zip(SPLITS, sizes):
        check_positive_int(f"split_sizes[{k!r}]", n)
    if sum(sizes) > size:
        raise ValueError(f"{path} has {size} bytes, fewer than the {sum(sizes)} that split_sizes {sizes} asks for")
    return sizes  # type: ignore[return-value]


def _chunks(x: Tensor, chunk_len: int, split: str) -> Tensor:
    n = len(x) // chunk_len
    if n == 0:
        raise ValueError(f"the {split} split has {len(x)} characters, fewer than one chunk of chunk_len={chunk_len}")
    return x[: n * chunk_len].view(n, chunk_len)


def load_text_corpus(name: str, data_dir: str | Path = "data", chunk_len: int | None = None,
                     split_sizes: Sequence[int] | str | None = None, verify: bool = True,
                     dtype: torch.dtype = torch.long) -> TextCorpus:
    """text8 or enwik8 from ``data_dir/<name>/<name>``, split and chunked as in the papers (module docstring).

    Args:
        name: ``"text8"`` or ``"enwik8"``.
        data_dir: the folder that holds ``<name>/<name>`` (see :func:`download_text_corpus`).
        chunk_len: characters per chunk; default 256 (text8) or 320 (enwik8).
        split_sizes: ``None`` (the papers' 90M / 5M / 5M; the file must have exactly 100M bytes),
            three sizes ``(train, valid, test)`` taken from the start of the file (for smoke runs and
            tests; the file must be at least that long), or ``"proportional"`` (90% / 5% / the rest of
            whatever the file holds). The checksum is checked only when the file has the full size.
        verify: check the SHA-256 (about 0.3 s); size and content are always checked.
        dtype: ``torch.long`` (default; text8's train split then takes 0.7 GB) or ``torch.uint8``.

    Returns a :class:`TextCorpus` with ``splits[k]`` of shape ``[num_chunks_k, chunk_len]``.

    Raises ``FileNotFoundError`` (with the command that fetches the file) when it is missing and
    ``ValueError`` naming the file for a wrong size, a bad character (its position) or a checksum mismatch.
    """
    spec = _spec(name)
    chunk_len = check_positive_int("chunk_len", spec.chunk_len if chunk_len is None else chunk_len)
    if dtype not in (torch.long, torch.uint8):
        raise ValueError(f"dtype must be torch.long or torch.uint8, got {dtype}")
    path = Path(data_dir) / spec.name / spec.name
    if not path.is_file():
        zip_path = path.parent / f"{spec.name}.zip"
        hint = (f"; the zip is there, unpack it: unzip -o {zip_path} -d {path.parent}" if zip_path.is_file() else "")
        raise FileNotFoundError(f"{spec.name} not found at {path}{hint}; get it with {_fix(spec, data_dir)}")
    data = np.fromfile(path, dtype=np.uint8)
    sizes = _split_sizes(split_sizes, len(data), path)
    checked = _verify(data, spec, path, data_dir, sizes, check_sum=verify)
    sizes = spec.split_sizes if sizes is None else sizes
    if spec.alphabet is not None:
        table = np.zeros(256, dtype=np.uint8)
        table[np.frombuffer(spec.alphabet.encode("ascii"), dtype=np.uint8)] = np.arange(len(spec.alphabet))
        data = table[data]
    stream = torch.from_numpy(data)
    bounds = np.cumsum((0,) + tuple(sizes))
    splits = {k: _chunks(stream[a:b], chunk_len, k).to(dtype) for k, a, b in zip(SPLITS, bounds[:-1], bounds[1:])}
    what = "verified" if checked else "checksum not checked"
    return TextCorpus(spec.name, splits, spec.alphabet, f"{spec.name} (real, {path}, {what})", stand_in=False,
                      path=path, checksum_verified=checked)


# --------------------------------------------------------------------------- the Markov stand-in
#: Common English words by rank, the lexicon of :meth:`MarkovText.word_like` (weight 1 / rank).
LEXICON = ("the of and to a in is it that was he for on are as with his they at be this from i have or by "
           "one had not but what all were when we there can an your which their said if do will each about how "
           "up out them then she many some so these would other into has more her two like him see time could "
           "no make than first been its who now people my made over did down only way find use may water long "
           "little very after words called just where most know get through back much before go good new write "
           "our used me man too any day same right look think also around another came come work three word must "
           "because does part even place well such here take why things help put years different away again off "
           "went old number great tell men say small every found still between name should home big give air line "
           "set own under read last never us left end along while might next sound below saw something thought both "
           "few those always looked show large often together asked house world going want school important until "
           "form food keep children feet land side without boy once animals life enough took sometimes four head "
           "above kind began almost live page got earth need far hand high year mother light parts country "
           "father").split()


def _entropy_bits(p: np.ndarray, axis: int = -1) -> np.ndarray:
    """Entropy in bits of distributions along ``axis`` (0 log 0 = 0)."""
    logs = np.log2(np.where(p > 0, p, 1.0))
    return -(p * logs).sum(axis=axis)


class MarkovText:
    r"""A stationary Markov chain of order ``k`` over ``K`` characters, with exact entropies.

    ``transition[c_1, ..., c_k, c]`` is :math:`P(x_t = c \mid x_{t-k..t-1} = c_{1..k})`. The chain
    starts in its stationary distribution :math:`\pi` over ``k``-grams (:meth:`stationary`), so
    every window is distributed alike, and

    .. math::
        h = \sum_{c_{1..k}} \pi(c_{1..k})\, H\big(P(\cdot \mid c_{1..k})\big), \qquad
        H(X_1, \dots, X_L) = H(\pi) + (L - k)\, h \quad (L \ge k),

    in bits: :meth:`entropy_rate_bits` and :meth:`sequence_entropy_bits`. A model that sees
    chunks of ``L`` characters can at best reach :math:`H(X_{1..L}) / L` bits per character,
    slightly above :math:`h` because a chunk's first characters have no context.

    Args:
        transition: float tensor ``[K] * (k + 1)``, rows non-negative and summing to one; the chain
            must have a unique stationary distribution (one recurrent class).
        alphabet: ``K`` characters, used by :meth:`decode`.

    >>> coin = MarkovText(torch.tensor([[0.5, 0.5], [0.5, 0.5]]), alphabet="ab")
    >>> coin.entropy_rate_bits(), coin.sequence_entropy_bits(3)
    (1.0, 3.0)
    >>> sticky = MarkovText(torch.tensor([[0.9, 0.1], [0.1, 0.9]]), alphabet="ab")
    >>> round(sticky.entropy_rate_bits(), 4), sticky.stationary().numpy().round(9).tolist()  # LAPACK: last bits vary
    (0.469, [0.5, 0.5])
    """

    def __init__(self, transition: Tensor, alphabet: str = TEXT8_ALPHABET):
        t = torch.as_tensor(transition)
        if not t.is_floating_point() or t.dim() < 2 or len(set(t.shape)) != 1:
            raise ValueError(f"transition must be a float tensor [K] * (order + 1), got {t.dtype} of shape "
                             f"{list(t.shape)}")
        self.num_classes, self.order = int(t.shape[0]), t.dim() - 1
        if len(alphabet) != self.num_classes:
            raise ValueError(f"alphabet must have K = {self.num_classes} characters, got {len(alphabet)}")
        if self.num_classes ** self.order > 20_000:
            raise ValueError(f"the chain has K ** order = {self.num_classes ** self.order} contexts, more than the "
                             f"20000 this class handles")
        p = t.detach().double().cpu().numpy().reshape(-1, self.num_classes)
        if not np.isfinite(p).all() or (p < 0).any():
            raise ValueError("transition must hold finite non-negative probabilities")
        self.alphabet, sums = alphabet, p.sum(1)
        if np.abs(sums - 1).max() > (1e-9 if t.dtype == torch.float64 else 1e-5):
            row = int(np.argmax(np.abs(sums - 1)))
            raise ValueError(f"transition rows must sum to 1, got {sums[row]:.6g} for context {self._context(row)!r}")
        self._p = p / sums[:, None]
        self._pi = self._solve_stationary()

    def _context(self, index: int) -> str:
        digits = np.unravel_index(index, (self.num_classes,) * self.order)
        return "".join(self.alphabet[int(d)] for d in digits)

    def _solve_stationary(self) -> np.ndarray:
        k, s = self.num_classes, self.num_classes ** self.order
        step = np.zeros((s, s))   # step[a, b]: P(context a -> context b)
        rows = np.repeat(np.arange(s), k)
        cols = (rows % (s // k)) * k + np.tile(np.arange(k), s)
        np.add.at(step, (rows, cols), self._p.reshape(-1))
        system = step.T - np.eye(s)
        system[-1] = 1.0
        rhs = np.zeros(s)
        rhs[-1] = 1.0
        try:
            pi = np.linalg.solve(system, rhs)
        except np.linalg.LinAlgError:
            pi = None
        if pi is None or pi.min() < -1e-9 or np.abs(pi @ step - pi).max() > 1e-9:
            raise ValueError("transition has no unique stationary distribution (the chain is not irreducible "
                             "on one class of contexts)")
        pi = np.maximum(pi, 0.0)
        return pi / pi.sum()

    @classmethod
    def word_like(cls, order: int = 2, noise: float = 0.02) -> "MarkovText":
        """The stand-in chain: character ``order``-grams of :data:`LEXICON` words (weight 1 / rank) separated by
        single spaces, mixed with ``noise`` of uniform letters; a space never follows a space (as in text8).

        >>> chain = MarkovText.word_like()
        >>> chain.order, chain.num_classes, round(chain.entropy_rate_bits(), 4)
        (2, 27, 2.0047)
        """
        if order not in (1, 2):
            raise ValueError(f"order must be 1 or 2, got {order!r}")
        if not 0 < noise < 1:
            raise ValueError(f"noise must be in (0, 1), got {noise}")
        k, index = len(TEXT8_ALPHABET), {c: i for i, c in enumerate(TEXT8_ALPHABET)}
        counts = np.zeros((k,) * (order + 1))
        starts = np.zeros(k)   # first letters of words, weighted
        for rank, word in enumerate(LEXICON, start=1):
            s = " " * order + word + " "
            starts[index[word[0]]] += 1 / rank
            for j in range(order + 1, len(s)):   # contexts that end inside the word (or its final letter)
                counts[tuple(index[c] for c in s[j - order: j + 1])] += 1 / rank
        counts[..., 0, :] = starts   # after a space: a word's first letter, whatever came before
        seen = counts.sum(-1, keepdims=True)
        empirical = np.where(seen > 0, counts / np.where(seen > 0, seen, 1), 1.0 / k)
        p = (1 - noise) * empirical + noise / k
        p[..., 0, 0] = 0.0   # no double spaces
        p /= p.sum(-1, keepdims=True)
        return cls(torch.from_numpy(p), TEXT8_ALPHABET)

    @property
    def transition(self) -> Tensor:
        """The transition probabilities, float64 ``[K] * (k + 1)``."""
        return torch.from_numpy(self._p.reshape((self.num_classes,) * (self.order + 1)).copy())

    def stationary(self) -> Tensor:
        """The stationary distribution of ``k`` consecutive characters, float64 ``[K] * k``."""
        return torch.from_numpy(self._pi.reshape((self.num_classes,) * self.order).copy())

    def entropy_rate_bits(self) -> float:
        """Entropy rate :math:`h` in bits per character."""
        return float(self._pi @ _entropy_bits(self._p))

    def sequence_entropy_bits(self, length: int) -> float:
        """Exact entropy :math:`H(X_1, \\dots, X_L)` in bits of ``length`` consecutive characters."""
        length = check_positive_int("length", length)
        if length >= self.order:
            return float(_entropy_bits(self._pi)) + (length - self.order) * self.entropy_rate_bits()
        pi = self._pi.reshape((self.num_classes,) * self.order)
        return float(_entropy_bits(pi.sum(axis=tuple(range(length, self.order))).reshape(-1)))

    def sample(self, num_sequences: int, length: int, generator: torch.Generator | None = None) -> Tensor:
        """``num_sequences`` independent stationary windows, LongTensor ``[num_sequences, length]``."""
        n, length = check_positive_int("num_sequences", num_sequences), check_positive_int("length", length)
        k = self.num_classes

        def draw(cdf: Tensor) -> Tensor:   # inverse CDF: the class whose interval holds a uniform draw
            u = torch.rand(n, 1, generator=generator, dtype=torch.float64)
            return torch.searchsorted(cdf, u.view(-1) if cdf.dim() == 1 else u, right=True).view(-1)

        pi_cdf = torch.from_numpy(np.cumsum(self._pi))
        state = draw(pi_cdf / pi_cdf[-1])   # flat index of the first k characters
        out = torch.empty(n, max(length, self.order), dtype=torch.long)
        for j in range(self.order):
            out[:, j] = state // k ** (self.order - 1 - j) % k
        cdf = torch.from_numpy(np.cumsum(self._p, axis=1))
        cdf = cdf / cdf[:, -1:]
        for t in range(self.order, length):
            out[:, t] = draw(cdf[state])
            state = state % k ** (self.order - 1) * k + out[:, t]
        return out[:, :length]

    def log_prob_bits(self, x: Tensor) -> Tensor:
        """Exact :math:`\\log_2 P(x)` of windows ``[N, L]`` (``L >= k``) under the stationary chain, ``[N]``."""
        x = torch.as_tensor(x)
        if x.dim() != 2 or x.shape[1] < self.order or x.is_floating_point():
            raise ValueError(f"x must be integer windows [N, L] with L >= {self.order}, got {x.dtype} of shape "
                             f"{list(x.shape)}")
        if ((x < 0) | (x >= self.num_classes)).any():
            raise ValueError(f"x must hold class indices in [0, {self.num_classes})")
        k, log_p = self.num_classes, torch.from_numpy(np.log2(np.where(self._p > 0, self._p, 1e-300)))
        state = torch.zeros(len(x), dtype=torch.long)
        for j in range(self.order):
            state = state * k + x[:, j]
        total = torch.from_numpy(np.log2(np.where(self._pi > 0, self._pi, 1e-300)))[state]
        for t in range(self.order, x.shape[1]):
            total = total + log_p[state, x[:, t]]
            state = state % k ** (self.order - 1) * k + x[:, t]
        return total

    def decode(self, x: Tensor) -> str:
        """Class indices ``[L]`` to a string."""
        return decode_text(x, self.alphabet)


def synthetic_text(num_chars: int, seed: int = 0, order: int = 2, segment_len: int = 256) -> Tensor:
    """A synthetic stand-in stream (not text8) of ``num_chars`` characters over the text8 alphabet, ``[num_chars]``.

    Independent stationary windows of ``segment_len`` characters of :meth:`MarkovText.word_like`
    (``order``), concatenated (the last one cut). Cut into chunks of ``segment_len``, each chunk has
    the exact entropy ``MarkovText.word_like(order).sequence_entropy_bits(segment_len)``. Seeded.

    >>> x = synthetic_text(40, seed=0, segment_len=20)
    >>> x.shape, x.dtype, "  " in decode_text(x[:20])
    (torch.Size([40]), torch.int64, False)
    """
    num_chars = check_positive_int("num_chars", num_chars)
    segment_len = check_positive_int("segment_len", segment_len)
    g = torch.Generator().manual_seed(seed)
    chain = MarkovText.word_like(order)
    return chain.sample(-(-num_chars // segment_len), segment_len, g).reshape(-1)[:num_chars]


def synthetic_text_corpus(split_sizes: Sequence[int] = (900_000, 50_000, 50_000), chunk_len: int = 256,
                          seed: int = 0, order: int = 2) -> TextCorpus:
    """The labelled stand-in: splits of chunks like :func:`load_text_corpus`, each chunk an independent window of
    :meth:`MarkovText.word_like`; ``stand_in=True`` and ``entropy_bits_per_char`` is exact.

    Args:
        split_sizes: characters of ``(train, valid, test)``; each split holds ``size // chunk_len`` chunks.
            The default is text8's at 1/100 scale; ``TEXT8.split_sizes`` gives the full size.
        chunk_len, seed, order: chunk length, seed (each split has its own stream), chain order.

    >>> c = synthetic_text_corpus((2560, 256, 256), seed=1)
    >>> c.source
    'synthetic stand-in (not text8): order-2 word-like Markov chain over the text8 alphabet'
    >>> c.train.shape, round(c.entropy_bits_per_char, 4)
    (torch.Size([10, 256]), 2.0151)
    """
    sizes = tuple(split_sizes)
    if len(sizes) != 3:
        raise ValueError(f"split_sizes must be three sizes (train, valid, test), got {split_sizes!r}")
    chunk_len = check_positive_int("chunk_len", chunk_len)
    chain, splits = MarkovText.word_like(order), {}
    for i, (k, n) in enumerate(zip(SPLITS, sizes)):
        if check_positive_int(f"split_sizes[{k!r}]", n) < chunk_len:
            raise ValueError(f"the {k} split has {n} characters, fewer than one chunk of chunk_len={chunk_len}")
        g = torch.Generator().manual_seed(int(np.random.SeedSequence([seed, i]).generate_state(1)[0]))
        splits[k] = chain.sample(n // chunk_len, chunk_len, g)
    source = f"synthetic stand-in (not text8): order-{order} word-like Markov chain over the text8 alphabet"
    corpus = TextCorpus("synthetic", splits, TEXT8_ALPHABET, source, stand_in=True,
                        entropy_bits_per_char=chain.sequence_entropy_bits(chunk_len) / chunk_len)
    corpus.chain = chain   # the MarkovText that made it: exact log_prob_bits, entropies
    return corpus

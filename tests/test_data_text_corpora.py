"""text8 / enwik8 loading (splits, chunks, vocabulary, checks, download) on small fake files; the Markov stand-in."""
import dataclasses
import hashlib
import io
import itertools
import math
import urllib.error
import zipfile

import pytest
import torch

from catlib.data.text import TEXT8_ALPHABET, decode_text
from catlib.data.text_corpora import (ENWIK8, TEXT8, TEXT_CORPORA, MarkovText, TextCorpus, download_text_corpus,
                                      load_text_corpus, synthetic_text, synthetic_text_corpus)

FAKE_TEXT = ("anarchism originated as a term of abuse first used against early working class radicals " * 30)[:2000]


def write_corpus(tmp_path, name: str, data: bytes):
    folder = tmp_path / name
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_bytes(data)
    return folder / name


def small_spec(monkeypatch, name: str, data: bytes, **changes):
    """Make the registry's spec describe ``data`` (size and checksum), as if it were the real file."""
    spec = dataclasses.replace(TEXT_CORPORA[name], num_bytes=len(data), sha256=hashlib.sha256(data).hexdigest(),
                               split_sizes=(len(data) * 9 // 10, len(data) // 20, len(data) - len(data) * 9 // 10
                                            - len(data) // 20), **changes)
    monkeypatch.setitem(TEXT_CORPORA, name, spec)
    return spec


# --------------------------------------------------------------------------- specs
def test_official_specs():
    for spec in (TEXT8, ENWIK8):
        assert sum(spec.split_sizes) == spec.num_bytes == 100_000_000
        assert spec.split_sizes == (90_000_000, 5_000_000, 5_000_000)
        assert len(spec.sha256) == 64 and len(spec.zip_sha256) == 64
        assert spec.url == f"http://mattmahoney.net/dc/{spec.name}.zip"
    assert (TEXT8.chunk_len, TEXT8.num_classes, TEXT8.alphabet) == (256, 27, " abcdefghijklmnopqrstuvwxyz")
    assert (ENWIK8.chunk_len, ENWIK8.num_classes, ENWIK8.alphabet) == (320, 256, None)
    assert TEXT8.num_chunks() == {"train": 351_562, "valid": 19_531, "test": 19_531}
    assert ENWIK8.num_chunks() == {"train": 281_250, "valid": 15_625, "test": 15_625}


# --------------------------------------------------------------------------- loading
def test_text8_splits_chunks_and_vocabulary(tmp_path):
    write_corpus(tmp_path, "text8", FAKE_TEXT.encode())
    c = load_text_corpus("text8", tmp_path, chunk_len=16, split_sizes=(1800, 100, 100))
    assert isinstance(c, TextCorpus) and not c.stand_in and not c.checksum_verified
    assert {k: tuple(v.shape) for k, v in c.splits.items()} == {"train": (112, 16), "valid": (6, 16), "test": (6, 16)}
    assert all(v.dtype == torch.long for v in c.splits.values())
    # in file order, non-overlapping, each split's tail dropped
    assert decode_text(c.train.flatten()) == FAKE_TEXT[:1792]
    assert decode_text(c.valid.flatten()) == FAKE_TEXT[1800:1896]
    assert decode_text(c.test.flatten()) == FAKE_TEXT[1900:1996]
    # vocabulary: space 0, a..z 1..26 (the official sorted(set(text)))
    assert c.num_classes == 27 and c.alphabet == TEXT8_ALPHABET == "".join(sorted(set(TEXT8_ALPHABET)))
    assert c.encode(" az").tolist() == [0, 1, 26]
    assert c.decode(c.encode("a term of abuse")) == "a term of abuse"
    assert torch.equal(c.train_and_valid(), torch.cat([c.train, c.valid]))
    assert "real" in c.source and "checksum not checked" in c.source


def test_default_chunk_lengths_and_uint8(tmp_path):
    write_corpus(tmp_path, "text8", FAKE_TEXT.encode())
    write_corpus(tmp_path, "enwik8", bytes(range(256)) * 8)
    t = load_text_corpus("text8", tmp_path, split_sizes=(1024, 512, 256), dtype=torch.uint8)
    e = load_text_corpus("enwik8", tmp_path, split_sizes=(1000, 640, 320))
    assert t.chunk_len == 256 and t.train.shape == (4, 256) and t.train.dtype == torch.uint8
    assert e.chunk_len == 320 and {k: v.shape[0] for k, v in e.splits.items()} == {"train": 3, "valid": 2, "test": 1}


def test_enwik8_is_bytes_identity(tmp_path):
    data = bytes(range(256)) * 4 + "<page>é</page>".encode()
    write_corpus(tmp_path, "enwik8", data)
    c = load_text_corpus("enwik8", tmp_path, chunk_len=8, split_sizes=(800, 100, 100))
    assert c.num_classes == 256 and c.alphabet is None
    assert c.train.flatten().tolist() == list(data[:800])  # class i is byte value i
    assert c.decode(c.train[1]) == data[8:16]
    assert c.encode("é").tolist() == [0xC3, 0xA9] and c.decode(c.encode(b"<a>")) == b"<a>"
    with pytest.raises(ValueError, match=r"byte values in \[0, 256\), got 300 at position 1"):
        c.decode(torch.tensor([1, 300]))


def test_proportional_split(tmp_path):
    write_corpus(tmp_path, "text8", FAKE_TEXT.encode())
    c = load_text_corpus("text8", tmp_path, chunk_len=10, split_sizes="proportional")
    assert {k: v.numel() for k, v in c.splits.items()} == {"train": 1800, "valid": 100, "test": 100}


def test_default_refuses_wrong_size(tmp_path):
    path = write_corpus(tmp_path, "text8", b" abc" * 300)
    with pytest.raises(ValueError) as err:
        load_text_corpus("text8", tmp_path)
    msg = str(err.value)
    assert f"{path} has 1200 bytes, expected 100000000 (partial download?)" in msg
    assert "delete it and run" in msg
    assert f"curl -L -o {tmp_path}/text8/text8.zip http://mattmahoney.net/dc/text8.zip" in msg
    assert f"download_text_corpus('text8', '{tmp_path}')" in msg
    with pytest.raises(ValueError, match="fewer than the 2000 that split_sizes"):
        load_text_corpus("text8", tmp_path, split_sizes=(1800, 100, 100))


def test_missing_file_says_how_to_get_it(tmp_path):
    with pytest.raises(FileNotFoundError) as err:
        load_text_corpus("enwik8", tmp_path)
    msg = str(err.value)
    assert f"enwik8 not found at {tmp_path}/enwik8/enwik8" in msg
    assert (f"mkdir -p {tmp_path}/enwik8 && curl -L -o {tmp_path}/enwik8/enwik8.zip "
            f"http://mattmahoney.net/dc/enwik8.zip") in msg
    assert "unzip" in msg
    (tmp_path / "enwik8").mkdir()
    (tmp_path / "enwik8" / "enwik8.zip").write_bytes(b"PK")
    with pytest.raises(FileNotFoundError, match="the zip is there, unpack it: unzip -o"):
        load_text_corpus("enwik8", tmp_path)


def test_bad_characters_name_the_position(tmp_path):
    data = bytearray(FAKE_TEXT.encode())
    data[1234] = ord("A")
    path = write_corpus(tmp_path, "text8", bytes(data))
    with pytest.raises(ValueError, match=rf"{path} is not text8: byte 1234 is b'A', expected only the characters"):
        load_text_corpus("text8", tmp_path, split_sizes="proportional")
    write_corpus(tmp_path, "text8", b"PK\x03\x04" + FAKE_TEXT.encode())
    with pytest.raises(ValueError, match="is a zip archive, not the unpacked text8; rename and unzip it: mv "):
        load_text_corpus("text8", tmp_path, split_sizes="proportional")


def test_checksum_verified_and_mismatch(tmp_path, monkeypatch):
    data = FAKE_TEXT.encode()
    path = write_corpus(tmp_path, "text8", data)
    spec = small_spec(monkeypatch, "text8", data)
    c = load_text_corpus("text8", tmp_path, chunk_len=10)   # default split sizes of the (small) spec
    assert c.checksum_verified and "verified" in c.source
    assert c.train.numel() == spec.split_sizes[0]
    assert not load_text_corpus("text8", tmp_path, chunk_len=10, verify=False).checksum_verified
    swapped = data.replace(b"term", b"mter", 1)   # same size, same characters, other content
    path.write_bytes(swapped)
    with pytest.raises(ValueError, match=rf"{path} has SHA-256 {hashlib.sha256(swapped).hexdigest()}, expected "
                                         rf"{spec.sha256}"):
        load_text_corpus("text8", tmp_path, chunk_len=10)


def test_bad_arguments(tmp_path):
    write_corpus(tmp_path, "text8", FAKE_TEXT.encode())
    with pytest.raises(ValueError, match="name must be one of"):
        load_text_corpus("text9", tmp_path)
    with pytest.raises(ValueError, match="chunk_len must be an integer >= 1, got 0"):
        load_text_corpus("text8", tmp_path, chunk_len=0)
    with pytest.raises(ValueError, match="split_sizes must be three sizes"):
        load_text_corpus("text8", tmp_path, split_sizes=(10, 10))
    with pytest.raises(ValueError, match="fewer than one chunk of chunk_len=256"):
        load_text_corpus("text8", tmp_path, split_sizes=(1000, 100, 300))
    with pytest.raises(ValueError, match="dtype must be torch.long or torch.uint8"):
        load_text_corpus("text8", tmp_path, split_sizes="proportional", dtype=torch.float32)


# --------------------------------------------------------------------------- download (no network)
def zipped(name: str, data: bytes) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr(name, data)
    return buffer.getvalue()


def test_download_offline_error_names_url_and_command(tmp_path):
    def offline(url, dest):
        raise urllib.error.URLError("no route to host")

    with pytest.raises(ConnectionError) as err:
        download_text_corpus("text8", tmp_path, fetch=offline)
    msg = str(err.value)
    assert "http://mattmahoney.net/dc/text8.zip" in msg and "no route to host" in msg
    assert (f"mkdir -p {tmp_path}/text8 && curl -L -o {tmp_path}/text8/text8.zip "
            f"http://mattmahoney.net/dc/text8.zip") in msg
    assert not (tmp_path / "text8" / "text8.zip").exists() and not (tmp_path / "text8" / "text8.zip.part").exists()


def test_download_unpacks_verifies_and_is_idempotent(tmp_path, monkeypatch):
    data = FAKE_TEXT.encode()
    small_spec(monkeypatch, "text8", data)
    calls = []

    def fake_fetch(url, dest):
        calls.append(url)
        dest.write_bytes(zipped("text8", data))

    path = download_text_corpus("text8", tmp_path, fetch=fake_fetch)
    assert path == tmp_path / "text8" / "text8" and path.read_bytes() == data
    assert calls == ["http://mattmahoney.net/dc/text8.zip"] and (tmp_path / "text8" / "text8.zip").is_file()
    assert download_text_corpus("text8", tmp_path, fetch=lambda url, dest: pytest.fail("fetched twice")) == path
    path.unlink()   # the zip is still there: unpacked again without fetching
    assert download_text_corpus("text8", tmp_path, fetch=lambda url, dest: pytest.fail("fetched twice")) == path
    assert load_text_corpus("text8", tmp_path, chunk_len=10).checksum_verified


def test_download_rejects_damaged_zip_and_wrong_content(tmp_path, monkeypatch):
    data = FAKE_TEXT.encode()
    small_spec(monkeypatch, "text8", data)
    with pytest.raises(ValueError, match="text8.zip is not a complete zip archive .*partial download"):
        download_text_corpus("text8", tmp_path, fetch=lambda url, dest: dest.write_bytes(zipped("text8", data)[:-60]))
    (tmp_path / "text8" / "text8.zip").unlink()
    with pytest.raises(ValueError, match="has SHA-256"):
        download_text_corpus("text8", tmp_path, fetch=lambda url, dest: dest.write_bytes(zipped("text8", data[::-1])))


# --------------------------------------------------------------------------- the Markov stand-in
def brute_force_entropy_bits(chain: MarkovText, length: int) -> float:
    """H(X_1..X_L) by enumerating every sequence under the stationary chain (marginalised when L < order)."""
    k, p, pi = chain.num_classes, chain.transition.numpy(), chain.stationary().numpy()
    probs: dict[tuple, float] = {}
    for seq in itertools.product(range(k), repeat=max(length, chain.order)):
        prob = float(pi[seq[:chain.order]])
        for t in range(chain.order, length):
            prob *= p[seq[t - chain.order: t + 1]]
        probs[seq[:length]] = probs.get(seq[:length], 0.0) + prob
    return -sum(q * math.log2(q) for q in probs.values() if q > 0)


@pytest.mark.parametrize("order", [1, 2])
def test_entropy_rate_against_enumeration(order):
    g = torch.Generator().manual_seed(order)
    t = torch.rand((3,) * (order + 1), generator=g, dtype=torch.float64) ** 2
    t[(0,) * (order + 1)] = 0.0   # a forbidden transition, as "  " in the stand-in
    chain = MarkovText(t / t.sum(-1, keepdim=True), alphabet="xyz")
    pi = chain.stationary()
    assert math.isclose(float(pi.sum()), 1.0) and (pi >= 0).all()
    assert torch.allclose(chain.transition, t / t.sum(-1, keepdim=True))
    step = torch.einsum("...,...c->...c", pi, chain.transition)
    assert torch.allclose(step.sum(0), pi, atol=1e-12)   # stationary
    for length in range(1, 6):
        assert math.isclose(chain.sequence_entropy_bits(length), brute_force_entropy_bits(chain, length), abs_tol=1e-9)
    h = brute_force_entropy_bits(chain, 6) - brute_force_entropy_bits(chain, 5)
    assert math.isclose(chain.entropy_rate_bits(), h, abs_tol=1e-9)
    x = torch.tensor(list(itertools.product(range(3), repeat=4)))
    assert math.isclose(float(chain.log_prob_bits(x).exp2().sum()), 1.0, abs_tol=1e-9)


def test_word_like_chain_matches_its_samples():
    chain = MarkovText.word_like()
    assert chain.order == 2 and chain.num_classes == 27 and chain.alphabet == TEXT8_ALPHABET
    g = torch.Generator().manual_seed(0)
    x = chain.sample(400, 256, g)
    assert x.shape == (400, 256) and x.dtype == torch.long
    # the mean log-loss of the true model estimates the entropy of a window (seeded, loose tolerance)
    empirical = float(-chain.log_prob_bits(x).mean()) / 256
    assert abs(empirical - chain.sequence_entropy_bits(256) / 256) < 0.02
    # the bigram frequencies match the stationary distribution
    pairs = torch.bincount((x[:, :-1] * 27 + x[:, 1:]).flatten(), minlength=27 * 27).double()
    assert torch.allclose(pairs / pairs.sum(), chain.stationary().flatten(), atol=0.004)
    text = chain.decode(x[0])
    assert "  " not in text and set(text) <= set(TEXT8_ALPHABET)
    assert 1.5 < chain.entropy_rate_bits() < 2.5 < MarkovText.word_like(order=1).entropy_rate_bits()


def test_first_order_plug_in_estimate():
    chain = MarkovText.word_like(order=1)
    x = chain.sample(1000, 200, torch.Generator().manual_seed(3))   # pairs within each window only
    counts = torch.bincount((x[:, :-1] * 27 + x[:, 1:]).flatten(), minlength=27 * 27).double().view(27, 27)
    p = counts / counts.sum(1, keepdim=True).clamp(min=1)
    plug_in = float(-(counts / counts.sum() * torch.where(p > 0, p.log2(), torch.zeros(()))).sum())
    assert abs(plug_in - chain.entropy_rate_bits()) < 0.03


def test_synthetic_text_and_corpus_are_labelled_and_seeded():
    x = synthetic_text(1000, seed=5, segment_len=100)
    assert x.shape == (1000,) and torch.equal(x, synthetic_text(1000, seed=5, segment_len=100))
    assert not torch.equal(x, synthetic_text(1000, seed=6, segment_len=100))
    c = synthetic_text_corpus((2560, 512, 512), chunk_len=64, seed=0)
    assert c.stand_in and c.source.startswith("synthetic stand-in (not text8)") and "synthetic stand-in" in repr(c)
    assert {k: tuple(v.shape) for k, v in c.splits.items()} == {"train": (40, 64), "valid": (8, 64), "test": (8, 64)}
    assert c.num_classes == 27 and not c.checksum_verified and c.path is None
    assert math.isclose(c.entropy_bits_per_char, c.chain.sequence_entropy_bits(64) / 64)
    assert c.entropy_bits_per_char > c.chain.entropy_rate_bits()
    same = synthetic_text_corpus((5120, 512, 512), chunk_len=64, seed=0)
    assert torch.equal(same.test, c.test)   # each split has its own stream
    with pytest.raises(ValueError, match="fewer than one chunk"):
        synthetic_text_corpus((2560, 10, 512), chunk_len=64)


def test_markov_text_rejects_bad_transitions():
    with pytest.raises(ValueError, match="rows must sum to 1, got 0.5 for context 'b'"):
        MarkovText(torch.tensor([[0.5, 0.5], [0.25, 0.25]], dtype=torch.float64), alphabet="ab")
    with pytest.raises(ValueError, match="no unique stationary distribution"):
        MarkovText(torch.eye(2, dtype=torch.float64), alphabet="ab")
    with pytest.raises(ValueError, match="float tensor"):
        MarkovText(torch.ones(2, 3), alphabet="ab")
    with pytest.raises(ValueError, match="alphabet must have K = 2"):
        MarkovText(torch.full((2, 2), 0.5), alphabet="abc")
    with pytest.raises(ValueError, match="order must be 1 or 2"):
        MarkovText.word_like(order=3)

"""Word corpora: vocabulary order, encode/decode, windows, the generated grammar, the text8 loader."""
import pytest
import torch

from catlib.data import words as words_module
from catlib.data.words import (PAPER_WORDS, PAST_MARKERS, TEXT8_URL, VERB_FORMS, WORD_CLASSES, WordCorpus,
                               chosen_words, generated_corpus, generated_sentences, load_corpus, text8_corpus)

PAST = set(VERB_FORMS.values())
BASE = set(VERB_FORMS)


# --------------------------------------------------------------------------- WordCorpus
def test_vocab_order_is_count_then_string_order():
    c = WordCorpus.from_words("b a c b a d Canada d".split())
    # a, b, d twice; c, Canada once; ties in string order (upper case first)
    assert c.vocab == ["a", "b", "d", "Canada", "c"]
    assert c.word_to_index == {w: i for i, w in enumerate(c.vocab)}
    assert c.counts.tolist() == [2, 2, 2, 1, 1]
    assert c.unk is None and c.num_classes == 5


def test_top_k_with_unk_last():
    c = WordCorpus.from_words("b a c b a d".split(), vocab_size=3)
    assert c.vocab == ["a", "b", "<unk>"]
    assert c.tokens.tolist() == [1, 0, 2, 1, 0, 2]
    assert c.decode(c.encode("a zebra b")) == ["a", "<unk>", "b"]


def test_encode_decode_round_trip():
    c = generated_corpus(200, seed=1)
    text = c.decode(c.tokens)
    assert torch.equal(c.encode(text), c.tokens)
    assert c.encode(text).dtype == torch.long
    assert c.decode(c.encode("N birds fly to Singapore every day")) == "N birds fly to Singapore every day".split()


def test_bad_words_and_indices_raise():
    c = WordCorpus.from_words("a b a".split())
    with pytest.raises(ValueError, match="'zebra' at position 1"):
        c.encode(["a", "zebra"])
    with pytest.raises(ValueError, match=r"\[0, 2\), got 7 at 1"):
        c.decode(torch.tensor([0, 7]))
    with pytest.raises(ValueError, match="1-D integer"):
        c.decode(torch.tensor([0.0, 1.0]))
    with pytest.raises(ValueError, match="distinct"):
        WordCorpus(torch.tensor([0]), ["a", "a"])
    with pytest.raises(ValueError, match="unk must be a word of vocab"):
        WordCorpus(torch.tensor([0]), ["a"], unk="<unk>")
    with pytest.raises(ValueError, match="vocab_size must be an integer >= 2, got 1"):
        WordCorpus.from_words(["a"], vocab_size=1)


def test_windows_are_non_overlapping_chunks():
    c = WordCorpus(torch.arange(10), [str(i) for i in range(10)])
    w = c.windows(3)
    assert w.shape == (3, 3) and w.dtype == torch.long
    assert torch.equal(w.flatten(), torch.arange(9))  # in order, no overlap, tail dropped
    for bad in (0, 11):
        with pytest.raises(ValueError, match="length"):
            c.windows(bad)


def test_sample_windows_are_seeded_contiguous_slices():
    c = generated_corpus(300, seed=0)
    a = c.sample_windows(50, 8, generator=torch.Generator().manual_seed(5))
    b = c.sample_windows(50, 8, generator=torch.Generator().manual_seed(5))
    assert a.shape == (50, 8) and torch.equal(a, b)
    text = c.tokens.tolist()
    for row in a.tolist():
        starts = [i for i in range(len(text) - 7) if text[i:i + 8] == row]
        assert starts


def test_splits_are_contiguous_and_disjoint():
    c = WordCorpus(torch.arange(100) % 7, [str(i) for i in range(7)])
    s = c.splits(6, val_fraction=0.2)
    assert s["train"].shape == (13, 6) and s["val"].shape == (3, 6)
    assert torch.equal(s["train"].flatten(), c.tokens[:78])
    assert torch.equal(s["val"].flatten(), c.tokens[80:98])
    with pytest.raises(ValueError, match="val_fraction"):
        c.splits(6, val_fraction=1.0)
    with pytest.raises(ValueError, match="the val part"):
        c.splits(30, val_fraction=0.2)


# --------------------------------------------------------------------------- generated grammar
def test_generated_corpus_is_deterministic_and_holds_the_paper_words():
    a, b = generated_corpus(2000, seed=3), generated_corpus(2000, seed=3)
    assert a.vocab == b.vocab and torch.equal(a.tokens, b.tokens)
    assert not torch.equal(generated_corpus(2000, seed=4).tokens[:200], a.tokens[:200])
    grammar = {w for ws in WORD_CLASSES.values() for w in ws}
    assert set(a.vocab) == grammar and 60 <= a.num_classes <= 120
    assert generated_corpus(5, seed=3).num_classes == a.num_classes  # fixed vocabulary
    assert sum(len(ws) for ws in WORD_CLASSES.values()) == len(grammar)  # one class per word
    counts = a.counts
    for w in PAPER_WORDS:
        assert counts[a.word_to_index[w]] >= 50, w
    assert chosen_words(a) == ({w: w for w in PAPER_WORDS}, [])


def test_corpus_is_the_sentences_with_eos():
    sentences = generated_sentences(100, seed=7)
    c = generated_corpus(100, seed=7)
    assert c.decode(c.tokens) == [w for s in sentences for w in s + ["."]]
    assert "." not in generated_corpus(100, seed=7, eos=False).vocab


def test_tense_follows_the_time_words():
    sentences = generated_sentences(3000, seed=0)
    seen = {"past": 0, "base": 0, "after will/to": 0}
    for s in sentences:
        past_sentence = any(w in PAST_MARKERS for w in s)
        assert past_sentence or any(w in ("will", "every", "tomorrow", "next") for w in s), s
        for i, w in enumerate(s):
            if w not in PAST | BASE:
                continue
            if s[i - 1] in ("will", "to"):
                assert w in BASE, s
                seen["after will/to"] += 1
            else:
                assert (w in PAST) == past_sentence, s
                seen["past" if w in PAST else "base"] += 1
    assert min(seen.values()) > 300  # every case occurs often


def test_numbers_agree_and_places_follow_prepositions():
    singular = set(WORD_CLASSES["noun (singular)"]) | {"day", "week", "month", "year"}
    plural = set(WORD_CLASSES["noun (plural)"]) | {"days", "weeks", "months", "years"}
    for s in generated_sentences(2000, seed=1):
        for i, w in enumerate(s):
            if w in WORD_CLASSES["number"]:
                assert s[i + 1] in (singular if w == "one" else plural), s
            if w in WORD_CLASSES["place"]:
                assert s[i - 1] in WORD_CLASSES["preposition"], s


# --------------------------------------------------------------------------- text8
TEXT = " the cat sat on the mat the cat ran to the dog"


@pytest.fixture(params=[1 << 24, 5], ids=["one-block", "5-byte-blocks"])
def block(request, monkeypatch):
    """Read files in one block or in 5-byte blocks (words cross block boundaries)."""
    monkeypatch.setattr(words_module, "_BLOCK", request.param)
    return request.param


def test_text8_top_k_unk_and_counts(tmp_path, block):
    (tmp_path / "text8").write_text(TEXT)
    c = text8_corpus(tmp_path / "text8", vocab_size=3)
    assert c.vocab == ["the", "cat", "<unk>"] and c.unk == "<unk>"
    assert c.counts.tolist() == [4, 2, 6]
    assert c.decode(c.tokens) == [w if w in ("the", "cat") else "<unk>" for w in TEXT.split()]
    full = text8_corpus(tmp_path, vocab_size=100)  # a folder holding text8; every word kept, unk last
    assert full.vocab == ["the", "cat", "dog", "mat", "on", "ran", "sat", "to", "<unk>"]
    assert full.decode(full.tokens) == TEXT.split()
    assert len(text8_corpus(tmp_path, vocab_size=3, max_words=5)) == 5


def test_text8_found_in_nested_folder_and_final_newline_tolerated(tmp_path):
    (tmp_path / "text8").mkdir()
    (tmp_path / "text8" / "text8").write_text(TEXT + "\n")
    assert len(text8_corpus(tmp_path, vocab_size=5)) == 12


def test_text8_missing_file_names_path_and_fix(tmp_path):
    with pytest.raises(FileNotFoundError) as err:
        text8_corpus(tmp_path / "nowhere" / "text8")
    assert str(tmp_path / "nowhere" / "text8") in str(err.value) and TEXT8_URL in str(err.value)


@pytest.mark.parametrize("content, match", [
    ("the Cat sat", r"not text8-like.*found b'C' at byte 4"),
    ("the cat sat on 2 mats", r"found b'2' at byte 15"),
    ("the cat,sat", r"found b',' at byte 7"),
    ("", "holds no words"),
    ("   ", "holds no words"),
    ("PK\x03\x04rest", "unzip it first"),
])
def test_text8_corrupt_file_raises(tmp_path, block, content, match):
    (tmp_path / "text8").write_bytes(content.encode("latin-1"))
    with pytest.raises(ValueError, match=match):
        text8_corpus(tmp_path / "text8")


def test_chosen_words_maps_case_and_reports_missing(tmp_path):
    (tmp_path / "text8").write_text("canada two two n n n walk fly singapore")
    c = text8_corpus(tmp_path, vocab_size=5)  # n, two, canada, fly + unk: walk, singapore -> unk
    found, missing = chosen_words(c)
    assert found == {"two": "two", "Canada": "canada", "fly": "fly"}
    assert missing == ["N", "walk", "one", "three", "Singapore", "walked", "flew"]  # "n" is a letter, not N


def test_load_corpus_labels_its_source(tmp_path):
    corpus, source = load_corpus(tmp_path, num_sentences=20)
    assert source == "generated stand-in" and corpus.unk is None
    (tmp_path / "text8").write_text(TEXT)
    corpus, source = load_corpus(tmp_path, vocab_size=3)
    assert source == "text8 (real)" and corpus.vocab == ["the", "cat", "<unk>"]
    assert load_corpus(tmp_path, prefer_text8=False, num_sentences=20)[1] == "generated stand-in"
    (tmp_path / "text8").write_text("The Cat")
    with pytest.raises(ValueError, match="not text8-like"):  # a corrupt file is never replaced silently
        load_corpus(tmp_path)

"""The Table 3 diffusion runner: a tiny run stores and reuses its metrics, the full profiles are the
official settings, a missing corpus fails with the command that fetches it, and the real-corpus path
(text8 characters, enwik8 bytes) runs on small files of the right format."""
from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest

from catlib.data import TEXT8_ALPHABET, synthetic_text
from catlib.diffusion import ENWIK8_DIFFUSION, TEXT8_DIFFUSION
from catlib.experiments import text_diffusion as td
from catlib.results import write_results
from catlib.spellcheck import SPELLCHECK_CORRUPTED, SPELLCHECK_GROUND_TRUTH

TINY_NET = {"network": "transformer", "timesteps": 10, "layers": 1, "width": 16, "heads": 2, "local_heads": 1,
            "local_window": 8, "ff_mult": 2, "dropout": 0.0}


def tiny(corpus: str = td.STAND_IN, num_classes: int = 27, split_sizes=(4096, 512, 1024), **changes):
    return dataclasses.replace(
        td.PROFILES["smoke"], corpus=corpus, split_sizes=split_sizes,
        diffusion={"data_shape": (16,), "num_classes": num_classes, **TINY_NET}, steps=6, batch_size=8,
        test_chunks=8, eval_batch=8, skip_bound_chunks=4, num_samples=3, spell_chunks=8, **changes)


def test_tiny_run_stores_metrics_and_reuses_them(tmp_path, monkeypatch):
    config = tiny()
    monkeypatch.setitem(td.PROFILES, "smoke", config)
    rows = td.run_text_diffusion("smoke", checkpoint_dir=tmp_path, seed=0, device="cpu", progress=False)
    assert [row["name"] for row in rows] == list(td.NAMES)
    r, masked = rows
    assert "stand-in, not text8" in r["label"] and r["stand_in"] and r["paper"] is None
    assert r["paper_text8"] == 1.72 and r["paper_enwik8"] == 1.75 and r["unit"] == "bpc"
    assert r["steps"] == config.steps and len(r["losses"]) == config.steps
    assert math.isfinite(r["ours"]) and r["ours"] > 0 and r["test_chunks"] == config.test_chunks
    # the exact entropy of a 16-character chunk of the stand-in, and the exact NLL of the test chunks
    assert r["entropy_bits"] == pytest.approx(td.load_data(config).entropy_bits_per_char)
    assert abs(r["test_true_bits"] - r["entropy_bits"]) < 1.0
    assert [s["steps"] for s in r["samples"]] == td.sampling_step_counts(10) == [10, 2, 1]
    for s in r["samples"]:
        assert s["calls"] == s["steps"] and s["seconds"] >= 0 and math.isfinite(s["bound_bits"])
        assert len(s["texts"]) == 3 and all(len(t) == 16 and set(t) <= set(TEXT8_ALPHABET) for t in s["texts"])
    official, held = r["spellcheck"]
    assert official["truth"] == SPELLCHECK_GROUND_TRUTH and official["corrupted"] == SPELLCHECK_CORRUPTED
    assert len(official["suggestion"]) == len(SPELLCHECK_GROUND_TRUTH) and len(official["corrupted_at"]) == 12
    assert official["fixed"] + official["errors_after"] - official["broken"] == 12
    assert len(held["corrupted_at"]) == round(config.spell_fraction * 16)
    st = r["spell_stats"]
    assert st["corrupted"] == 8 * round(config.spell_fraction * 16) and st["corrupted"] + st["clean"] == 8 * 16

    def no_training(*args, **kwargs):
        raise AssertionError("a finished run must not train again")

    monkeypatch.setattr(td, "fit", no_training)
    again = td.run_text_diffusion("smoke", checkpoint_dir=tmp_path, seed=0, device="cpu", progress=False)
    assert again[0]["ours"] == r["ours"] and again[0]["samples"] == r["samples"]
    assert again[1]["ours"] == masked["ours"]
    model = td.load_model("smoke", tmp_path, device="cpu")
    assert model.sample(2, steps=2).shape == (2, 16)
    assert td.load_model("smoke", tmp_path, device="cpu", name="masked-text-diffusion").sample(2).shape == (2, 16)

    # the masked row: same network and budget, its own bound, no spell checker
    assert masked["label"].startswith("Masked text diffusion") and masked["paper_text8"] == td.MD4_TEXT8_BPC
    assert masked["steps"] == config.steps and math.isfinite(masked["ours"]) and masked["ours"] > 0
    assert masked["spellcheck"] is None and masked["spell_stats"] is None
    assert masked["entropy_bits"] == r["entropy_bits"] and masked["test_true_bits"] == r["test_true_bits"]
    assert all(s["calls"] <= s["steps"] and math.isfinite(s["bound_bits"]) for s in masked["samples"])
    assert abs(masked["parameters"] - r["parameters"]) < 100     # one more input state

    path = write_results("11_text_diffusion", td.scoreboard_rows(rows, "smoke"), "smoke", tmp_path / "results")
    written = json.loads(path.read_text())["rows"]
    paper_only, ours = written[:2], written[2:]
    assert [row["paper"] for row in paper_only] == [1.72, td.MD4_TEXT8_BPC]
    assert all(row["ours"] is None and "no run of ours" in row["metric"] and row["status"] == "not run"
               for row in paper_only)
    assert all("not text8" in row["method"] for row in ours) and all(row["paper"] is None for row in ours)
    assert [row["ours"] for row in ours] == pytest.approx([r["ours"], r["entropy_bits"], masked["ours"]])
    assert all(row["status"] == "smoke" for row in ours)
    assert ours[0]["gap_to_entropy"] == pytest.approx(r["ours"] - r["entropy_bits"])
    assert ours[0]["budget_ratio"] == pytest.approx(td.run_budget_ratio(td.PROFILES["smoke"]))
    cpu = td.scoreboard_rows(rows, "cpu")
    assert [row["status"] for row in cpu] == ["not run", "not run"] + ["different data"] * 3


def test_paper_profiles_are_the_official_settings():
    full = td.PROFILES["paper"]
    assert full.corpus == "text8" and full.diffusion == TEXT8_DIFFUSION
    assert (full.seq_len, full.timesteps, full.diffusion["num_classes"]) == (256, 1000, 27)
    # README: --batch_size 32 --lr 0.0001 --epochs 1000, Adam without warm-up or clipping, on the train split
    assert (full.batch_size, full.lr, full.epochs, full.warmup, full.grad_clip) == (32, 1e-4, 1000, 0, None)
    assert full.steps == 1000 * math.ceil(351_562 / 32) and full.split_sizes is None and full.test_chunks is None
    assert full.print_estimate and round(full.spell_fraction * 256) == 12   # figure 5 changes 12 characters
    enwik8 = td.PROFILES["paper-enwik8"]
    assert enwik8.corpus == "enwik8" and enwik8.diffusion == ENWIK8_DIFFUSION and enwik8.unit == "bpb"
    assert (enwik8.seq_len, enwik8.timesteps, enwik8.diffusion["num_classes"]) == (320, 4000, 256)
    assert enwik8.steps == 1000 * math.ceil(281_250 / 32) and enwik8.batch_size == 32 and enwik8.lr == 1e-4
    assert td.TABLE3_DIFFUSION == {"text8": 1.72, "enwik8": 1.75}
    assert td.sampling_step_counts(1000) == [1000, 250, 50] and td.sampling_step_counts(4000) == [4000, 1000, 200]


@pytest.mark.parametrize("profile, name", [("paper", "text8"), ("full-enwik8", "enwik8")])
def test_missing_corpus_names_the_fix(tmp_path, profile, name):
    with pytest.raises(FileNotFoundError, match=rf"{name} not found at .*download_text_corpus\('{name}'"):
        td.run_text_diffusion(profile, checkpoint_dir=tmp_path / "ck", data_dir=tmp_path / "nodata", progress=False)
    assert not (tmp_path / "ck" / profile / "diffusion.pt").exists()
    assert not (tmp_path / "ck" / profile.replace("full", "paper") / "diffusion.pt").exists()


def test_unknown_profile_is_rejected():
    with pytest.raises(ValueError, match="profile must be one of"):
        td.run_text_diffusion("huge", checkpoint_dir=None)


def test_real_corpus_path_on_small_files(tmp_path):
    """text8 and enwik8 files of the right format (but small): the same code as the paper runs."""
    folder = tmp_path / "text8"
    folder.mkdir()
    chars = np.frombuffer(TEXT8_ALPHABET.encode(), dtype=np.uint8)[synthetic_text(6000, seed=1).numpy()]
    chars.tofile(folder / "text8")
    m = td.run_one(tiny("text8", split_sizes=(4000, 500, 1000)), None, tmp_path, device="cpu", progress=False)
    assert not m["stand_in"] and "text8 (real" in m["source"] and m["entropy_bits"] is None
    assert m["unit"] == "bpc" and math.isfinite(m["test_bits"])

    folder = tmp_path / "enwik8"
    folder.mkdir()
    raw = ("<page><title>caf\u00e9</title>\n" * 300).encode("utf-8")
    np.frombuffer(raw, dtype=np.uint8).tofile(folder / "enwik8")
    m = td.run_one(tiny("enwik8", 256, split_sizes=(6000, 640, 1280)), None, tmp_path, device="cpu", progress=False)
    assert not m["stand_in"] and m["unit"] == "bpb" and math.isfinite(m["test_bits"])
    held = m["spellcheck"][1]
    assert len(held["truth"]) == 16 and held["truth"] in ("<page><title>caf\u00c3\u00a9</title>\u00b7" * 3)
    assert len(m["spellcheck"][0]["suggestion"]) == len(SPELLCHECK_GROUND_TRUTH)


def test_known_word_rate_skips_cut_words():
    assert td.known_word_rate(["ab the cat zz"], {"the"}) == 0.5
    assert td.known_word_rate(["thecat"], {"the"}) is None


def test_reading_only_without_a_finished_run_names_the_command(tmp_path):
    with pytest.raises(td.NoFinishedRun, match="python -m catlib.experiments text_diffusion --profile paper "):
        td.run_text_diffusion("full", checkpoint_dir=tmp_path, data_dir=tmp_path / "nodata", train=False)
    with pytest.raises(td.NoFinishedRun, match="--profile cpu "):   # the cpu run is not trained by a reader either
        td.run_text_diffusion("cpu", checkpoint_dir=tmp_path, train=False)


def test_command_line_without_the_corpus_exits_with_the_fix(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        td.main(["--profile", "full", "--data-dir", str(tmp_path), "--checkpoint-dir", str(tmp_path / "ck")])
    assert exit_info.value.code == 2
    assert "download_text_corpus('text8'" in capsys.readouterr().err


def test_cpu_profile_is_the_stand_in_at_texts_length_and_says_its_budget():
    cpu, paper = td.PROFILES["cpu"], td.PROFILES["paper"]
    assert cpu.corpus == td.STAND_IN and cpu.seq_len == paper.seq_len == 256 and cpu.timesteps == paper.timesteps
    assert td.run_budget_ratio(cpu) == pytest.approx(12_000 * 32 / paper.steps / 32)
    assert td.run_budget_ratio(paper) == 1.0 and td.run_budget_ratio(td.PROFILES["paper-enwik8"]) == 1.0
    assert sum(p.numel() for p in td.build(cpu).parameters()) < 2_000_000

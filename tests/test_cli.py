"""The experiments' command lines: a bad value exits with status 2 and ``error: argument --flag: ...``, no traceback.

Every test runs ``main(argv)`` in this process with ``fit`` replaced by a function that fails, so a
command line that is wrongly accepted fails the test at once instead of training.
"""
from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from catlib.experiments import __main__ as dispatcher
from catlib.experiments import experiment_parser

#: Each experiment and where its valid ``--only`` names come from.
VALID_NAMES = {
    "toy50": lambda m: [row[0] for row in m.TABLE2],
    "two_variable": lambda m: [row[0] for row in m.TABLE5],
    "squares": lambda m: list(m.NAMES),
    "words": lambda m: list(m.NAMES),
    "graphs": lambda m: list(m.GRAPH_MODELS),
    "text8": lambda m: list(m.NAMES["text8"]),
    "text_diffusion": lambda m: list(m.NAMES),
    "cityscapes": lambda m: list(m.NAMES),
    "molecules": lambda m: list(m.NAMES),
    "masking": lambda m: list(m.NAMES),
}


def _module(name: str):
    return importlib.import_module(f"catlib.experiments.{name}")


@pytest.fixture(autouse=True)
def no_training(monkeypatch):
    """``fit`` of every experiment fails: nothing here may train."""
    def fit(*args, **kwargs):
        raise AssertionError("the command line was accepted and training started")

    for name in VALID_NAMES:
        monkeypatch.setattr(_module(name), "fit", fit)


def _exits_2(main, argv, capsys) -> str:
    """Run ``main(argv)``, expect exit status 2; return standard error."""
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    err = capsys.readouterr().err
    assert exit_.value.code == 2, err
    assert "Traceback" not in err and "error: " in err
    return err


@pytest.mark.parametrize("name", sorted(VALID_NAMES))
def test_only_with_an_unknown_name_exits_2_listing_the_valid_names(name, tmp_path, capsys):
    module = _module(name)
    err = _exits_2(module.main, ["--profile", "smoke", "--checkpoint-dir", str(tmp_path), "--only", "nosuch"], capsys)
    assert "argument --only" in err and "nosuch" in err
    valid = VALID_NAMES[name](module)
    assert valid and all(v in err for v in valid), err


def test_text8_only_names_of_the_chosen_dataset(tmp_path, capsys):
    text8 = _module("text8")
    err = _exits_2(text8.main, ["--profile", "full", "--dataset", "enwik8", "--checkpoint-dir", str(tmp_path),
                                "--only", "ar-uniform"], capsys)
    assert "argument --only" in err and "'ar-uniform'" in err and "ar-argmax, coupling-argmax" in err
    err = _exits_2(text8.main, ["--profile", "smoke", "--dataset", "enwik8", "--checkpoint-dir", str(tmp_path)],
                   capsys)
    assert "argument --dataset" in err and "full" in err


@pytest.mark.parametrize("seed", ["-1", str(2**40)])
def test_bad_seed(seed, tmp_path, capsys):
    err = _exits_2(_module("toy50").main, ["--profile", "smoke", "--checkpoint-dir", str(tmp_path), "--seed", seed],
                   capsys)
    assert "argument --seed" in err and repr(seed) in err


def test_unknown_device(tmp_path, capsys):
    err = _exits_2(_module("two_variable").main,
                   ["--profile", "smoke", "--checkpoint-dir", str(tmp_path), "--device", "tpu9"], capsys)
    assert "argument --device" in err and "'tpu9' is not a device" in err and "Invalid device string" in err


@pytest.mark.parametrize("build_cuda, why", [(None, "has no CUDA support"), ("12.4", "no GPU is visible")])
def test_cuda_without_a_gpu_says_why(build_cuda, why, monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(torch.version, "cuda", build_cuda)
    monkeypatch.setattr(torch.version, "hip", None)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    for device in ("cuda", "cuda:1"):
        err = _exits_2(_module("squares").main,
                       ["--profile", "smoke", "--checkpoint-dir", str(tmp_path), "--device", device], capsys)
        assert "argument --device" in err and f"cannot use device '{device}'" in err and why in err


def test_mps_without_mps_says_why(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(torch.backends.mps, "is_built", lambda: False)
    err = _exits_2(_module("toy50").main, ["--profile", "smoke", "--checkpoint-dir", str(tmp_path), "--device", "mps"],
                   capsys)
    assert "argument --device" in err and "no MPS support" in err


def test_good_values_parse_and_every_experiment_is_covered():
    assert set(VALID_NAMES) == set(dispatcher.available_experiments())
    args = experiment_parser("x", {"smoke": 1}, "ck", names=["a", "b"]).parse_args(
        ["--profile", "smoke", "--device", "cpu", "--seed", "7", "--only", "b", "a"])
    assert args.device == torch.device("cpu") and args.seed == 7 and args.only == ["b", "a"]


@pytest.mark.parametrize("minutes", ["inf", "nan", "0", "-2"])
def test_bad_checkpoint_minutes(minutes, capsys):
    err = _exits_2(dispatcher.main, ["--checkpoint-minutes", minutes, "toy50", "--profile", "smoke"], capsys)
    assert "argument --checkpoint-minutes" in err and repr(minutes) in err


def test_fp16_without_cuda(monkeypatch, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    err = _exits_2(dispatcher.main, ["--precision", "fp16", "toy50", "--profile", "smoke"], capsys)
    assert "argument --precision" in err and "fp16" in err


@pytest.mark.parametrize("name", sorted(VALID_NAMES))
def test_a_checkpoint_folder_that_cannot_be_created_fails_before_training(name, tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("in the way")
    err = _exits_2(_module(name).main, ["--profile", "smoke", "--checkpoint-dir", str(blocker / "ck")], capsys)
    assert "argument --checkpoint-dir" in err and str(blocker / "ck" / "smoke") in err and "cannot be created" in err


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux's /proc (a folder no one can write)")
def test_a_checkpoint_folder_that_exists_but_is_not_writable_fails_before_training(monkeypatch, capsys):
    toy50 = _module("toy50")
    # --checkpoint-dir /proc --profile self: the runs would write to /proc/self, which exists (root cannot write it)
    monkeypatch.setitem(toy50.PROFILES, "self", toy50.PROFILES["smoke"])
    err = _exits_2(toy50.main, ["--profile", "self", "--checkpoint-dir", "/proc"], capsys)
    assert "argument --checkpoint-dir" in err and "'/proc/self' is not writable" in err


def test_graphs_cache_folder_that_cannot_be_written(tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("in the way")
    err = _exits_2(_module("graphs").main, ["--profile", "smoke", "--checkpoint-dir", str(tmp_path / "ck"),
                                            "--data-dir", str(blocker)], capsys)
    assert "argument --data-dir" in err and str(blocker / "graph_colouring") in err


def test_text_diffusion_only_selects_rows(monkeypatch, tmp_path, capsys):
    td = _module("text_diffusion")
    monkeypatch.setattr(td, "run_one", lambda *a, **k: {"test_bits": 1.5, "train_seconds": 1.0, "eval_seconds": 2.0})
    assert td.run_text_diffusion("smoke", tmp_path, names=[]) == []
    rows = td.run_text_diffusion("smoke", tmp_path, names=["multinomial-text-diffusion"])
    assert [r["name"] for r in rows] == ["multinomial-text-diffusion"] and rows[0]["seconds"] == 3.0
    with pytest.raises(ValueError, match="unknown model name"):
        td.run_text_diffusion("smoke", tmp_path, names=["nosuch"])

    seen = {}

    def run(*args, **kwargs):
        seen.update(kwargs)
        return []

    monkeypatch.setattr(td, "run_text_diffusion", run)
    td.main(["--profile", "smoke", "--checkpoint-dir", str(tmp_path), "--only", "multinomial-text-diffusion"])
    assert seen["names"] == ["multinomial-text-diffusion"]
    td.main(["--profile", "smoke", "--checkpoint-dir", str(tmp_path)])
    assert seen["names"] is None


@pytest.mark.parametrize("argv, flag", [(["toy50", "--seed", "-1"], "--seed"),
                                        (["--checkpoint-minutes", "inf", "toy50"], "--checkpoint-minutes")])
def test_from_the_shell(argv, flag):
    done = subprocess.run([sys.executable, "-m", "catlib.experiments", *argv], capture_output=True, text=True,
                          cwd=Path(__file__).resolve().parents[1], timeout=120)
    assert done.returncode == 2, done.stderr
    assert f"error: argument {flag}: " in done.stderr and "Traceback" not in done.stderr

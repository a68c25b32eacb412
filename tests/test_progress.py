"""catlib.progress: widgets for a reader, text when the book is built; diffusion sampling shows a bar."""
import pytest
import torch
from tqdm import tqdm as text_tqdm
from tqdm.auto import tqdm as auto_tqdm

from catlib.diffusion import PROGRESS_FROM_CALLS, MultinomialDiffusion
from catlib.nets import TimeMLP
from catlib.progress import progress_bar


def test_text_mode_writes_lines_to_stderr(monkeypatch, capsys):
    monkeypatch.setenv("CATBOOK_PROGRESS", "text")
    monkeypatch.setenv("CATBOOK_PROGRESS_SECONDS", "0")
    bar = progress_bar(range(5), desc="steps")
    assert type(bar) is text_tqdm and list(bar) == [0, 1, 2, 3, 4]
    assert "steps: 100%" in capsys.readouterr().err
    assert progress_bar(range(2), mininterval=0.5).mininterval == 0.5  # never more often than asked


def test_auto_mode_and_bad_values(monkeypatch):
    monkeypatch.delenv("CATBOOK_PROGRESS", raising=False)
    assert type(progress_bar(range(2), disable=True)) is auto_tqdm
    monkeypatch.setenv("CATBOOK_PROGRESS", "widgets")
    with pytest.raises(ValueError, match="CATBOOK_PROGRESS"):
        progress_bar(range(2))


def test_long_diffusion_sampling_shows_a_bar(monkeypatch, capsys):
    monkeypatch.setenv("CATBOOK_PROGRESS", "text")
    monkeypatch.setenv("CATBOOK_PROGRESS_SECONDS", "0")
    torch.manual_seed(0)
    model = MultinomialDiffusion((4,), 3, TimeMLP(4, 3, hidden=(8,)), timesteps=200)
    model.sample(2, steps=PROGRESS_FROM_CALLS)
    assert "sampling" in capsys.readouterr().err
    model.sample(2, steps=PROGRESS_FROM_CALLS - 1)
    model.sample(2, steps=PROGRESS_FROM_CALLS, progress=False)
    assert capsys.readouterr().err == ""

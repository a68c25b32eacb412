"""catlib.full_models (the list of full-size models, the timing helper) and catlib.viz.speed (the committed GPU
measurements, read back and shown)."""
import json
import math

import pytest
import torch
from torch import nn

from catlib.experiments import cityscapes, text8, text_diffusion
from catlib.full_models import FullModel, full_models, measure, parameter_count, unmeasured
from catlib.viz.speed import SPEED_PATH, speed_rows, speed_table


def test_full_models_are_the_papers_tables_with_their_schedules():
    models = full_models()
    keys = [m.key for m in models]
    assert len(keys) == len(set(keys)) == len(text8.TABLE2) + 2 + len(cityscapes.TABLE4)
    assert keys[:len(text8.TABLE2)] == [f"{d}/{n}" for d, n, _, _ in text8.TABLE2]
    by = {m.key: m for m in models}
    ar = text8.PROFILES["paper"].training["text8-ar"]
    assert (by["text8/ar-argmax"].batch_size, by["text8/ar-argmax"].steps) == (ar["batch_size"], ar["steps"])
    assert by["enwik8/coupling-argmax"].shape == (320,) and by["enwik8/coupling-argmax"].num_classes == 256
    assert by["text8/diffusion"].steps == text_diffusion.PROFILES["paper"].steps
    assert by["enwik8/diffusion"].steps == text_diffusion.PROFILES["paper-enwik8"].steps
    diff = cityscapes.PROFILES["paper"].train_options("multinomial-diffusion")
    assert (by["cityscapes/multinomial-diffusion"].batch_size, by["cityscapes/multinomial-diffusion"].steps) == \
        (diff["batch_size"], diff["steps"])
    assert {m.chapter for m in models} == {"10", "11", "12"}
    assert parameter_count(by["text8/ar-argmax"]) == text8.count_parameters("ar-argmax", text8.PROFILES["paper"])


class Square(nn.Module):
    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.zeros(3))

    def log_prob(self, x):
        return -(self.w[x] ** 2).sum(1)


def test_measure_projects_the_papers_steps_and_keeps_the_model_unchanged():
    model = Square()
    spec = FullModel(key="toy/square", chapter="99", label="toy", build=lambda: model, shape=(4,), num_classes=3,
                     batch_size=8, steps=1000, command="none")
    row = measure(spec, "cpu", warmup_steps=1, timed_steps=2, batch_size=2)
    assert row["key"] == "toy/square" and row["batch_size"] == 2 and row["paper_batch_size"] == 8
    assert row["paper_steps"] == 1000 and row["parameters"] == 3
    assert math.isclose(row["steps_per_second"] * row["seconds_per_step"], 1.0)
    assert math.isclose(row["total_seconds"], 1000 * row["seconds_per_step"])
    assert torch.equal(model.w, torch.zeros(3))  # estimate_run trains a copy
    shown = speed_table([row])[0]
    assert shown["batch"] == "2 (paper 8)" and shown["paper's steps"] == "1,000"


def test_speed_rows_filters_by_chapter_and_tolerates_a_missing_file(tmp_path):
    assert speed_rows("10", tmp_path / "none.json") == {"environment": {}, "command": None, "results": [],
                                                          "sampling": []}
    path = tmp_path / "speed.json"
    path.write_text(json.dumps({"environment": {"gpu": "g"}, "command": "c",
                                "results": [{"chapter": "10", "key": "a"}, {"chapter": "12", "key": "b"}],
                                "sampling": [{"chapter": "12", "key": "b"}]}))
    got = speed_rows("12", path)
    assert got["environment"] == {"gpu": "g"} and [r["key"] for r in got["results"]] == ["b"]
    assert len(got["sampling"]) == 1 and speed_rows("10", path)["sampling"] == []


@pytest.mark.skipif(not SPEED_PATH.exists(), reason="no committed measurements")
def test_committed_measurements_describe_the_current_models():
    """Every full model has a measurement at fp32 on a GPU, made with its current size and the paper's batch.

    If a model's size or schedule changes, re-measure on a GPU (benchmarks/speed_full_models.py).
    """
    data = json.loads(SPEED_PATH.read_text())
    assert data["environment"]["device"].startswith("cuda") and not data["failures"]
    rows = {(r["key"], r["precision"]): r for r in data["results"]}
    for model in full_models():
        r = rows[(model.key, "fp32")]
        assert r["parameters"] == parameter_count(model), model.key
        assert r["batch_size"] == r["paper_batch_size"] == model.batch_size and r["paper_steps"] == model.steps
        assert r["memory_source"] == "cuda" and r["steps_per_second"] > 0


def test_unmeasured_names_the_chapters_models_without_a_row():
    keys = [m.key for m in full_models() if m.chapter == "11"]
    speed = {"results": [{"key": keys[0], "precision": "fp32"}, {"key": keys[1], "precision": "bf16"}]}
    assert unmeasured("11", speed) == keys[1:]
    assert unmeasured("11", speed, precision="bf16") == [keys[0]]

"""book/plan.py: what `make book` says it will do, from results/ and checkpoints/."""
import importlib.util
import json
from pathlib import Path

import torch

from catlib.checkpoint import save_checkpoint

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("book_plan", ROOT / "book" / "plan.py")
plan = importlib.util.module_from_spec(spec)
spec.loader.exec_module(plan)


def make_root(tmp_path: Path) -> Path:
    for name in ("01_first", "02_second", "03_third"):
        (tmp_path / "notebooks").mkdir(exist_ok=True)
        (tmp_path / "notebooks" / f"{name}.ipynb").write_text("{}")
    rows = [{"method": "a", "seconds": 600.0}, {"method": "a", "metric": "other", "seconds": 600.0},
            {"method": "b", "seconds": 3000.0}]
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "02_second.json").write_text(json.dumps({"profile": "cpu", "rows": rows}))
    (tmp_path / "results" / "03_third.json").write_text(json.dumps({"profile": "cpu", "rows": rows[:1]}))
    folder = tmp_path / "checkpoints" / "03_third" / "cpu"
    folder.mkdir(parents=True)
    save_checkpoint(folder / "done.pt", {"model": {"w": torch.zeros(2)}, "metrics": {"bits": 1.0}})
    return tmp_path


def test_plan_reads_results_and_checkpoints(tmp_path):
    root = make_root(tmp_path)
    rows = {r["chapter"]: r for r in plan.plan("cpu", root)}
    assert rows["01_first"]["recorded"] is None and rows["01_first"]["action"].startswith("trains")
    assert rows["02_second"]["recorded"] == 3600.0  # two rows of one run count once
    assert rows["03_third"]["action"] == "reuses 1 finished run"
    folder = root / "checkpoints" / "03_third" / "cpu"
    save_checkpoint(folder / "half.pt", {"model": {"w": torch.zeros(2)}, "metrics": None})
    assert "resumes 1" in plan.plan("cpu", root)[2]["action"]
    assert plan.plan("paper", root)[1]["recorded"] is None  # results of another profile say nothing
    (root / "_build" / "smoke").mkdir(parents=True)
    (root / "_build" / "smoke" / "seconds.json").write_text(json.dumps({"01_first": 42.0}))
    assert [r["recorded"] for r in plan.plan("smoke", root)] == [42.0, None, None]


def test_describe_names_the_profile_and_the_total(tmp_path):
    text = plan.describe("cpu", make_root(tmp_path))
    assert "'cpu' profile: 3 chapters" in text
    assert "02_second" in text and "1 h 0 min" in text and "unknown" in text
    assert "about 1 h 0 min of training" in text  # 03 reuses its run, so only 02 counts
    assert plan.duration(59) == "59 s" and plan.duration(95) == "2 min" and plan.duration(3660) == "1 h 1 min"


def test_describe_at_smoke_gives_the_last_runs(tmp_path):
    root = make_root(tmp_path)
    (root / "_build" / "smoke").mkdir(parents=True)
    (root / "_build" / "smoke" / "seconds.json").write_text(json.dumps({"01_first": 12.0, "02_second": 30.0}))
    text = plan.describe("smoke", root)
    assert "last smoke run: 12 s" in text and "took 42 s together (1 unknown)" in text

"""catlib.results: the result files behind book/scoreboard.md."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from catlib.results import (COLUMNS, STATUSES, code_commit, prepare_results_dir, read_results, results_table,
                            row_status, write_results)


def make_row(profile: str = "smoke", **changes):
    row = {
        "method": "argmax / thresholding",
        "metric": "IWBO (bits)",
        "ours": 4.83,
        "paper": 4.82,
        "status": "smoke" if profile == "smoke" else "reproduced",
        "budget_ratio": None,
        "profile": profile,
        "steps": 100,
        "device": "cpu",
        "seconds": 12.5,
    }
    row.update(changes)
    return row


def test_write_then_read_round_trip(tmp_path):
    rows = [make_row(), make_row(method="hypercube / uniform", ours=9.9, paper=None)]
    path = write_results("03_toy50_reproduction", rows, "smoke", tmp_path)
    assert path == tmp_path / "smoke" / "03_toy50_reproduction.json"
    payload = json.loads(path.read_text())
    assert payload["chapter"] == "03_toy50_reproduction"
    assert payload["profile"] == "smoke"
    assert payload["commit"] == code_commit() != ""
    assert read_results(tmp_path) == {"03_toy50_reproduction": rows}


def test_write_replaces_previous_file_and_leaves_no_temporary(tmp_path):
    write_results("01_a", [make_row(ours=1.0)], "smoke", tmp_path)
    write_results("01_a", [make_row(ours=2.0)], "smoke", tmp_path)
    assert [r["ours"] for r in read_results(tmp_path)["01_a"]] == [2.0]
    assert [p.name for p in (tmp_path / "smoke").iterdir()] == ["01_a.json"]


def test_numbers_are_stored_as_floats_and_extra_keys_kept(tmp_path):
    row = make_row(ours=np.float32(0.5), paper=1, seconds=np.int64(3), steps=np.int64(7),
                   note="IWBO with k=1000")
    write_results("01_a", [row], "smoke", tmp_path)
    (back,) = read_results(tmp_path)["01_a"]
    assert back["ours"] == 0.5 and isinstance(back["ours"], float)
    assert back["paper"] == 1.0 and isinstance(back["paper"], float)
    assert back["seconds"] == 3.0 and back["steps"] == 7
    assert back["note"] == "IWBO with k=1000"


def test_empty_rows_are_allowed(tmp_path):
    write_results("01_a", [], "smoke", tmp_path)
    assert read_results(tmp_path) == {"01_a": []}


@pytest.mark.parametrize("missing", COLUMNS)
def test_missing_key_is_named(tmp_path, missing):
    row = make_row()
    del row[missing]
    with pytest.raises(ValueError, match=f"row 0 is missing the key '{missing}'"):
        write_results("01_a", [row], "smoke", tmp_path)
    assert not (tmp_path / "smoke" / "01_a.json").exists()


@pytest.mark.parametrize("key", ["ours", "paper", "seconds"])
@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf, float("nan")])
def test_non_finite_numbers_are_rejected(tmp_path, key, bad):
    with pytest.raises(ValueError, match=f"'{key}' must be finite"):
        write_results("01_a", [make_row(**{key: bad})], "smoke", tmp_path)


@pytest.mark.parametrize("bad", ["4.8", True, [4.8], {"x": 1}])
def test_non_numbers_are_rejected(tmp_path, bad):
    with pytest.raises(ValueError, match="'ours' must be a finite number or None"):
        write_results("01_a", [make_row(ours=bad)], "smoke", tmp_path)


def test_tensor_needs_item(tmp_path):
    torch = pytest.importorskip("torch")
    with pytest.raises(ValueError, match=r"use \.item\(\)"):
        write_results("01_a", [make_row(ours=torch.tensor(4.8))], "smoke", tmp_path)


def test_none_is_allowed_for_numbers(tmp_path):
    row = make_row(ours=None, paper=None, seconds=None, steps=None)
    write_results("01_a", [row], "smoke", tmp_path)
    assert read_results(tmp_path)["01_a"] == [row]


@pytest.mark.parametrize("bad", [-1, 2.5, "10", True])
def test_bad_steps_are_rejected(tmp_path, bad):
    with pytest.raises(ValueError, match="'steps' must be a non-negative integer"):
        write_results("01_a", [make_row(steps=bad)], "smoke", tmp_path)


@pytest.mark.parametrize("key", ["method", "metric", "device"])
def test_text_fields_must_be_non_empty_strings(tmp_path, key):
    with pytest.raises(ValueError, match=f"'{key}' must be a non-empty string"):
        write_results("01_a", [make_row(**{key: ""})], "smoke", tmp_path)


def test_row_profile_must_match(tmp_path):
    with pytest.raises(ValueError, match="'profile' is 'cpu' but .* profile 'smoke'"):
        write_results("01_a", [make_row(profile="cpu", status="smoke")], "smoke", tmp_path)


def test_status_must_be_a_known_one(tmp_path):
    with pytest.raises(ValueError, match="'status' must be one of .*'reproduced'.* got 'great'"):
        write_results("01_a", [make_row(status="great")], "smoke", tmp_path)


@pytest.mark.parametrize("key", ["budget_ratio", "entropy", "gap_to_entropy"])
def test_new_number_fields_must_be_finite(tmp_path, key):
    with pytest.raises(ValueError, match=f"'{key}' must be finite"):
        write_results("01_a", [make_row(**{key: math.inf})], "smoke", tmp_path)


def test_row_status_follows_the_numbers_and_the_evidence():
    assert row_status(4.95, 5.0, 0.15) == "reproduced"
    assert row_status(5.3, 5.0, 0.15) == "close"
    assert row_status(6.0, 5.0, 0.15) == "differs"
    assert row_status(6.0, 5.0, 0.15, budget_ratio=0.1) == "undertrained"
    assert row_status(6.0, 5.0, 0.15, budget_ratio=2.0) == "differs"
    assert row_status(6.0, 5.0, 0.15, still_improving=True) == "undertrained"
    assert row_status(6.0, 5.0, 0.15, same_data=False) == "different data"
    assert row_status(None, 5.0, 0.15) == "not run"
    assert row_status(6.0, None, 0.15) == "ours only"
    assert row_status(6.0, 5.0, 0.15, profile="smoke") == "smoke"
    assert {row_status(*args) for args in [(1, 1, 0), (1, None, 0), (None, 1, 0)]} <= set(STATUSES)
    with pytest.raises(ValueError, match="tolerance must be a number >= 0"):
        row_status(1.0, 1.0, -1)


@pytest.mark.parametrize("name", ["", "../escape", "a/b", ".hidden", None])
def test_chapter_and_profile_must_be_plain_names(tmp_path, name):
    with pytest.raises(ValueError, match="chapter must be a plain file name"):
        write_results(name, [], "smoke", tmp_path)
    with pytest.raises(ValueError, match="profile must be a plain file name"):
        write_results("01_a", [], name, tmp_path)


def test_rows_must_be_a_list_of_dicts(tmp_path):
    with pytest.raises(ValueError, match="rows must be a list"):
        write_results("01_a", make_row(), "smoke", tmp_path)
    with pytest.raises(ValueError, match="row 1 must be a dict"):
        write_results("01_a", [make_row(), "x"], "smoke", tmp_path)


def test_paper_then_cpu_then_smoke_per_chapter(tmp_path):
    write_results("01_a", [make_row("smoke", ours=9.0)], "smoke", tmp_path)
    write_results("01_a", [make_row("cpu", ours=5.0)], "cpu", tmp_path)
    write_results("04_d", [make_row("cpu", ours=5.0)], "cpu", tmp_path)
    write_results("04_d", [make_row("paper", ours=4.0)], "paper", tmp_path)
    write_results("02_b", [make_row("smoke", ours=7.0)], "smoke", tmp_path)
    write_results("03_c", [make_row("gpu", ours=1.0)], "gpu", tmp_path)
    write_results("03_c", [make_row("smoke", ours=2.0)], "smoke", tmp_path)
    found = read_results(tmp_path)
    assert list(found) == ["01_a", "02_b", "03_c", "04_d"]
    assert [(r["profile"], r["ours"]) for r in found["01_a"]] == [("cpu", 5.0)]
    assert [(r["profile"], r["ours"]) for r in found["04_d"]] == [("paper", 4.0)]
    assert [(r["profile"], r["ours"]) for r in found["02_b"]] == [("smoke", 7.0)]
    # a profile outside the preference list comes after smoke
    assert [(r["profile"], r["ours"]) for r in found["03_c"]] == [("smoke", 2.0)]


def test_missing_results_folder_reads_as_empty(tmp_path):
    assert read_results(tmp_path / "nope") == {}


def test_stray_files_are_ignored(tmp_path):
    (tmp_path / "README.md").write_text("x")
    (tmp_path / "smoke").mkdir()
    (tmp_path / "smoke" / "notes.txt").write_text("x")
    assert read_results(tmp_path) == {}


def test_corrupt_file_is_named(tmp_path):
    (tmp_path / "smoke").mkdir()
    bad = tmp_path / "smoke" / "01_a.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="cannot read results file .*01_a.json"):
        read_results(tmp_path)
    bad.write_text(json.dumps({"rows": [{"method": "m"}]}))
    with pytest.raises(ValueError, match="01_a.json: row 0 is missing the key 'metric'"):
        read_results(tmp_path)
    bad.write_text("[1, 2]")
    with pytest.raises(ValueError, match="must hold an object with a 'rows' list"):
        read_results(tmp_path)


def test_cpu_results_live_at_the_top_and_the_others_below(tmp_path):
    cpu = write_results("01_a", [make_row("cpu")], "cpu", tmp_path)
    smoke = write_results("01_a", [make_row("smoke")], "smoke", tmp_path)
    paper = write_results("01_a", [make_row("paper")], "paper", tmp_path)
    assert cpu == tmp_path / "01_a.json"
    assert smoke == tmp_path / "smoke" / "01_a.json"
    assert paper == tmp_path / "paper" / "01_a.json"


def test_file_in_wrong_profile_folder_is_rejected(tmp_path):
    path = write_results("01_a", [make_row("smoke")], "smoke", tmp_path)
    path.rename(tmp_path / "01_a.json")  # the place of a cpu run
    with pytest.raises(ValueError, match="'profile' is 'smoke' but .* profile 'cpu'"):
        read_results(tmp_path)


def test_results_table_columns_and_values():
    rows = [make_row(note="k=1000"), make_row(method="argmax / Gumbel", paper=None)]
    table = results_table(rows)
    assert list(table.columns) == list(COLUMNS) + ["note"]
    assert table["method"].tolist() == ["argmax / thresholding", "argmax / Gumbel"]
    assert table.loc[0, "ours"] == pytest.approx(4.83)
    assert table["paper"].isna().tolist() == [False, True]


def test_results_table_of_nothing_has_the_columns():
    table = results_table([])
    assert len(table) == 0
    assert list(table.columns) == list(COLUMNS)


def test_prepare_results_dir_creates_the_folder_write_results_uses(tmp_path):
    folder = prepare_results_dir(tmp_path / "results", "smoke")
    assert folder.is_dir() and write_results("03_toy", [make_row()], "smoke", tmp_path / "results").parent == folder
    assert list(folder.iterdir()) == [folder / "03_toy.json"]  # the probe file is gone
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with pytest.raises(ValueError, match=f"results folder '{blocker}/cpu-run' cannot be created"):
        prepare_results_dir(blocker / "cpu-run", "cpu")

"""Every chapter runs at the smoke profile, and a second run reproduces its outputs.

For each ``notebooks/NN_*.ipynb``:

1. ``test_chapter_runs``: papermill executes it (kernel ``python3`` = this venv's interpreter,
   working directory ``notebooks/``, parameters ``{"PROFILE": "smoke"}``, environment
   ``CATBOOK_PROFILE=smoke``) into ``_build/smoke/<name>.ipynb``. No cell may raise. A chapter
   whose source calls ``write_results`` must have written ``results/smoke/<name>.json``.
2. ``test_chapter_outputs_reproduce``: nbval executes that output notebook again in a fresh
   kernel and compares every cell's outputs with the papermill run, after
   ``tests/nbval_sanitize.cfg`` has blanked timings, progress bars, dates, addresses...
   Images are not compared (nbval's default); a cell tagged ``nbval-ignore-output`` is run but not compared
   (the tag, not a ``# NBVAL_IGNORE_OUTPUT`` first line, which the site would show).

Both runs get their own empty checkpoint folder (``CATBOOK_CHECKPOINT_DIR``), so neither
resumes from an earlier run; data come from ``data/`` (``CATBOOK_DATA_DIR``).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
EXECUTED = ROOT / "_build" / "smoke"
RESULTS = ROOT / "results"
SANITIZE = ROOT / "tests" / "nbval_sanitize.cfg"
CELL_TIMEOUT = 900  # seconds
# make test runs each smoke chapter 3 times (papermill, nbval, the book build), so a slow one
# quickly eats CI's time. On an idle 2-core machine the slowest took 34 s (2026-12-04, the
# fresh-clone CI; every chapter's last time is in _build/smoke/seconds.json): 90 s leaves room
# for a busier machine without letting a chapter grow unnoticed.
SMOKE_BUDGET = 90  # seconds per chapter, for one run

if not CHAPTERS:  # pragma: no cover - the book always has chapters
    pytest.skip("no notebooks/NN_*.ipynb chapters yet", allow_module_level=True)

chapters = pytest.mark.parametrize("chapter", CHAPTERS, ids=[p.stem for p in CHAPTERS])


def calls_write_results(notebook: Path) -> bool:
    nb = nbformat.read(notebook, as_version=4)
    return any("write_results" in cell.source for cell in nb.cells if cell.cell_type == "code")


def error_outputs(nb: nbformat.NotebookNode) -> list[str]:
    errors = []
    for i, cell in enumerate(nb.cells):
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error":
                errors.append(f"cell {i}: {out.get('ename')}: {out.get('evalue')}")
    return errors


@chapters
def test_chapter_runs(chapter: Path, use_kernel_env, tmp_path):
    import papermill

    EXECUTED.mkdir(parents=True, exist_ok=True)
    output = EXECUTED / chapter.name
    output.unlink(missing_ok=True)
    results_file = RESULTS / "smoke" / f"{chapter.stem}.json"
    use_kernel_env(
        CATBOOK_DATA_DIR=str(ROOT / "data"),
        CATBOOK_RESULTS_DIR=str(RESULTS),
        CATBOOK_CHECKPOINT_DIR=str(tmp_path / "checkpoints"),
    )
    started = time.time()
    try:
        papermill.execute_notebook(
            str(chapter),
            str(output),
            parameters={"PROFILE": "smoke"},
            kernel_name="python3",
            cwd=str(chapter.parent),
            execution_timeout=CELL_TIMEOUT,
            progress_bar=False,
        )
    except papermill.PapermillExecutionError as error:
        pytest.fail(
            f"{chapter.name} raised in cell {error.exec_count}: {error.ename}: {error.evalue}\n"
            f"{''.join(error.traceback[-3:]) if error.traceback else ''}\n"
            f"(executed notebook with the error: {output})",
            pytrace=False,
        )
    seconds = time.time() - started
    executed = nbformat.read(output, as_version=4)
    assert not error_outputs(executed), error_outputs(executed)
    print(f"{chapter.name}: {seconds:.0f} s at the smoke profile")
    times = EXECUTED / "seconds.json"  # read by book/plan.py (make book's plan at smoke)
    recorded = json.loads(times.read_text()) if times.exists() else {}
    times.write_text(json.dumps({**recorded, chapter.stem: round(seconds, 1)}, indent=1, sort_keys=True))
    assert seconds < SMOKE_BUDGET, (
        f"{chapter.name} took {seconds:.0f} s at the smoke profile (budget {SMOKE_BUDGET} s, "
        "the others take 7-34 s): shrink its smoke settings"
    )

    if calls_write_results(chapter):
        assert results_file.exists(), (
            f"{chapter.name} calls write_results but wrote no {results_file.relative_to(ROOT)}"
            " (write_results(<chapter>, rows, PROFILE, RESULTS_DIR) with"
            " RESULTS_DIR from $CATBOOK_RESULTS_DIR?)"
        )
        assert results_file.stat().st_mtime >= started - 1, f"{results_file} is stale"
        payload = json.loads(results_file.read_text())
        assert payload["profile"] == "smoke" and payload["chapter"] == chapter.stem

        from catlib.results import read_results

        read_results(RESULTS)  # every results file is valid


@chapters
def test_chapter_outputs_reproduce(chapter: Path, kernel_env, tmp_path):
    executed = EXECUTED / chapter.name
    if not executed.exists():
        pytest.skip(f"{chapter.name} did not run (see test_chapter_runs)")
    env = kernel_env(
        CATBOOK_DATA_DIR=str(ROOT / "data"),
        # the re-run must not overwrite the smoke results of the first run
        CATBOOK_RESULTS_DIR=str(tmp_path / "results"),
        CATBOOK_CHECKPOINT_DIR=str(tmp_path / "checkpoints"),
    )
    command = [
        sys.executable, "-m", "pytest", str(executed),
        "--nbval", "--nbval-current-env",
        "--nbval-sanitize-with", str(SANITIZE),
        "--nbval-cell-timeout", str(CELL_TIMEOUT),
        "-o", "addopts=", "-p", "no:cacheprovider", "-q", "--tb=short", "--color=no",
        "--rootdir", str(tmp_path),
    ]
    run = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True)
    report = (run.stdout + run.stderr)[-20000:]
    assert run.returncode == 0, (
        f"nbval: outputs of {chapter.name} differ between two smoke runs (or a cell failed)."
        " Make the cell deterministic (seed it), blank the changing part in"
        " tests/nbval_sanitize.cfg, or tag the cell nbval-ignore-output.\n" + report
    )


def styler_chains_formatting_twice(source: str) -> list[str]:
    """Method chains in ``source`` that call ``.format(`` twice on a ``.style`` (pandas >= 3
    keeps only the last call's settings: the first one's precision or separators are lost).

    Notebook ``!`` / ``%`` lines are read as ``pass``.
    """
    import ast

    from helpers import notebook_python

    found = []
    for node in ast.walk(ast.parse(notebook_python(source))):
        names, inner = [], node
        while isinstance(inner, (ast.Call, ast.Attribute)):
            if isinstance(inner, ast.Attribute):
                names.append(inner.attr)
                inner = inner.value
            else:
                inner = inner.func
        if "style" in names and names.count("format") > 1 and isinstance(node, ast.Call):
            found.append(ast.unparse(node)[:120])
    return found


def test_styler_chain_check_sees_a_double_format():
    assert styler_chains_formatting_twice('t.style.format(precision=3).format({"a": "{:g}"}).hide(axis="index")')
    assert not styler_chains_formatting_twice('t.style.format({"a": "{:g}"}, precision=3).hide(axis="index")')


@chapters
def test_tables_are_formatted_in_one_call(chapter: Path):
    nb = nbformat.read(chapter, as_version=4)
    chains = [c for cell in nb.cells if cell.cell_type == "code" for c in styler_chains_formatting_twice(cell.source)]
    assert not chains, f"{chapter.name}: one Styler.format call per table (formats dict, precision=..., na_rep=...): {chains}"


@chapters
def test_nbval_markers_are_tags_not_visible_comments(chapter: Path):
    nb = nbformat.read(chapter, as_version=4)
    visible = [i for i, cell in enumerate(nb.cells) if cell.cell_type == "code" and cell.source.startswith("# NBVAL")]
    assert not visible, (f"{chapter.name}: cells {visible} start with a '# NBVAL_...' comment, which the site shows; "
                         "tag them nbval-ignore-output instead")

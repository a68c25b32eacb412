"""Result files of the reproduction chapters: one JSON per chapter and profile, read by the scoreboard.

A chapter that reproduces a paper's table ends with :func:`write_results`, which stores its
rows in ``results/<chapter>.json`` for a ``cpu`` run (the committed results) and in
``results/<profile>/<chapter>.json`` for any other profile (:func:`results_path`).
``book/scoreboard.md`` collects them with :func:`read_results` (a ``paper`` run is preferred,
then ``cpu``, then ``smoke``) and shows them with :func:`results_table`. ``results/smoke/`` is
git-ignored; the ``cpu`` results are committed, so the site can show the numbers of long runs
without re-training, and a smoke run (CI) never overwrites them.

A row is one number of one method::

    {"method": "argmax / thresholding", "metric": "IWBO (bits)", "ours": 4.83,
     "paper": 4.82, "profile": "cpu", "steps": 20000, "device": "cpu", "seconds": 812.0,
     "budget_ratio": None, "status": "reproduced", "entropy": 4.82, "gap_to_entropy": 0.01}

``paper`` is ``None`` where the paper gives no number (for example an exact entropy that only
we compute). ``budget_ratio`` is the examples our run trained on over the paper's run's
(``None`` where the paper does not say); ``status`` one of :data:`STATUSES`, chosen with
:func:`row_status`; ``entropy`` and ``gap_to_entropy`` (ours minus the entropy; for a
log-likelihood, minus ours minus the entropy, so a bound's gap is >= 0 either way) are optional,
for data whose entropy is known. Rows may carry further keys (a note, the number of
parameters); they are kept.
"""

from __future__ import annotations

import json
import math
import numbers
import re
import subprocess
from pathlib import Path
from typing import Any

__all__ = ["COLUMNS", "COMMITTED", "PROFILE_PREFERENCE", "STATUSES", "results_path", "prepare_results_dir",
           "write_results", "read_results", "results_table", "row_status", "code_commit"]

#: The profile whose results live at the top of the results folder (the committed ones).
COMMITTED = "cpu"
#: Keys every row must have, in the order the scoreboard shows them.
COLUMNS = ("method", "metric", "ours", "paper", "status", "budget_ratio", "profile", "steps", "device", "seconds")
#: Which run of a chapter the scoreboard shows when several exist: the first one found here,
#: then any other profile folder in alphabetical order.
PROFILE_PREFERENCE = ("paper", "cpu", "smoke")
#: What a row's ``status`` may say, with the one-line legend the scoreboard prints.
STATUSES = {
    "reproduced": "within the tolerance the chapter states",
    "close": "outside that tolerance, within twice it",
    "undertrained": "further off, and our run saw fewer examples than the paper's (budget ratio < 1) "
                    "or its bound was still falling when it stopped",
    "differs": "further off, and training longer did not explain it (the chapter says what we know)",
    "different data": "our data differ from the paper's (a stand-in corpus, our own squares): compare gaps, not digits",
    "not run": "needs data or a GPU this book's runs did not have (projected_gpu_hours: its time on the GPU "
               "we measured, where benchmarks/results has it)",
    "ours only": "the paper gives no number to compare with",
    "smoke": "a smoke run: tiny sizes that show the code runs, not a result",
}

_NUMBER_KEYS = ("ours", "paper", "seconds", "budget_ratio", "entropy", "gap_to_entropy")
_OPTIONAL_KEYS = ("entropy", "gap_to_entropy")
_TEXT_KEYS = ("method", "metric", "device")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def code_commit() -> str:
    """``git rev-parse HEAD`` of the checkout whose ``catlib`` is imported, ``+dirty`` when tracked
    files differ from it; ``"unknown"`` outside a git checkout. Results and benchmarks record it,
    so a committed number names the code that produced it."""
    root = Path(__file__).resolve().parents[1]
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True,
                              check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("+dirty" if dirty else "")


def _check_name(what: str, value: Any) -> str:
    if not isinstance(value, str) or not _NAME.match(value):
        raise ValueError(
            f"{what} must be a plain file name (letters, digits, '_', '-', '.'), got {value!r}"
        )
    return value


def _check_number(where: str, key: str, value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(
            f"{where}: {key!r} must be a finite number or None, got {value!r} "
            f"of type {type(value).__name__} (use .item() for a tensor)"
        )
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{where}: {key!r} must be finite, got {value}")
    return value


def _check_row(row: Any, index: int, profile: str) -> dict[str, Any]:
    where = f"row {index}"
    if not isinstance(row, dict):
        raise ValueError(f"{where} must be a dict, got {type(row).__name__}")
    for key in COLUMNS:
        if key not in row:
            raise ValueError(
                f"{where} is missing the key {key!r}; every row needs {', '.join(COLUMNS)}"
            )
    clean = dict(row)
    if row["status"] not in STATUSES:
        raise ValueError(f"{where}: 'status' must be one of {list(STATUSES)}, got {row['status']!r}")
    for key in _TEXT_KEYS:
        if not isinstance(row[key], str) or not row[key]:
            raise ValueError(f"{where}: {key!r} must be a non-empty string, got {row[key]!r}")
    if row["profile"] != profile:
        raise ValueError(
            f"{where}: 'profile' is {row['profile']!r} but the results are written "
            f"for profile {profile!r}"
        )
    for key in _NUMBER_KEYS:
        if key in row or key not in _OPTIONAL_KEYS:
            clean[key] = _check_number(where, key, row[key])
    steps = row["steps"]
    if steps is not None and (
        isinstance(steps, bool) or not isinstance(steps, numbers.Integral) or steps < 0
    ):
        raise ValueError(
            f"{where}: 'steps' must be a non-negative integer or None, got {steps!r}"
        )
    clean["steps"] = None if steps is None else int(steps)
    return clean


def results_path(chapter: str, profile: str, results_dir: str | Path = "results") -> Path:
    """Where the results of ``chapter`` at ``profile`` live.

    >>> results_path("03_toy50_reproduction", "cpu", "results").as_posix()
    'results/03_toy50_reproduction.json'
    >>> results_path("03_toy50_reproduction", "smoke", "results").as_posix()
    'results/smoke/03_toy50_reproduction.json'
    """
    _check_name("chapter", chapter)
    _check_name("profile", profile)
    folder = Path(results_dir) if profile == COMMITTED else Path(results_dir) / profile
    return folder / f"{chapter}.json"


def prepare_results_dir(results_dir: str | Path, profile: str) -> Path:
    """Create and test-write the folder :func:`write_results` will write ``profile``'s results to.

    A chapter calls it before training, so that a results folder that cannot be written fails
    at once, naming the path, instead of after hours of training. Raises ``ValueError``.

    >>> import tempfile
    >>> root = Path(tempfile.mkdtemp())
    >>> prepare_results_dir(root, "smoke") == root / "smoke"
    True
    """
    from catlib.validation import check_writable_dir

    return check_writable_dir(results_path("chapter", profile, results_dir).parent, "results folder")


def write_results(
    chapter: str,
    rows: list[dict[str, Any]],
    profile: str,
    results_dir: str | Path = "results",
) -> Path:
    """Validate ``rows`` and write them to :func:`results_path` (``<results_dir>/<chapter>.json``
    at the ``cpu`` profile, ``<results_dir>/<profile>/<chapter>.json`` otherwise).

    Args:
        chapter: the chapter's notebook name without ``.ipynb``, e.g. ``"03_toy50_reproduction"``.
        rows: one dict per reported number with at least the keys of :data:`COLUMNS`:
            ``method``, ``metric`` and ``device`` are strings; ``ours``, ``paper``,
            ``budget_ratio`` and ``seconds`` are finite numbers or ``None`` (so are the optional
            ``entropy`` and ``gap_to_entropy``); ``steps`` is an integer or ``None``; ``status``
            is a key of :data:`STATUSES`; ``profile`` equals ``profile``.
        profile: the run's profile, ``"smoke"``, ``"cpu"`` or ``"paper"``.
        results_dir: the results folder. Chapters run with ``notebooks/`` as their working
            directory, so they pass ``"../results"``.

    Returns:
        The path of the file written (an existing file is replaced). The file also records the
        ``commit`` of the code that wrote it (:func:`code_commit`).

    Raises:
        ValueError: a row lacks a key (the message names it), holds a NaN, an infinity or a
            value of the wrong type, or has another profile; or ``chapter``/``profile`` is not
            a plain file name.

    Example:
        >>> import tempfile
        >>> row = {"method": "argmax / thresholding", "metric": "IWBO (bits)", "ours": 4.83,
        ...        "paper": 4.82, "status": "smoke", "budget_ratio": None, "profile": "smoke",
        ...        "steps": 100, "device": "cpu", "seconds": 12.5}
        >>> folder = tempfile.mkdtemp()
        >>> write_results("03_toy50_reproduction", [row], "smoke", folder).name
        '03_toy50_reproduction.json'
        >>> read_results(folder)["03_toy50_reproduction"][0]["ours"]
        4.83
        >>> write_results("03_toy50_reproduction", [{"method": "x"}], "smoke", folder)
        Traceback (most recent call last):
        ...
        ValueError: row 0 is missing the key 'metric'; every row needs method, metric, ours, paper, status, budget_ratio, profile, steps, device, seconds
    """
    path = results_path(chapter, profile, results_dir)
    if not isinstance(rows, (list, tuple)):
        raise ValueError(f"rows must be a list of dicts, got {type(rows).__name__}")
    clean = [_check_row(row, i, profile) for i, row in enumerate(rows)]
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"chapter": chapter, "profile": profile, "commit": code_commit(), "rows": clean}
    text = json.dumps(payload, indent=2, allow_nan=False) + "\n"
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)  # atomic: a reader never sees half a file
    return path


def _read_file(path: Path, profile: str) -> list[dict[str, Any]]:
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"cannot read results file {path}: {error}") from error
    if not isinstance(payload, dict) or not isinstance(payload.get("rows"), list):
        raise ValueError(f"results file {path} must hold an object with a 'rows' list")
    try:
        return [_check_row(row, i, profile) for i, row in enumerate(payload["rows"])]
    except ValueError as error:
        raise ValueError(f"results file {path}: {error}") from error


def read_results(results_dir: str | Path = "results") -> dict[str, list[dict[str, Any]]]:
    """Read every results file under ``results_dir`` (see :func:`results_path`), one run per chapter.

    For each chapter the run of the first profile in :data:`PROFILE_PREFERENCE` that has one
    is used (``paper``, then ``cpu``, then ``smoke``), then other profile folders alphabetically. Every row
    carries its ``profile``, so a table can say which run a number comes from.

    Args:
        results_dir: the results folder (``"../results"`` from ``book/`` or ``notebooks/``).

    Returns:
        ``{chapter: rows}`` sorted by chapter name; ``{}`` if the folder does not exist.

    Raises:
        ValueError: a results file is not valid JSON or holds an invalid row (the message
            names the file).

    Example:
        >>> import tempfile
        >>> folder = tempfile.mkdtemp()
        >>> read_results(folder)
        {}
        >>> def row(profile, ours):
        ...     return {"method": "m", "metric": "bits", "ours": ours, "paper": None, "status": "ours only",
        ...             "budget_ratio": None, "profile": profile, "steps": 1, "device": "cpu", "seconds": 1.0}
        >>> _ = write_results("01_a", [row("smoke", 9.0)], "smoke", folder)
        >>> _ = write_results("01_a", [row("cpu", 5.0)], "cpu", folder)
        >>> _ = write_results("02_b", [row("smoke", 7.0)], "smoke", folder)
        >>> {name: [(r["profile"], r["ours"]) for r in rows]
        ...  for name, rows in read_results(folder).items()}
        {'01_a': [('cpu', 5.0)], '02_b': [('smoke', 7.0)]}
    """
    root = Path(results_dir)
    if not root.is_dir():
        return {}
    runs = {COMMITTED: root}  # profile -> folder
    runs.update({p.name: p for p in root.iterdir() if p.is_dir() and _NAME.match(p.name) and p.name != COMMITTED})
    rank = {name: i for i, name in enumerate(PROFILE_PREFERENCE)}
    found: dict[str, list[dict[str, Any]]] = {}
    for profile in sorted(runs, key=lambda name: (rank.get(name, len(rank)), name)):
        for path in sorted(runs[profile].glob("*.json")):
            if path.stem not in found:
                found[path.stem] = _read_file(path, profile)
    return dict(sorted(found.items()))


def results_table(rows: list[dict[str, Any]]) -> "pandas.DataFrame":  # noqa: F821
    """One table of result rows: the columns of :data:`COLUMNS` first, then any extra keys.

    Args:
        rows: rows as returned by :func:`read_results` (or given to :func:`write_results`).

    Returns:
        A ``pandas.DataFrame`` with one line per row (no lines, same columns, for ``[]``).

    Example:
        >>> table = results_table([{"method": "argmax / Gumbel", "metric": "ELBO (bits)",
        ...     "ours": 4.9, "paper": 4.86, "status": "smoke", "budget_ratio": None, "profile": "smoke",
        ...     "steps": 100, "device": "cpu", "seconds": 3.0}])
        >>> list(table.columns)
        ['method', 'metric', 'ours', 'paper', 'status', 'budget_ratio', 'profile', 'steps', 'device', 'seconds']
        >>> float(table.loc[0, "paper"])
        4.86
        >>> len(results_table([]))
        0
    """
    import pandas as pd

    extra: list[str] = []
    for row in rows:
        extra += [key for key in row if key not in COLUMNS and key not in extra]
    return pd.DataFrame(list(rows), columns=list(COLUMNS) + extra)


def row_status(ours: float | None, paper: float | None, tolerance: float, *, profile: str = "cpu",
               budget_ratio: float | None = None, still_improving: bool = False, same_data: bool = True) -> str:
    """The ``status`` of a results row (see :data:`STATUSES`), from the numbers and what was measured.

    In order: no number of ours is ``"not run"`` (at any profile); a ``smoke`` profile is ``"smoke"``; data other
    than the paper's is ``"different data"``; no paper number is ``"ours only"``; then
    ``|ours - paper| <= tolerance`` is ``"reproduced"``, ``<= 2 * tolerance`` ``"close"``, and
    further off ``"undertrained"`` if ``budget_ratio < 1`` or ``still_improving`` (a learning
    curve measured to be still falling), else ``"differs"``.

    >>> row_status(4.94, 5.00, 0.15), row_status(5.25, 5.00, 0.15), row_status(6.3, 5.32, 0.15)
    ('reproduced', 'close', 'differs')
    >>> row_status(6.3, 5.32, 0.15, still_improving=True), row_status(None, 1.0, 0.1, profile="smoke")
    ('undertrained', 'not run')
    """
    if not (isinstance(tolerance, (int, float)) and tolerance >= 0):
        raise ValueError(f"tolerance must be a number >= 0, got {tolerance!r}")
    if ours is None:
        return "not run"
    if profile == "smoke":
        return "smoke"
    if not same_data:
        return "different data"
    if paper is None:
        return "ours only"
    gap = abs(float(ours) - float(paper))
    if gap <= tolerance:
        return "reproduced"
    if gap <= 2 * tolerance:
        return "close"
    if still_improving or (budget_ratio is not None and budget_ratio < 1):
        return "undertrained"
    return "differs"

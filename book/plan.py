"""What ``make book`` is about to do, printed before it starts.

For the profile in ``$CATBOOK_PROFILE`` and each chapter of ``notebooks/``: whether it will
reuse finished runs (checkpoints holding their metrics under ``checkpoints/<chapter>/<profile>/``),
resume unfinished ones or train from scratch, and how long its training took when its results
were last recorded (the ``seconds`` of each run in ``results/<chapter>.json``; runs that share a
number, like TRUFL with and without rejection sampling, are one run; at ``smoke``, the whole
chapter's last run in the tests). Chapters with no recorded run say "unknown".

    python book/plan.py cpu
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def recorded_seconds(chapter: str, profile: str, root: Path = ROOT) -> float | None:
    """Seconds of the chapter's training runs at ``profile`` as last recorded, summed; ``None`` if none.

    At ``smoke``: the whole chapter's last run by ``tests/test_notebooks.py`` (``_build/smoke/seconds.json``).
    """
    if profile == "smoke":
        times = root / "_build" / "smoke" / "seconds.json"
        return json.loads(times.read_text(encoding="utf-8")).get(chapter) if times.exists() else None
    path = root / "results" / ("" if profile == "cpu" else profile) / f"{chapter}.json"  # catlib.results' layout
    if not path.exists():
        return None
    data = json.loads(path.read_text(encoding="utf-8"))
    if data.get("profile") != profile:
        return None
    runs = {(r.get("seed", 0), r["seconds"]) for r in data.get("rows", []) if r.get("seconds")}
    return sum(seconds for _, seconds in runs) or None


def checkpoint_state(chapter: str, profile: str, root: Path = ROOT) -> tuple[int, int]:
    """``(finished, unfinished)`` checkpoints of the chapter at ``profile`` (finished ones hold metrics)."""
    from catlib.checkpoint import load_checkpoint

    finished = unfinished = 0
    for path in sorted((root / "checkpoints" / chapter / profile).rglob("*.pt")):
        try:
            done = bool(load_checkpoint(path).get("metrics"))
        except (OSError, ValueError):
            done = False  # unreadable: the chapter will say so, or train again
        finished, unfinished = finished + done, unfinished + (not done)
    return finished, unfinished


def duration(seconds: float | None) -> str:
    """``5400`` -> ``"1 h 30 min"``; under 90 s in seconds; ``None`` -> ``"unknown"``.

    >>> duration(5400), duration(125), duration(34.2), duration(None)
    ('1 h 30 min', '2 min', '34 s', 'unknown')
    """
    if seconds is None:
        return "unknown"
    if seconds < 90:
        return f"{seconds:.0f} s"
    minutes = round(seconds / 60)
    return f"{minutes // 60} h {minutes % 60} min" if minutes >= 60 else f"{max(minutes, 1)} min"


def plan(profile: str, root: Path = ROOT) -> list[dict]:
    """One dict per chapter: ``chapter``, ``action`` and ``recorded`` (training seconds or ``None``)."""
    rows = []
    for notebook in sorted((root / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        chapter = notebook.stem
        finished, unfinished = checkpoint_state(chapter, profile, root)
        if finished and not unfinished:
            action = f"reuses {finished} finished run{'s' * (finished > 1)}"
        elif finished or unfinished:
            action = f"reuses {finished} finished run(s), resumes {unfinished}, trains what is missing"
        else:
            action = "trains or computes everything"
        rows.append({"chapter": chapter, "action": action, "recorded": recorded_seconds(chapter, profile, root)})
    return rows


def describe(profile: str, root: Path = ROOT) -> str:
    """The plan as text, one line per chapter and a total of the recorded training times."""
    rows = plan(profile, root)
    lines = [f"make book at the '{profile}' profile: {len(rows)} chapters, in order", ""]
    width = max(len(r["chapter"]) for r in rows)
    what = "last smoke run" if profile == "smoke" else "recorded training (runs summed)"
    for r in rows:
        lines.append(f"  {r['chapter']:<{width}}  {r['action']:<32}  {what}: {duration(r['recorded'])}")
    if profile == "smoke":
        known = [r["recorded"] for r in rows if r["recorded"]]
        lines += ["", f"The chapters' last smoke runs took {duration(sum(known))} together "
                  f"({len(rows) - len(known)} unknown)." if known else "No smoke run recorded yet."]
        return "\n".join(lines)
    to_train = [r["recorded"] for r in rows if not r["action"].startswith("reuses") and r["recorded"]]
    lines += ["", f"Chapters that train: about {duration(sum(to_train))} of training by their last recorded runs "
              f"(plus the chapters whose time is unknown). Finished runs in checkpoints/ are reused."
              if to_train else "No recorded training time for the chapters that will train."]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    print(describe(sys.argv[1] if len(sys.argv) > 1 else "cpu"), flush=True)

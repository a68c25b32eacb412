"""The three profiles every experiment has, and the table that ties ``paper`` to the papers.

- ``smoke``: tiny sizes, the same code path, for CI (well under a minute per chapter);
- ``cpu``: what the committed results come from, sized for a working day on 2 CPU cores;
- ``paper``: the paper's (or its official code's) configuration, for a GPU. ``full``, the name
  it had before, is an alias of it (:data:`ALIASES`).

Each experiment writes down what the papers say about its ``paper`` profile as a list of
:class:`Setting` rows: the value and where it is written, or :data:`NOT_GIVEN` when the paper and
its code are silent (then the ``paper`` profile holds *our* choice, and the table says so).
:func:`settings_table` shows ``cpu`` and ``paper`` side by side for a chapter,
:func:`paper_mismatches` is what the tests check, and :func:`budget_ratio` compares the examples
our run saw with the examples the paper's run saw.
"""
from __future__ import annotations

from dataclasses import dataclass, is_dataclass
from typing import Any, Mapping, Sequence

__all__ = ["PROFILE_NAMES", "ALIASES", "NOT_GIVEN", "NotYet", "ProfileNotReady", "canonical_profile", "Setting",
           "config_value", "settings_table", "paper_mismatches", "budget_ratio"]

#: The profiles of every reproduction experiment, smallest first.
PROFILE_NAMES = ("smoke", "cpu", "paper")
#: Old profile names that still work: ``full`` was the name of the largest profile.
ALIASES = {"full": "paper", "full-enwik8": "paper-enwik8"}
#: What the settings table says where the paper and its official code give no value.
NOT_GIVEN = "not given"


class ProfileNotReady(NotImplementedError):
    """A profile that is named but cannot run yet (the message says which issue brings it)."""


@dataclass(frozen=True)
class NotYet:
    """Stands in ``PROFILES`` for a profile that does not exist yet; :func:`check_profile` raises
    :class:`ProfileNotReady` with ``reason``."""

    reason: str


def canonical_profile(profile: str) -> str:
    """The profile's own name: aliases (:data:`ALIASES`) resolved, anything else unchanged.

    >>> canonical_profile("full"), canonical_profile("cpu")
    ('paper', 'cpu')
    """
    return ALIASES.get(profile, profile)


@dataclass(frozen=True)
class Setting:
    """One row of an experiment's settings table.

    ``key`` is a dotted path into the profile's config (attributes of a dataclass, keys of a
    dict: ``"model.flow_steps"``, ``"training.text8-ar.lr"``); ``paper`` the value the paper
    or its official code uses (:data:`NOT_GIVEN` when neither says); ``source`` where it is
    written, e.g. ``"workshop paper, Table 3"``.

    >>> Setting("IWBO samples", "iwbo_k", 1000, "workshop paper, Sec. 4").paper
    1000
    """

    name: str
    key: str
    paper: Any = NOT_GIVEN
    source: str = ""


def config_value(config: Any, key: str) -> Any:
    """The value at the dotted ``key`` of ``config`` (dataclass attributes and dict keys).

    >>> config_value({"model": {"flow_steps": 4}}, "model.flow_steps")
    4
    >>> config_value({"model": {}}, "model.depth")
    Traceback (most recent call last):
    KeyError: "the config has no 'model.depth' (no 'depth' in model)"
    """
    value, seen = config, []
    for part in key.split("."):
        if isinstance(value, Mapping) and part in value:
            value = value[part]
        elif is_dataclass(value) and hasattr(value, part):
            value = getattr(value, part)
        else:
            where = ".".join(seen) or "the config"
            raise KeyError(f"the config has no {key!r} (no {part!r} in {where})")
        seen.append(part)
    return value


def _show(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 10_000:
        return f"{value:,}"
    if isinstance(value, (tuple, list)):
        return "(" + ", ".join(_show(v) for v in value) + ")"
    return str(value)


def settings_table(settings: Sequence[Setting], profiles: Mapping[str, Any],
                   columns: Sequence[str] = ("cpu", "paper")) -> list[dict[str, str]]:
    """The settings of ``columns`` side by side with what the paper says, one dict per setting.

    Where the paper is silent the paper column reads ``"not given (we chose X)"`` with ``X`` the
    ``paper`` profile's value. Values are shown as text (large integers with thousands separators).

    >>> profiles = {"cpu": {"steps": 40_000, "lr": 2e-3}, "paper": {"steps": 100_000, "lr": 1e-3}}
    >>> rows = settings_table([Setting("steps", "steps"), Setting("lr", "lr", 1e-3, "Sec. 4")], profiles)
    >>> rows[0]["the paper"], rows[1]["the paper"]
    ('not given (we chose 100,000)', '0.001')
    """
    rows = []
    for s in settings:
        row = {"setting": s.name}
        for column in columns:
            row[column] = _show(config_value(profiles[column], s.key))
        ours = _show(config_value(profiles["paper"], s.key)) if "paper" in profiles else "-"
        row["the paper"] = f"{NOT_GIVEN} (we chose {ours})" if s.paper == NOT_GIVEN else _show(s.paper)
        row["source"] = s.source or "-"
        rows.append(row)
    return rows


def paper_mismatches(settings: Sequence[Setting], config: Any) -> list[str]:
    """Every setting whose value in ``config`` differs from the paper's, as ``"name: X here, Y in the paper"``
    (settings the paper does not give are skipped; tuples and lists compare alike).

    >>> paper_mismatches([Setting("lr", "lr", 1e-3)], {"lr": 2e-3})
    ['lr (lr): 0.002 here, 0.001 in the paper']
    """
    out = []
    for s in settings:
        if s.paper == NOT_GIVEN:
            continue
        value = config_value(config, s.key)
        same = (list(value) == list(s.paper)) if isinstance(value, (tuple, list)) and isinstance(
            s.paper, (tuple, list)) else value == s.paper
        if not same:
            out.append(f"{s.name} ({s.key}): {_show(value)} here, {_show(s.paper)} in the paper")
    return out


def budget_ratio(ours: float | None, paper: float | None) -> float | None:
    """Examples (or graphs, characters, maps) our run trained on over the paper's run's;
    ``None`` when the paper does not say how long it trained.

    >>> budget_ratio(10_240_000, 40_960_000), budget_ratio(1000, None)
    (0.25, None)
    """
    if ours is None or paper is None:
        return None
    if paper <= 0:
        raise ValueError(f"the paper's budget must be > 0, got {paper}")
    return float(ours) / float(paper)

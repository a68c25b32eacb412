"""Every reproduction experiment has smoke / cpu / paper profiles, and its paper profile is what its
settings table says the paper (or the official code) uses."""
from __future__ import annotations

import copy
import importlib
from dataclasses import is_dataclass, replace

import pytest

from catlib.experiments import (NOT_GIVEN, PROFILE_NAMES, NotYet, ProfileNotReady, Setting, budget_ratio,
                                check_profile, experiment_parser, paper_mismatches, settings_table)
from catlib.experiments._profiles import config_value

EXPERIMENTS = ["toy50", "two_variable", "squares", "words", "graphs", "text8", "text_diffusion", "cityscapes",
               "molecules", "masking"]


def _module(name):
    return importlib.import_module(f"catlib.experiments.{name}")


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_every_experiment_has_the_three_profiles(name):
    profiles = _module(name).PROFILES
    assert set(PROFILE_NAMES) <= set(profiles)
    assert "full" not in profiles, "full is an alias of paper, not a profile of its own"


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_full_is_an_alias_of_paper(name):
    profiles = _module(name).PROFILES
    if isinstance(profiles["paper"], NotYet):
        with pytest.raises(ProfileNotReady, match="not built yet"):
            check_profile("full", profiles)
        return
    assert check_profile("full", profiles) is profiles["paper"]


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_paper_profile_matches_the_settings_table(name):
    module = _module(name)
    paper = module.PROFILES["paper"]
    if isinstance(paper, NotYet):
        pytest.skip(paper.reason)
    settings = module.PAPER_SETTINGS
    assert all(isinstance(s, Setting) for s in settings)
    given = [s for s in settings if s.paper != NOT_GIVEN]
    assert given or name in ("toy50", "squares"), "a paper profile with no setting from the paper"
    assert all(s.source for s in given), "every setting the paper gives names where it is written"
    assert paper_mismatches(settings, paper) == []
    # the check can fail: change a given numeric setting of the paper profile and it is caught
    changed = 0
    for s in given:
        value = config_value(paper, s.key)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            try:
                other = _with_value(paper, s.key, value * 2 + 1)
            except TypeError:  # a derived value (a property), not a field that can be set
                continue
            assert paper_mismatches([s], other) != []
            changed += 1
    assert changed or name in ("toy50", "squares") or not given


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_settings_table_shows_cpu_beside_paper(name):
    module = _module(name)
    if isinstance(module.PROFILES["paper"], NotYet):
        pytest.skip(module.PROFILES["paper"].reason)
    rows = settings_table(module.PAPER_SETTINGS, module.PROFILES)
    assert rows and all(set(row) == {"setting", "cpu", "paper", "the paper", "source"} for row in rows)
    for row, s in zip(rows, module.PAPER_SETTINGS):
        assert row["the paper"].startswith(NOT_GIVEN) == (s.paper == NOT_GIVEN)


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_budget_ratio_of_the_cpu_profile(name):
    module = _module(name)
    ratio = module.run_budget_ratio(module.PROFILES["cpu"])
    assert ratio is None or 0 < ratio


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_command_line_takes_full_and_defaults_to_cpu(name):
    module = _module(name)
    parser = experiment_parser("x", module.PROFILES, "ck")
    assert parser.parse_args([]).profile == "cpu"
    if isinstance(module.PROFILES["paper"], NotYet):
        with pytest.raises(SystemExit):
            parser.parse_args(["--profile", "full"])
    else:
        assert parser.parse_args(["--profile", "full"]).profile == "paper"
    assert "alias of paper" in parser.format_help()


def test_a_profile_not_built_yet_is_refused_with_its_reason(capsys):
    profiles = {"smoke": 1, "cpu": 2, "paper": NotYet("it needs issue 99")}
    parser = experiment_parser("x", profiles, "ck")
    with pytest.raises(SystemExit):
        parser.parse_args(["--profile", "full"])
    err = capsys.readouterr().err
    assert "not built yet" in err and "issue 99" in err
    with pytest.raises(ProfileNotReady, match="it needs issue 99"):
        check_profile("paper", profiles)


def test_budget_ratio_needs_a_positive_paper_budget():
    assert budget_ratio(5, 10) == 0.5
    assert budget_ratio(5, None) is None
    with pytest.raises(ValueError, match="> 0"):
        budget_ratio(5, 0)


def _with_value(config, key, value):
    """A copy of ``config`` with the dotted ``key`` set to ``value``."""
    head, _, rest = key.partition(".")
    if isinstance(config, dict):
        out = copy.copy(config)
        out[head] = _with_value(config[head], rest, value) if rest else value
        return out
    assert is_dataclass(config)
    return replace(config, **{head: _with_value(getattr(config, head), rest, value) if rest else value})

"""Experiments runnable from the shell: ``python -m catlib.experiments <name> --profile full``.

``python -m catlib.experiments --list`` names them; options before the name (``--precision``,
``--checkpoint-minutes``, ``--no-estimate``) reach every training run of the experiment, and
``torchrun --nproc_per_node N -m catlib.experiments <name> ...`` trains on ``N`` GPUs (see
:mod:`catlib.experiments.__main__`). Each module also runs on its own as
``python -m catlib.experiments.<name>``.
"""
from __future__ import annotations

import argparse
from typing import TypeVar

__all__ = ["experiment_parser", "check_profile"]

T = TypeVar("T")


def experiment_parser(description: str, profiles, checkpoint_dir: str) -> argparse.ArgumentParser:
    """The command line every experiment takes: profile, checkpoint folder, seed, device, models."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--profile", default="full", choices=sorted(profiles))
    parser.add_argument("--checkpoint-dir", default=checkpoint_dir)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default=None)
    parser.add_argument("--only", nargs="*", default=None, help="model names to run")
    return parser


def check_profile(profile: str, profiles: dict[str, T]) -> T:
    """``profiles[profile]``, or ``ValueError`` naming the valid profiles when there is no such profile.

    >>> check_profile("smoke", {"smoke": 1, "full": 2})
    1
    >>> check_profile("huge", {"smoke": 1, "full": 2})
    Traceback (most recent call last):
    ValueError: profile must be one of ['full', 'smoke'], got 'huge'
    """
    if profile not in profiles:
        raise ValueError(f"profile must be one of {sorted(profiles)}, got {profile!r}")
    return profiles[profile]

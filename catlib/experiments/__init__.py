"""Experiments runnable from the shell: ``python -m catlib.experiments <name> --profile cpu``.

Every experiment has the profiles ``smoke``, ``cpu`` and ``paper`` (``full`` is an alias of
``paper``; see :mod:`catlib.experiments._profiles`).

``python -m catlib.experiments --list`` names them; options before the name (``--precision``,
``--checkpoint-minutes``, ``--no-estimate``) reach every training run of the experiment, and
``torchrun --nproc_per_node N -m catlib.experiments <name> ...`` trains on ``N`` GPUs (see
:mod:`catlib.experiments.__main__`). Each module also runs on its own as
``python -m catlib.experiments.<name>``.
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Callable, Iterable, TypeVar

from catlib.experiments._profiles import (ALIASES, NOT_GIVEN, PROFILE_NAMES, NotYet, ProfileNotReady, Setting,
                                         budget_ratio, canonical_profile, paper_mismatches, settings_table)
from catlib.experiments._cli import (MAX_SEED, device_type, missing_data_error, positive_minutes, seed_type,
                                    writable_dir_or_error)

__all__ = ["experiment_parser", "check_profile", "checkpoint_folder", "checkpoint_path", "seed_type", "positive_minutes", "device_type",
           "writable_dir_or_error", "missing_data_error", "PROFILE_NAMES", "ALIASES", "NOT_GIVEN", "NotYet",
           "ProfileNotReady", "Setting", "canonical_profile", "settings_table", "paper_mismatches", "budget_ratio",
           "profile_type"]

T = TypeVar("T")


def experiment_parser(description: str, profiles, checkpoint_dir: str,
                      names: Iterable[str] | None = None) -> argparse.ArgumentParser:
    """The command line every experiment takes: profile, checkpoint folder, seed, device, models.

    Bad values exit with status 2 and ``error: argument --flag: ...``: ``--seed`` is an integer
    from 0 (:func:`seed_type`), ``--device`` one this machine can use (:func:`device_type`, a
    :class:`torch.device`), and ``--only`` takes one or more of ``names`` (the experiment's model
    or row names; any name when ``None``).

    >>> parser = experiment_parser("toy", {"smoke": 1}, "ck", names=["a", "b"])
    >>> parser.parse_args(["--profile", "smoke", "--only", "b", "--seed", "3"]).only
    ['b']
    """
    parser = argparse.ArgumentParser(description=description)
    aliases = [f"{old}: an alias of {new}" for old, new in ALIASES.items() if new in profiles]
    parser.add_argument("--profile", default="cpu", type=profile_type(profiles), metavar="PROFILE",
                        help=f"one of {', '.join(profiles)}" + (f" ({'; '.join(aliases)})" if aliases else "")
                             + " (default: cpu)")
    parser.add_argument("--checkpoint-dir", default=checkpoint_dir,
                        help=f"checkpoints go to <dir>/<profile>; created and test-written before training "
                             f"(default: {checkpoint_dir})")
    parser.add_argument("--seed", type=seed_type, default=0,
                        help=f"random seed, an integer from 0 to {MAX_SEED} (default: 0)")
    parser.add_argument("--device", type=device_type, default=None,
                        help="cpu, cuda, cuda:N or mps (default: cuda when there is a GPU, else cpu)")
    if names is None:
        parser.add_argument("--only", nargs="+", default=None, metavar="NAME", help="model names to run")
    else:
        names = list(names)
        parser.add_argument("--only", nargs="+", default=None, choices=names, metavar="NAME",
                            help=f"run only these models (default: all): {', '.join(names)}")
    return parser


def checkpoint_folder(parser: argparse.ArgumentParser, args: argparse.Namespace) -> Path:
    """``<--checkpoint-dir>/<--profile>``, the folder the runs write, created and test-written now
    (before any training); a folder that cannot be written exits through ``parser.error``
    naming ``--checkpoint-dir`` and the path."""
    return writable_dir_or_error(parser, Path(args.checkpoint_dir) / args.profile, "--checkpoint-dir",
                                 "checkpoint folder")


def check_profile(profile: str, profiles: dict[str, T]) -> T:
    """``profiles[profile]`` (an alias such as ``full`` resolved first), or ``ValueError`` naming
    the valid profiles when there is no such profile; :class:`ProfileNotReady` (a
    ``NotImplementedError``) for a profile that is named but not built yet (a :class:`NotYet`).

    >>> check_profile("full", {"smoke": 1, "paper": 2})
    2
    >>> check_profile("huge", {"smoke": 1, "paper": 2})
    Traceback (most recent call last):
    ValueError: profile must be one of ['paper', 'smoke'] (or 'full' for 'paper'), got 'huge'
    """
    name = canonical_profile(profile)
    if name not in profiles:
        aliases = [f"{old!r} for {new!r}" for old, new in ALIASES.items() if new in profiles]
        raise ValueError(f"profile must be one of {sorted(profiles)}"
                         + (f" (or {', '.join(aliases)})" if aliases else "") + f", got {profile!r}")
    config = profiles[name]
    if isinstance(config, NotYet):
        raise ProfileNotReady(f"the {name!r} profile is not built yet: {config.reason}")
    return config


def profile_type(profiles: dict) -> Callable[[str], str]:
    """``--profile``: a profile of ``profiles`` or an alias of one, returned under its own name;
    a profile that is not built yet (:class:`NotYet`) is refused with its reason.

    >>> profile_type({"smoke": 1, "paper": 2})("full")
    'paper'
    """
    def parse(text: str) -> str:
        try:
            check_profile(text, profiles)
        except (ValueError, ProfileNotReady) as err:
            raise argparse.ArgumentTypeError(str(err)) from None
        return canonical_profile(text)

    return parse


def checkpoint_path(checkpoint_dir: str | Path, profile: str, name: str, seed: int = 0) -> Path:
    """Where an experiment keeps the run of ``name`` with training seed ``seed``: seed 0 at
    ``<dir>/<profile>/<name>.pt``, any other at ``<dir>/<profile>/seed<seed>/<name>.pt``, so runs of
    several seeds live side by side (a finished checkpoint of other settings would be replaced).

    >>> checkpoint_path("ck", "cpu", "catnf").as_posix(), checkpoint_path("ck", "cpu", "catnf", 2).as_posix()
    ('ck/cpu/catnf.pt', 'ck/cpu/seed2/catnf.pt')
    """
    folder = Path(checkpoint_dir) / canonical_profile(profile)
    return (folder if seed == 0 else folder / f"seed{seed}") / f"{name}.pt"

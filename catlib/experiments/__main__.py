"""``python -m catlib.experiments <name> [arguments]``: run the experiment module ``catlib.experiments.<name>``.

Options before the name apply to every :func:`~catlib.train.fit` call of the experiment
(:func:`~catlib.train.fit_defaults`); everything after the name goes to the experiment's own
``main(argv)``::

    python -m catlib.experiments --list
    python -m catlib.experiments toy50 --help
    python -m catlib.experiments --precision bf16 --checkpoint-minutes 5 toy50 --profile cpu
    torchrun --nproc_per_node 4 -m catlib.experiments squares --profile paper

Under ``torchrun`` the process group is started before the experiment (so its checkpoint
bookkeeping is shared) and only rank 0 prints to standard output.
"""
from __future__ import annotations

import argparse
import ast
import contextlib
import importlib
import os
import sys
from pathlib import Path
from typing import Iterator

import torch

from catlib.experiments._cli import positive_minutes
from catlib.checkpoint import CheckpointError
from catlib.train import PRECISIONS, RESUME_MODES, fit_defaults

__all__ = ["available_experiments", "main"]

_HERE = Path(__file__).resolve().parent


def _summary(path: Path) -> tuple[str, bool]:
    """The first line of a module's docstring and whether it defines ``main`` at top level (read, not imported)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    doc = (ast.get_docstring(tree) or "").strip().splitlines()
    has_main = any(isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == "main"
                   for node in tree.body)
    return (doc[0] if doc else ""), has_main


def available_experiments(with_main_only: bool = True) -> dict[str, str]:
    """The experiment modules of this package, ``{name: first line of its docstring}``, sorted by name.

    Modules whose name starts with ``_`` are not experiments; with ``with_main_only`` only
    those that define ``main(argv)`` are listed.

    >>> "toy50" in available_experiments()
    True
    """
    found = {}
    for path in sorted(_HERE.glob("*.py")):
        if path.stem.startswith("_"):
            continue
        summary, has_main = _summary(path)
        if has_main or not with_main_only:
            found[path.stem] = summary
    return found


def _listing() -> str:
    names = available_experiments()
    width = max((len(n) for n in names), default=0)
    return "\n".join(f"  {name:{width}s}  {summary}" for name, summary in names.items())


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m catlib.experiments", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Run one experiment: python -m catlib.experiments [options] <name> [its arguments].",
        epilog="experiments:\n" + _listing() + "\n\n'python -m catlib.experiments <name> --help' shows an "
               "experiment's own arguments (--profile, --checkpoint-dir, --seed, --device, ...).")
    parser.add_argument("--list", action="store_true", help="list the experiments and exit")
    parser.add_argument("--precision", choices=PRECISIONS, default=None,
                        help="training precision of every fit (default: fp32; fp16 needs CUDA)")
    parser.add_argument("--checkpoint-minutes", type=positive_minutes, default=None, metavar="M",
                        help="also save a checkpoint every M minutes of wall time, M > 0 (default: by steps only)")
    parser.add_argument("--resume", choices=RESUME_MODES, default=None,
                        help="an existing checkpoint is resumed only if the same settings wrote it ('check', the "
                             "default); 'ignore-settings' continues it under the settings given now (e.g. on "
                             "another number of GPUs)")
    parser.add_argument("--estimate", action=argparse.BooleanOptionalAction, default=True,
                        help="print an estimate of time and memory before each training run (default: on)")
    parser.add_argument("name", nargs="?", help="the experiment to run")
    parser.add_argument("args", nargs=argparse.REMAINDER, help="arguments for the experiment's main(argv)")
    return parser


def main(argv: list[str] | None = None) -> None:
    """Parse ``argv`` (default ``sys.argv[1:]``), then run ``catlib.experiments.<name>.main(rest)``.

    An unknown name, or a module without ``main(argv)``, exits with status 2 and a message
    listing the valid names.
    """
    parser = _parser()
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    if args.list:
        print(_listing())
        return
    valid = available_experiments()
    if args.name is None:
        parser.error(f"name the experiment to run, one of: {', '.join(valid)}")
    if args.name not in valid:
        everything = available_experiments(with_main_only=False)
        why = "has no main(argv)" if args.name in everything else "is not an experiment"
        parser.error(f"{args.name!r} {why}; expected one of: {', '.join(valid)}")
    if args.precision == "fp16" and not torch.cuda.is_available():
        parser.error("argument --precision: 'fp16' needs a CUDA GPU and torch sees none on this machine; "
                     "use bf16 or fp32")
    from catlib.distributed import init_distributed

    ctx = init_distributed()  # under torchrun: one process group for the whole experiment
    module = importlib.import_module(f"catlib.experiments.{args.name}")
    with contextlib.ExitStack() as stack:
        if not ctx.is_main:  # one copy of the tables, not one per process
            stack.enter_context(contextlib.redirect_stdout(stack.enter_context(open(os.devnull, "w"))))
        stack.enter_context(fit_defaults(precision=args.precision, checkpoint_minutes=args.checkpoint_minutes,
                                         estimate=args.estimate, resume=args.resume))
        stack.enter_context(_program_name(f"python -m catlib.experiments {args.name}"))
        try:
            module.main(args.args)
        except CheckpointError as err:  # a file of another run, corrupted or unsafe: say so, no traceback
            hint = ("\n(to continue it under the settings given now: python -m catlib.experiments --resume "
                    f"ignore-settings {args.name} ...)") if "resume='ignore-settings'" in str(err) else ""
            parser.exit(2, f"{parser.prog}: error: {err}{hint}\n")


@contextlib.contextmanager
def _program_name(name: str) -> Iterator[None]:
    """``sys.argv[0]`` is ``name`` inside the block, so the experiment's usage line shows how it was called."""
    saved = sys.argv[:]
    sys.argv[:1] = [name]
    try:
        yield
    finally:
        sys.argv[:] = saved


if __name__ == "__main__":
    main()

"""Set a Colab runtime up for one chapter of catbook.

Each chapter's first cell, in Colab only, clones the repository named in ``_config.yml``
(``repository.url`` and ``branch``) and runs this file with the extras the chapter needs::

    %run /content/catbook/notebooks/colab_setup.py molecules

It installs catlib from the clone with those extras (``pip install -e /content/catbook[extras]``:
pip keeps the CUDA build of PyTorch that Colab already has, since catlib asks for
``torch>=2.1``; ``requirements.txt`` is *not* used, it pins a CPU build), then the packages an
extra needs without their dependencies (the MOSES data wheel ``molsets``, whose own pins are
old), puts the clone on ``sys.path``, moves into ``notebooks/`` and prints the GPU it got.

Outside Colab it stops and points at ``make install``. Tested in ``tests/test_colab_setup.py``
with a simulated ``google.colab`` module.

A fork sets its own URL once, in ``_config.yml``, and runs ``make repository``
(``python notebooks/colab_setup.py --write-clone-lines``), which writes that URL into every
chapter's clone line; the site's Colab and repository buttons read ``_config.yml`` directly.
"""
from __future__ import annotations

import importlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Callable, Sequence

#: The clone this file lives in.
ROOT = Path(__file__).resolve().parents[1]
#: ``pyproject.toml``'s optional dependencies (a test keeps the two lists equal).
EXTRAS = ("widgets", "graphs", "molecules")
#: Packages installed with ``--no-deps`` for an extra.
NO_DEPS = {"molecules": ("molsets==0.3.1",)}


def configured_repository(root: Path = ROOT) -> tuple[str, str]:
    """``(url, branch)`` from ``_config.yml``'s ``repository`` section (read with PyYAML)."""
    import yaml

    repository = yaml.safe_load((root / "_config.yml").read_text(encoding="utf-8")).get("repository") or {}
    if not repository.get("url"):
        raise ValueError(f"{root / '_config.yml'} has no repository.url: set it to the book's repository")
    return repository["url"].rstrip("/"), repository.get("branch", "main")


def clone_line(url: str, branch: str) -> str:
    """The chapters' clone command (a notebook shell line), for ``url`` at ``branch``.

    >>> clone_line("https://github.com/you/catbook", "main")
    '!git clone -q --depth 1 --branch main https://github.com/you/catbook /content/catbook'
    """
    return f"!git clone -q --depth 1 --branch {branch} {url} /content/catbook"


#: A chapter's clone line, whatever URL and branch it holds.
CLONE_LINE = re.compile(r"!git clone -q --depth 1 --branch \S+ \S+ /content/catbook")


def write_clone_lines(root: Path = ROOT) -> list[Path]:
    """Write ``_config.yml``'s repository into the clone line of every chapter; returns the changed ones."""
    line = clone_line(*configured_repository(root))
    changed = []
    for path in sorted((root / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        nb = json.loads(path.read_text(encoding="utf-8"))
        hits = 0
        for cell in nb["cells"]:
            source = "".join(cell["source"])
            new, n = CLONE_LINE.subn(line, source)
            hits += n
            if new != source:
                cell["source"] = new.splitlines(keepends=True)
        if hits != 1:
            raise ValueError(f"{path}: expected one clone line like {line!r}, found {hits}")
        text = json.dumps(nb, indent=1, ensure_ascii=False) + "\n"
        if text != path.read_text(encoding="utf-8"):
            path.write_text(text, encoding="utf-8")
            changed.append(path)
    return changed


def install_commands(extras: Sequence[str], root: Path = ROOT) -> list[list[str]]:
    """The pip commands that install catlib from ``root`` with ``extras``.

    >>> [c[-1] for c in install_commands(["molecules"], Path("/content/catbook"))]
    ['/content/catbook[molecules]', 'molsets==0.3.1']
    """
    unknown = sorted(set(extras) - set(EXTRAS))
    if unknown:
        raise ValueError(f"unknown extra(s) {unknown}; catlib's extras are {list(EXTRAS)}")
    pip = [sys.executable, "-m", "pip", "install", "-q"]
    target = str(root) + (f"[{','.join(extras)}]" if extras else "")
    commands = [pip + ["-e", target]]
    commands += [pip + ["--no-deps", package] for extra in extras for package in NO_DEPS.get(extra, ())]
    return commands


def describe_device() -> str:
    """One line: the GPU this runtime has (name and memory), or what to do without one."""
    import torch

    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        return (f"GPU: {torch.cuda.get_device_name(0)} ({props.total_memory / 2**30:.0f} GiB), "
                f"torch {torch.__version__}")
    return ("no GPU in this runtime (Runtime > Change runtime type > GPU): the paper profile "
            f"would take days here; torch {torch.__version__}")


def main(argv: Sequence[str] | None = None, run: Callable[..., object] = subprocess.run) -> None:
    """Install ``argv``'s extras (see the module), put the clone on ``sys.path``, enter ``notebooks/``."""
    if "google.colab" not in sys.modules:
        raise SystemExit("colab_setup.py prepares a Colab runtime; on your own machine run `make install` "
                         "(README, 'Install')")
    extras = list(sys.argv[1:] if argv is None else argv)
    for command in install_commands(extras):
        run(command, check=True)
    importlib.invalidate_caches()  # the packages just installed are importable without a restart
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    os.chdir(ROOT / "notebooks")
    print(f"catbook at {ROOT} with extras {extras or 'none'}; {describe_device()}")


if __name__ == "__main__":
    if sys.argv[1:] == ["--write-clone-lines"]:
        for changed in write_clone_lines():
            print(f"wrote the repository into {changed.relative_to(ROOT)}")
    else:
        main()

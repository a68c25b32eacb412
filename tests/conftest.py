"""Shared pieces of the notebook and site tests."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import torch


def _kernel_env(**extra: str) -> dict[str, str]:
    """Environment for a process that starts Jupyter kernels for the chapters.

    The ``python3`` kernel is this interpreter (the test venv's): ipykernel installs a
    ``python3`` spec into ``sys.prefix/share/jupyter`` whose command ``python`` jupyter_client
    maps to the interpreter that starts the kernel, and ``JUPYTER_PATH`` puts it ahead of any
    ``python3`` spec in the user's home. Chapters run at the ``smoke`` profile.
    """
    env = dict(os.environ)
    venv_share = str(Path(sys.prefix) / "share" / "jupyter")
    env["JUPYTER_PATH"] = os.pathsep.join(
        [venv_share] + [p for p in env.get("JUPYTER_PATH", "").split(os.pathsep) if p]
    )
    env["CATBOOK_PROFILE"] = "smoke"
    env["CATBOOK_PROGRESS"] = "text"  # saved tqdm widgets would be blank on the site (catlib.progress)
    env["PYTHONHASHSEED"] = "0"
    env.pop("PLOTLY_RENDERER", None)
    env.update(extra)
    return env


@pytest.fixture(scope="session")
def kernel_env():
    """``kernel_env(**extra)``: the environment for a subprocess that runs chapters."""
    return _kernel_env


@pytest.fixture
def use_kernel_env(monkeypatch):
    """``use_kernel_env(**extra)``: apply that environment to this process (papermill starts
    its kernel from here); undone after the test."""

    def apply(**extra: str) -> dict[str, str]:
        env = _kernel_env(**extra)
        for key in list(os.environ):
            if key not in env:
                monkeypatch.delenv(key)
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        return env

    return apply


@pytest.fixture
def float64():
    """Run the test with float64 as torch's default dtype (where precision is the point)."""
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(old)

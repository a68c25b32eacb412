"""The chapters' Colab setup: one repository URL (``_config.yml``) in every clone line, the
extras each chapter needs, and ``notebooks/colab_setup.py`` run in a simulated Colab."""
import ast
import importlib.util
import json
import re
import shutil
import sys
import tomllib
import types
from pathlib import Path

import pytest
import torch
from helpers import notebook_python
from test_imports import import_graph

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
SETUP_RUN = re.compile(r"%run /content/catbook/notebooks/colab_setup\.py(?P<extras>(?: \w+)*)\n")


def load_setup(path: Path = ROOT / "notebooks" / "colab_setup.py") -> types.ModuleType:
    spec = importlib.util.spec_from_file_location("colab_setup", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


setup = load_setup()


def code_cells(chapter: Path) -> list[str]:
    return ["".join(c["source"]) for c in json.loads(chapter.read_text(encoding="utf-8"))["cells"]
            if c["cell_type"] == "code"]


def imported_modules(chapter: Path) -> set[str]:
    """Modules a chapter's code cells import (notebook ``!`` and ``%`` lines left out)."""
    names = set()
    for source in code_cells(chapter):
        for node in ast.walk(ast.parse(notebook_python(source))):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names |= {node.module} | {f"{node.module}.{a.name}" for a in node.names}
            elif isinstance(node, ast.Import):
                names |= {a.name for a in node.names}
    return names


def needed_extras(chapter: Path) -> set[str]:
    """The extras a chapter needs: ``widgets`` for ipywidgets / plotly in its cells, ``graphs``
    and ``molecules`` when a catlib module it reaches imports OR-Tools or RDKit (they do so
    inside functions). A package's ``__init__`` re-exports every submodule, so it is not
    followed: a chapter reaches the modules it or they name."""
    graph = import_graph()
    packages = {m for m in graph if (ROOT / m.replace(".", "/") / "__init__.py").exists()}
    seen, todo = set(), [m for m in imported_modules(chapter) if m in graph]
    while todo:
        module = todo.pop()
        if module not in seen:
            seen.add(module)
            todo += [] if module in packages else graph[module]
    sources = " ".join((ROOT / (m.replace(".", "/") + ".py")).read_text(encoding="utf-8")
                       if (ROOT / (m.replace(".", "/") + ".py")).exists()
                       else (ROOT / m.replace(".", "/") / "__init__.py").read_text(encoding="utf-8") for m in seen)
    extras = {"widgets"} if imported_modules(chapter) & {"ipywidgets", "plotly"} else set()
    if re.search(r"^\s*(from|import) ortools", sources, re.M):
        extras.add("graphs")
    if re.search(r"^\s*(from|import) rdkit", sources, re.M):
        extras.add("molecules")
    return extras


def test_extras_are_pyprojects():
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert set(setup.EXTRAS) == set(pyproject["project"]["optional-dependencies"])


def test_every_chapter_clones_the_configured_repository():
    url, branch = setup.configured_repository()
    assert url.startswith("https://github.com/") and branch
    line = setup.clone_line(url, branch)
    for chapter in CHAPTERS:
        first = code_cells(chapter)[0]
        assert first.count(line) == 1, f"{chapter.name}: its first cell should clone {url} ({branch}): " \
                                       f"run `make repository` after changing _config.yml"
        assert len(setup.CLONE_LINE.findall("".join(code_cells(chapter)))) == 1, chapter.name


def test_every_chapter_installs_the_extras_it_needs():
    found = {}
    for chapter in CHAPTERS:
        runs = SETUP_RUN.findall(code_cells(chapter)[0] + "\n")
        assert len(runs) == 1, f"{chapter.name}: its first cell should %run colab_setup.py once"
        found[chapter.name[:2]] = set(runs[0].split())
        assert found[chapter.name[:2]] == needed_extras(chapter), chapter.name
    # the checker itself sees the known needs
    assert found["09"] == {"graphs"} and found["13"] == {"molecules"} and "widgets" in found["02"]


def test_write_clone_lines_changes_only_the_url(tmp_path):
    (tmp_path / "notebooks").mkdir()
    for chapter in CHAPTERS[:3]:
        shutil.copy(chapter, tmp_path / "notebooks" / chapter.name)
    config = (ROOT / "_config.yml").read_text(encoding="utf-8")
    url, _ = setup.configured_repository()
    (tmp_path / "_config.yml").write_text(config.replace(url, "https://github.com/someone/catbook-fork"))
    changed = setup.write_clone_lines(tmp_path)
    assert [p.name for p in changed] == [c.name for c in CHAPTERS[:3]]
    for chapter in CHAPTERS[:3]:
        before, after = chapter.read_text(encoding="utf-8"), (tmp_path / "notebooks" / chapter.name).read_text()
        assert after == before.replace(url, "https://github.com/someone/catbook-fork")
    assert setup.write_clone_lines(tmp_path) == []  # a second run has nothing to do
    (tmp_path / "_config.yml").write_text("title: x\n")
    with pytest.raises(ValueError, match="repository.url"):
        setup.write_clone_lines(tmp_path)


def test_install_commands_keep_colabs_torch_and_add_the_data_wheel():
    commands = setup.install_commands(["molecules"], Path("/content/catbook"))
    assert commands[0][-2:] == ["-e", "/content/catbook[molecules]"]
    assert commands[1][-2:] == ["--no-deps", "molsets==0.3.1"]
    assert not any("requirements.txt" in part for c in commands for part in c)  # it pins a CPU torch
    assert setup.install_commands([], Path("/c"))[0][-1] == "/c"
    with pytest.raises(ValueError, match="unknown extra"):
        setup.install_commands(["molecule"])


def test_setup_in_a_simulated_colab(monkeypatch, capsys, tmp_path):
    monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p != str(ROOT)])
    monkeypatch.chdir(tmp_path)  # restored after the test; main() moves into notebooks/
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda i=0: "Tesla T4")
    monkeypatch.setattr(torch.cuda, "get_device_properties",
                        lambda i=0: types.SimpleNamespace(total_memory=15 * 2**30))
    ran = []
    setup.main(["graphs"], run=lambda command, check: ran.append((command, check)))
    assert ran == [(c, True) for c in setup.install_commands(["graphs"])]
    assert Path.cwd() == ROOT / "notebooks" and sys.path[0] == str(ROOT)
    out = capsys.readouterr().out
    assert "GPU: Tesla T4 (15 GiB)" in out and "extras ['graphs']" in out
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    setup.main([], run=lambda command, check: None)
    assert "no GPU in this runtime" in capsys.readouterr().out


def test_setup_outside_colab_points_at_make_install(monkeypatch):
    monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    with pytest.raises(SystemExit, match="make install"):
        setup.main([], run=lambda *a, **k: pytest.fail("installed outside Colab"))

"""The book builds without warnings, and its pages render in a real browser, offline.

``_build/html`` is (re)built at the smoke profile with ``jupyter-book build --all -W`` when it
is missing or older than its sources (an up-to-date ``make book`` build is used as it is).
Then Debian's chromium, headless, loads every page from a local http.server with every host
but 127.0.0.1 unresolvable, lets the scripts run, and we check the DOM it dumps:

- every page has its heading; every chapter has a figure (an ``<img>`` whose file exists, or
  a plotly figure that plotly.js actually drew);
- ipywidgets saved in a chapter are drawn by the vendored html manager;
- chapter 02 has its widget fallback (a plotly figure, or an element whose id or class
  contains ``widget-fallback``);
- the scoreboard shows a table (or, when no chapter has written results, says so);
- no page asks for anything outside 127.0.0.1 (chromium's network log): no CDN.

A screenshot of chapter 02 is left in ``_build/site_check.png``.
"""

from __future__ import annotations

import functools
import http.server
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urljoin, urlsplit

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
HTML = ROOT / "_build" / "html"
STAMP = HTML / ".catbook-site"  # written after a successful build; holds the profile
BUILD_LOG = ROOT / "_build" / "site-build.log"
SCREENSHOT = ROOT / "_build" / "site_check.png"
# what the site is built from; results/smoke/ is left out (the chapter tests rewrite it)
SOURCES = ["_config.yml", "_toc.yml", "book", "notebooks", "catlib"] + [
    str(p.relative_to(ROOT)) for p in sorted((ROOT / "results").glob("*.json"))]
CHAPTERS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
WIDGET_CHAPTER = "02_argmax_surjection"
BUILD_TIMEOUT = 3600


def newest_source() -> float:
    newest = 0.0
    for name in SOURCES:
        path = ROOT / name
        files = [path] if path.is_file() else path.rglob("*") if path.is_dir() else []
        for file in files:
            if file.is_file() and not {"__pycache__", ".ipynb_checkpoints"} & set(file.parts):
                newest = max(newest, file.stat().st_mtime)
    return newest


def heading_of(notebook: Path) -> str:
    for cell in json.loads(notebook.read_text(encoding="utf-8"))["cells"]:
        if cell["cell_type"] == "markdown":
            for line in "".join(cell["source"]).splitlines():
                if line.startswith("# "):
                    return line[2:].strip()
    raise AssertionError(f"{notebook.name} has no '# N. Title' heading")


def pages() -> dict[str, str]:
    """Page path (relative to _build/html) -> the heading it must show."""
    found = {
        "book/intro.html": "catbook: learning categorical distributions with continuous models",
        "book/how_to_run.html": "How to run",
        "book/scoreboard.html": "Scoreboard",
        "book/references.html": "References",
    }
    for notebook in CHAPTERS:
        found[f"notebooks/{notebook.stem}.html"] = heading_of(notebook)
    return found


# --------------------------------------------------------------------------- the build


@pytest.fixture(scope="module")
def site(kernel_env):
    if STAMP.exists() and STAMP.stat().st_mtime > newest_source():
        return {"built": False, "returncode": 0, "log": "(up to date, not rebuilt)"}
    jupyter_book = Path(sys.executable).with_name("jupyter-book")
    if not jupyter_book.exists():
        jupyter_book = Path(shutil.which("jupyter-book") or "jupyter-book")
    STAMP.unlink(missing_ok=True)
    BUILD_LOG.parent.mkdir(parents=True, exist_ok=True)
    command = [str(jupyter_book), "build", "--all", "-W", "--keep-going", str(ROOT)]
    started = time.time()
    with open(BUILD_LOG, "w") as log:
        run = subprocess.run(
            command, cwd=ROOT, env=kernel_env(CATBOOK_PROFILE="smoke"), stdout=log,
            stderr=subprocess.STDOUT, timeout=BUILD_TIMEOUT,
        )
    text = BUILD_LOG.read_text(errors="replace")
    if run.returncode == 0:
        STAMP.write_text("smoke\n")
    print(f"jupyter-book build at the smoke profile: {time.time() - started:.0f} s")
    return {"built": True, "returncode": run.returncode, "log": text}


def test_book_builds_without_warnings(site):
    tail = site["log"][-15000:]
    assert site["returncode"] == 0, f"jupyter-book build failed (log: {BUILD_LOG}):\n{tail}"
    for marker in ("WARNING:", "ERROR:", "Traceback"):
        assert marker not in site["log"], f"{marker} in the build log {BUILD_LOG}:\n{tail}"
    assert STAMP.exists()
    assert (HTML / "index.html").exists()
    for page in pages():
        assert (HTML / page).exists(), f"{page} was not rendered (is it in _toc.yml?)"


# --------------------------------------------------------------------------- the browser


class Dom(HTMLParser):
    """What the checks need from a dumped DOM."""

    def __init__(self, text: str):
        super().__init__(convert_charrefs=True)
        self.h1: list[str] = []
        self.imgs: list[str] = []
        self.tables: list[str] = []  # classes of each <table>
        self.ids_and_classes: list[str] = []
        self.plotly_divs = 0
        self._h1_depth = 0
        self.feed(text)
        self.plotly_drawn = text.count('class="main-svg"')
        self.widget_views = len(re.findall(r"widget-view\+json", text))
        self.widgets_drawn = len(re.findall(r'class="[^"]*\bjupyter-widgets\b', text))

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        classes = attrs.get("class") or ""
        self.ids_and_classes += [attrs.get("id") or "", classes]
        if tag == "h1":
            self._h1_depth += 1
            self.h1.append("")
        elif tag == "img" and attrs.get("src"):
            self.imgs.append(attrs["src"])
        elif tag == "table":
            self.tables.append(classes)
        elif tag == "div" and "plotly-graph-div" in classes.split():
            self.plotly_divs += 1

    def handle_endtag(self, tag):
        if tag == "h1" and self._h1_depth:
            self._h1_depth -= 1

    def handle_data(self, data):
        if self._h1_depth:
            self.h1[-1] += data

    def headings(self) -> list[str]:
        return [" ".join(h.replace("#", " ").split()) for h in self.h1]


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):
        pass


@pytest.fixture(scope="module")
def chromium():
    for candidate in (shutil.which("chromium"), "/usr/bin/chromium", shutil.which("chromium-browser")):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    pytest.skip(
        "chromium is not installed and could not be installed (needs root and apt: "
        "apt-get update && apt-get install -y chromium chromium-driver); "
        "the site's browser checks did not run"
    )


@pytest.fixture(scope="module")
def server(site):
    if site["returncode"] != 0:
        pytest.skip("the book did not build (see test_book_builds_without_warnings)")
    handler = functools.partial(QuietHandler, directory=str(HTML))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    httpd.shutdown()
    httpd.server_close()


def browse(chromium: str, url: str, workdir: Path, *extra: str) -> tuple[str, list[str]]:
    """Load ``url`` headless; return the DOM after scripts ran and the URLs outside 127.0.0.1."""
    workdir.mkdir(parents=True, exist_ok=True)
    netlog = workdir / "netlog.json"
    command = [
        chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
        "--no-first-run", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--disable-dev-shm-usage", f"--user-data-dir={workdir / 'profile'}",
        "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
        f"--log-net-log={netlog}", "--virtual-time-budget=20000", *extra, url,
    ]
    run = subprocess.run(command, capture_output=True, text=True, timeout=180)
    assert run.returncode == 0, f"chromium failed on {url}:\n{run.stderr[-3000:]}"
    return run.stdout, page_requests_outside(netlog)


def page_requests_outside(netlog: Path) -> list[str]:
    """URLs outside 127.0.0.1 that the page (not chromium itself) asked for, from a net log."""
    text = netlog.read_text(errors="replace")
    try:
        log = json.loads(text)
    except json.JSONDecodeError:  # chromium did not close the log; its events are still there
        log = json.loads(text.rstrip().rstrip(",") + "]}")
    start_job = log["constants"]["logEventTypes"]["URL_REQUEST_START_JOB"]
    outside = set()
    for event in log["events"]:
        params = event.get("params") or {}
        if event.get("type") != start_job or "url" not in params:
            continue
        # Requests of the page carry its site in their network isolation key; chromium's own
        # background requests (update checks, accounts) do not.
        from_page = "127.0.0.1" in params.get("network_isolation_key", "") or str(
            params.get("initiator", "")
        ).startswith("http://127.0.0.1")
        host = urlsplit(params["url"]).hostname
        if from_page and host not in ("127.0.0.1", "localhost"):
            outside.add(params["url"])
    return sorted(outside)


@pytest.fixture(scope="module")
def rendered(chromium, server, tmp_path_factory):
    """Every page, rendered once: {page: (Dom, urls outside 127.0.0.1)}."""
    out = {}
    for i, page in enumerate(pages()):
        dom, outside = browse(
            chromium, server + page, tmp_path_factory.mktemp(f"page{i}"), "--dump-dom"
        )
        out[page] = (Dom(dom), outside)
    return out


def _plain_quotes(text):
    """Undo Sphinx's smart quotes (``'`` is rendered as a typographic apostrophe)."""
    return text.translate(str.maketrans({"\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"'}))


@pytest.mark.parametrize("page", list(pages()))
def test_page_shows_its_heading(rendered, page):
    dom, _ = rendered[page]
    heading = _plain_quotes(" ".join(pages()[page].split()))
    assert any(heading in _plain_quotes(h) for h in dom.headings()), (
        f"{page}: heading {heading!r} not found; headings are {dom.headings()}"
    )


@pytest.mark.parametrize("page", list(pages()))
def test_page_fetches_nothing_from_the_network(rendered, page):
    _, outside = rendered[page]
    assert not outside, f"{page} requested URLs outside 127.0.0.1 (a CDN?): {outside}"


@pytest.mark.parametrize("notebook", CHAPTERS, ids=[p.stem for p in CHAPTERS])
def test_chapter_has_a_figure(rendered, notebook):
    page = f"notebooks/{notebook.stem}.html"
    dom, _ = rendered[page]
    images = []
    for src in dom.imgs:
        if src.startswith("data:image/"):
            images.append(src[:30])
            continue
        path = unquote(urlsplit(urljoin("http://x/" + page, src)).path).lstrip("/")
        if (HTML / path).is_file() and "_static/" not in path:
            images.append(path)
    assert images or dom.plotly_divs, (
        f"{page} shows no figure: no <img> with an existing file outside _static/ "
        f"(saw {dom.imgs}) and no plotly figure"
    )


@pytest.mark.parametrize("page", [f"notebooks/{p.stem}.html" for p in CHAPTERS])
def test_interactive_outputs_are_drawn_offline(rendered, page):
    dom, _ = rendered[page]
    if dom.plotly_divs:
        assert dom.plotly_drawn >= dom.plotly_divs, (
            f"{page}: {dom.plotly_divs} plotly figure(s) but plotly.js drew "
            f"{dom.plotly_drawn}: is plotly.js loaded from _static/?"
        )
    if dom.widget_views:
        assert dom.widgets_drawn, (
            f"{page}: ipywidgets saved in the page were not drawn: is "
            "_static/jupyter-widgets/embed.js loaded (nb_ipywidgets_js in _config.yml)?"
        )


def test_widget_chapter_has_a_static_fallback(rendered):
    page = f"notebooks/{WIDGET_CHAPTER}.html"
    if not (ROOT / "notebooks" / f"{WIDGET_CHAPTER}.ipynb").exists():
        pytest.skip(f"no notebooks/{WIDGET_CHAPTER}.ipynb yet")
    dom, _ = rendered[page]
    fallback = [x for x in dom.ids_and_classes if "widget-fallback" in x]
    assert dom.plotly_divs or fallback, (
        f"{page}: the site has no kernel, so the chapter's widget needs a static fallback: "
        "a plotly figure (class plotly-graph-div) or an element whose id or class contains "
        "'widget-fallback'"
    )


def test_scoreboard_shows_a_table(rendered):
    dom, _ = rendered["book/scoreboard.html"]
    results = list((ROOT / "results").glob("*/*.json"))
    built = STAMP.stat().st_mtime if STAMP.exists() else time.time()
    if any(r.stat().st_mtime < built for r in results):
        assert any("scoreboard" in c.split() for c in dom.tables), (
            f"results exist ({[str(r.relative_to(ROOT)) for r in results]}) but the "
            "scoreboard shows no table"
        )
    else:
        assert "scoreboard-empty" in dom.ids_and_classes or dom.tables, (
            "the scoreboard shows neither a table nor its 'no results yet' note"
        )


def test_screenshot_of_the_widget_chapter(chromium, server, tmp_path):
    page = f"notebooks/{WIDGET_CHAPTER}.html"
    if not (HTML / page).exists():
        pytest.skip(f"{page} was not built")
    SCREENSHOT.unlink(missing_ok=True)
    browse(chromium, server + page, tmp_path, f"--screenshot={SCREENSHOT}",
           "--window-size=1280,2000", "--hide-scrollbars")
    assert SCREENSHOT.exists() and SCREENSHOT.stat().st_size > 10_000, "no screenshot taken"


def test_molecule_chapter_draws_molecules(rendered):
    page = "notebooks/13_molecules.html"
    if not (ROOT / "notebooks" / "13_molecules.ipynb").exists():
        pytest.skip("no chapter 13 yet")
    dom, _ = rendered[page]
    figures = [src for src in dom.imgs if "_static/" not in src]
    # the size histogram, the learning curves, two grids of training molecules and one grid of
    # samples per model row that has samples (at smoke TRUFL's rejection sampling gives up: 3 rows)
    assert len(figures) >= 7, f"{page} shows {len(figures)} figures: {figures}"


@pytest.mark.parametrize("notebook", CHAPTERS, ids=[p.stem for p in CHAPTERS])
def test_chapter_page_opens_its_notebook_in_colab(site, notebook):
    assert site["returncode"] == 0, "the site did not build"
    config = yaml.safe_load((ROOT / "_config.yml").read_text(encoding="utf-8"))
    url, branch = config["repository"]["url"].rstrip("/"), config["repository"]["branch"]
    owner_repo = urlsplit(url).path.strip("/")
    path = notebook.relative_to(ROOT).as_posix()
    page = (HTML / "notebooks" / f"{notebook.stem}.html").read_text(encoding="utf-8")
    links = set(re.findall(r'href="(https://colab\.research\.google\.com/[^"]+)"', page))
    assert links == {f"https://colab.research.google.com/github/{owner_repo}/blob/{branch}/{path}"}, (
        f"{notebook.stem}: Colab launch links {links} should open {path} of {url} ({branch})")
    assert f'href="{url}"' in page, f"{notebook.stem}: no repository button linking {url}"


@pytest.mark.parametrize("notebook", CHAPTERS, ids=[p.stem for p in CHAPTERS])
def test_chapter_page_shows_no_warnings_or_temporary_paths(site, notebook):
    assert site["returncode"] == 0, "the site did not build"
    text = re.sub(r"<[^>]+>", "", (HTML / "notebooks" / f"{notebook.stem}.html").read_text(encoding="utf-8"))
    found = re.findall(r"\w*Warning: [^\n]{0,80}|/tmp/[\w./-]+|ipykernel_\d+", text)
    assert not found, f"{notebook.stem}: the page shows warning text or temporary paths: {found[:5]}"


def test_intro_lists_every_chapter():
    intro = (ROOT / "book" / "intro.md").read_text(encoding="utf-8")
    listed = {int(n) for n in re.findall(r"(?:^|\s)(\d+)\. \*\*", intro, re.M)}
    missing = set(range(1, len(CHAPTERS) + 1)) - listed
    assert not missing, f"the intro's chapter list lacks chapters {sorted(missing)}"


@pytest.mark.parametrize("page", list(pages()))
def test_citations_are_told_apart(site, page):
    assert site["returncode"] == 0, "the site did not build"
    text = " ".join(re.sub(r"<[^>]+>", "", (HTML / page).read_text(encoding="utf-8")).split())
    repeated = re.findall(r"([A-Z][\w-]+(?: et al\.)?, \d{4}[a-z]?)[,;] \1(?![a-z\d])", text)
    assert not repeated, f"{page}: one citation label stands for two works: {repeated}"


def test_wide_tables_scroll_inside_the_column(site):
    assert site["returncode"] == 0, "the site did not build"
    css = (HTML / "_static" / "catbook.css").read_text(encoding="utf-8")
    assert "overflow-x: auto" in css and "max-width: 100%" in css
    for page in pages():
        assert "_static/catbook.css" in (HTML / page).read_text(encoding="utf-8"), f"{page} does not load catbook.css"


def test_only_notebook_pages_have_a_colab_button(site):
    assert site["returncode"] == 0, "the site did not build"
    for page in pages():
        if not page.startswith("notebooks/"):
            assert "colab.research.google.com" not in (HTML / page).read_text(encoding="utf-8"), (
                f"{page} is not a notebook but has a Colab button")

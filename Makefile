# catbook: the two commands of the README, plus clean.
#   make test                         unit tests, every chapter at the smoke profile, the site
#   make book [CATBOOK_PROFILE=smoke] execute the chapters and render the site to _build/html
#   make clean                        remove _build/ and the smoke results (keeps .venv/ and checkpoints/)
#   make repository                   write _config.yml's repository URL into every chapter's clone line

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# Installed once per change of requirements.txt / pyproject.toml.
STAMP := $(VENV)/.catbook-installed

CATBOOK_PROFILE ?= cpu
export CATBOOK_PROFILE
# Chapters executed unattended write their progress bars as text (catlib.progress): a saved
# tqdm widget would show as blank space on the site.
export CATBOOK_PROGRESS := text
# Kernels started for the chapters are this venv's Python (its ipykernel spec comes first).
export JUPYTER_PATH := $(CURDIR)/$(VENV)/share/jupyter

.PHONY: test book clean install browser repository

test: install browser
	$(PY) -m pytest tests catlib

book: install
	@$(PY) book/plan.py "$(CATBOOK_PROFILE)"
	@echo "Building the book at the '$(CATBOOK_PROFILE)' profile into _build/html"
	rm -f _build/html/.catbook-site
	$(VENV)/bin/jupyter-book build --all -W --keep-going .
	echo "$(CATBOOK_PROFILE)" > _build/html/.catbook-site

install: $(STAMP)

# torch==2.13.0 is pinned in requirements.txt; installing both in one pip call lets the pin
# decide torch for catlib's `torch>=2.1` too, so no other torch is ever pulled in.
$(STAMP): requirements.txt pyproject.toml
	@test -x $(PY) || { echo "Creating $(VENV) with $(PYTHON)"; $(PYTHON) -m venv $(VENV); }
	@echo "Installing requirements.txt and catlib (editable) into $(VENV)"
	$(PY) -m pip install -qq --disable-pip-version-check -r requirements.txt -e .
	@# The MOSES molecules ship in the molsets wheel; its own dependencies carry old pins and are
	@# not needed to read its data files (catlib.data.molecules), so it is installed without them.
	$(PY) -m pip install -qq --disable-pip-version-check --no-deps molsets==0.3.1
	@# molsets also ships a top-level "tests" package, which would shadow this repository's tests/
	@# in subprocesses (torch.multiprocessing imports tests.test_distributed by name): remove it.
	rm -rf "$$($(PY) -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/tests"
	$(PY) -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (catbook)" >/dev/null
	@touch $@

# The site test looks at the pages in Debian's chromium; install it when it is missing and we
# can (root with apt). Otherwise tests/test_site.py skips its browser checks and says why.
browser:
	@if [ -x /usr/bin/chromium ] || command -v chromium >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "Installing chromium for the site test (apt-get, a few minutes)"; \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	      chromium chromium-driver >/dev/null; } \
	    || echo "WARNING: could not install chromium; the site's browser checks will be skipped"; \
	else \
	  echo "chromium is missing and we are not root: the site's browser checks will be skipped"; \
	fi

repository: install
	$(PY) notebooks/colab_setup.py --write-clone-lines

clean:
	rm -rf _build .pytest_cache results/smoke

# Two commands do all the set-up on a fresh machine:
#   make tutorial   create .venv if missing, install what the notebooks need, execute every
#                   notebook (FAST) into build/ (.ipynb + .html)
#   make test       also install the test extras and a browser, run the whole test suite
#                   (unit, notebooks, nbval, browser), then say what did not run and why
# and `make lab` opens JupyterLab on notebooks/; `make browser` gets the browser tests' Chromium;
# `make exercises` writes the student edition of the notebooks to build/exercises/.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# torch is installed first and pinned here: an open `torch` requirement would pull whatever
# build the index serves (a multi-GB CUDA build on PyPI for Linux). Override for your machine:
#   make test TORCH_SPEC="torch==2.13.0"
# and, where PyPI's Linux wheel would bring CUDA, take the CPU build from PyTorch's index:
#   make test TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
TORCH_SPEC ?= torch==2.13.0
TORCH_INDEX_URL ?=
# STAMP: the package and its `notebooks` extra (all `make tutorial` needs); TEST_STAMP: and the
# `test` extra (pytest, Playwright: about 170 MB more).
STAMP := $(VENV)/.installed-stamp
TEST_STAMP := $(VENV)/.installed-test-stamp
NOTEBOOKS := $(sort $(wildcard notebooks/[0-9]*.ipynb))
PYTEST_ARGS ?=

.PHONY: install install-test browser tutorial exercises test test-fast lab clean bench

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/python -m pip install -q "$(TORCH_SPEC)" $(if $(TORCH_INDEX_URL),--index-url "$(TORCH_INDEX_URL)")
	$(BIN)/python -m pip install -q -e ".[notebooks]"
	touch $(STAMP)

$(TEST_STAMP): $(STAMP)
	$(BIN)/python -m pip install -q -e ".[notebooks,test]"
	touch $(TEST_STAMP)

install: $(STAMP)

install-test: $(TEST_STAMP)

# Chromium for the browser tests: Playwright's download first, else the system's Chromium;
# with neither, prints the command that installs one here (exit 1). `make test` runs the same
# with --if-missing: only when no browser is found, and never stops the tests.
browser: $(TEST_STAMP)
	@$(BIN)/python tests/chromium.py

# Executes every notebook with FAST=True on the synthetic data, writes build/NAME.ipynb and
# build/NAME.html. Works (and does nothing) when notebooks/ is empty.
tutorial: $(STAMP)
	$(BIN)/python -m tutorial_lib.notebook run-all --out build $(NOTEBOOKS)
	@echo
	@echo "The executed notebooks, as web pages: $(CURDIR)/build/*.html (open one in a browser)."
	@echo "To run and change them yourself in JupyterLab:  make lab"

# The student edition: every solution block of the notebooks becomes a stub that raises
# NotImplementedError with its hint, and the hidden solutions of the exercises are removed.
exercises: $(STAMP)
	$(BIN)/python -m tutorial_lib.exercises build/exercises $(NOTEBOOKS)

# The end of the run prints one summary of what was skipped and the command that enables it.
test: $(TEST_STAMP)
	@$(BIN)/python tests/chromium.py --if-missing
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# Unit tests only (no notebooks, no browser): the quick loop while editing the library.
test-fast: $(TEST_STAMP)
	$(BIN)/python -m pytest -m "not notebooks and not browser" $(PYTEST_ARGS)

lab: $(STAMP)
	$(BIN)/jupyter lab notebooks/

bench: $(STAMP)
	$(BIN)/python benchmarks/reproduce.py diffrec --dataset ml-1m_clean

clean:
	rm -rf build .pytest_cache

# Two commands do all the set-up on a fresh machine:
#   make tutorial   create .venv if missing, install, execute every notebook (FAST) into build/
#   make test       install and run the whole test suite (unit, notebooks, nbval, browser)
# and `make lab` opens JupyterLab on notebooks/.
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
STAMP := $(VENV)/.installed-stamp
NOTEBOOKS := $(sort $(wildcard notebooks/[0-9]*.ipynb))
PYTEST_ARGS ?=

.PHONY: install tutorial test test-fast lab clean bench

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/python -m pip install -q "$(TORCH_SPEC)" $(if $(TORCH_INDEX_URL),--index-url "$(TORCH_INDEX_URL)")
	$(BIN)/python -m pip install -q -e ".[notebooks,test]"
	touch $(STAMP)

install: $(STAMP)

# Executes every notebook with FAST=True on the synthetic data, writes build/NAME.ipynb and
# build/NAME.html. Works (and does nothing) when notebooks/ is empty.
tutorial: $(STAMP)
	$(BIN)/python -m tutorial_lib.notebook run-all --out build $(NOTEBOOKS)

test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# Unit tests only (no notebooks, no browser): the quick loop while editing the library.
test-fast: $(STAMP)
	$(BIN)/python -m pytest -m "not notebooks and not browser" $(PYTEST_ARGS)

lab: $(STAMP)
	$(BIN)/jupyter lab notebooks/

bench: $(STAMP)
	$(BIN)/python benchmarks/reproduce.py diffrec --dataset ml-1m_clean --data-dir ../shared/datasets

clean:
	rm -rf build .pytest_cache

# `make demo` and `make test` work on a fresh machine with Python 3.10+: each creates or reuses
# .venv and installs what it needs (PyTorch pinned in requirements-dev.txt).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test check bench lint-self clean

$(STAMP): pyproject.toml requirements-dev.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -r requirements-dev.txt
	$(BIN)/python -m pip install -q --no-deps -e .
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/trainguard demo

test: $(STAMP)
	$(BIN)/python -m pytest -n 2 tests

# Types (mypy over trainguard/) and lint (ruff over the repository), as configured in
# pyproject.toml. `ruff format` is not enforced: most of the tree predates it.
check: $(STAMP)
	$(BIN)/mypy
	$(BIN)/ruff check .

bench: $(STAMP)
	$(BIN)/python benchmarks/overhead.py

clean:
	rm -rf $(VENV) build *.egg-info

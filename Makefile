# cidash — two commands do all the set-up on a fresh machine:
#   make demo   the dashboard against the built-in simulated GitLab (no token, no network)
#   make test   install everything into .venv and run ruff, mypy, import-linter and pytest
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
UV_VERSION := 0.13.9
STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck imports pytest venv lock screenshots bench clean package package-check

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(BIN)/uv: | $(BIN)/python
	$(BIN)/python -m pip install --quiet --disable-pip-version-check "uv==$(UV_VERSION)"

# Re-install only when the lock or pyproject changed.
$(STAMP): requirements.lock pyproject.toml | $(BIN)/uv
	$(BIN)/uv pip install --quiet --python $(BIN)/python -r requirements.lock
	$(BIN)/uv pip install --quiet --python $(BIN)/python --no-deps -e .
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(BIN)/cidash demo

lint: $(STAMP)
	$(BIN)/ruff format --check src tests bench
	$(BIN)/ruff check src tests bench

typecheck: $(STAMP)
	$(BIN)/mypy

# Architecture contracts in .importlinter: the core never imports the dashboard, the commands or Textual; the
# simulator never calls the cidash code it checks.
imports: $(STAMP)
	$(BIN)/lint-imports --no-cache

# TESTS narrows the run to one group or file, e.g. `make pytest TESTS=tests/unit` (groups: tests/unit,
# tests/integration, tests/tui, tests/repo; see docs/development.md).
TESTS ?=
pytest: $(STAMP)
	$(BIN)/pytest -n 2 -q $(TESTS)

# pytest includes tests/repo/test_packaging.py: uv build (sdist + wheel) into a temporary directory, the metadata, and
# the wheel installed as a uv tool, offline, running `cidash --version` and `cidash demo --headless` from there.
test: lint typecheck imports pytest

# Build the sdist and wheel into DIST (default: a new temporary directory, never the checkout's dist/).
package: $(STAMP)
	@out="$${DIST:-$$(mktemp -d)}"; \
	$(BIN)/uv build --quiet --out-dir "$$out" --build-constraint requirements.lock && ls -l "$$out"

# The packaging check on its own (make test runs it as part of pytest).
package-check: $(STAMP)
	$(BIN)/pytest -q -n 0 tests/repo/test_packaging.py

# Regenerate the pinned dependency set (the lock file the CI image also installs).
lock: | $(BIN)/uv
	$(BIN)/uv pip compile --quiet --python-version 3.11 --extra test --output-file requirements.lock pyproject.toml

screenshots: $(STAMP)
	$(BIN)/python scripts/screenshots.py

bench: $(STAMP)
	$(BIN)/python bench/logparse.py
	$(BIN)/python bench/sync.py
	$(BIN)/python bench/tui.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis

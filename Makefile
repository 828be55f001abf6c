# Two entry points, each doing all set-up on a fresh clone:
#   make demo   creates .venv, installs, runs `pythia-suite run` (the default suite) into runs/default
#   make test   creates .venv if needed, installs (and Debian's chromium when missing), ruff, mypy, pytest
#   make lab    JupyterLab on notebooks/ (their defaults open what `make demo` wrote, runs/default)
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
DEMO := runs

.PHONY: demo test bench clean lab

$(STAMP): pyproject.toml requirements.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -r requirements.lock
	$(BIN)/python -m pip install -q --no-deps --no-build-isolation -e .
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/pythia-suite run --preset default

LAB_PORT ?= 8888
lab: $(STAMP)
	$(BIN)/jupyter lab --notebook-dir=notebooks --port=$(LAB_PORT) --ip=127.0.0.1 $(if $(SUDO),,--allow-root)

LINTED := pythia_suite dataloader_replay checkpoints_index analysis suite_core

test: $(STAMP)
	command -v chromium >/dev/null 2>&1 || { $(SUDO) apt-get update && $(SUDO) apt-get install -y chromium; }
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy $(LINTED)
	$(BIN)/python -m pytest -q -n auto --dist loadfile

bench: $(STAMP)
	for b in bench/bench_*.py; do $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) $(DEMO)

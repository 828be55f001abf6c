# Two entry points, each doing all set-up on a fresh clone:
#   make demo   creates .venv, installs, runs the pipeline on the embedded default corpus
#   make test   creates .venv if needed, installs, runs the test suite
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO := demo-out

.PHONY: demo test bench clean

$(STAMP): pyproject.toml requirements.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -r requirements.lock
	$(BIN)/python -m pip install -q --no-deps --no-build-isolation -e .
	touch $(STAMP)

demo: $(STAMP)
	rm -rf $(DEMO)
	$(BIN)/pythia-suite corpus synth --out $(DEMO)/corpus --preset tiny --seed 1234
	$(BIN)/pythia-suite dedup $(DEMO)/corpus/corpus.jsonl --out $(DEMO)/deduped.jsonl
	$(BIN)/pythia-suite tokenizer train $(DEMO)/deduped.jsonl --vocab-size 2048 --out $(DEMO)/tokenizer.json
	$(BIN)/pythia-suite prepare $(DEMO)/deduped.jsonl --tokenizer $(DEMO)/tokenizer.json --out $(DEMO)/data \
		--seq-length 128 --batch-size 8 --steps 64
	$(BIN)/pythia-suite replay $(DEMO)/data --step 10 --out $(DEMO)/batch10.npy
	$(BIN)/pythia-suite train --model pythia-nano --data $(DEMO)/data --out $(DEMO)/run --checkpoints log+every:16
	$(BIN)/pythia-suite checkpoints list $(DEMO)/run
	$(BIN)/pythia-suite checkpoints verify $(DEMO)/run
	$(BIN)/pythia-suite replay $(DEMO)/run --verify

LINTED := pythia_suite dataloader_replay checkpoints_index analysis suite_errors

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy $(LINTED)
	$(BIN)/python -m pytest -q

bench: $(STAMP)
	for b in bench/bench_*.py; do $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) $(DEMO)

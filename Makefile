# thpad: two commands on a fresh machine.
#   make run   set up, then run the whole pipeline (dvc repro) on the bundled sample corpus
#   make test  set up, then run the test suite
# Set-up is idempotent: stamps skip the work that is already done.

SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMPS := .make
PYTEST_ARGS ?=

# Keep every tool's side effects inside the project and quiet (see README "Environment").
export PATH := $(CURDIR)/$(BIN):$(PATH)
export DVC_NO_ANALYTICS := 1
export DVC_SITE_CACHE_DIR := $(CURDIR)/.dvc/site-cache
export MLFLOW_DISABLE_TELEMETRY := true
export RAY_USAGE_STATS_ENABLED := 0
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: run test test-quick setup lint clean help

help:
	@echo "make run    set up and run the whole pipeline (dvc repro) on the sample corpus"
	@echo "make test   set up and run the tests"
	@echo "make test-quick  the tests that need no Ray and no dvc repro (a few minutes, for iteration)"
	@echo "make lint   ruff"
	@echo "make clean  remove the venv, stamps and generated data"

run: setup
	$(BIN)/dvc repro
	@echo ""
	@echo "Done. Talking-head videos from held-out inputs: data/demo/ (samples.mp4, keyframe.mp4, reenacted.mp4, strip.png)"
	@echo "Evaluation: data/evaluate/report.html (Table I, diffusion vs AR, lips, identity); .venv/bin/dvc metrics show"
	@echo "Your own photo and speech: .venv/bin/thpad generate face.jpg speech.wav -o talk.mp4 --samples 3"

test: setup
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-quick: setup
	$(BIN)/python -m pytest -m "not slow" $(PYTEST_ARGS)

lint: setup
	$(BIN)/ruff check .

setup: $(STAMPS)/system $(STAMPS)/python

$(STAMPS)/system: scripts/install_system.sh
	@mkdir -p $(STAMPS)
	bash scripts/install_system.sh
	@touch $@

$(STAMPS)/python: pyproject.toml
	@mkdir -p $(STAMPS)
	@$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), "thpad needs Python 3.11, found " + sys.version' \
		|| { echo "error: Python 3.11 is required (set PYTHON=/path/to/python3.11)"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet "setuptools<81" wheel
	$(BIN)/python -m pip install --quiet -e ".[test]"
	@touch $@

clean:
	rm -rf $(VENV) $(STAMPS) data work

# Bati Bank credit-risk platform. `make train` runs the main job, `make test` runs every test.
# Both create the virtual environment (.venv) on first use.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.DEFAULT_GOAL := help
.PHONY: help install train test lint format bench-train clean

help:
	@echo "make train        train on the built-in synthetic data, export ONNX, register in MLflow"
	@echo "make test         lint and run every test"
	@echo "make bench-train  wall time / memory of the default run, feature throughput on 1M rows"
	@echo "make clean        remove local MLflow runs, exported models and reports"

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

install: $(STAMP)

train: $(STAMP)
	$(PY) -m ml train $(ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

test: lint
	$(PY) -m pytest

format: $(STAMP)
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

bench-train: $(STAMP)
	$(PY) bench/bench_train.py

clean:
	rm -rf mlruns artifacts reports

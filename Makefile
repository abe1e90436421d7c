# Bati Bank credit-risk platform. `make train` runs the main job, `make test` runs every test.
# Both create the virtual environment (.venv) on first use.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
# Tools installed by the venv (ruff, actionlint, kubernetes-validate, shellcheck) are called by name.
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

.DEFAULT_GOAL := help
.PHONY: help install lock train serve test lint format bench-train bench-serve bench-transformer bench-rollout monitoring-snapshot monitoring-generate reliability clean

help:
	@echo "make train        train on the built-in synthetic data, export ONNX, register in MLflow"
	@echo "make test         lint and run every test"
	@echo "make serve        serve the registered champion (after make train) on http://localhost:8080"
	@echo "make bench-train  wall time / memory of the default run, feature throughput on 1M rows"
	@echo "make bench-serve  the predictor (HTTP and gRPC) against MLServer, a naive kserve predictor, the kserve floor, raw onnxruntime"
	@echo "make bench-transformer  one raw transaction through transformer + Redis + predictor, overhead, backfill and ingest rates, store memory"
	@echo "make bench-rollout  seconds from moving champion to every replica on the new version, and back (containers)"
	@echo "make monitoring-snapshot  draw the Grafana dashboard from a real run (docs/images/dashboard-snapshot.png)"
	@echo "make monitoring-generate  regenerate the dashboard JSON and the promtool unit tests"
	@echo "make reliability  fuzz (10,000 hostile requests), 60 s load on 2 workers, SIGTERM under load; the same for the transformer (docs/reliability.md)"
	@echo "make lock         re-pin the image's hashed requirement set (requirements/serve.lock) from pyproject.toml"
	@echo "make clean        remove local MLflow runs, exported models and reports"

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

install: $(STAMP)

# The predictor image installs exactly this set (--require-hashes --no-deps); every platform's wheels are
# hashed, so amd64 and arm64 builds both verify. tests/deploy/test_lock.py fails when it falls behind.
lock: $(STAMP)
	$(VENV)/bin/uv pip compile pyproject.toml --extra serve --universal --python-version 3.11 \
		--generate-hashes --override requirements/serve-overrides.txt --no-header --quiet \
		--output-file requirements/serve.lock

train: $(STAMP)
	$(PY) -m ml train $(ARGS)

serve: $(STAMP)
	MLFLOW_TRACKING_URI=sqlite:///$(CURDIR)/mlruns/mlflow.db $(PY) -m serving \
		--model-uri models:/credit-risk@champion --http-port 8080 --workers 2

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

bench-serve: $(STAMP)
	$(PY) bench/bench_serve.py

bench-transformer: $(STAMP)
	$(PY) bench/bench_transformer.py

bench-rollout: $(STAMP)
	$(PY) bench/bench_rollout.py

monitoring-snapshot: $(STAMP)
	$(PY) monitoring/snapshot.py

monitoring-generate: $(STAMP)
	$(PY) monitoring/grafana/generate.py
	$(PY) monitoring/prometheus/tests/generate.py

reliability: $(STAMP)
	$(PY) reliability/fuzz.py
	$(PY) reliability/load.py
	$(PY) reliability/fuzz_transformer.py
	$(PY) reliability/load_transformer.py

clean:
	rm -rf mlruns artifacts reports

# dedl-experiments: `make help` lists the targets.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
RUN := $(BIN)/python -m dedl_experiments
HOST ?= 127.0.0.1
PORT ?= 5000

.DEFAULT_GOAL := help
.PHONY: help install demo test clean ui bench-data

help: ## Show this list
	@grep -hE '^[a-zA-Z0-9_-]+:.*## ' $(MAKEFILE_LIST) | \
		awk 'BEGIN {FS = ":.*## "} {printf "  make %-12s %s\n", $$1, $$2}'

install: $(STAMP) ## Create .venv and install the project (again only when pyproject.toml changes)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

demo: install ## Main job on the built-in synthetic data: UNet-ResNet18 without / with ReLU / with GELU APP
	$(RUN) -m budget=smoke init=random app=none,relu,gelu

test: install ## Run the whole test suite
	$(BIN)/python -m pytest

bench-data: install ## Data pipeline: augmented 480 px tiles/s, ours vs the released notebooks' loader
	$(BIN)/python benchmarks/data_bench.py

ui: install ## Open the MLflow UI over ./mlflow.db on $(HOST):$(PORT)
	$(BIN)/mlflow ui --backend-store-uri sqlite:///mlflow.db --host $(HOST) --port $(PORT)

clean: ## Remove outputs, generated data, the MLflow store and caches (keeps .venv)
	rm -rf outputs data mlflow.db mlflow.db.lock mlartifacts mlruns reports .pytest_cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +

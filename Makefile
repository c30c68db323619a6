# dedl-experiments: `make help` lists the targets.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
RUN := $(BIN)/python -m dedl_experiments
HOST ?= 127.0.0.1
PORT ?= 5000

.DEFAULT_GOAL := help
.PHONY: help install demo test test-fast test-cpus clean ui server bench bench-data

# Paper tables: `make tableN` runs the sweep of conf/experiment/tableN.yaml, then the table's
# report (reports/tableN/: Markdown, CSV, PNG; also printed). Cells finished before are skipped,
# whichever table's sweep ran them (Tables 6/7 are Table 2's cells, 5 is 4's; the timing tables 1,
# 8, 10 train without early stopping, so their cells are their own). Every experiment file is a
# target: a new table is a new file in conf/experiment/ (or in CONF).
#   CONF=/path       your config folder (experiment/, encoder/, ... laid out as the
#                    repository's conf/): its experiment files are targets too; the sweep has it on Hydra's
#                    search path and the report reads it (config_dir=)
#   SMOKE=1          smoke budget and random init (no downloads). Not random init for table12
#                    and table13: they compare pretrained inits and need those weights. An
#                    experiment file with a line `# SMOKE=1 overrides: ...` gets those overrides
#                    instead (data_efficiency: random init only, two fractions, two seeds).
#   DATA=/path       segmentation tables on your inForm export (dataset=myositis)
#   CLS_DATA=/path   classification tables (4, 5, 13) on your images (dataset=autofluorescence)
#   ARGS='...'       more job overrides, e.g. ARGS='hydra/launcher=gpus' (a tracking.uri=...
#                    in ARGS goes to the report too); REPORT_ARGS='...' more report options.
#   SEEDS=auto       run a pilot (the table's first 3 seeds), plan the seeds each cell needs
#                    from the pilot's spread (python -m dedl_experiments.plan), run them, then
#                    report; PLAN_ARGS='pilot=3 max_seeds=10 effect=paper' changes the plan.
EXPERIMENTS := $(wildcard conf/experiment/*.yaml $(if $(CONF),$(CONF)/experiment/*.yaml))
TABLES := $(sort $(notdir $(basename $(EXPERIMENTS))))
# Read from the experiment files: classification tables (they take CLS_DATA) and tables that
# sweep the init (SMOKE=1 keeps their pretrained inits).
CLASSIFICATION_TABLES := $(notdir $(basename $(shell grep -l 'override /task: classification' $(EXPERIMENTS))))
INIT_TABLES := $(notdir $(basename $(shell grep -lE '^ +init: ' $(EXPERIMENTS))))
comma := ,
SEARCH_PATH := $(if $(CONF),'hydra.searchpath=[pkg://multirun_launchers/conf$(comma)file://$(abspath $(CONF))]')
REPORT := $(BIN)/python -m dedl_experiments.report
PLAN := $(BIN)/python -m dedl_experiments.plan
BUDGET := $(if $(SMOKE),smoke,paper)
# The overrides an experiment file declares for SMOKE=1 (its line `# SMOKE=1 overrides: ...`).
smoke_overrides = $(shell sed -n 's/^\# SMOKE=1 overrides: //p' $(filter %/$(1).yaml,$(EXPERIMENTS)))
# Overrides of the sweep of table $(1).
sweep_args = $(if $(SMOKE),budget=smoke $(or $(call smoke_overrides,$(1)),$(if $(filter $(1),$(INIT_TABLES)),,init=random))) \
	$(if $(filter $(1),$(CLASSIFICATION_TABLES)),\
		$(if $(CLS_DATA),dataset=autofluorescence dataset.root=$(CLS_DATA)),\
		$(if $(DATA),dataset=myositis dataset.root=$(DATA))) \
	$(SEARCH_PATH) $(ARGS)
# Tables that compare inits ignore init=random (the report says so).
report_args = budget=$(BUDGET) $(if $(SMOKE),init=random) $(if $(CONF),config_dir=$(abspath $(CONF))) \
	$(filter tracking.uri=%,$(ARGS)) $(REPORT_ARGS)
.PHONY: tables report $(TABLES)

help: ## Show this list
	@grep -hE '^[a-zA-Z0-9_-]+:.*## ' $(MAKEFILE_LIST) | \
		awk 'BEGIN {FS = ":.*## "} {printf "  make %-12s %s\n", $$1, $$2}'

install: $(STAMP) ## Create .venv and install the project (again only when pyproject.toml changes)

# pip byte-compiles every file it installs (17,000, most never imported): half of the install's
# time. Installed without that, the modules the entry points and the tests import are compiled
# by importing them once (PYTHONDONTWRITEBYTECODE left empty for that import only), in two
# processes at once (the jobs' and reports' modules; the tracking server's and the tests');
# anything else compiles as usual when first imported.
COMPILED_BY_IMPORT := dedl_experiments.__main__ dedl_experiments.tasks.segmentation \
	dedl_experiments.tasks.classification dedl_experiments.report.cli dedl_experiments.plan \
	dedl_experiments.predict dedl_experiments.prepare dedl_experiments.weights hydra_plugins \
	matplotlib.pyplot
COMPILED_BY_IMPORT_TOO := mlflow.store.tracking.sqlalchemy_store mlflow.server pytest xdist
IMPORT_ALL := PYTHONDONTWRITEBYTECODE= $(BIN)/python -c 'import importlib, sys; [importlib.import_module(m) for m in sys.argv[1:]]'

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet --no-compile -e '.[dev]'
	$(IMPORT_ALL) $(COMPILED_BY_IMPORT) & first=$$!; $(IMPORT_ALL) $(COMPILED_BY_IMPORT_TOO) && wait $$first
	touch $@

demo: install ## Table 2 in small: UNet-ResNet18, no / ReLU / GELU APP x 2 seeds on synthetic data, then its report
	$(RUN) -m +experiment=table2 budget=smoke init=random encoder=resnet18 architecture=unet seed=26,77
	$(REPORT) table=table2 budget=smoke init=random

# pytest-xdist: one worker per core (at most 4), each test module on one worker (module fixtures
# such as a shared sweep run once), in the order tests/conftest.py gives them (modules with slow
# tests first) rather than xdist's (modules with most tests first, which left the few-test
# sweep modules to the end).
PYTEST = $(BIN)/python -m pytest -n auto --maxprocesses=4 --dist loadscope --no-loadscope-reorder

test: install ## Run the whole test suite (with the float comparisons once more on generic CPU code)
	$(PYTEST)

test-cpus: install ## The float-comparison tests on generic CPU code (torch, OpenCV), as another CPU runs them
	$(BIN)/python -m pytest -n 0 -q tests/unit/test_generic_cpu_code.py

test-fast: install ## The inner loop: every test not marked slow (no CLI sweeps, servers or installs)
	$(PYTEST) -m "not slow"

bench: install ## Training speed vs the notebooks' loop, FLOPs/MFU, Table 2 projection, sweep cells/h at k=1,2 jobs per GPU (CPU ~9-12 min)
	$(BIN)/python -m benchmarks.bench

bench-data: install ## Data pipeline: augmented 480 px tiles/s, ours vs the released notebooks' loader
	$(BIN)/python benchmarks/data_bench.py

ui: install ## Open the MLflow UI over ./mlflow.db on $(HOST):$(PORT)
	@echo "Open http://$(HOST):$(PORT)/#/experiments?workflowType=machine_learning (the training-runs view)"
	$(BIN)/mlflow ui --backend-store-uri sqlite:///mlflow.db --host $(HOST) --port $(PORT)

server: install ## MLflow tracking server over ./mlflow.db with artifacts, for jobs on other hosts (HOST=, PORT=)
	$(BIN)/mlflow server --backend-store-uri sqlite:///mlflow.db --serve-artifacts \
		--artifacts-destination ./mlartifacts --host $(HOST) --port $(PORT)

clean: ## Remove outputs, generated data, the MLflow store and caches (keeps .venv)
	rm -rf outputs data mlflow.db mlflow.db.lock mlartifacts mlruns reports .pytest_cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +

# SEEDS=auto: the planner runs the pilot's sweep and then the plan's (the same overrides after --).
$(TABLES): install
	$(if $(filter auto,$(SEEDS)),$(PLAN) table=$@ run=true $(strip $(report_args) $(PLAN_ARGS)) -- \
		$(strip $(call sweep_args,$@)),$(RUN) -m +experiment=$@ $(strip $(call sweep_args,$@)))
	$(REPORT) table=$@ $(strip $(report_args))

# `make help` lines of the table targets (their recipe is the rule above).
table1: ## Table 1: training time of full 50-epoch runs (no early stopping), UNet without / with GELU APP, ResNet-18..101 (40 jobs)
table2: ## Table 2: test IoU, UNet and UNet++ x no / ReLU / GELU APP, ResNet-18..101 (120 jobs)
table3: ## Table 3: test IoU, ReLU APP with constant vs cosine APP lr, UNet and UNet++ (80 jobs)
table4: ## Table 4: classification F1 of 30 models, ImageNet init (150 jobs, folds inside)
table5: ## Table 5: best classification models, Swin-L / Swin-B / NFNet-F3 (15 jobs)
table6: ## Table 6: Table 2's UNet cells with mean ± std (60 jobs, Table 2's)
table7: ## Table 7: Table 2's UNet++ cells with mean ± std (60 jobs, Table 2's)
table8: ## Table 8: training time of full 50-epoch runs (no early stopping), UNet without / with APP, EfficientNet-B0..B7 (80 jobs)
table9: ## Table 9: test IoU, UNet without / with APP, EfficientNet-B0..B7, early stopping (80 jobs; Table 8's grid, other runs)
table10: ## Table 10: training time of full 50-epoch runs (no early stopping), UNet++ without / with APP, EfficientNet-B0..B7 (80 jobs)
table11: ## Table 11: test IoU, UNet++ without / with APP, EfficientNet-B0..B7, early stopping (80 jobs; Table 10's grid, other runs)
table12: ## Table 12: test IoU by init, UNet, EfficientNet-B0..B7 (120 jobs; pretrained weights even with SMOKE=1)
table13: ## Table 13: classification F1 by init, EfficientNet-B0..B7 (120 jobs; pretrained weights even with SMOKE=1)
tiling: ## Section 5.1: 256 vs 480 px tiles, UNet++ ResNet-34 (10 jobs)
data_efficiency: ## Not in the paper: test IoU by training-set size (nested subsets), UNet-ResNet18, no / GELU APP x random / ImageNet init (100 jobs; SMOKE=1: random init, 2 fractions, 2 seeds, 8 jobs)
tables: $(TABLES) ## Every table above and any other experiment file (options: SMOKE=1, DATA=/path, CLS_DATA=/path, CONF=/path, ARGS='...'; see the Makefile)

report: install ## Report of every table from the runs in the store (SMOKE=1: the smoke runs) into reports/
	$(REPORT) table=all $(strip $(report_args))

# inference-pipelines: developer entry points. `make help` lists them.
SHELL := /bin/bash
.DEFAULT_GOAL := help
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | sha256sum | cut -c1-12)
CLUSTER ?= pipelines

help: ## List the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --progress-bar off -e '.[dev,dataplane]'
	@rm -f $(VENV)/.installed-*; touch $@

venv: $(STAMP) ## Create the virtualenv: operator, data plane (torch, transformers, kserve), dev tools

tools: ## Build (or reuse) the pinned Go tool set: control plane, kwok, helm, KServe CRDs/router
	@bash hack/tools/build.sh >/dev/null

test: venv tools ## Run the test suite (builds the tools on first use; starts a local cluster)
	$(PY) -m pytest

lint: venv ## ruff + mypy + import contracts
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

cluster-up: venv tools ## Start the local cluster (kwokctl, binary runtime) with node pools and CRDs
	$(PY) -m pipeline_operator.localcluster up --name $(CLUSTER)

cluster-down: venv ## Stop the local cluster and every process it started
	$(PY) -m pipeline_operator.localcluster down --name $(CLUSTER)

demo: venv tools ## Local cluster + operator + example pipeline, then a canary rollout walked to the end
	PYTHONUNBUFFERED=1 $(PY) -m pipeline_operator.localcluster.demo

bench: venv tools ## Operator benchmark on a local control plane (figures + ratios)
	PYTHONUNBUFFERED=1 $(PY) bench/operator.py

bench-cluster: venv tools ## Warm start time of the local cluster (median of 5 starts)
	PYTHONUNBUFFERED=1 $(PY) bench/cluster_start.py

.PHONY: help venv tools test lint cluster-up cluster-down demo bench bench-cluster

bench-dataplane: venv tools ## Data-plane benchmark on loopback: hops, dynamic batching, GPU if present
	PYTHONUNBUFFERED=1 $(PY) bench/dataplane.py --out bench-results

.PHONY: bench-dataplane

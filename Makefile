# inference-pipelines: developer entry points. `make help` lists them.
SHELL := /bin/bash
.DEFAULT_GOAL := help
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
HASH := $(shell cat pyproject.toml | sha256sum | cut -c1-12)
STAMP := $(VENV)/.installed-$(HASH)
DEMO_STAMP := $(VENV)/.installed-demo-$(HASH)
CLUSTER ?= pipelines

help: ## List the targets
	@grep -hE '^[a-zA-Z0-9_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'

# The full development environment: what the demo needs, torch, the benchmarks, the tests.
$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --progress-bar off -e '.[dataplane,demo,bench,test]'
	@rm -f $(VENV)/.installed-*; touch $@ $(DEMO_STAMP)

# The demo's environment, a subset of the full one: operator, harness, ONNX Runtime; no torch.
$(DEMO_STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --progress-bar off -e '.[demo]'
	@rm -f $(VENV)/.installed-demo-*; touch $@

venv: $(STAMP) ## Create the virtualenv: operator, data plane (torch, ONNX Runtime, kserve), bench, tests

demo-venv: $(DEMO_STAMP) ## Create the demo's virtualenv: operator, local cluster, ONNX Runtime (no torch)

tools: ## Build (or reuse) the pinned Go tool set: control plane, kubelet, kwok, helm, CoreDNS, KServe
	@bash hack/tools/build.sh >/dev/null

prerequisites: ## Install (when missing) and start the machine packages the real nodes and image builds need (root, Debian)
	@bash hack/prerequisites.sh

images: prerequisites ## Build every image the chart and the examples name (and KServe's, from its module); print sizes
	@bash hack/images/build.sh

test: venv tools images ## Run the test suite (builds the tools and images on first use; starts a local cluster)
	$(PY) -m tests.harness node-images
	$(PY) -m pytest

# The oldest KServe the kit supports (KSERVE_FLOOR in hack/tools/versions.env): its CRDs, chart,
# manager, webhooks and router, with the examples and a canary served through pods.
test-kserve-floor: export PIPELINE_KSERVE = floor
# (The variable reaches the prerequisites too: `tools` and `images` build KServe at the floor.)
test-kserve-floor: venv tools images ## The e2e examples and rollouts against the oldest KServe the kit supports
	$(PY) -m tests.harness node-images
	$(PY) -m pytest tests/e2e/test_examples.py tests/e2e/test_rollouts.py

lint: venv ## ruff + mypy + import contracts
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

cluster-up: demo-venv tools images ## Start the local cluster (kwokctl, binary runtime): node pools, CRDs, KServe
	$(PY) -m tests.harness up --name $(CLUSTER)

cluster-down: demo-venv ## Stop the local cluster and every process it started
	$(PY) -m tests.harness down --name $(CLUSTER)

demo: demo-venv tools images ## Local cluster + KServe + operator; the example serves live traffic through a good and a broken canary
	PYTHONUNBUFFERED=1 $(PY) -m tests.harness.demo

bench: venv tools ## Operator benchmark: 500 and 2,000 pipelines with KServe, restart, handover (figures vs targets)
	PYTHONUNBUFFERED=1 PYTHONPATH=$(CURDIR) $(PY) bench/operator_bench.py

bench-memory: venv ## The operator's heap by term (store per kind, snapshots, per pipeline), no cluster
	PYTHONUNBUFFERED=1 PYTHONPATH=$(CURDIR) $(PY) bench/memory.py

bench-cluster: venv tools ## Warm start time of the local cluster (median of 5 starts)
	PYTHONUNBUFFERED=1 $(PY) bench/cluster_start.py

.PHONY: help venv demo-venv tools prerequisites images test test-kserve-floor lint cluster-up cluster-down demo bench bench-memory bench-cluster

bench-dataplane: venv tools ## Data-plane benchmark on loopback: hops, dynamic batching, GPU if present
	PYTHONUNBUFFERED=1 $(PY) bench/dataplane.py --out bench-results
	PYTHONUNBUFFERED=1 $(PY) bench/cascade.py --out bench-results

peers: venv ## The peers' own environments (MLServer): created once under ~/.cache/inference-pipelines/peers, reused
	$(PY) bench/peers/env.py mlserver

bench-peers: venv tools peers ## The data plane beside Ray Serve (pipeline) and MLServer (predictor): same models, load, turns
	PYTHONUNBUFFERED=1 PYTHONPATH=$(CURDIR) $(PY) bench/peers_bench.py --out bench-results

bench-pods: venv tools images ## The example through pods on the real nodes against the same servers as local processes
	PYTHONUNBUFFERED=1 PYTHONPATH=$(CURDIR) $(PY) bench/pods.py

.PHONY: bench-dataplane peers bench-peers bench-pods

# -- kind (needs Docker and kind; kind's nodes are privileged containers) --------------------
KIND ?= kind
KIND_CLUSTER ?= inference-pipelines
KIND_KUBECONFIG ?= $(CURDIR)/.kind-kubeconfig
KIND_IMAGES = $(shell bash hack/images/build.sh --list)

manifests: tools ## Render manifests/install.yaml from the chart (default values)
	bash hack/render-manifests.sh

kind-up: demo-venv tools images ## kind cluster (kind-config.yaml) + the images + KServe (its chart, Standard mode) + this chart
	$(KIND) create cluster --name $(KIND_CLUSTER) --config kind-config.yaml --kubeconfig $(KIND_KUBECONFIG)
	$(KIND) load docker-image --name $(KIND_CLUSTER) $(KIND_IMAGES)
	KUBECONFIG=$(KIND_KUBECONFIG) $(PY) -m tests.harness install

kind-e2e: venv tools ## Run the cluster-agnostic e2e suite against the kind cluster
	PIPELINE_TEST_CLUSTER=external KUBECONFIG=$(KIND_KUBECONFIG) $(PY) -m pytest tests/cluster tests/operator tests/delivery tests/cli tests/e2e

kind-down: ## Delete the kind cluster
	$(KIND) delete cluster --name $(KIND_CLUSTER)
	rm -f $(KIND_KUBECONFIG)

.PHONY: manifests kind-up kind-e2e kind-down

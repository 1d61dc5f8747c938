# trainforge: every entry point a developer or CI needs. `make help` lists them.
SHELL := /bin/bash
.DEFAULT_GOAL := help
PY ?= $(CURDIR)/.venv/bin/python
VENV_STAMP := .venv/.installed
CACHE_DIR ?= $(or $(TRAINFORGE_CACHE),$(HOME)/.cache/trainforge)
PREFETCH_LOG := $(CACHE_DIR)/build-tools.out
# mypy checks its cache by content hash, so one cache outside the checkout serves every clone and
# worktree: strict mypy in a fresh clone (CI) takes seconds instead of ~3.5 min (88 CPU-seconds).
export MYPY_CACHE_DIR ?= $(CACHE_DIR)/mypy
export PATH := $(CURDIR)/.venv/bin:$(PATH)

help: ## list targets
	@grep -hE '^[a-zA-Z0-9_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  \033[1m%-18s\033[0m %s\n", $$1, $$2}'

$(VENV_STAMP): pyproject.toml
	@hack/venv.sh
	@touch $@

venv: $(VENV_STAMP) ## create .venv with the operator, runtime and dev extras

lint: venv ## ruff, mypy (strict) and the import layers (lint-imports, pyproject.toml)
	$(PY) -m ruff check api operator training_image tests hack bench
	$(PY) -m ruff format --check api operator training_image tests hack bench
	$(PY) -m mypy
	lint-imports

crds: venv ## regenerate crds/ and the chart's CRD copy from the pydantic models
	$(PY) hack/gen_crds.py

verify: crds ## regenerate generated files and fail on any drift
	@git diff --exit-code -- crds charts docs/api-reference.md || { echo "generated files drifted: run 'make crds' and commit the result" >&2; exit 1; }
	@test -z "$$(git status --porcelain -- crds charts docs/api-reference.md)" || { git status --porcelain -- crds charts docs/api-reference.md; echo "untracked generated files: run 'make crds' and commit" >&2; exit 1; }

# pytest-xdist (make test's budget, bench/results/README.md "make test speed-up"): the unit tier
# is CPU-bound and single-threaded, so 2 workers use both cores; the control-plane tier mostly
# waits on the operator, so 2 workers (a control plane each, a file stays on its worker) overlap
# the waits. UNIT_XDIST= INTEGRATION_XDIST= run them in one process. CPU_REPORT lists the tests
# that cost the most CPU-seconds (tests/cpu_report.py), so a CI log says where the time went.
UNIT_XDIST ?= -n 2
INTEGRATION_XDIST ?= -n 2 --dist loadfile
CPU_REPORT ?= --cpu-durations=10

test-unit: venv ## unit tests of pure logic (builders, policies, status)
	$(PY) -m pytest tests/unit -q $(UNIT_XDIST) $(CPU_REPORT)

# Two workers, a file per worker (module fixtures such as test_layouts' runs stay shared): the
# launcher runs wait on rendezvous, pauses and process start-up, so two overlap.
RUNTIME_XDIST ?= -n 2 --dist loadfile
test-runtime: venv ## real multi-process torch.distributed (gloo, CPU) for every layout
	hack/build-minio.sh >/dev/null
	$(PY) -m pytest tests/runtime -q $(RUNTIME_XDIST) $(CPU_REPORT)

test-gpu: venv ## GPU-only tests (-m gpu; deselected everywhere else); fails without a CUDA GPU
	@$(PY) -c "import sys, torch; torch.cuda.is_available() or sys.exit('test-gpu needs a CUDA GPU: torch.cuda.is_available() is False on this machine')"
	$(PY) -m pytest tests -q -m gpu

test-integration: venv ## operator against a real control plane with kwok GPU nodes
	$(PY) -m pytest tests/integration -q $(INTEGRATION_XDIST) $(CPU_REPORT)

# The kind tier runs one test at a time: its pods need CPU too (the cluster used ~0.7 of a core
# through a serial run), so on two busy cores two files at once gained little, and the tier has
# a lane of its own in make test. E2E_XDIST="-n 2 --dist loadfile" runs two at a time on the one
# cluster (tests/e2e/conftest.py: hack/e2e-up.sh runs once, and the test that deletes the
# operator pod runs with no other beside it). --durations: the CI log says where the time went.
E2E_XDIST ?=
test-e2e: venv ## kind cluster, helm-installed operator, MinIO, Prometheus, real DDP
	$(PY) -m pytest tests/e2e -q $(E2E_XDIST) --durations=10

prefetch: ## start building every Go tool and image in the background (tiers wait for theirs)
	@mkdir -p $(CACHE_DIR)
	@nohup hack/build-tools.sh --images >$(PREFETCH_LOG) 2>&1 </dev/null &
	@echo "building tools and images in the background; progress: tail -f $(PREFETCH_LOG)"

lint-chart: venv ## helm lint, render + schema-validate every scenario, promtool, chart tests
	hack/lint-chart.sh

test-dashboards: venv ## every dashboard query against a real Prometheus, local run + operator
	$(PY) -m pytest tests/chart/test_dashboards_live.py -q

dashboards: venv ## render the Grafana dashboards to docs/dashboards/*.png
	$(PY) hack/render_dashboards.py

# prefetch first: on a cold machine the Go and image builds then overlap the Python tiers.
# Three lanes side by side (hack/test-lanes.sh): the CPU-bound tiers in the first, the tiers that
# mostly wait on a control plane in the second, the kind tier in the third (it starts at once: it
# is as long as the second lane's two tiers together); each tier's log is printed whole when it
# ends, then a summary with wall and CPU-seconds. make test-serial runs the same tiers one by one.
TEST_LANE_CPU ?= lint verify test-unit test-runtime lint-chart test-dashboards
TEST_LANE_WAIT ?= test-integration test-chaos-small
TEST_LANE_KIND ?= test-e2e
test: prefetch venv ## every test tier, in three lanes (CPU-bound | control planes | kind)
	hack/test-lanes.sh "$(TEST_LANE_CPU)" "$(TEST_LANE_WAIT)" "$(TEST_LANE_KIND)"

.PHONY: test-serial
test-serial: prefetch lint verify test-unit lint-chart test-runtime test-integration test-chaos-small test-dashboards test-e2e ## every test tier, one after another

demo: venv ## the main job end to end on a local kind cluster
	hack/build-tools.sh   # the Go tools and the node image, two lanes at a time (seconds when built)
	hack/demo.sh

demo-down: ## remove the demo cluster
	hack/demo.sh down

bench: venv ## benchmarks (control plane: the floor first, then the operator); results in bench/results/
	$(PY) -m bench.runtime_overhead
	$(PY) -m bench.control_plane --floor
	$(PY) -m bench.control_plane
	$(PY) -m bench.sweep_search

bench-compare: venv ## trainforge vs Kubeflow Training Operator (tuned, as shipped) and the floor, 3 interleaved rounds; bench/results/compare.json
	hack/build-kubeflow.sh >/dev/null
	$(PY) -m bench.compare --rounds 3

bench-recovery: venv ## in-place vs gang recovery time on kind, in one run; bench/results/recovery-kind.json
	$(PY) -m bench.recovery_kind

test-heavy: venv ## long kind runs kept out of make test for the CI budget (the digits TrainingSweep)
	$(PY) -m pytest tests/e2e -q -m heavy

test-chaos: venv ## chaos suite at full size on the control-plane tier (operator kills, API server restart, watch cuts, node loss)
	CHAOS_SCALE=full CHAOS_REPORT=$(CURDIR)/bench/results/chaos.txt $(PY) -m pytest tests/chaos -v -s
	tail -n 8 bench/results/chaos.txt

test-chaos-small: venv ## the chaos suite's small round (6-7 min), the size meant for CI
	$(PY) -m pytest tests/chaos -q -s

tools: ## build every Go tool and image now, with timings
	hack/build-tools.sh --images


.PHONY: prefetch tools test-gpu lint-chart test-dashboards dashboards help venv lint crds verify test-unit test-runtime test-integration test-e2e test demo demo-down bench bench-compare test-chaos test-chaos-small images test-fuzz bench-recovery test-heavy

images: ## build and push the operator and worker images: make images REGISTRY=ghcr.io/my-org
	REGISTRY=$(REGISTRY) hack/push-images.sh

test-fuzz: venv ## front-door fuzz: 1,000 generated+mutated specs against the control-plane tier (integration runs 150)
	TF_FUZZ_SPECS=1000 $(PY) -m pytest tests/integration/test_fuzz_front_door.py -q -s -p no:logging

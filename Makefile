# Entry points. `make test` runs every test offline; `make up` stands up the dev stack.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STACK ?= dev
# checkov pins many packages that clash with the test environment's: it gets its own virtualenv.
CHECKOV_VENV := .venv-checkov
# network-config-analyzer (the reachability test) pins PyYAML differently: its own virtualenv too.
NCA_VENV := .venv-nca

.PHONY: test render validate checkov-venv nca-venv up destroy smoke dev bench-tests bench-render bench-services bench-graph clean

$(VENV)/.installed: requirements.txt requirements-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip==25.3
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@

$(CHECKOV_VENV)/.installed: requirements-checkov.txt
	test -x $(CHECKOV_VENV)/bin/python || $(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/python -m pip install --quiet --upgrade pip==25.3
	$(CHECKOV_VENV)/bin/python -m pip install --quiet -r requirements-checkov.txt
	touch $@

checkov-venv: $(CHECKOV_VENV)/.installed

$(NCA_VENV)/.installed: requirements-nca.txt
	test -x $(NCA_VENV)/bin/python || $(PYTHON) -m venv $(NCA_VENV)
	$(NCA_VENV)/bin/python -m pip install --quiet --upgrade pip==25.3
	$(NCA_VENV)/bin/python -m pip install --quiet -r requirements-nca.txt
	touch $@

nca-venv: $(NCA_VENV)/.installed

# One pytest worker per core (pytest-xdist); each test file runs whole in one worker, so that its module
# fixtures are built once and its tests never run beside each other.
PYTEST_ARGS := -n auto --dist loadfile

## Run all tests offline (no AWS, no Pulumi CLI, no cluster, no Docker).
test: $(VENV)/.installed $(CHECKOV_VENV)/.installed $(NCA_VENV)/.installed
	$(PY) -m pytest $(PYTEST_ARGS)

## Validate everything every stack emits: Kubernetes and Istio schemas, Helm values, checkov.
validate: $(VENV)/.installed $(CHECKOV_VENV)/.installed
	$(PY) -m tools.validate

## Render the stack offline into build/render-$(STACK).
render: $(VENV)/.installed
	$(PY) -m tools.render $(STACK) --out build/render-$(STACK)

## Stand up the stack (default dev) with the Pulumi CLI and AWS credentials.
up:
	STACK=$(STACK) bash scripts/up.sh

## Check that a deployed stack answers as a user would: `make smoke STACK=dev`, or `make smoke URL=https://...`.
## SMOKE_ARGS passes options on, e.g. SMOKE_ARGS="--timeout 300 --markdown smoke.md".
smoke: $(VENV)/.installed
	$(PY) -m tools.smoke $(if $(URL),"$(URL)","$(STACK)") $(SMOKE_ARGS)

## Tear the stack down again.
destroy:
	STACK=$(STACK) bash scripts/destroy.sh

## Run the three services on loopback (GraphQL on 127.0.0.1:8080, playground at /playground).
dev: $(VENV)/.installed
	$(PY) services/run_local.py

## Benchmark the GraphQL service: latency at 1 client and at fixed offered loads, CPU per query,
## backend requests per query, the guards, and the queries/s one replica serves (about 2 minutes).
bench-services: $(VENV)/.installed
	$(PY) bench/services_bench.py

## Print the wall time of `make test`'s pytest run (median of 3 runs, one after the other; about 5 minutes).
bench-tests: $(VENV)/.installed $(CHECKOV_VENV)/.installed $(NCA_VENV)/.installed
	$(PY) bench/tests_bench.py --runs 3 -- $(PYTEST_ARGS)

## Print the render's wall time and peak memory (median of 5 runs).
bench-render: $(VENV)/.installed
	$(PY) bench/render_bench.py --stack $(STACK) --runs 5

## Print the critical paths of `up` and `destroy` of a platform stack and an app stack on it, from the
## render's dependency graph and typical durations per resource type (PLATFORM=dev APP=pr-example).
bench-graph: $(VENV)/.installed
	$(PY) bench/graph_bench.py --platform $(or $(PLATFORM),dev) --app $(or $(APP),pr-example)

clean:
	rm -rf build

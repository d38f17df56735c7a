# The verbs a person types. Every target installs what it needs (uv, then the workspace) by itself.
SHELL := /bin/bash
.DEFAULT_GOAL := help
PYTHON ?= python3
TOOLS := .tools
UV := $(shell command -v uv 2>/dev/null || echo $(TOOLS)/bin/uv)
# Every workspace member with a suite of its own: the services of devserver.routing.SERVICES and
# the libraries (tests/test_service_registry.py checks it). `make lint` type-checks them all.
SERVICES := common auth tickets orders expiration payments client devserver

.PHONY: help install up test test-services test-system test-stress docs docs-check lint k8s-check k8s-secrets screenshots bench

help:
	@echo "make up     - run the whole system on this machine (https://127.0.0.1:8443)"
	@echo "make test   - install everything and run every suite"
	@echo "make test-stress - every service's suite 10 times, random order, cores kept busy"
	@echo "make docs   - regenerate docs/ (event catalog, OpenAPI)"
	@echo "make lint   - ruff and mypy"
	@echo "make verify - is every replica equal to its source? (against make up; ARGS=\"--wait 60\")"
	@echo "make test-faults - the fault-injection suite (kill, pause, burst, replay, Stripe outage)"
	@echo "make dlq    - dead letters of the running system: ARGS=\"list\" (default), \"show N\", \"replay N\", \"discard N\""
	@echo "make trace  - start the system with tracing on, make one purchase, print its trace (ARGS=--expire)"
	@echo "make k8s-check / k8s-secrets / screenshots / bench"

$(TOOLS)/bin/uv:
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet --disable-pip-version-check uv

# uv itself when missing, then the locked workspace (every member, every dev tool).
install: $(if $(findstring $(TOOLS),$(UV)),$(TOOLS)/bin/uv)
	$(UV) sync --locked --all-packages

up: install
	$(UV) run --no-sync python -m devserver

PYTEST_ARGS := -q -p no:randomly --durations=10
# Each member's suite on its own, as `uv run --package X pytest X/tests` runs it (a job of
# scripts/run_suites.py: NAME=COMMAND).
suite_job = "$(1)=$(UV) run --no-sync --package $(1) pytest $(1)/tests $(PYTEST_ARGS)"
# How many suites run at once: they spend most of their time waiting, not computing.
TEST_JOBS ?= 2
# In a variable, not in the recipe: a recipe line naming $(MAKE) runs even under `make -n`.
lint_job = "lint=$(MAKE) --no-print-directory lint"

tests_job = "tests=$(UV) run --no-sync pytest tests $(PYTEST_ARGS)"

# The slowest suites first (devserver starts whole systems, client a browser), so that both
# lanes end together instead of one waiting on a long last suite.
SLOW_FIRST := devserver common client
# Lint (first: a type error is cheaper to read than the failures it causes), every member's
# suite and tests/ two at a time, each printed whole when it ends; then e2e/ alone, as it starts
# whole systems and a browser.
test: install
	$(UV) run --no-sync python scripts/run_suites.py --jobs $(TEST_JOBS) $(lint_job) \
		$(foreach pkg,$(SLOW_FIRST),$(call suite_job,$(pkg))) $(tests_job) \
		$(foreach pkg,$(filter-out $(SLOW_FIRST),$(SERVICES)),$(call suite_job,$(pkg)))
	$(UV) run --no-sync pytest e2e $(PYTEST_ARGS) --ignore=e2e/test_faults.py

test-services: install
	$(UV) run --no-sync python scripts/run_suites.py --jobs $(TEST_JOBS) \
		$(foreach pkg,$(SERVICES),$(call suite_job,$(pkg)))

# Cross-cutting suites: generated docs, Kubernetes offline checks, then the end-to-end runs.
test-system: install
	$(UV) run --no-sync pytest tests e2e $(PYTEST_ARGS) --ignore=e2e/test_faults.py

# Every service's suite 10 times, each round in a new random order (seed printed), while
# scripts/burn_cpu.py keeps every core busy; fails if any run fails.
STRESS_ROUNDS ?= 10
test-stress: install
	$(UV) run --no-sync python scripts/stress_tests.py --uv $(UV) --rounds $(STRESS_ROUNDS) $(SERVICES)

docs: install
	$(UV) run --no-sync python -m devserver.docs write

docs-check: install
	$(UV) run --no-sync python -m devserver.docs check

lint: install
	$(UV) run --no-sync ruff check .
	$(UV) run --no-sync ruff format --check .
	$(UV) run --no-sync mypy $(addsuffix /src,$(SERVICES)) testing/src

k8s-check: install
	$(UV) run --no-sync pytest tests/infra -q

k8s-secrets: install
	$(UV) run --no-sync python -m devserver.k8s_secrets

screenshots: install
	GITTIX_SCREENSHOTS=1 $(UV) run --no-sync pytest e2e/test_browser.py -q

bench: install
	$(UV) run --no-sync python bench/run.py $(BENCH_ARGS)

# What listeners gave up on (docs/architecture.md, "Dead letters"), on make up's NATS as its
# admin user. Elsewhere: NATS_URL=... python -m common.dlq list (docs/kubernetes.md).
.PHONY: dlq
dlq: install
	$(UV) run --no-sync python -m devserver.dlq $(if $(ARGS),$(ARGS),list)

# The consistency checker against the running `make up` (docs/consistency.md):
# every replica against its source, charges against orders, double sales, dead letters.
# Exit 1 when anything differs. ARGS="--wait 60" re-checks until clean; see --help.
.PHONY: verify
verify: install
	$(UV) run --no-sync python -m devserver.verify $(ARGS)

# The fault-injection suite (e2e/test_faults.py, docs/consistency.md): the whole system under
# traffic, one fault at a time, each followed by the consistency checker; about 4 minutes, so
# it is its own verb (.ci/run runs it after `make test`). -s prints its figures at the end.
.PHONY: test-faults
test-faults: install
	$(UV) run --no-sync pytest e2e/test_faults.py -q -s -p no:randomly --durations=10

# One purchase's trace without Kubernetes (docs/observability.md): the system as `make up` runs
# it on free ports, exporting to a local OTLP/HTTP receiver; prints the trace as a tree.
.PHONY: trace
trace: install
	$(UV) run --no-sync python -m devserver.trace $(ARGS)

# Development tasks of the autoscale.hetzner collection and its local cloud.
# See docs/development.md. Everything runs from the project venv .venv, which
# `make venv` (scripts/bootstrap.sh) creates; on a fresh Debian 12 machine
# `make test` goes from a clean clone to green.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

VENV      := .venv
BIN       := $(CURDIR)/$(VENV)/bin
PYTHON    := $(BIN)/python
export PATH := $(BIN):$(PATH)

# Extra pytest arguments, e.g. `make test-localcloud PYTEST_ARGS="-k servers -x"`;
# PYTEST_XDIST="-n auto" runs a directory in parallel (pytest-xdist).
PYTEST_ARGS ?=
PYTEST_XDIST ?=
# tests/localcloud and tests/integration run on xdist workers by default: they mostly wait on the
# local cloud's simulated action times and on ansible-playbook subprocesses, not on the CPU, and each
# worker starts its own local cloud (own port, own state dir under its own basetemp). Tests marked
# `long` are collected first, one per worker (localcloud.testing.long_tests_first), and
# --maxschedchunk 1 hands out the rest one by one, so no worker ends the run alone with a long test.
# PYTEST_PARALLEL="" runs them serially; PYTEST_XDIST, when given, replaces it.
PYTEST_PARALLEL ?= -n 4 --dist load --maxschedchunk 1
SANITY_ARGS ?=

# pytest on one directory; exit code 5 ("no tests collected") counts as success
# so that a test directory that holds no tests yet does not fail. The standard
# directories may be missing in a clone (git does not keep empty directories):
# skipped then; for `make test-<dir>` a missing directory is an error (typo).
define pytest_dir
	@if [ ! -d $(1) ]; then echo "$(1): no such directory"; [ "$(2)" = optional ]; exit; fi; \
	rc=0; $(PYTHON) -m pytest $(or $(PYTEST_XDIST),$(3)) $(PYTEST_ARGS) $(1) || rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "$(1): no tests collected (ok)"; rc=0; fi; \
	exit $$rc
endef

.PHONY: help venv test lint sanity test-unit test-localcloud test-integration test-e2e-core molecule bench build clean demo demo-down

help:
	@echo "make venv              Debian packages + .venv (scripts/bootstrap.sh; fast when done)"
	@echo "make test              venv, then test-ha beside lint sanity test-unit test-localcloud test-integration test-machines test-roles"
	@echo "                       (a+b: at the same time; TEST_STEPS=\"...\" chooses the steps)"
	@echo "make lint              yamllint + ansible-lint --profile production (metadata, playbooks/, roles/)"
	@echo "make sanity            ansible-test sanity on a copy of the collection, ansible-core 2.19 (3.11) and 2.21 (3.12)"
	@echo "make test-unit         pytest tests/unit, on ansible-core 2.19 (.venv) and 2.21 (.venv-ansible14)"
	@echo "make test-localcloud   pytest tests/localcloud"
	@echo "make test-integration  pytest tests/integration"
	@echo "make test-roles        pytest tests/roles: the roles on one local cloud with machines (root)"
	@echo "make test-e2e          pytest tests/e2e: site.yml end to end through make demo's script, four runs (root)"
	@echo "make test-e2e-core     the same without the tests marked e2e_full: the cold run and the scaling run"
	@echo "make molecule          molecule test of every role's scenario on local-cloud machines (root)"
	@echo "make test-<dir>        pytest tests/<dir>, e.g. make test-machines"
	@echo "make demo              site.yml on the local cloud, no token (DEMO_SCENARIO=minimal|production); keeps running"
	@echo "make demo-down         remove every demo (machines, networks, state)"
	@echo "make bench             run every tests/bench/*.py (BENCH=name filters, BENCH_OUT=file saves)"
	@echo "make build             ansible-galaxy collection build into build/"
	@echo "make clean             remove build/, tests/output/, caches (keeps .venv)"

venv:
	@bash scripts/bootstrap.sh

# Every step runs even when an earlier one fails (CI then reports all failures
# at once); a summary with the time of each step comes last and the exit status
# is non-zero if any failed. FAIL_FAST=1 stops at the first failure.
# Steps joined with "+" are a parallel group (scripts/test_steps.sh): they start at the same time, each
# line of their output prefixed with [step] and each kept whole in $(TEST_LOG_DIR)/<step>.log, each with
# its own time in the summary. The machine labs (tests/roles, tests/e2e) mostly wait on machines, apt
# and SSH, and each takes its own local-cloud slot (own bridge, addresses, nft tables, apt proxy), so
# they run side by side. A lab joins the group by its name: test-roles+test-e2e+test-ha.
# Two chains run side by side ("a,b,c" is a sequence inside the group): the machine labs of PostgreSQL HA
# (test-ha: Patroni, switchover, hard power-off, isolation, the HAProxy router; 3 machines) and then site.yml
# end to end (test-e2e-core, tests/e2e: make demo's cold run of the minimal scenario with a load balancer,
# a run with nothing changed (the roles skipped) and one after changes by hand (repaired), Prometheus's
# targets, status.yml with drift, the 3 -> 4 web scaling run through ansible-runner); beside
# them lint, sanity, unit, localcloud, integration, machines and last the role lab. The end-to-end lab
# starts when test-ha is done and overlaps the end of the sequence and the role lab's start.
# Measured on fresh clones with cold caches (docs/benchmarks.md): 2026-12-04 on 4f5f023 without the
# end-to-end lab, 2250 s by the summary (test-ha 761 s beside the sequence's 1103 s, then the role lab
# 1147 s); with it, see docs/benchmarks.md. `make test-e2e` adds the two tests marked e2e_full (a no-change
# run with every role, a rolling TLS change and scaling down while a client polls the load balancer).
TEST_STEPS ?= test-ha,test-e2e-core+lint,sanity,test-unit,test-localcloud,test-integration,test-machines,test-roles
TEST_LOG_DIR ?= tests/output/make-test
FAIL_FAST ?=

test: venv
	@MAKE="$(MAKE)" TEST_LOG_DIR="$(TEST_LOG_DIR)" FAIL_FAST="$(FAIL_FAST)" bash scripts/test_steps.sh $(TEST_STEPS)

lint: venv
	@bash scripts/lint.sh

# Both toolchains: ansible-core 2.19 on Python 3.11 (.venv) and 2.21 on Python 3.12 (.venv-ansible14).
# SANITY_TOOLCHAINS="" / UNIT_TOOLCHAINS="" limit to .venv; "ansible14" alone to the second one.
SANITY_TOOLCHAINS ?= default ansible14
UNIT_TOOLCHAINS ?= default ansible14
PYTHON14 := $(CURDIR)/.venv-ansible14/bin/python

sanity: venv
	@rc=0; for tc in $(SANITY_TOOLCHAINS); do \
	    echo "=== ansible-test sanity: $$tc"; \
	    SANITY_TOOLCHAIN=$${tc#default} bash scripts/sanity.sh $(SANITY_ARGS) || rc=1; \
	done; exit $$rc

test-unit: venv
	@rc=0; for tc in $(UNIT_TOOLCHAINS); do \
	    if [ $$tc = default ]; then py=$(PYTHON); \
	    elif [ -x $(PYTHON14) ]; then py=$(PYTHON14); \
	    elif [ -n "$${CI:-}" ]; then echo "$(PYTHON14) missing (make venv builds it)"; rc=1; continue; \
	    else echo "$(PYTHON14) missing: unit tests on ansible-core 2.21 skipped"; continue; fi; \
	    echo "=== pytest tests/unit: $$($$py -c 'import ansible, sys; print("ansible-core", ansible.__version__, "Python", sys.version.split()[0])')"; \
	    $$py -m pytest $(PYTEST_XDIST) $(PYTEST_ARGS) tests/unit || rc=1; \
	done; exit $$rc

test-localcloud: venv
	$(call pytest_dir,tests/localcloud,optional,$(PYTEST_PARALLEL))

test-integration: venv
	$(call pytest_dir,tests/integration,optional,$(PYTEST_PARALLEL))

# site.yml end to end without the tests marked e2e_full (the no-change run and the rolling change):
# the cold run, status.yml, Prometheus's targets and the 3 -> 4 scaling run (tests/e2e/test_site.py).
test-e2e-core: venv
	$(PYTHON) -m pytest -m "not e2e_full" --durations=15 $(PYTEST_ARGS) tests/e2e

# Any other test directory: `make test-machines` runs pytest tests/machines.
# (Add it to TEST_STEPS above to make it part of `make test`.) The machine labs are where make test's
# time goes: their 15 slowest setups and tests are listed at the end of each log.
test-%: venv
	$(call pytest_dir,tests/$*,,--durations=15)

# `molecule test` of every role's scenario (roles/*/molecule/default) on local-cloud machines:
# the local cloud in HCLOUD_ENDPOINT/HCLOUD_TOKEN, or one it starts and removes. ROLES="a b" limits.
# Not a step of `make test` (tests/roles runs the host_firewall scenario there, on the lab's cloud).
ROLES ?=
molecule: venv
	$(PYTHON) tests/molecule/run.py $(ROLES)

# Benchmarks are not part of `make test`: every tests/bench/*.py is run as a
# script with the venv's Python (each prints a markdown section on stdout).
# `make bench` runs every benchmark and writes docs/benchmarks.md (date and machine on top);
# `make bench BENCH=stack` runs the matching ones and only prints, unless BENCH_OUT is given.
BENCH ?=
BENCH_OUT ?= $(if $(BENCH),,docs/benchmarks.md)
bench: venv
	@shopt -s nullglob; scripts=(tests/bench/*$(BENCH)*.py); \
	if [ $${#scripts[@]} -eq 0 ]; then echo "no benchmarks matching tests/bench/*$(BENCH)*.py"; exit 0; fi; \
	out=$$(mktemp); trap 'rm -f "$$out"' EXIT; \
	{ echo "# Benchmarks"; echo; \
	  echo "Written by \`make bench\` on $$(date -u '+%Y-%m-%d %H:%M UTC'): $$(nproc) cores, $$(free -g | awk '/Mem:/{print $$2}') GiB RAM, $$(uname -sr), $$($(PYTHON) -V)."; \
	  echo "Numbers vary with machine load; each section says how it was measured."; echo; } > "$$out"; \
	for s in "$${scripts[@]}"; do echo "== $$s" >&2; $(PYTHON) "$$s" | tee -a "$$out"; echo | tee -a "$$out"; done; \
	if [ -n "$(BENCH_OUT)" ]; then cp "$$out" "$(BENCH_OUT)"; echo "written to $(BENCH_OUT)" >&2; fi

# site.yml for a scenario on the local cloud with machines (root, no Hetzner account): scripts/demo.py.
DEMO_SCENARIO ?= minimal
demo: venv
	@$(PYTHON) scripts/demo.py up --scenario $(DEMO_SCENARIO)

demo-down: venv
	@$(PYTHON) scripts/demo.py down

build: venv
	@mkdir -p build
	ansible-galaxy collection build --force --output-path build/ .

clean:
	rm -rf build/ tests/output/ .pytest_cache/ .cache/
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +

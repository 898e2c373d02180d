# The two commands of the README: `make demo` and `make test`. Everything they need is
# installed into .venv/ by `make setup`, which does nothing when it is up to date.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: setup test lint molecule unit conformance integration demo kubesim bench bench-quick clean

setup: $(STAMP)

$(STAMP): pyproject.toml scripts/setup_collections.py scripts/system_packages.sh
	scripts/system_packages.sh
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	$(BIN)/python scripts/setup_collections.py
	touch $@

# molecule and ansible-lint run ansible-config and ansible-playbook from PATH; their caches
# and molecule's ephemeral directories (kubeconfig, replica logs) go under .venv/ansible-home
# instead of ~/.ansible.
ANSIBLE_TOOLS := PATH="$(CURDIR)/$(BIN):$$PATH" ANSIBLE_HOME="$(CURDIR)/$(VENV)/ansible-home"

test: setup lint
	$(BIN)/python -m pytest
	$(ANSIBLE_TOOLS) $(BIN)/molecule test

lint: setup
	$(BIN)/ruff check .
	$(ANSIBLE_TOOLS) $(BIN)/ansible-lint --offline roles playbooks molecule

# Molecule's default scenario: two election-operator replicas reconcile a Memcached on kubesim
# (or on the cluster of $KUBECONFIG); scale, leader SIGKILLed and handover, garbage
# collection. About 1.5 minutes. `molecule test -s kind` is the same on a kind cluster.
molecule: setup
	$(ANSIBLE_TOOLS) $(BIN)/molecule test

unit: setup
	$(BIN)/python -m pytest tests/unit

conformance: setup
	$(BIN)/python -m pytest tests/conformance

integration: setup
	$(BIN)/python -m pytest tests/integration

# Three election-operator replicas reconcile a Memcached on kubesim (or $KUBECONFIG); the
# leader is SIGKILLed, another takes over, the Memcached is scaled; about 40 s, then a summary
# and a PNG timeline in .venv/demo/ (docs/demo.md). Stops everything it started.
demo: setup
	$(BIN)/python scripts/demo.py

kubesim: setup
	$(BIN)/python -m kubesim --port 0 --kubeconfig $(VENV)/kubesim.kubeconfig --controllers

# Benchmarks (not part of `make test`) record their figures, with the command, machine and
# date, in docs/. The lease failover benchmark runs production durations (15/10/2 s): about
# 10 minutes. `make bench-quick` runs the lease benchmarks with short durations and prints
# their figures without writing them.
bench: setup
	$(BIN)/python bench/kubesim_get.py --write docs/benchmarks-kubesim.md
	$(BIN)/python bench/lease_failover.py --write docs/benchmarks-lease.md
	$(BIN)/python bench/lease_module_time.py --write docs/benchmarks-lease.md
	$(BIN)/python bench/life_failover.py --write docs/benchmarks-life.md
	$(BIN)/python bench/operator_bench.py --write docs/benchmarks-runtime.md

bench-quick: setup
	$(BIN)/python bench/lease_failover.py --quick --reps 2
	$(BIN)/python bench/lease_module_time.py --rounds 5

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache

# The two commands of the README: `make demo` and `make test`. Everything they need is
# installed into .venv/ by `make setup`, which does nothing when it is up to date.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: setup test lint unit conformance integration demo kubesim bench bench-quick clean

setup: $(STAMP)

$(STAMP): pyproject.toml scripts/setup_collections.py scripts/system_packages.sh
	scripts/system_packages.sh
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	$(BIN)/python scripts/setup_collections.py
	touch $@

test: setup lint
	$(BIN)/python -m pytest

lint: setup
	$(BIN)/ruff check .

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

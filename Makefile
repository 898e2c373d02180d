# The two commands of the README: `make demo` and `make test`. Everything they need is
# installed into .venv/ by `make setup`, which does nothing when it is up to date.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: setup test lint molecule unit conformance integration demo kubesim bench bench-quick chaos \
	clean

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

# Benchmarks (not part of `make test`). Each writes its figures, with its command, the machine,
# the date and the load, to a results file; bench/_report.py renders them into
# docs/benchmarks.md (ours against the peer measured in the same run), PNG plots in
# docs/benchmarks/ and a copy of the results files. About 20 minutes, most of it failovers at
# production durations (15/10/2 s). `make bench-quick` runs the same benchmarks with short
# durations and few repetitions (about 4 minutes) and renders the report into .venv/bench-quick/.
BENCH_RESULTS := $(VENV)/bench-results
QUICK         := $(VENV)/bench-quick

bench: setup
	rm -rf $(BENCH_RESULTS)
	$(BIN)/python bench/kubesim_get.py --json $(BENCH_RESULTS)/kubesim_get.json
	$(BIN)/python bench/module_time.py --json $(BENCH_RESULTS)/module_time.json
	$(BIN)/python bench/life_failover.py --json $(BENCH_RESULTS)/life_failover.json
	$(BIN)/python bench/lease_failover.py --json $(BENCH_RESULTS)/lease_failover.json
	$(BIN)/python bench/operator_bench.py --json $(BENCH_RESULTS)/operator_bench.json
	$(BIN)/python bench/_report.py $(BENCH_RESULTS) --out docs/benchmarks.md

bench-quick: setup
	rm -rf $(QUICK)
	$(BIN)/python bench/kubesim_get.py --seconds 1 --json $(QUICK)/results/kubesim_get.json
	$(BIN)/python bench/module_time.py --rounds 3 --json $(QUICK)/results/module_time.json
	$(BIN)/python bench/life_failover.py --quick --json $(QUICK)/results/life_failover.json
	$(BIN)/python bench/lease_failover.py --quick --reps 2 --window 10 \
		--json $(QUICK)/results/lease_failover.json
	$(BIN)/python bench/operator_bench.py --quick --changes 4 --resources 6 --reps 1 \
		--watched 200 --lead-window 8 --json $(QUICK)/results/operator_bench.json
	$(BIN)/python bench/_report.py $(QUICK)/results --out $(QUICK)/benchmarks.md \
		--target "make bench-quick"

# The chaos suite (not part of `make test`, which runs a short version of it): three replicas
# reconcile Memcacheds on kubesim (RBAC: deploy/role.yaml only) while 200 seeded faults hit
# them; a split-brain detector judges the audit log and the Lease's history, and the figures
# go to docs/chaos.md. About 15 minutes; exits non-zero on any violation.
CHAOS_SEED := 20261122

chaos: setup
	$(BIN)/python bench/chaos.py --faults 200 --seed $(CHAOS_SEED) --write docs/chaos.md \
		--json $(VENV)/chaos/results.json

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache

# Two entry points that work on a fresh machine: `make run` and `make test`.
# Both create the virtual environment in .venv when it is missing.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
OUT    ?= out

.PHONY: run test lint bench clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

# The embedded control plane: a root, 2 cluster managers and 4 node engines on loopback,
# running Oakestra's example application; `harmonia down` stops it.
SYSTEM := $(OUT)/system

run: $(STAMP)
	@mkdir -p $(OUT)
	$(BIN)/harmonia down --purge --state-dir $(SYSTEM) >/dev/null
	$(BIN)/harmonia up --clusters 2 --nodes-per-cluster 2 --state-dir $(SYSTEM)
	$(BIN)/harmonia deploy examples/control/clientsrvr.json --state-dir $(SYSTEM)
	$(BIN)/harmonia status --state-dir $(SYSTEM)
	@echo "Running. Try: $(BIN)/harmonia logs <instance> --state-dir $(SYSTEM)"
	@echo "Stop it with: $(BIN)/harmonia down --state-dir $(SYSTEM)"

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/mypy
	$(BIN)/lint-imports

test: lint
	@scripts/install-test-deps.sh
	$(BIN)/python -m pytest -q

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_schedule.py

clean:
	rm -rf $(VENV) $(OUT) .pytest_cache .mypy_cache .ruff_cache

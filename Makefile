PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-slow bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m agents.train

# The default tests compile far more than they compute: XLA's backend
# optimisation level 0 takes about 30% off their time (the slow tests,
# which train, and everything else keep the default level).
test: $(STAMP)
	XLA_FLAGS="$$XLA_FLAGS --xla_backend_optimization_level=0" \
	  $(BIN)/python -m pytest -q -n 2 --dist worksteal

test-slow: $(STAMP)
	$(BIN)/python -m pytest -q -m slow

bench: $(STAMP)
	$(BIN)/python -m benchmarks.throughput

clean:
	rm -rf $(VENV)

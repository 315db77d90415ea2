# Quickstart: `make demo` then `make test`. Both create .venv and install the project with its dev extras.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
OUTPUT ?= output/demo
PIP_QUIET ?= -q

.PHONY: demo test bench install clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install $(PIP_QUIET) --upgrade pip
	$(BIN)/python -m pip install $(PIP_QUIET) -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/refinedweb run --config configs/demo.yaml \
	  --input 'refinedweb/resources/samples/*.warc.gz' --output $(OUTPUT)
	$(BIN)/refinedweb stats $(OUTPUT)

# Two phases: the tests a neighbour cannot disturb on TEST_WORKERS processes (a module stays on one, so its
# fixtures run once), then the `serial` ones alone. `pytest` by itself runs everything in one process.
TEST_WORKERS ?= 2
test: $(STAMP)
	$(BIN)/ruff check refinedweb tests benchmarks
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadfile -m "not serial"
	$(BIN)/python -m pytest -q -m serial

bench: $(STAMP)
	$(BIN)/python benchmarks/run_all.py

clean:
	rm -rf $(VENV) output .pytest_cache

# chaoscert: `make certify` runs the catalogue on the local stack and writes the
# report; `make test` runs chaoscert's own tests. Both set up what is missing.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
ARGS ?=

.PHONY: setup certify test lint format up down status bench

$(BIN)/chaoscert: pyproject.toml
	@# venv needs Debian's python3-venv, which a fresh machine lacks.
	@$(PYTHON) -c 'import ensurepip' 2>/dev/null || \
	  if [ "$$(id -u)" = 0 ]; then \
	    DEBIAN_FRONTEND=noninteractive apt-get update -q && \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3-venv; \
	  else echo "python3-venv is missing: as root, apt-get install python3-venv"; exit 2; fi
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

setup: $(BIN)/chaoscert
	$(BIN)/chaoscert setup

certify: setup
	$(BIN)/chaoscert local up
	$(BIN)/chaoscert run $(ARGS)

# What `setup` installs, and tesseract-ocr, which only the tests need (they read
# the report's screenshots); certify never needs it.
test: $(BIN)/chaoscert
	$(BIN)/chaoscert setup --tests
	$(BIN)/python -m pytest $(ARGS)

lint: $(BIN)/chaoscert
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/mypy

format: $(BIN)/chaoscert
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

up: setup
	$(BIN)/chaoscert local up

status: $(BIN)/chaoscert
	$(BIN)/chaoscert local status

down: $(BIN)/chaoscert
	$(BIN)/chaoscert local down

# Figures, not tests: accuracy, probe engine, cost of a run, memory. Writes
# benchmarks/results/<time>.md; the catalogue's figures come from the newest
# complete run in reports/ (make certify). QUICK=1 for one trial each.
bench: setup
	$(BIN)/python -m benchmarks.run $(if $(QUICK),--quick,) $(ARGS)

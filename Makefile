# chaoscert: `make certify` runs the catalogue on the local stack and writes the
# report; `make test` runs chaoscert's own tests. Both set up what is missing.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
ARGS ?=

.PHONY: setup certify test lint format up down status clean

$(BIN)/chaoscert: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

setup: $(BIN)/chaoscert
	$(BIN)/chaoscert setup

certify: setup
	$(BIN)/chaoscert local up
	$(BIN)/chaoscert run $(ARGS)

test: setup
	$(BIN)/python -m pytest tests $(ARGS)

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

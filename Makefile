# One command sets up, seeds, trains and serves on the embedded defaults (`make run`); one runs the tests (`make test`).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
SEED_COUNT ?= 2000
INTERACTION_USERS ?= 500
export HF_HUB_OFFLINE := 1

.PHONY: install install-test seed train run test test-quick bench

# The runtime (requirements.txt, what the Docker image installs); the tests add requirements-test.txt.
install: $(VENV)/.installed

install-test: $(VENV)/.installed-test

$(VENV)/.installed: requirements.txt
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements.txt
	$(BIN)/python -m app.ops.cli export-encoder  # the ONNX export, cached under DATA_DIR: not on the first run's path
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed requirements-test.txt
	$(BIN)/pip install --quiet -r requirements-test.txt
	touch $@

seed: install
	$(BIN)/python -m seed --resume products --count $(SEED_COUNT)
	$(BIN)/python -m seed interactions --users $(INTERACTION_USERS)

train: install
	$(BIN)/python -m app.ops.cli train

# The Milvus Lite server (unless MILVUS_URI is set), seeding, training and gunicorn: see app/ops/service.py.
run: install
	$(BIN)/python -m app.ops.service --products $(SEED_COUNT) --users $(INTERACTION_USERS)

# Every tier: tests/unit, tests/integration and tests/system (gunicorn, faults, browser, compose); CI runs this.
test: install-test
	$(BIN)/python -m pytest

# Unit and integration tiers only (no gunicorn, browser or fault injection).
test-quick: install-test
	$(BIN)/python -m pytest tests/unit tests/integration

bench: install
	$(BIN)/python -m bench.search
	$(BIN)/python -m bench.events

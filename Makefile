# auditloop — the commands people expect. `make run` and `make test` do all the set-up.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
AUDITLOOP := $(VENV)/bin/auditloop
STAMP := $(VENV)/.installed
PORT ?= 8501
export AUDITLOOP_DATA_DIR ?= $(CURDIR)/.auditloop

.PHONY: help install run migrate seed test lint pytest bench clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' Makefile | sed 's/:.*## /\t/'

$(STAMP): pyproject.toml
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	# CPU build of PyTorch first (a GPU user installs their CUDA build before running make)
	$(PY) -c "import torch" 2>/dev/null || $(PIP) install --quiet torch==2.13.0
	$(PIP) install --quiet -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)  ## create .venv and install auditloop with its dev tools

migrate: install  ## upgrade the database to the latest schema
	$(AUDITLOOP) db upgrade

seed: migrate  ## load the demo company if the database is empty
	@if $(AUDITLOOP) users list --json | $(PY) -c "import json,sys; sys.exit(0 if json.load(sys.stdin) else 1)"; then \
		echo "database already has users: demo not re-seeded"; \
	else \
		$(AUDITLOOP) demo seed; \
	fi

run: seed  ## install, migrate, seed the demo, start the app
	@echo ""
	@echo "auditloop is starting on http://localhost:$(PORT)"
	@echo "Log in with a demo account from $(AUDITLOOP_DATA_DIR)/demo-credentials.txt (e.g. user 'auditor1')."
	@echo ""
	AUDITLOOP_DEMO_MODE=true $(VENV)/bin/streamlit run app/streamlit_app.py --server.port $(PORT)

lint: install  ## ruff, mypy on audit/ and training/, import-linter contracts
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

pytest: install  ## the test suite (PostgreSQL too when AUDITLOOP_TEST_POSTGRES_URL is set)
	$(VENV)/bin/pytest $(PYTEST_ARGS)

test: lint pytest  ## lint, then every test

bench: install  ## measure at scale (see `auditloop bench --help`); writes bench-results/
	$(AUDITLOOP) bench $(BENCH_ARGS)

clean:  ## remove the demo data directory (keeps .venv)
	rm -rf .auditloop

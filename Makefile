# auditloop — the commands people expect. `make run` and `make test` do all the set-up.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
AUDITLOOP := $(VENV)/bin/auditloop
STAMP := $(VENV)/.installed
PORT ?= 8501
export AUDITLOOP_DATA_DIR ?= $(CURDIR)/.auditloop

# Every package at the version and hash in the lock, resolved from pyproject.toml by `make lock`.
LOCK := requirements/lock.txt
PIP_VERSION := 26.3
# Where pip finds the lock's CPU build of torch: this project's machines keep the wheel in /opt/wheels;
# elsewhere PyTorch's CPU page, which lists torch alone (so no other package comes from there).
TORCH_WHEELS ?= $(if $(wildcard /opt/wheels/torch-*.whl),/opt/wheels,https://download.pytorch.org/whl/cpu/torch/)
# uv resolves the lock (pip has no resolver that writes one); it lives in its own small venv.
UV_VERSION := 0.13.9
# the optional extras the lock holds (vllm is left out: GPU nodes install it themselves)
LOCK_EXTRAS := dev
UV := .venv-lock/bin/uv
# `make test-latest`: the newest versions pyproject.toml allows, in a venv of their own.
LATEST := .venv-latest
FAST_TESTS := -m "not slow and not browser and not postgres"

.PHONY: help install lock test-latest run migrate seed test lint pytest bench clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' Makefile | sed 's/:.*## /\t/'

$(STAMP): pyproject.toml $(LOCK)
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install --quiet pip==$(PIP_VERSION)
	# the lock, hashes checked; torch is its CPU build (a GPU user swaps in the CUDA build of the same
	# version afterwards: .venv/bin/pip install torch==VERSION --index-url https://download.pytorch.org/whl/cu130)
	$(PIP) install --quiet --require-hashes --find-links $(TORCH_WHEELS) -r $(LOCK)
	# auditloop itself, built with the locked setuptools, then checked against pyproject.toml's ranges
	$(PIP) install --quiet --no-deps --no-build-isolation -e .
	@$(PIP) check || { echo "$(LOCK) does not satisfy pyproject.toml: run 'make lock'"; exit 1; }
	@touch $(STAMP)

install: $(STAMP)  ## create .venv and install auditloop with its dev tools, as pinned in requirements/lock.txt

$(UV):
	python3 -m venv .venv-lock
	.venv-lock/bin/pip install --quiet uv==$(UV_VERSION)

lock: $(UV)  ## re-resolve requirements/lock.txt from pyproject.toml (UPGRADE=1: newest allowed) and list what moved
	@before=$$(mktemp); cp $(LOCK) $$before 2>/dev/null; \
	$(UV) pip compile pyproject.toml requirements/lock.in $(LOCK_EXTRAS:%=--extra %) --generate-hashes \
		--python-version 3.11 --python-platform x86_64-manylinux_2_28 --find-links $(TORCH_WHEELS) \
		--custom-compile-command "make lock" --quiet $(if $(UPGRADE),--upgrade) -o $(LOCK) \
	&& python3 requirements/moved.py $$before $(LOCK); status=$$?; rm -f $$before; exit $$status

test-latest:  ## the fast tests on the newest versions pyproject.toml allows (a fresh .venv-latest); lists what is newer than the lock
	rm -rf $(LATEST)
	python3 -m venv $(LATEST)
	$(LATEST)/bin/pip install --quiet --upgrade pip
	# torch stays the lock's CPU build: the newest torch on PyPI is the CUDA build with its nvidia-* packages
	$(LATEST)/bin/pip install --quiet --find-links $(TORCH_WHEELS) "$$(grep -o '^torch==[^ ]*' $(LOCK))"
	$(LATEST)/bin/pip install --quiet -e '.[dev]'
	@$(LATEST)/bin/pip freeze --all --exclude-editable | grep -v "^pip==" > $(LATEST)/versions.txt
	@echo "newer than $(LOCK):"; python3 requirements/moved.py $(LOCK) $(LATEST)/versions.txt
	$(LATEST)/bin/pytest $(FAST_TESTS) $(PYTEST_ARGS)

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

# Set-up and checks. `make demo` and `make test` are all a fresh Debian machine with
# Python 3.11, git and make needs: each creates .venv and installs what it uses.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
SPECS ?= specs

.PHONY: demo demo-kernel test check lint lock schemas bench clean

# Every install comes from the locks in requirements/ (hashes checked, nothing else resolved);
# `make lock` refreshes them. A lock older than pyproject.toml's dependencies stops the install
# with one line saying so. pip runs with -qq: errors still show, its warnings about host
# configuration do not (what is installed is the lock, hashes checked).
LOCK_CHECK = $(PYTHON) requirements/lock.py check
PIP = $(BIN)/python -m pip -qq
export PIP_DISABLE_PIP_VERSION_CHECK = 1

# Debian splits venv out of python3; install it when it is missing and we may (CI runs as root).
$(BIN)/python:
	@$(PYTHON) -m venv $(VENV) 2>/dev/null || { rm -rf $(VENV); \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && apt-get install -y -qq python3-venv >/dev/null && $(PYTHON) -m venv $(VENV); \
	  else echo "error: '$(PYTHON) -m venv' failed; install python3-venv (apt-get install python3-venv)" >&2; exit 1; fi; }

$(VENV)/.installed-run: pyproject.toml requirements/run.lock | $(BIN)/python
	@$(LOCK_CHECK) requirements/run.lock
	$(PIP) install --require-hashes --no-deps -r requirements/run.lock
	$(PIP) install --no-deps --no-build-isolation -e .
	@touch $@

$(VENV)/.installed-dev: pyproject.toml requirements/dev.lock | $(BIN)/python
	@$(LOCK_CHECK) requirements/dev.lock
	$(PIP) install --require-hashes --no-deps -r requirements/dev.lock
	$(PIP) install --no-deps --no-build-isolation -e .
	@touch $@ $(VENV)/.installed-run

# Re-resolve both locks against the package index: the one deliberate way the set changes.
lock: | $(BIN)/python
	$(BIN)/python requirements/lock.py write

demo: $(VENV)/.installed-run
	@RECONCILER=$(CURDIR)/$(BIN)/reconciler examples/quickstart/demo.sh

# A real kernel: linux-source-6.1 built per commit and profile, booted under QEMU, tested in the
# VM (installs its Debian packages when run as root; ~10 minutes on 2 cores the first time).
demo-kernel: $(VENV)/.installed-run
	@RECONCILER=$(CURDIR)/$(BIN)/reconciler examples/kernel/demo.sh

test: $(VENV)/.installed-dev
	$(BIN)/pytest

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check reconciler tests bench requirements
	$(BIN)/ruff format --check reconciler tests bench requirements
	$(BIN)/mypy
	$(BIN)/lint-imports

check: lint test

# Regenerate the checked-in JSON Schemas after changing a spec model.
schemas: $(VENV)/.installed-run
	$(BIN)/reconciler schemas --write schemas

bench: $(VENV)/.installed-dev
	$(BIN)/python bench/farm_sim.py
	$(BIN)/python bench/git_resolve.py
	$(BIN)/python bench/plan_scale.py
	$(BIN)/python bench/ktest_enumeration.py

clean:
	rm -rf $(VENV) .reconciler examples/quickstart/repo examples/kernel/repos

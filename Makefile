# Set-up and checks. `make demo` and `make test` are all a fresh Debian machine with
# Python 3.11, git and make needs: each creates .venv and installs what it uses.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
SPECS ?= specs

.PHONY: demo demo-kernel test check lint schemas bench clean

# Debian splits venv out of python3; install it when it is missing and we may (CI runs as root).
$(BIN)/python:
	@$(PYTHON) -m venv $(VENV) 2>/dev/null || { rm -rf $(VENV); \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && apt-get install -y -qq python3-venv >/dev/null && $(PYTHON) -m venv $(VENV); \
	  else echo "error: '$(PYTHON) -m venv' failed; install python3-venv (apt-get install python3-venv)" >&2; exit 1; fi; }
	@$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.installed-run: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e .
	@touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[dev]'
	@touch $@ $(VENV)/.installed-run

demo: $(VENV)/.installed-run
	@RECONCILER=$(CURDIR)/$(BIN)/reconciler examples/quickstart/demo.sh

# A real kernel: linux-source-6.1 built per commit and profile, booted under QEMU, tested in the
# VM (installs its Debian packages when run as root; ~10 minutes on 2 cores the first time).
demo-kernel: $(VENV)/.installed-run
	@RECONCILER=$(CURDIR)/$(BIN)/reconciler examples/kernel/demo.sh

test: $(VENV)/.installed-dev
	$(BIN)/pytest

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check reconciler tests bench
	$(BIN)/ruff format --check reconciler tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports

check: lint test

# Regenerate the checked-in JSON Schemas after changing a spec model.
schemas: $(VENV)/.installed-run
	$(BIN)/reconciler schemas --write schemas

bench: $(VENV)/.installed-run
	$(BIN)/python bench/farm_sim.py
	$(BIN)/python bench/git_resolve.py
	$(BIN)/python bench/plan_scale.py

clean:
	rm -rf $(VENV) .reconciler examples/quickstart/repo examples/kernel/repos

# Every target sets up what it needs on a fresh Debian / Raspberry Pi OS machine the first
# time (apt packages, a .venv with the project) and skips that step after.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
STATE ?= state
APT_PACKAGES := mosquitto libsystemd-dev pkg-config gcc python3-dev
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
PYTEST_ARGS ?=

.PHONY: run test test-long bench lint install apt setup clean

apt:
	@missing=""; for p in $(APT_PACKAGES); do \
	  dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	python3 -c 'import ensurepip, venv' 2>/dev/null || missing="$$missing python3-venv"; \
	if [ -n "$$missing" ]; then \
	  echo "make: installing apt packages:$$missing"; \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing; \
	fi

$(VENV)/.installed: pyproject.toml | apt
	@echo "make: creating $(VENV) with the project and its dev tools"
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	@touch $@

setup: $(VENV)/.installed

lint: setup
	$(VENV)/bin/ruff check .

test: setup
	$(VENV)/bin/ruff check .
	$(PY) -m pytest -m "not long" $(PYTEST_ARGS)

test-long: setup
	$(PY) -m pytest -m long $(PYTEST_ARGS)

bench: setup
	@set -e; for f in tests/bench/bench_*.py; do echo "== $$f"; $(PY) $$f; done

run: setup
	$(VENV)/bin/edgenode run --config hardware/dev-fake.toml --state-dir $(STATE)

install:
	$(SUDO) bash systemd/install.sh

clean:
	rm -rf $(VENV) $(STATE) .pytest_cache .ruff_cache *.egg-info

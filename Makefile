# Every target sets up what it needs on a fresh Debian / Raspberry Pi OS machine the first
# time (apt packages, a .venv with the project) and skips that step after.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
STATE ?= state
APT_PACKAGES := mosquitto libsystemd-dev pkg-config gcc python3-dev iproute2 \
	chromium chromium-driver dump1090-mutability rabbitmq-server
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
PYTEST_ARGS ?=
SCENARIO ?= one-drone-crossing
RUN_SECONDS ?= 25
MOSQUITTO := $(shell command -v mosquitto || echo /usr/sbin/mosquitto)

.PHONY: run test test-long bench mutation lint install apt setup clean screenshots \
	bundle rollback uninstall

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

# Every bench runs; then make fails naming each bench that missed a target (or crashed).
BENCHES ?= $(wildcard tests/bench/bench_*.py)
bench: setup
	@failed=""; for f in $(BENCHES); do echo "== $$f"; $(PY) $$f || failed="$$failed $$f"; done; \
	if [ -n "$$failed" ]; then echo "make bench: target missed in:$$failed" >&2; exit 1; fi

# Mutation testing of edgenode/control and edgenode/link against their own tests (not in
# `make test`). Every mutant is ~15 hours on a 2-core machine, so by default it runs a seeded
# random sample of MUTATION_SAMPLE mutants per package (100: about 1.5 hours, the slower half
# at about a minute each; tests/mutation/sample.py) and reports the rate with its 95 %
# interval. MUTATION_SAMPLE=0 runs them all; MUTANTS names some instead, e.g.
# MUTANTS='edgenode.control.deadlines*'. The first mutmut call only generates the mutants and
# measures which tests reach what (and checks one small mutant). mutmut does not notice new
# assertions in an existing test: after editing tests, delete mutants/mutmut-stats.json.
# One child by default: tests with deadlines fail under a doubled load, and a flaky failure
# would count as a killed mutant.
# Ends with one line per package: `mutation: <package> killed K of N non-equivalent (P %)`.
MUTANTS ?=
MUTATION_SAMPLE ?= 100
MUTATION_SEED ?= 1
MUTATION_CHILDREN ?= 1
mutation: setup
	@$(VENV)/bin/mutmut --version >/dev/null 2>&1 || $(PY) -m pip install -q -e '.[dev,mutation]'
	@set -e; run="$(VENV)/bin/mutmut run --max-children $(MUTATION_CHILDREN)"; \
	if [ -n "$(MUTANTS)" ]; then $$run $(MUTANTS) || true; $(PY) tests/mutation/report.py; \
	elif [ "$(MUTATION_SAMPLE)" = 0 ]; then $$run || true; $(PY) tests/mutation/report.py; \
	else $$run 'edgenode.link.ratelimit.*__mutmut_1' >/dev/null || true; \
	  $(PY) tests/mutation/sample.py --per-package $(MUTATION_SAMPLE) \
	    --seed $(MUTATION_SEED) > mutants/sample.txt; \
	  $$run $$(cat mutants/sample.txt) || true; \
	  $(PY) tests/mutation/report.py --sample mutants/sample.txt; fi

# The demo: a private Mosquitto on a free loopback port (Debian may run one on 1883), the
# daemon on the digital twin, and the operator's live view. Ctrl-C stops all three. When the
# output is not a terminal (CI, a pipe), the demo stops by itself after RUN_SECONDS.
run: setup
	@set -u; mkdir -p $(STATE); \
	port=$$($(PY) -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'); \
	broker=mqtt://127.0.0.1:$$port; \
	{ echo "listener $$port 127.0.0.1"; echo "allow_anonymous true"; echo "persistence false"; \
	  [ "$$(id -u)" = 0 ] && echo "user root"; } > $(STATE)/mosquitto.conf; \
	$(MOSQUITTO) -c $(STATE)/mosquitto.conf > $(STATE)/mosquitto.log 2>&1 & mq=$$!; \
	$(VENV)/bin/edgenode run --sim $(SCENARIO) --broker $$broker --state-dir $(STATE) \
	  2> $(STATE)/edgenode.log & node=$$!; \
	trap 'kill -INT $$node 2>/dev/null; wait $$node; kill $$mq 2>/dev/null; wait $$mq' EXIT; \
	echo "make run: broker $$broker, scenario $(SCENARIO), daemon log $(STATE)/edgenode.log"; \
	echo "make run: command the demo node with: $(VENV)/bin/edgenode ctl --broker $$broker --key $(STATE)/operator.key arm --ttl 60"; \
	sleep 2; if [ -t 1 ]; then $(VENV)/bin/edgenode ctl --broker $$broker watch; \
	else $(VENV)/bin/edgenode ctl --broker $$broker watch --for $(RUN_SECONDS); fi

# The status page at phone size, on the twin, into docs/screenshots/ (chromium, headless).
screenshots: setup
	$(PY) tests/web/screenshots.py

install:
	$(SUDO) bash systemd/install.sh

# The offline bundle for a unit: make bundle [ARCH=aarch64|x86_64] [PY=3.11|3.13] -> dist/.
# PY here is the unit's Python (bookworm 3.11, trixie 3.13); the recipes keep using the venv's.
ARCH ?= aarch64
ifeq ($(origin PY),command line)
BUNDLE_PY := $(PY)
override PY := $(VENV)/bin/python
endif
BUNDLE_PY ?= 3.11
bundle: setup
	$(PY) systemd/bundle.py --arch $(ARCH) --python $(BUNDLE_PY) --out dist

rollback:
	$(SUDO) bash systemd/edgenode-rollback

uninstall:
	$(SUDO) bash systemd/uninstall.sh $(if $(filter 1 yes true,$(PURGE)),--purge)

clean:
	rm -rf $(VENV) $(STATE) dist .pytest_cache .ruff_cache *.egg-info mutants

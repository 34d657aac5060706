# CallFleet — the two commands a newcomer needs:
#   make demo   install everything into .venv, then run `callfleet demo`
#   make test   install everything plus test tools, then run the whole test suite
# Every install step lives here; nothing is installed by hand.

VENV   ?= .venv
PYTHON ?= python3
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip --disable-pip-version-check

.PHONY: demo setup postgres browser test test-fast lint bench clean

demo: setup
	$(VENV)/bin/callfleet demo

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	# torch first and pinned: a looser spec pulls a multi-GB CUDA build on CPU machines
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -e '.[dev]'
	touch $@

# PostgreSQL server binaries for the durable-store tests (tests/postgres.py starts a
# throwaway server from them): Debian's postgresql package, installed when missing.
postgres:
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || { \
	  echo "installing PostgreSQL (Debian package postgresql) for the store tests"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql; }

# Chromium for the browser tests (tests/browser: the agent desk and the wallboard, driven
# by Playwright). Debian's package: `playwright install` cannot download browsers here.
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "installing Chromium (Debian package chromium) for the browser tests"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; }

# Two pytest processes at once: the integration tier (one shared cluster, mostly waiting on
# real-time calls) and the unit + model tiers (tests/tiers.py).
test: setup postgres browser
	$(VENV)/bin/python tests/tiers.py

# the unit tier alone, on two pytest-xdist workers
test-fast: setup
	$(VENV)/bin/python -m pytest -q -p no:cacheprovider -n 2 -m "unit" tests

lint: setup
	$(VENV)/bin/ruff check .

bench: setup
	$(VENV)/bin/python benchmarks/turn_latency.py

clean:
	$(VENV)/bin/callfleet down || true
	rm -rf var .pytest_cache

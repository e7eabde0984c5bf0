# The commands a person types. Two of them do everything on a fresh machine:
#   make demo   set up .venv, run the main job on the built-in synthetic district
#   make test   set up .venv, lint, type-check and run the whole test suite
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
BW := $(VENV)/bin/buildwatch
STAMP := $(VENV)/.installed-stamp
DEMO_OUT ?= demo-output
CITY_OUT ?= city-demo-output
PYTEST_ARGS ?=

.PHONY: setup sysdeps demo city-demo test lint format typecheck nightly-demo bench clean help

help:
	@echo "make demo    - set up .venv and run the main job on the synthetic district"
	@echo "make test    - set up .venv, lint, type-check and run the whole test suite"
	@echo "make city-demo - a synthetic city of three districts into the city's reports and map"
	@echo "make bench   - run the benchmarks (prints tables)"

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip setuptools wheel
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

# System packages the maps, reports and tests need (headless Chromium for PNG maps and the review
# page's browser test, a CJK font, Leaflet for offline maps, QGIS for the styled-layers test).
# Installed once with apt-get when running as root; skipped if present.
sysdeps:
	@bash scripts/sysdeps.sh

setup: $(STAMP) sysdeps

demo: setup
	$(BW) demo $(DEMO_OUT) --overwrite

city-demo: setup
	$(BW) city demo $(CITY_OUT) --overwrite

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(STAMP)
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

typecheck: $(STAMP)
	$(VENV)/bin/mypy geo models

test: setup lint typecheck
	$(VENV)/bin/pytest $(PYTEST_ARGS)

bench: setup
	@for b in benchmarks/bench_*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

nightly-demo: setup
	$(PY) -m pipelines.nightly.demo $(DEMO_OUT)/nightly

clean:
	rm -rf $(DEMO_OUT) $(CITY_OUT) .pytest_cache .mypy_cache .ruff_cache

# schema-init: see README.md.  `make test` is what CI runs.
PY311   ?= /usr/bin/python3.11
VENV    := .venv
PY      := $(VENV)/bin/python
STAMP   := $(VENV)/.installed
DEBS    := python3.11 python3.11-dev python3.11-venv gcc make

.PHONY: all venv test test-fast check run bench clean

all: venv

$(STAMP): setup.py _fastloop.pyx requirements-dev.txt
	build/ensure-deps.sh $(DEBS)
	test -x $(PY) || $(PY311) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -r requirements-dev.txt
	$(PY) -m pip install -q --disable-pip-version-check --no-build-isolation -e .
	touch $@

venv: $(STAMP)

# The default test run (CI): unit and process tiers.
test: $(STAMP)
	$(PY) -m pytest -q tests

# Pure core only: seconds.
test-fast: $(STAMP)
	$(PY) -m pytest -q tests -m "not process"

check: $(STAMP)
	$(VENV)/bin/schema-init --check services

# Supervise examples/demo (not as PID 1) and show schema-ctl status.
run: $(STAMP)
	build/run-demo.sh

# Benchmarks with reports under bench/ (minutes; not part of `make test`).
bench: $(STAMP)
	$(PY) bench/supervisor_bench.py

clean:
	rm -rf $(VENV) build/tmp *.egg-info schema_init/*.so schema_init/_fastloop.c _fastloop.c

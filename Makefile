# Two commands on a fresh machine with Python 3.11+: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PORT ?= 8501

.PHONY: run test test-all bench smoke clean

# The venv is (re)built when requirements change; the stamp records a finished install.
$(VENV)/.run-deps: requirements.txt pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
		{ echo "Hadamard Bench needs Python 3.11 or newer; $(PYTHON) is $$($(PYTHON) --version 2>&1)"; exit 1; }
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	@# The project itself, editable: `hadamard-bench` on the PATH of the venv, imports from this checkout.
	$(PY) -m pip install --quiet --no-deps -e .
	@touch $@

$(VENV)/.test-deps: $(VENV)/.run-deps requirements-test.txt
	$(PY) -m pip install --quiet -r requirements-test.txt
	@touch $@

$(VENV)/.test-all-deps: $(VENV)/.test-deps requirements-test-all.txt requirements-ray.txt
	$(PY) -m pip install --quiet -r requirements-test-all.txt
	@touch $@

## run: serve the dashboard on http://localhost:$(PORT); an empty database gets the quick suite
run: $(VENV)/.run-deps
	$(PY) -m bench_runner run --suite quick --if-empty --detach --wait-quiet 60
	$(PY) -m bench_runner serve --port $(PORT)

# The tests run in parallel, one pytest-xdist worker per CPU (at most 8; WORKERS=0 runs them in one
# process). Each worker takes whole modules (--dist loadscope), so a module's fixtures (a smoke run,
# a Ray cluster) are prepared once, in the order tests/conftest.py gives them: the longest first
# (xdist would otherwise start with the modules of most tests, and leave Ray's minutes to the end).
WORKERS ?= $(shell n=$$(nproc 2>/dev/null || echo 2); echo $$(( n > 8 ? 8 : n )))
PARALLEL := -n $(WORKERS) --dist loadscope --no-loadscope-reorder

# The fast tier leaves out what pyproject.toml's markers name: browser, install, Ray, plugins,
# PostgreSQL, the whole compile matrix and the slow subprocess tests.
FAST_TIER := not (browser or install or ray or plugins or postgres or compile_matrix or slow)

## test: install what the tests need and run the fast tier (a few minutes)
test: $(VENV)/.test-deps
	$(PY) -m pytest -m "$(FAST_TIER)" $(PARALLEL)

## test-all: every test, the 25 slowest named at the end (.ci/run runs this)
# A worker per CPU, as the fast tier. Workers beyond the CPUs were meant to fill the time this tier
# waits on processes it started (runs, agents, a Ray cluster, a browser), but every worker's torch
# runs a thread per CPU too. On two cores, from fresh clones with every compile cold (80c4ddd to
# 8a9f0f0, the tests alike), pytest took 902 s with six workers, 733 and 743 with four, 708 with
# three, 693 and 744 with two: no faster with more than two, within one run's spread, and slower
# with six. CPU time: 19.6 and 21.5 minutes with two workers, 21.6 and 22.2 with four.
test-all: $(VENV)/.test-all-deps
	$(PY) -m pytest $(PARALLEL) --durations=25

## bench: pytest-benchmark tests of the tool's hot paths, into results/bench.json (not part of `make test`)
bench: $(VENV)/.test-deps
	$(PY) -m pytest tests/bench -o python_files='bench_*.py' --benchmark-json=results/bench.json -q

## smoke: the smoke suite into the default database, in about a minute
smoke: $(VENV)/.run-deps
	$(PY) -m bench_runner run --suite smoke

clean:
	rm -rf $(VENV) .pytest_cache

# Two commands do all set-up on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip install -q --disable-pip-version-check

.PHONY: run test lint typecheck unit docs chromium nginx caddy wrk bench load fuzz mutate clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) -U pip

# Re-install whenever pyproject.toml changes.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(PIP) -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(PIP) -e '.[test]'
	touch $(VENV)/.installed $@

$(VENV)/.installed-docs: pyproject.toml | $(BIN)/python
	$(PIP) -e '.[docs]'
	touch $(VENV)/.installed $@

run: $(VENV)/.installed
	$(BIN)/coatcheck serve --instance instance

lint: $(VENV)/.installed-test
	$(BIN)/ruff check src tests fuzz benchmarks
	$(BIN)/ruff format --check src tests fuzz benchmarks
	$(BIN)/lint-imports

typecheck: $(VENV)/.installed-test
	$(BIN)/mypy

# The browser tests drive Debian's Chromium (never `playwright install`: no downloads).
chromium:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing chromium with apt-get"; \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null 2>&1 || \
	    { DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null && \
	      DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null; }; \
	  else echo "chromium is missing: the browser tests will skip (apt-get install chromium)"; fi; }

# The forward-auth recipe test runs nginx itself (nginx-light is enough: it has auth_request).
nginx:
	@command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing nginx-light with apt-get"; \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -q nginx-light >/dev/null 2>&1 || \
	    { DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null && \
	      DEBIAN_FRONTEND=noninteractive apt-get install -y -q nginx-light >/dev/null; }; \
	  else echo "nginx is missing: the nginx recipe test will skip (apt-get install nginx-light)"; fi; }

# The proxy tests run docs/proxies/Caddyfile with Caddy itself (Debian's caddy).
caddy:
	@command -v caddy >/dev/null 2>&1 || [ -x /usr/bin/caddy ] || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing caddy with apt-get"; \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -q caddy >/dev/null 2>&1 || \
	    { DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null && \
	      DEBIAN_FRONTEND=noninteractive apt-get install -y -q caddy >/dev/null; }; \
	  else echo "caddy is missing: the Caddy proxy tests will skip (apt-get install caddy)"; fi; }

# The docs extra too: tests/docs builds the site (and must not skip under CI=true).
unit: $(VENV)/.installed-test $(VENV)/.installed-docs chromium nginx caddy
	$(BIN)/pytest

# The documentation site (Sphinx), warnings as errors: open build/docs/index.html.
docs: $(VENV)/.installed-docs
	$(BIN)/sphinx-build -W --keep-going -q -b html docs build/docs

test: lint typecheck unit

BENCH_VENV := .venv-bench
BENCH_PIP  := $(BENCH_VENV)/bin/python -m pip install -q --disable-pip-version-check

# The benchmark's own virtualenv: the project plus the anchor stack, pinned.
$(BENCH_VENV)/.installed: pyproject.toml benchmarks/requirements.txt
	$(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_PIP) -U pip
	$(BENCH_PIP) -r benchmarks/requirements.txt -e .
	touch $@

# wrk drives the HTTP rounds: installed with apt-get when missing and we are root.
wrk:
	@command -v wrk >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing wrk with apt-get"; \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -q wrk >/dev/null 2>&1 || \
	    { DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null && \
	      DEBIAN_FRONTEND=noninteractive apt-get install -y -q wrk >/dev/null; }; \
	  else echo "wrk is missing: the HTTP rounds will say so (apt-get install wrk)"; fi; }

# Figures, never part of `make test`:  make bench [BENCH_ARGS="--quick --json bench.json"]
bench: $(BENCH_VENV)/.installed wrk
	$(BENCH_VENV)/bin/python -m benchmarks $(BENCH_ARGS)

# A bounded load test (about 70 s), then slow clients and a frozen store (about 40 s, SPEC §11),
# never part of `make test`; both run, and either failing fails the target:
#   make load [LOAD_ARGS="--clients 200 --seconds 60"] [STRESS_ARGS="--slow-clients 500 --slow-seconds 10"]
load: $(VENV)/.installed
	@status=0; \
	$(BIN)/python -m benchmarks.load $(LOAD_ARGS) || status=1; \
	$(BIN)/python -m benchmarks.stress $(STRESS_ARGS) || status=1; \
	exit $$status

# Coverage-guided fuzzing, never part of `make test`:  make fuzz [FUZZ_SECONDS=600] [FUZZ_TARGETS=json_api]
FUZZ_SECONDS ?= 60
fuzz:
	FUZZ_SECONDS=$(FUZZ_SECONDS) PYTHON=$(PYTHON) fuzz/run $(FUZZ_TARGETS)

MUTATE_VENV     := .venv-mutate
MUTATE_PIP      := $(MUTATE_VENV)/bin/python -m pip install -q --disable-pip-version-check
MUTATE_CHILDREN ?= 1

# mutmut's own virtualenv: mutmut 3 and the test dependencies, but not coatcheck itself,
# so that the tests can import only the mutated copy that mutmut lays in mutants/.
$(MUTATE_VENV)/.installed: pyproject.toml
	rm -rf $(MUTATE_VENV)
	$(PYTHON) -m venv $(MUTATE_VENV)
	$(MUTATE_PIP) -U pip
	$(MUTATE_PIP) 'mutmut>=3.8,<4' '.[test]'
	$(MUTATE_VENV)/bin/python -m pip uninstall -q -y coatcheck
	touch $@

# Mutation testing of the paths and tests in [tool.mutmut] (pyproject.toml), never part of
# `make test`; see docs/mutation.md.  make mutate [MUTANTS='coatcheck.core.signing.*']
mutate: $(MUTATE_VENV)/.installed
	$(MUTATE_VENV)/bin/mutmut run --max-children $(MUTATE_CHILDREN) $(MUTANTS)
	$(MUTATE_VENV)/bin/mutmut results

clean:
	rm -rf $(VENV) $(BENCH_VENV) .venv-fuzz fuzz/crashes fuzz/logs .mypy_cache .pytest_cache .ruff_cache

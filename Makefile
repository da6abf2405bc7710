# Every target creates .venv and installs into it when needed: a fresh clone needs only python3.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
TORCH_VERSION := 2.13.0

.PHONY: demo test install install-dev bench check clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(VENV)/.installed: $(PY) pyproject.toml
	$(PY) -m pip install --quiet -e ".[data]"
	touch $@

# the demo's report shows every method this machine can run: symengine (the fast symbolic engine) is installed;
# torch is not (hundreds of MB), so the demo names its rows "not run: needs torch" with the install command
$(VENV)/.installed-demo: $(VENV)/.installed
	$(PY) -m pip install --quiet -e ".[symengine]"
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed
	$(PY) -m pip install --quiet -e ".[dev,symengine]" "torch==$(TORCH_VERSION)"
	touch $@

$(VENV)/.installed-bench: $(VENV)/.installed-dev
	$(PY) -m pip install --quiet -e ".[dev,symengine,bench]" "torch==$(TORCH_VERSION)"
	touch $@

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

## make demo: the project's main job
demo: $(VENV)/.installed-demo
	$(VENV)/bin/diffsuite demo

## make test: install with the test extras and torch, then run the whole suite
test: $(VENV)/.installed-dev
	$(PY) -m pytest -n 2 --dist loadfile

## make bench: the speed benchmark (ratios against peers, measured in one run; installs the peers: torch,
## HIPS autograd, JAX, numdifftools, scipy)
bench: $(VENV)/.installed-bench
	$(PY) benchmarks/bench_reverse.py

## make check: gradient accuracy against the committed baseline (also part of make test)
check: $(VENV)/.installed-dev
	$(VENV)/bin/diffsuite check --quick

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache

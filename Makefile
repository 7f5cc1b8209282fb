# Two commands on a fresh machine:  `make run`  and  `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=

.PHONY: run test install bench clean

$(VENV)/.installed: pyproject.toml setup.py handlers/_speedups.c
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

install: $(VENV)/.installed

run: $(VENV)/.installed
	$(VENV)/bin/kpbot serve

test: $(VENV)/.installed
	$(PY) -m pytest -q -p no:cacheprovider -n auto $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) var

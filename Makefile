# The README's two commands. Each creates or refreshes .venv and installs what it needs.
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed

.PHONY: demo test venv clean

$(STAMP): pyproject.toml
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade pip
	$(VENV)/bin/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

## demo: the main job, a full release on the sandbox cluster and a local Prefect server
demo: $(STAMP)
	$(VENV)/bin/tripgen-release demo $(ARGS)

## test: run the whole test suite
test: $(STAMP)
	$(VENV)/bin/python -m pytest -n 3 --dist loadfile $(ARGS)

clean:
	rm -rf $(VENV) .pytest_cache

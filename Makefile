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

## demo: the main job. Until the release flow lands (issue 4) it validates the shipped policies.
demo: $(STAMP)
	$(VENV)/bin/tripgen-release policy check policies/tripgen.yaml
	$(VENV)/bin/tripgen-release policy check policies/demo.yaml

## test: run the whole test suite
test: $(STAMP)
	$(VENV)/bin/python -m pytest $(ARGS)

clean:
	rm -rf $(VENV) .pytest_cache

# The README's two commands. Each creates or refreshes .venv and installs what it needs.
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed
# checkov (tests/gitops) pins dependencies the project's own would conflict with: it gets a venv of its own
TOOLS_VENV := .venv-tools
TOOLS_STAMP := $(TOOLS_VENV)/.installed
CHECKOV := checkov>=3.2,<4

.PHONY: demo test venv clean

$(STAMP): pyproject.toml
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade pip
	$(VENV)/bin/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

$(TOOLS_STAMP): Makefile
	test -x $(TOOLS_VENV)/bin/python || $(PYTHON) -m venv $(TOOLS_VENV)
	$(TOOLS_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(TOOLS_VENV)/bin/python -m pip install --quiet '$(CHECKOV)'
	touch $(TOOLS_STAMP)

venv: $(STAMP) $(TOOLS_STAMP)

## demo: the main job, a full release on the sandbox cluster and a local Prefect server
demo: $(STAMP)
	$(VENV)/bin/tripgen-release demo $(ARGS)

## test: run the whole test suite
test: $(STAMP) $(TOOLS_STAMP)
	$(VENV)/bin/python -m pytest -n 3 --dist loadfile $(ARGS)

clean:
	rm -rf $(VENV) $(TOOLS_VENV) .pytest_cache

# Two commands do everything on a fresh machine:
#   make demo   set up .venv, then run the whole workflow on the embedded demo (snakemake --cores all)
#   make test   set up .venv, then run the tests
PYTHON ?= python3
TORCH ?= torch==2.13.0
VENV := .venv
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

.PHONY: demo test lint setup clean

demo: $(VENV)/.installed
	snakemake --cores all

test: $(VENV)/.installed
	pytest

lint: $(VENV)/.installed
	ruff check .
	snakefmt --check Snakefile workflow
	snakemake --lint

setup: $(VENV)/.installed

# torch first and pinned: an unpinned torch (or anything that pulls one) fetches multi-GB CUDA builds.
$(VENV)/.installed: pyproject.toml
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade pip
	$(VENV)/bin/python -m pip install --quiet "$(TORCH)"
	$(VENV)/bin/python -m pip install --quiet -e ".[test,cluster]"
	touch $@

clean:
	rm -rf results logs .snakemake report.html

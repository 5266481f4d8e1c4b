# Two commands do everything on a fresh machine:
#   make demo   set up .venv, then run the whole workflow on the embedded demo (snakemake --cores all)
#   make test   set up .venv, then run the tests
# .venv holds the tested dependency set, constraints.txt (the lock); `make lock` refreshes it, `make setup LOCK=`
# installs without it (the newest releases pyproject.toml allows).
PYTHON ?= python3
TORCH ?= torch==2.13.0
LOCK ?= constraints.txt
VENV := .venv
LOCK_VENV := .venv-lock
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

.PHONY: demo test lint setup lock clean tensorboard

demo: $(VENV)/.installed
	snakemake --cores all

test: $(VENV)/.installed
	pytest

lint: $(VENV)/.installed
	ruff check .
	snakefmt --check Snakefile workflow
	snakemake --lint

# The training curves of every run (results/tensorboard), served on http://localhost:$(TB_PORT) of this machine only;
# from a cluster node: `ssh -L 6006:localhost:6006 NODE` on your own machine, then open http://localhost:6006 there.
TB_PORT ?= 6006
tensorboard: $(VENV)/.installed
	tensorboard --logdir results/tensorboard --host 127.0.0.1 --port $(TB_PORT)

setup: $(VENV)/.installed

# torch first and pinned: an unpinned torch (or anything that pulls one) fetches multi-GB CUDA builds.
$(VENV)/.installed: pyproject.toml $(LOCK)
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade pip
	$(VENV)/bin/python -m pip install --quiet "$(TORCH)" $(if $(LOCK),-c $(LOCK))
	$(VENV)/bin/python -m pip install --quiet -e ".[test,cluster]" $(if $(LOCK),-c $(LOCK))
	touch $@

# The lock, refreshed: the newest releases pyproject.toml allows, resolved in a fresh venv and frozen (local version
# labels such as +cpu dropped: the lock names what PyPI serves). Then `make test`, and commit constraints.txt.
lock:
	rm -rf $(LOCK_VENV) && $(PYTHON) -m venv $(LOCK_VENV)
	$(LOCK_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(LOCK_VENV)/bin/python -m pip install --quiet "$(TORCH)"
	$(LOCK_VENV)/bin/python -m pip install --quiet -e ".[test,cluster]"
	{ sed -n '/^#/p' constraints.txt; $(LOCK_VENV)/bin/python -m pip freeze --exclude-editable \
		| sed -E 's/\+[A-Za-z0-9.]+$$//'; } > constraints.txt.new
	mv constraints.txt.new constraints.txt
	rm -rf $(LOCK_VENV)

clean:
	rm -rf results logs .snakemake report.html

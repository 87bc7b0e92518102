# Two entry points: `make demo` runs the main job, `make test` runs the whole test suite (ruff, mypy, pytest).
# Both create .venv with python3 and install the project into it; nothing else is needed.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
export DO_NOT_TRACK := 1
export PREFECT_SERVER_ANALYTICS_ENABLED := false
export DASK_LOGGING__DISTRIBUTED := error
export PREFECT_LOGGING_LEVEL ?= INFO
export PREFECT_LOGGING_EXTRA_LOGGERS ?= emdask

.PHONY: demo test bench typecheck clean

$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e ".[flows,test,bench]"
	touch $@

demo: $(VENV)/.installed
	$(PY) -m flows.compress_images data/photos -o out/demo/photos.zarr -k 16 --overwrite

# pytest in two processes (pytest-xdist): much of the suite waits on servers, clusters and subprocesses;
# worksteal: an idle process takes tests queued for the other, so the long tests do not leave one waiting at the end
test: $(VENV)/.installed
	$(VENV)/bin/ruff check emdask flows bench tests data
	$(PY) -m mypy
	$(PY) -m pytest -n 2 --dist worksteal

bench: $(VENV)/.installed
	$(PY) -m bench

clean:
	rm -rf $(VENV) out .pytest_cache .hypothesis

# make run  - set up (virtualenv, install, migrations) and serve on :8000
# make test - set up, start PostgreSQL and Redis if stopped, run every test

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PLUGINS := $(wildcard plugins/*/pyproject.toml)
STAMP  := $(VENV)/.installed

.PHONY: install run test lint bench services test-db clean

install: $(STAMP)

$(STAMP): pyproject.toml $(PLUGINS)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	for p in $(dir $(PLUGINS)); do $(BIN)/python -m pip install --quiet -e "$$p" || exit 1; done
	touch $(STAMP)

run: install
	$(BIN)/flask --app wsgi db upgrade
	scripts/run.sh

services:
	scripts/ensure_services.sh

test: install services
	$(BIN)/python -m pytest

lint: install
	$(BIN)/flake8 webapp plugins tests bench celery_worker.py wsgi.py docker/gunicorn.conf.py

bench: install services
	$(BIN)/python bench/log_call.py --durability memory
	$(BIN)/python bench/log_call.py --durability disk
	$(BIN)/python bench/run.py

clean:
	rm -rf $(VENV) var .pytest_cache

# make run  - set up (virtualenv, install, migrations) and serve on :8000
# make test - set up, start PostgreSQL and Redis if stopped, install chromium
#             for the browser tests if missing, run the tests (all but the
#             container suite and the bench harness)
# make test-bench - make bench's harness on a tiny workload
# make docker-up / docker-down - the compose stack (docker/docker-compose.yml)
# make docker-up-rabbitmq / docker-down-rabbitmq - the same stack on a
#             three-node RabbitMQ cluster (docker/docker-compose.rabbitmq.yml)
# make test-containers - the container suite: builds and runs the stack

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PLUGINS := $(wildcard plugins/*/pyproject.toml)
STAMP  := $(VENV)/.installed

.PHONY: install run test test-bench test-containers lint bench services browser test-db clean docker-up docker-down \
	docker-up-rabbitmq docker-down-rabbitmq

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

browser:
	scripts/ensure_browser.sh

test: install services browser
	$(BIN)/python -m pytest

# make bench's harness on a tiny workload (a check that it runs, not a speed).
test-bench: install services
	$(BIN)/python -m pytest -m bench tests/integration/test_bench_harness.py

# Needs a Docker engine (scripts/ensure_docker.sh starts one where it can).
test-containers: install
	$(BIN)/python -m pytest -m containers tests/containers

# The stack of docker/docker-compose.yml, from .env (cp .env.example .env,
# then set POSTGRES_PASSWORD and FLOWER_BASIC_AUTH). docker-down keeps the
# volumes (the database, the queue, the spool): DOCKER_DOWN_ARGS=--volumes
# removes them too.
docker-up:
	scripts/ensure_docker.sh
	scripts/docker_up.sh

docker-down:
	scripts/compose.sh down $(DOCKER_DOWN_ARGS)

# The stack with a three-node RabbitMQ cluster as its broker and two
# workers, as project webapp-rabbitmq (its own containers and volumes), from
# the same .env with RABBITMQ_PASSWORD and RABBITMQ_ERLANG_COOKIE set too.
# Its API publishes on API_PUBLISH like the other's: run one at a time.
RABBITMQ_STACK := WEBAPP_COMPOSE_FILE=docker/docker-compose.rabbitmq.yml \
	COMPOSE_PROJECT_NAME=$${COMPOSE_PROJECT_NAME:-webapp-rabbitmq}

docker-up-rabbitmq:
	scripts/ensure_docker.sh
	$(RABBITMQ_STACK) scripts/docker_up.sh

docker-down-rabbitmq:
	$(RABBITMQ_STACK) scripts/compose.sh down $(DOCKER_DOWN_ARGS)

lint: install
	$(BIN)/flake8 webapp plugins tests bench celery_worker.py wsgi.py docker/gunicorn.conf.py

bench: install services
	$(BIN)/python bench/log_call.py --out bench/results
	$(BIN)/python bench/run.py
	$(BIN)/python bench/replay.py

clean:
	rm -rf $(VENV) var .pytest_cache

#!/usr/bin/env bash
# Compose on docker/docker-compose.yml: `docker compose` (v2) where it is
# installed, else `docker-compose` (v1, 1.29); the file suits both. The
# arguments are Compose's: scripts/compose.sh ps, ... logs worker, ... down.
#
#   COMPOSE_PROJECT_NAME  webapp  the project (containers, network, volumes)
#   WEBAPP_ENV_FILE       .env    the environment of the stack: the services'
#                                 env_file, and the compose file's ${...}
#   WEBAPP_COMPOSE_FILE   docker/docker-compose.yml  the stack: the RabbitMQ
#                         cluster's is docker/docker-compose.rabbitmq.yml
#                         (make docker-up-rabbitmq sets it)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)

env_file=${WEBAPP_ENV_FILE:-$root/.env}
if [ ! -f "$env_file" ]; then
    echo "compose.sh: no $env_file: cp .env.example .env, then set POSTGRES_PASSWORD and FLOWER_BASIC_AUTH" >&2
    exit 1
fi
# Absolute: the compose file resolves relative paths from docker/.
WEBAPP_ENV_FILE=$(realpath "$env_file")
export WEBAPP_ENV_FILE
export COMPOSE_PROJECT_NAME=${COMPOSE_PROJECT_NAME:-webapp}
compose_file=${WEBAPP_COMPOSE_FILE:-$root/docker/docker-compose.yml}
if [ ! -f "$compose_file" ]; then
    echo "compose.sh: no compose file $compose_file (WEBAPP_COMPOSE_FILE)" >&2
    exit 1
fi
compose_file=$(realpath "$compose_file")

if docker compose version >/dev/null 2>&1; then
    compose=(docker compose)
elif command -v docker-compose >/dev/null; then
    compose=(docker-compose)
else
    echo "compose.sh: neither docker compose nor docker-compose is installed (scripts/ensure_docker.sh)" >&2
    exit 1
fi
exec "${compose[@]}" --env-file "$WEBAPP_ENV_FILE" --file "$compose_file" "$@"

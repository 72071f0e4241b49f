#!/usr/bin/env bash
# make docker-up: build the images and start docker/docker-compose.yml, then
# wait until every service is healthy (migrate: done). Needs an engine
# (scripts/ensure_docker.sh) and an env file (scripts/compose.sh).
#
#   DOCKER_BUILD_CA   a CA certificate pip must trust in the image build;
#                     default: the one this machine's pip is configured
#                     with (PIP_CERT, else `pip config get global.cert`)
#   DOCKER_UP_TIMEOUT 240 seconds for the services to become healthy
# and scripts/compose.sh's COMPOSE_PROJECT_NAME, WEBAPP_ENV_FILE and
# WEBAPP_COMPOSE_FILE (the RabbitMQ cluster's stack: make docker-up-rabbitmq).
set -euo pipefail
cd "$(dirname "$0")/.."
compose=scripts/compose.sh
timeout=${DOCKER_UP_TIMEOUT:-240}

say() {
    echo "docker_up: $*"
}

pip_cert() {
    if [ -n "${PIP_CERT:-}" ]; then
        echo "$PIP_CERT"
    else
        python3 -m pip config get global.cert 2>/dev/null || true
    fi
}

scripts/docker_local_images.sh

ca=${DOCKER_BUILD_CA:-$(pip_cert)}
if [ -n "$ca" ]; then
    [ -f "$ca" ] || { echo "docker_up: no CA certificate at $ca" >&2; exit 1; }
    say "the image build trusts $ca (docker/build-ca/pip.crt, build stage only)"
    cp "$ca" docker/build-ca/pip.crt
fi

"$compose" build
"$compose" up -d

# state <container>: healthy, starting, unhealthy, exited:<code>, or running
state() {
    docker inspect --format \
        '{{if .State.Health}}{{.State.Health.Status}}{{else if eq .State.Status "exited"}}exited:{{.State.ExitCode}}{{else}}{{.State.Status}}{{end}}' "$1"
}

deadline=$((SECONDS + timeout))
while :; do
    waiting=()
    for id in $("$compose" ps -q); do
        name=$(docker inspect --format '{{index .Config.Labels "com.docker.compose.service"}}' "$id")
        case $(state "$id") in
            healthy | exited:0) ;;
            unhealthy | exited:*)
                "$compose" logs --tail 50 "$name" >&2
                echo "docker_up: $name is $(state "$id")" >&2
                exit 1 ;;
            *) waiting+=("$name") ;;
        esac
    done
    [ ${#waiting[@]} -eq 0 ] && break
    if [ $SECONDS -ge $deadline ]; then
        "$compose" ps >&2
        echo "docker_up: not healthy within ${timeout} s: ${waiting[*]}" >&2
        exit 1
    fi
    sleep 2
done
"$compose" ps
say "the stack is up"

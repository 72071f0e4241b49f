#!/usr/bin/env bash
# Make sure a Docker engine answers on this machine, and a Compose to drive it.
#
# An engine that answers already (a desktop's, a CI runner's): nothing is done.
# Otherwise, as root on Debian: the engine and Compose v1 are installed from
# Debian's packages (docker.io, docker-compose; debootstrap for the local base
# images of scripts/docker_local_images.sh) when missing, and dockerd is
# started in the background, its log in DOCKERD_LOG. Anything else is an error
# that says what to do: this script never leaves a caller without an engine
# silently.
#
#   DOCKERD_LOG      /var/log/dockerd.log   where a dockerd started here logs
#   DOCKER_WAIT      60                     seconds to wait for it to answer
set -euo pipefail

log=${DOCKERD_LOG:-/var/log/dockerd.log}
wait_seconds=${DOCKER_WAIT:-60}

fail() {
    echo "ensure_docker: $*" >&2
    exit 1
}

engine_answers() {
    docker info >/dev/null 2>&1
}

compose_present() {
    docker compose version >/dev/null 2>&1 || command -v docker-compose >/dev/null
}

can_install() {
    [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null
}

missing=()
if ! engine_answers; then
    command -v dockerd >/dev/null || missing+=(docker.io)
fi
command -v docker >/dev/null || missing+=(docker.io)
compose_present || missing+=(docker-compose)
# Only needed where the base images cannot be pulled; installed when we can.
if ! command -v debootstrap >/dev/null && can_install; then
    missing+=(debootstrap)
fi
if [ ${#missing[@]} -gt 0 ]; then
    can_install || fail "missing ${missing[*]}: install a Docker engine and Compose" \
        "(as root on Debian: apt-get install docker.io docker-compose debootstrap)"
    echo "ensure_docker: installing ${missing[*]}"
    apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}"
fi

if ! engine_answers; then
    [ "$(id -u)" = 0 ] || fail "the Docker engine does not answer; start it (systemctl start docker), or run this as root"
    if pgrep -x dockerd >/dev/null; then
        echo "ensure_docker: a dockerd is running but does not answer yet; waiting for it"
    else
        echo "ensure_docker: starting dockerd (log: $log)"
        mkdir -p "$(dirname "$log")"
        nohup dockerd >>"$log" 2>&1 &
    fi
    for _ in $(seq 1 $((wait_seconds * 2))); do
        engine_answers && break
        sleep 0.5
    done
    if ! engine_answers; then
        tail -n 30 "$log" >&2 2>/dev/null || true
        fail "the Docker engine did not answer within ${wait_seconds} s (log above: $log)"
    fi
fi
echo "ensure_docker: the Docker engine answers ($(docker version --format '{{.Server.Version}}'))"

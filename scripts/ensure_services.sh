#!/usr/bin/env bash
# Start PostgreSQL and Redis on this machine when they are not running.
# The test suite needs both (it creates its own database and uses its own
# Redis database number).
set -euo pipefail

PGHOST=${PGHOST:-127.0.0.1}
PGPORT=${PGPORT:-5432}
REDIS_PORT=${REDIS_PORT:-6379}

wait_for() {  # wait_for <what> <command...>: up to 30 s
    local what=$1; shift
    for _ in $(seq 1 60); do
        if "$@" >/dev/null 2>&1; then return 0; fi
        sleep 0.5
    done
    echo "ensure_services: $what did not come up" >&2
    return 1
}

if ! pg_isready -q -h "$PGHOST" -p "$PGPORT"; then
    echo "ensure_services: starting PostgreSQL"
    if command -v pg_ctlcluster >/dev/null; then
        version=$(ls /etc/postgresql | sort -V | tail -n 1)
        pg_ctlcluster --skip-systemctl-redirect "$version" main start
    else
        echo "ensure_services: PostgreSQL is not running and pg_ctlcluster is missing" >&2
        exit 1
    fi
    wait_for PostgreSQL pg_isready -q -h "$PGHOST" -p "$PGPORT"
fi

if ! redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping >/dev/null 2>&1; then
    echo "ensure_services: starting Redis"
    mkdir -p /var/lib/redis /var/log/redis 2>/dev/null || true
    redis-server --daemonize yes --bind 127.0.0.1 -::1 --port "$REDIS_PORT" \
        --save "" --appendonly no --dir /var/lib/redis --logfile /var/log/redis/ci.log
    wait_for Redis redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping
fi
echo "ensure_services: PostgreSQL and Redis are up"

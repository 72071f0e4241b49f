#!/usr/bin/env bash
# Serve the API with gunicorn and run a Celery worker beside it, on whatever
# DATABASE_URL / CELERY_BROKER_URL say (SQLite and files under var/ if unset).
# Ctrl-C (or SIGTERM) stops both, each flushing its execution logs.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${VENV:-.venv}/bin

"$BIN/celery" -A celery_worker worker \
    --queues logs,workflows --concurrency "${CELERY_CONCURRENCY:-2}" \
    --without-gossip --without-mingle --loglevel "${CELERY_LOGLEVEL:-info}" &
worker=$!
"$BIN/gunicorn" --config docker/gunicorn.conf.py wsgi:app &
web=$!

stop() { kill -TERM "$worker" "$web" 2>/dev/null || true; }
trap stop INT TERM
# Whichever stops first (or a signal) stops the other.
wait -n "$worker" "$web" || true
stop
wait "$worker" "$web" 2>/dev/null || true

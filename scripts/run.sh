#!/usr/bin/env bash
# Serve the API with gunicorn and run a Celery worker beside it, on whatever
# DATABASE_URL / CELERY_BROKER_URL say (SQLite and files under var/ if unset).
# Ctrl-C (or SIGTERM) stops both, each flushing its execution logs.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${VENV:-.venv}/bin

# The worker gets a process group of its own (setsid): Ctrl-C in a terminal
# signals the whole foreground group, and a Celery pool process stopped in the
# middle of a task by a signal meant for its parent can leave the parent
# hanging at exit (billiard). The trap below stops the worker's main process,
# which stops its pool itself.
setsid "$BIN/celery" -A celery_worker worker \
    --queues logs,workflows --concurrency "${CELERY_CONCURRENCY:-2}" \
    --without-gossip --without-mingle --loglevel "${CELERY_LOGLEVEL:-info}" &
worker=$!
"$BIN/gunicorn" --config docker/gunicorn.conf.py wsgi:app &
web=$!

stop() {
    kill -TERM "$worker" "$web" 2>/dev/null || true
    # A warm shutdown finishes the tasks in hand. Celery 5.7 / billiard 4.3
    # can hang after that when it was stopped under load (a pool process
    # never gets its stop signal): after 30 s, kill what is left. Nothing is
    # lost: tasks not acknowledged are delivered again.
    for _ in $(seq 1 300); do
        kill -0 "$worker" 2>/dev/null || return 0
        sleep 0.1
    done
    echo "run.sh: the Celery worker did not stop in 30 s; killing it" >&2
    kill -KILL -- "-$worker" 2>/dev/null || true
}
trap stop INT TERM
# Whichever stops first (or a signal) stops the other.
wait -n "$worker" "$web" || true
stop
wait "$worker" "$web" 2>/dev/null || true

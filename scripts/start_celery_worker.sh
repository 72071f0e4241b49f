#!/usr/bin/env bash
# A Celery worker of this app (the Docker image's worker service runs it).
# Everything comes from the environment (.env.example, docs/CELERY_SETUP.md):
#
#   CELERY_QUEUES               logs,workflows  queues this worker consumes
#   CELERY_CONCURRENCY          2               prefork child processes
#   CELERY_PREFETCH_MULTIPLIER  1 (4 with       messages reserved per child
#                               CELERY_QUEUES=logs)
#   CELERY_WORKER_NAME          worker@%h       node name; %h is the host name
#   CELERY_LOGLEVEL             info
#   CELERY_METRICS_BIND         (none)          host:port to serve the worker's
#                                               metrics on
#   PYTHON                      python          interpreter of the environment
#                                               webapp is installed in
#
# The app reads the rest itself: DATABASE_URL, CELERY_BROKER_URL (or
# REDIS_URL), CELERY_VISIBILITY_TIMEOUT, DB_POOL_*, EXECLOG_*.
# Several workers may consume the same queues, on one host or many: give
# each a unique CELERY_WORKER_NAME on a host (a@%h, b@%h).
set -euo pipefail
cd "$(dirname "$0")/.."

# CELERY_METRICS_BIND=host:port: the worker serves its children's metrics
# there (webapp/worker_metrics.py); prometheus_client needs its directory in
# the environment before the worker starts.
if [ -n "${CELERY_METRICS_BIND:-}" ] && [ -z "${PROMETHEUS_MULTIPROC_DIR:-}" ]; then
    export PROMETHEUS_MULTIPROC_DIR="${WEBAPP_VAR_DIR:-./var}/prometheus/worker-${CELERY_METRICS_BIND##*:}"
fi

# A pool that consumes only `logs` (short tasks) reserves 4 messages per
# child: the batches it holds while its children are busy are stored
# together, in one COPY (webapp/execlog/together.py).
if [ "${CELERY_QUEUES:-logs,workflows}" = "logs" ]; then
    default_prefetch=4
else
    default_prefetch=1
fi

args=(
    --hostname "${CELERY_WORKER_NAME:-worker@%h}"
    --queues "${CELERY_QUEUES:-logs,workflows}"
    # Each child stores one job (a batch, or the batches that waited for
    # it) at a time on one database connection: workers x concurrency is
    # what the log tier takes from PostgreSQL.
    --concurrency "${CELERY_CONCURRENCY:-2}"
    # Not Celery's default (4): with the default queues a child may run a
    # workflow for minutes, and messages reserved behind it would wait (and,
    # past CELERY_VISIBILITY_TIMEOUT, be handed to another worker as well).
    --prefetch-multiplier "${CELERY_PREFETCH_MULTIPLIER:-$default_prefetch}"
    # Celery's default profile, stated because the above relies on it: a
    # message goes to an idle child only, never behind a busy one.
    -O fair
    # Not the defaults: gossip and mingle are chatter between workers at
    # start and every second that nothing here uses (Flower works from
    # events and heartbeats); with many workers it is broker load for nothing.
    --without-gossip
    --without-mingle
    --loglevel "${CELERY_LOGLEVEL:-info}"
)
exec "${PYTHON:-python}" -m celery --app celery_worker worker "${args[@]}"

#!/usr/bin/env bash
# celery beat: sends the periodic tasks of this app to their queues (today:
# execlog.maintain_partitions, hourly, on `logs`). Run one beat per
# deployment; a second one only makes the idempotent task run twice.
#
#   WEBAPP_VAR_DIR   ./var    the schedule file (when each task last ran)
#                             is kept there, so a restart catches up on a
#                             missed run
#   CELERY_LOGLEVEL  info
#   PYTHON           python   interpreter of the environment webapp is in
set -euo pipefail
cd "$(dirname "$0")/.."

var_dir=${WEBAPP_VAR_DIR:-var}
mkdir -p "$var_dir"
exec "${PYTHON:-python}" -m celery --app celery_worker beat \
    --schedule "$var_dir/celerybeat-schedule" \
    --loglevel "${CELERY_LOGLEVEL:-info}"

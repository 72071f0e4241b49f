#!/usr/bin/env bash
# Flower, the Celery dashboard, on FLOWER_PORT (5555) behind HTTP basic auth.
# Flower is an optional extra: pip install '.[monitoring]'.
#
#   FLOWER_BASIC_AUTH  (required)  user:password[,user2:password2]; Flower
#                                  reads it from the environment itself, so
#                                  the password is not on the command line
#   FLOWER_PORT        5555
#   PYTHON             python      interpreter of the environment webapp is in
#
# Other FLOWER_* variables reach Flower as its options (its documentation).
# The app reads the broker from CELERY_BROKER_URL (or REDIS_URL).
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-python}

if ! "$python" -c "import flower" 2>/dev/null; then
    echo "start_flower.sh: Flower is not installed for $python;" \
        "install the monitoring extra: pip install '.[monitoring]'" >&2
    exit 1
fi
if [ -z "${FLOWER_BASIC_AUTH:-}" ]; then
    # Flower can revoke tasks and shut workers down: it never runs open.
    echo "start_flower.sh: set FLOWER_BASIC_AUTH=user:password" >&2
    exit 1
fi
exec "$python" -m celery --app celery_worker flower --port="${FLOWER_PORT:-5555}"

"""The Celery worker entry point: ``celery -A celery_worker worker``.

The worker's tasks run inside this Flask app's context (``FlaskTask``).
"""

import os

from webapp import create_app
from webapp.worker_metrics import check_environment

os.environ.setdefault("DB_APPLICATION_NAME", "webapp-worker")
check_environment(os.environ)  # CELERY_METRICS_BIND needs PROMETHEUS_MULTIPROC_DIR

flask_app = create_app()
celery = flask_app.extensions["celery"]

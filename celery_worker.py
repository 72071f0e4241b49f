"""The Celery worker entry point: ``celery -A celery_worker worker``.

The worker's tasks run inside this Flask app's context (``FlaskTask``).
"""

import os

from webapp import create_app
from webapp.celery_app import prepare_worker_metrics

os.environ.setdefault("DB_APPLICATION_NAME", "webapp-worker")
prepare_worker_metrics(os.environ)  # before create_app() imports prometheus_client

flask_app = create_app()
celery = flask_app.extensions["celery"]

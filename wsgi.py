"""The WSGI entry point: ``gunicorn -c docker/gunicorn.conf.py wsgi:app``."""

import os

from webapp import create_app

os.environ.setdefault("DB_APPLICATION_NAME", "webapp-web")

app = create_app()

"""The pages: a person's view of executions and their logs.

``GET /ui/`` lists recent executions; ``GET /ui/executions/<id>`` shows one,
its steps and its log, live while it runs. Server-rendered HTML (Jinja
templates in ``templates/``) and a little plain JavaScript and CSS served
from ``static/``: no build step, nothing loaded from elsewhere. The pages
read what the API serves (the event stream, the downloads, retry); in token
mode a person signs in once (:mod:`webapp.api.session`).
"""

from __future__ import annotations

from flask import Flask

from .views import bp


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)

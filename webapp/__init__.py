"""A plugin-based Flask backend for multi-step workflows with a buffered,
lossless execution log. ``create_app()`` builds it."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flask import Flask

from .config import config_from_env, connect_args
from .secret_key import check as check_key
from .secret_key import load_or_create

__all__ = ["create_app"]


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """The application factory.

    Settings come from the environment (:mod:`webapp.config`); ``config``
    overrides them key by key.
    """
    app = Flask(__name__)
    app.config.from_mapping(config_from_env(os.environ))
    if config:
        app.config.from_mapping(config)
    _prepare_paths(app)
    _secret_key(app)
    _configure_database_connections(app)

    from . import cli, models  # noqa: F401 - models registers the tables
    from .api import init_app as init_api
    from .celery_app import celery_init_app
    from .execlog import tasks  # noqa: F401 - registers the batch task
    from .extensions import db, execlog, migrate
    from .ui import init_app as init_ui
    from .workflow import init_app as init_workflows

    db.init_app(app)
    migrate.init_app(app, db)
    celery_init_app(app)
    execlog.init_app(app)
    init_workflows(app)
    init_api(app)
    init_ui(app)
    cli.init_app(app)
    return app


def _prepare_paths(app: Flask) -> None:
    """Create the local directory the embedded defaults write under."""
    Path(app.config["VAR_DIR"]).mkdir(parents=True, exist_ok=True)


def _secret_key(app: Flask) -> None:
    """One signing key for every process of the host (see :mod:`.secret_key`)."""
    if app.config.get("SECRET_KEY"):
        check_key(app.config["SECRET_KEY"])
    else:
        app.config["SECRET_KEY"] = load_or_create(Path(app.config["VAR_DIR"]))
    for key in app.config.get("SECRET_KEY_FALLBACKS") or ():
        check_key(key, "SECRET_KEY_FALLBACKS")


def _configure_database_connections(app: Flask) -> None:
    """Give PostgreSQL connections their name (``DB_APPLICATION_NAME``) and
    timeouts (:func:`~.config.connect_args`); arguments set in
    ``SQLALCHEMY_ENGINE_OPTIONS`` win."""
    url = app.config["SQLALCHEMY_DATABASE_URI"]
    if url.startswith("postgresql"):
        options = dict(app.config.get("SQLALCHEMY_ENGINE_OPTIONS") or {})
        options["connect_args"] = {**connect_args(url, app.config, app.config["DB_APPLICATION_NAME"]),
                                   **(options.get("connect_args") or {})}
        app.config["SQLALCHEMY_ENGINE_OPTIONS"] = options

"""The HTTP API: blueprints and their schemas."""

from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    from . import errors
    from .health import bp as health_bp
    from .logs import bp as logs_bp

    errors.init_app(app)
    app.register_blueprint(health_bp)
    app.register_blueprint(logs_bp)

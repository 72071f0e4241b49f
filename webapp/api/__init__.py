"""The HTTP API: blueprints and their schemas."""

from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    from .health import bp as health_bp

    app.register_blueprint(health_bp)

"""Probes: ``GET /healthz`` (the process answers) and ``GET /readyz`` (the
database, the broker and a Celery worker answer).

``/readyz`` answers 200 with what it checked, or 503 (a problem document
with the same ``checks``) when something is down. It also reports the
``logs`` queue length and this process's logger counters. The worker check
is a Celery ``ping`` (first reply wins, ``WORKER_PING_TIMEOUT`` at most); the
file-system broker of the embedded default has no remote control, so there
the worker is reported as not checked, and does not count against
readiness.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from flask import current_app
from flask.typing import ResponseReturnValue
from marshmallow import Schema, fields

from ..execlog.monitoring import queue_length, status
from ..extensions import db
from .blueprint import Blueprint
from .errors import problem

bp = Blueprint("health", __name__, description="Probes for load balancers and orchestrators.")

WORKER_PING_TIMEOUT = 1.0


class HealthOut(Schema):
    status = fields.String(metadata={"example": "ok"})


class ReadyOut(Schema):
    status = fields.String(metadata={"example": "ready"})
    checks = fields.Dict(metadata={"description": "database, broker (with the logs queue length), worker"})
    logger = fields.Dict(metadata={"description": "This process's logger counters and spool size."})


@bp.get("/healthz")
@bp.response(200, HealthOut)
@bp.doc(security=[])
def healthz() -> ResponseReturnValue:
    """The process is alive (no dependency is checked)."""
    return {"status": "ok"}


@bp.get("/readyz")
@bp.requires("read")
@bp.response(200, ReadyOut)
@bp.problem(503, "Not ready: `checks` says what is down.")
def readyz() -> ResponseReturnValue:
    """The database, the broker and a worker answer."""
    celery = current_app.extensions["celery"]
    logger = current_app.extensions["execlog"]
    checks = {
        "database": _check(_ping_database),
        "broker": _check(lambda: {"queue_length": queue_length(celery, logger.settings.queue)}),
        "worker": _check_worker(celery),
    }
    body = {"checks": checks, "logger": status(logger, None)}
    down = [name for name, check in checks.items() if check["ok"] is False]
    if down:
        detail = "; ".join(f"{name}: {checks[name]['error']}" for name in down)
        return problem(503, "Not ready", detail, slug="not-ready", **body)
    return {"status": "ready", **body}


def _check(probe: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    started = time.perf_counter()
    try:
        found = probe()
    except Exception as exc:  # noqa: BLE001 - a probe reports, never raises
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}"[:300]}
    return {"ok": True, "latency_ms": round((time.perf_counter() - started) * 1000, 1), **found}


def _ping_database() -> dict[str, Any]:
    db.session.execute(sa.text("SELECT 1"))
    return {}


def _check_worker(celery: Any) -> dict[str, Any]:
    if not celery.conf.worker_enable_remote_control:
        return {"ok": None, "detail": "not checked: the broker has no remote control"}

    def ping() -> dict[str, Any]:
        replies = celery.control.ping(timeout=WORKER_PING_TIMEOUT, limit=1)
        if not replies:
            raise RuntimeError(f"no worker answered a ping within {WORKER_PING_TIMEOUT} s")
        return {"workers": sorted(name for reply in replies for name in reply)}

    return _check(ping)

"""Probes: ``GET /healthz`` (the process answers) and ``GET /readyz`` (the
database, the broker and a Celery worker answer).

``/readyz`` answers 200, or 503 (a problem document) when something is
down. Each check costs a query, a broker round trip and a ping of up to a
second, so a process checks at most every ``API_READY_CACHE_SECONDS`` (5)
and answers from that report in between. To a caller with the ``read``
scope (any caller in open mode) it also says what it checked (``checks``,
with the errors of what is down), when, the ``logs`` queue length (and, on
Redis, whether the broker keeps its queues on disk: a ``warning`` when it
keeps nothing, since queued batches would not survive its restart) and this
process's logger counters; anyone else gets the verdict only. The worker check
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
from flask import Flask, current_app
from flask.typing import ResponseReturnValue
from marshmallow import Schema, fields

from ..execlog.monitoring import broker_persistence, queue_length, status
from ..execlog.rabbitmq import declare_all, is_rabbitmq
from ..extensions import db
from ..models import utcnow
from .auth import request_identity
from .blueprint import Blueprint
from .errors import problem
from .refreshed import Refreshed
from .settings import EXTENSION_KEY as SETTINGS_KEY

bp = Blueprint("health", __name__, description="Probes for load balancers and orchestrators.")

WORKER_PING_TIMEOUT = 1.0
EXTENSION_KEY = "api_readiness"
#: How long the first callers wait for the first report (each check is
#: bounded: DB_CONNECT_TIMEOUT, the broker's socket timeouts, the ping's).
READY_FIRST_WAIT = 30.0


class HealthOut(Schema):
    status = fields.String(metadata={"example": "ok"})


class ReadyOut(Schema):
    status = fields.String(metadata={"example": "ready"})
    checks = fields.Dict(metadata={"description": "database, broker (with the logs queue length), worker "
                                                  "(with the `read` scope only)"})
    logger = fields.Dict(metadata={"description": "This process's logger counters and spool size "
                                                  "(with the `read` scope only)."})
    checked_at = fields.String(metadata={"description": "When the checks ran (with the `read` scope only)."})


#: A probe's security in the OpenAPI document: a token is optional (the
#: probes are open unless ``API_PROTECT_PROBES=1``, and then need ``read``).
PROBE_SECURITY = [{}, {"bearerAuth": []}]


@bp.get("/healthz")
@bp.response(200, HealthOut)
@bp.doc(security=[])
def healthz() -> ResponseReturnValue:
    """The process is alive (no dependency is checked)."""
    return {"status": "ok"}


@bp.get("/readyz")
@bp.requires("read")
@bp.doc(security=PROBE_SECURITY)
@bp.response(200, ReadyOut)
@bp.problem(503, "Not ready: `checks` says what is down (to a caller with the `read` scope).")
def readyz() -> ResponseReturnValue:
    """The database, the broker and a worker answer.

    Checked at most every ``API_READY_CACHE_SECONDS`` per process; a caller
    without a token (or without the ``read`` scope) gets the verdict only."""
    report = current_app.extensions[EXTENSION_KEY].get()
    if report is None:
        return problem(503, "Not ready", slug="not-ready")
    identity = request_identity()
    if identity is None or not identity.allows("read"):
        return {"status": "ready"} if report["ready"] else problem(503, "Not ready", slug="not-ready")
    body = {key: report[key] for key in ("checks", "logger", "checked_at")}
    if not report["ready"]:
        return problem(503, "Not ready", report["detail"], slug="not-ready", **body)
    return {"status": "ready", **body}


def init_app(app: Flask) -> None:
    """The readiness report of this process, read again at most every
    ``API_READY_CACHE_SECONDS`` by one request at a time (:mod:`.refreshed`)."""
    app.extensions[EXTENSION_KEY] = Refreshed(_readiness, app.extensions[SETTINGS_KEY].ready_cache_seconds,
                                              first_wait=READY_FIRST_WAIT, what="the readiness checks")


def _readiness() -> dict[str, Any]:
    celery = current_app.extensions["celery"]
    logger = current_app.extensions["execlog"]
    checks = {
        "database": _check(_ping_database),
        "broker": _check(lambda: _broker(celery, logger.settings.queue)),
        "worker": _check_worker(celery),
        "spool": _check_spool(logger),
    }
    down = [name for name, check in checks.items() if check["ok"] is False]
    return {"ready": not down, "detail": "; ".join(f"{name}: {checks[name]['error']}" for name in down),
            "checks": checks, "logger": status(logger, None), "checked_at": utcnow().isoformat()}


def _broker(celery: Any, queue: str) -> dict[str, Any]:
    """The logs queue's length, and (on Redis) whether the broker keeps its
    queues on disk: a warning, not a failure, when it keeps nothing. On
    RabbitMQ the app's queues are declared first: one that exists with other
    arguments (left classic by an earlier version) fails the check with the
    fix, as it fails every publish."""
    if is_rabbitmq(celery):
        declare_all(celery)
    return {"queue_length": queue_length(celery, queue), **(broker_persistence(celery) or {})}


def _check_spool(logger: Any) -> dict[str, Any]:
    """Not ready while the spool is at its cap: records are being dropped."""
    if not logger.spool_full:
        return {"ok": True}
    return {"ok": False, "error": "the log spool is at EXECLOG_SPOOL_MAX_BYTES: records are dropped"}


#: How much of a failed check's error /readyz shows (enough for the fix that
#: a queue mismatch names).
ERROR_CHARS = 1000


def _check(probe: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    started = time.perf_counter()
    try:
        found = probe()
    except Exception as exc:  # noqa: BLE001 - a probe reports, never raises
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}"[:ERROR_CHARS]}
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

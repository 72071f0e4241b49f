"""``GET /metrics``: Prometheus text format, and the HTTP request metrics.

Requests are counted by method, route (``/api/v1/executions/<uuid:execution_id>``,
never the raw path, so ids do not make new series; the route too for a
method it does not serve, a 405; ``<unmatched>`` for a path no route has)
and status. Every label is bounded whatever a client
sends: a method other than the standard ones is counted as ``other`` (thirty
made-up methods from an anonymous client made 540 series before). Under
gunicorn the values of every worker process are read from
``PROMETHEUS_MULTIPROC_DIR`` (:mod:`webapp.metrics`); the length of the
Celery queues is read from the broker at each scrape, and is the same
whichever web process answers.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

from flask import Flask, Response, current_app, g, request
from flask.typing import ResponseReturnValue
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector
from werkzeug.exceptions import HTTPException, MethodNotAllowed

from .. import metrics
from ..names import LOGS_QUEUE, WORKFLOWS_QUEUE
from ..execlog.monitoring import queue_length
from .blueprint import Blueprint
from .health import PROBE_SECURITY

bp = Blueprint("metrics", __name__, description="Prometheus metrics.")
UNMATCHED = "<unmatched>"
#: Methods counted by name; any other is ``other``.
COUNTED_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


@bp.get("/metrics")
@bp.requires("read")
@bp.doc(security=PROBE_SECURITY)
@bp.response(200, {"type": "string"}, content_type="text/plain; version=0.0.4",
             description="Prometheus text format: execlog_*, http_*, celery_queue_messages.")
def prometheus_metrics() -> ResponseReturnValue:
    """Metrics of every process of this server, and the broker's queues."""
    queues = CollectorRegistry(auto_describe=True)
    queues.register(QueueCollector(current_app.extensions["celery"]))
    body = generate_latest(_process_registry()) + generate_latest(queues)
    return Response(body, content_type=CONTENT_TYPE_LATEST)


def _process_registry() -> CollectorRegistry:
    path = metrics.multiprocess_dir()
    if path is None:
        return REGISTRY
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(path))
    return registry


class QueueCollector:
    """Messages waiting in the Celery queues, read from the broker."""

    def __init__(self, celery: Any) -> None:
        self.celery = celery

    def describe(self) -> list[Any]:
        return []

    def collect(self) -> Iterator[Any]:
        waiting = GaugeMetricFamily("celery_queue_messages", "Messages waiting in a Celery queue",
                                    labels=["queue"])
        up = GaugeMetricFamily("celery_broker_up", "1 if the broker answered this scrape")
        try:
            for queue in (LOGS_QUEUE, WORKFLOWS_QUEUE):
                waiting.add_metric([queue], queue_length(self.celery, queue))
        except Exception:  # noqa: BLE001 - a scrape reports the broker down, never fails
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield waiting


def _start_timer() -> None:
    g.request_started = time.perf_counter()


def _count_request(response: Response) -> Response:
    started = g.pop("request_started", None)
    if started is not None:
        endpoint = request.url_rule.rule if request.url_rule is not None else _route_of_refused_method()
        method = request.method if request.method in COUNTED_METHODS else "other"
        metrics.observe_request(method, endpoint, response.status_code, time.perf_counter() - started)
    return response


def _route_of_refused_method() -> str:
    """The route of a path served for other methods (a 405), else
    :data:`UNMATCHED`: a route either way, never the raw path."""
    error = request.routing_exception
    if not isinstance(error, MethodNotAllowed) or not error.valid_methods:
        return UNMATCHED
    adapter = current_app.url_map.bind_to_environ(request.environ)
    try:
        rule, _ = adapter.match(method=error.valid_methods[0], return_rule=True)
    except HTTPException:
        return UNMATCHED
    return rule.rule


def init_app(app: Flask) -> None:
    app.before_request_funcs.setdefault(None, []).insert(0, _start_timer)
    app.after_request(_count_request)

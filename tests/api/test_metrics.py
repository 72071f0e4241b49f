"""GET /metrics in Prometheus text format: the logger's pipeline, HTTP
requests by route, the queues; and a Celery worker's own metrics port."""

from __future__ import annotations

import urllib.request
import uuid

import pytest
from prometheus_client.parser import text_string_to_metric_families

from webapp.api.metrics import UNMATCHED
from webapp.config import celery_config

from ..conftest import service_env
from ..support.processes import free_port, start_celery_worker
from ..support.waiting import wait_for


def samples(text: str) -> dict[tuple[str, frozenset], float]:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(found: dict, name: str, **labels: str) -> float:
    return found.get((name, frozenset(labels.items())), 0.0)


@pytest.mark.usefixtures("celery_worker")
def test_metrics_count_the_pipeline_requests_by_route_and_the_queues(app, client, trace_id):
    before = samples(client.get("/metrics").get_data(as_text=True))
    logger = app.extensions["execlog"]
    for i in range(120):
        logger.info(trace_id, "agent", f"record {i}")
    assert logger.flush(timeout=10)
    for _ in range(3):
        client.get(f"/api/v1/executions/{uuid.uuid4()}")

    response = client.get("/metrics")
    assert response.status_code == 200 and response.mimetype == "text/plain"
    after = samples(response.get_data(as_text=True))

    def grew(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert grew("execlog_records_total", outcome="published") == 120
    assert grew("execlog_batches_total") >= 1
    assert grew("execlog_batch_records_sum") == 120
    assert grew("execlog_publish_seconds_count") == grew("execlog_batches_total")
    assert ("execlog_buffered_records", frozenset()) in after
    route = "/api/v1/executions/<uuid:execution_id>"
    assert grew("http_requests_total", method="GET", endpoint=route, status="404") == 3
    assert grew("http_request_duration_seconds_count", method="GET", endpoint=route) == 3
    assert not any(str(uuid_part) in str(key) for key in after for uuid_part in [trace_id])
    assert value(after, "celery_broker_up") == 1
    assert value(after, "celery_queue_messages", queue="logs") >= 0
    assert ("celery_queue_messages", frozenset({("queue", "workflows")})) in after


def test_metrics_report_a_broker_that_is_down(app_factory, tmp_path):
    dead = f"redis://127.0.0.1:{free_port()}/0"
    client = app_factory(CELERY=celery_config(dead, tmp_path)).test_client()
    found = samples(client.get("/metrics").get_data(as_text=True))
    assert value(found, "celery_broker_up") == 0
    assert not any(name == "celery_queue_messages" for name, _ in found)


def test_a_worker_serves_the_metrics_of_its_children(
    app_factory, database_url, spare_broker, tmp_path, trace_id
):
    port = free_port()
    env = service_env(database_url, spare_broker, tmp_path / "worker-var",
                      CELERY_METRICS_BIND=f"127.0.0.1:{port}",
                      PROMETHEUS_MULTIPROC_DIR=str(tmp_path / "worker-metrics"))
    worker = start_celery_worker(env, tmp_path / "worker.log", name=f"metrics-{uuid.uuid4().hex[:6]}")
    try:
        app = app_factory(CELERY=celery_config(spare_broker, tmp_path))
        logger = app.extensions["execlog"]
        for i in range(75):
            logger.info(trace_id, "agent", f"record {i}")
        assert logger.flush(timeout=10)

        def inserted() -> float:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
                found = samples(answer.read().decode())
            return value(found, "execlog_worker_records_total", result="inserted")

        assert wait_for(lambda: inserted() >= 75, timeout=60, interval=0.2)
        assert inserted() == 75
    finally:
        worker.stop()


def test_what_anonymous_clients_send_cannot_grow_the_metrics(app_factory):
    """Thirty made-up methods from a client without a token made 540 series;
    every label is bounded: unknown methods are ``other``, paths are routes."""
    client = app_factory(API_AUTH="token", API_TOKENS=["metrics-test"]).test_client()

    def series() -> set:
        return {key for key in samples(client.get("/metrics").get_data(as_text=True))
                if key[0].startswith("http_")}

    for method in ("GET", "FOO"):  # the series any client makes first: counted once, then only grow
        client.open("/api/v1/executions", method=method)
        client.open(f"/api/v1/executions/{uuid.uuid4()}/x{uuid.uuid4()}", method=method)
    before = series()
    for i in range(30):
        client.open("/api/v1/executions", method=f"M{i}X{uuid.uuid4().hex[:6].upper()}")
        client.open(f"/api/v1/executions/{uuid.uuid4()}/x{uuid.uuid4()}", method=f"ZZ{i}")
        client.get(f"/api/v1/{uuid.uuid4()}")
    after = series()
    assert after - before <= {key for key in after if ("endpoint", "/metrics") in key[1]}
    methods = {dict(labels)["method"] for _, labels in after}
    assert methods <= {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "other"}
    assert "other" in methods


def test_a_method_a_route_does_not_serve_is_counted_under_that_route(app_factory):
    client = app_factory(API_AUTH="token", API_TOKENS=["metrics-test"]).test_client()
    route = "/api/v1/executions/<uuid:execution_id>/logs"

    def refused(endpoint: str) -> float:
        found = samples(client.get("/metrics").get_data(as_text=True))
        return value(found, "http_requests_total", method="DELETE", endpoint=endpoint, status="405")

    before = refused(route), refused(UNMATCHED)
    answer = client.delete(f"/api/v1/executions/{uuid.uuid4()}/logs",
                           headers={"Authorization": "Bearer metrics-test"})
    assert answer.status_code == 405
    assert (refused(route), refused(UNMATCHED)) == (before[0] + 1, before[1])


def test_a_worker_asked_for_metrics_without_their_directory_refuses_to_start(
    database_url, spare_broker, tmp_path
):
    from ..support.processes import celery_worker

    env = service_env(database_url, spare_broker, tmp_path / "worker-var", CELERY_METRICS_BIND="127.0.0.1:1")
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    worker = celery_worker(env, tmp_path / "worker.log", name=f"nometrics-{uuid.uuid4().hex[:6]}").start()
    assert worker.process.wait(timeout=60) != 0
    assert "CELERY_METRICS_BIND needs PROMETHEUS_MULTIPROC_DIR" in worker.output()

"""Probes (/healthz, /readyz), runners, the OpenAPI document and its page,
and the one error shape for errors the views do not raise themselves."""

from __future__ import annotations

import pytest

from webapp.config import celery_config

from ..support.processes import free_port
from ..support.waiting import wait_for
from .test_executions import assert_problem


@pytest.mark.usefixtures("celery_worker")
def test_ready_when_database_broker_and_a_worker_answer(client):
    response = client.get("/readyz")
    assert response.status_code == 200, response.json
    body = response.json
    assert body["status"] == "ready"
    checks = body["checks"]
    assert checks["database"]["ok"] and checks["broker"]["ok"] and checks["worker"]["ok"]
    assert isinstance(checks["broker"]["queue_length"], int)
    assert any(name.startswith("tests-") for name in checks["worker"]["workers"])
    assert {"published", "spooled", "dropped", "buffered", "spool_segments"} <= set(body["logger"])


def test_not_ready_when_the_broker_is_down(app_factory, tmp_path):
    dead_broker = f"redis://127.0.0.1:{free_port()}/0"
    client = app_factory(CELERY=celery_config(dead_broker, tmp_path)).test_client()
    body = assert_problem(client.get("/readyz"), 503, "urn:webapp:problem:not-ready", "broker: ")
    assert body["checks"]["database"]["ok"] is True
    assert body["checks"]["broker"]["ok"] is False and "Error" in body["checks"]["broker"]["error"]
    assert body["checks"]["worker"]["ok"] is False


@pytest.mark.usefixtures("celery_worker")
def test_an_anonymous_caller_gets_only_the_verdict(app_factory, tmp_path):
    """Error texts (hosts, ports, driver messages) are for operators: a caller
    without a token with the read scope gets the verdict and nothing else."""
    up = app_factory(API_AUTH="token", API_TOKENS=["ops:read", "feeder:ingest"]).test_client()
    assert up.get("/readyz").json == {"status": "ready"}
    assert up.get("/readyz", headers={"Authorization": "Bearer feeder"}).json == {"status": "ready"}
    detailed = up.get("/readyz", headers={"Authorization": "Bearer ops"}).json
    assert detailed["status"] == "ready" and detailed["checks"]["database"]["ok"] and detailed["checked_at"]

    dead_broker = f"redis://127.0.0.1:{free_port()}/0"
    down = app_factory(API_AUTH="token", API_TOKENS=["ops:read"], CELERY=celery_config(dead_broker, tmp_path))
    verdict = down.test_client().get("/readyz")
    assert verdict.status_code == 503 and verdict.content_type == "application/problem+json"
    assert verdict.json == {"type": "urn:webapp:problem:not-ready", "title": "Not ready", "status": 503}
    body = assert_problem(down.test_client().get("/readyz", headers={"Authorization": "Bearer ops"}), 503,
                          "broker: ")
    assert body["checks"]["broker"]["ok"] is False


def test_readiness_is_checked_at_most_every_few_seconds(app_factory, tmp_path):
    """Each check queries the database, the broker and the workers (a ping
    of up to a second): repeated calls within API_READY_CACHE_SECONDS answer
    from one report."""
    cached = app_factory(API_READY_CACHE_SECONDS=3600.0).test_client()
    first, second = cached.get("/readyz").json, cached.get("/readyz").json
    assert first["checked_at"] == second["checked_at"]
    fresh = app_factory(API_READY_CACHE_SECONDS=0.0).test_client()
    first = fresh.get("/readyz").json["checked_at"]
    assert wait_for(lambda: fresh.get("/readyz").json["checked_at"] != first, timeout=10)


def test_on_the_file_system_broker_the_worker_is_not_checked(app_factory, tmp_path):
    client = app_factory(CELERY=celery_config("filesystem://", tmp_path)).test_client()
    body = client.get("/readyz").json
    assert body["status"] == "ready" and body["checks"]["worker"]["ok"] is None
    assert "not checked" in body["checks"]["worker"]["detail"]


def test_runners_lists_plugins_in_the_one_list_shape(client):
    body = client.get("/api/v1/runners").json
    assert body["next"] is None
    by_name = {(item["kind"], item["name"]): item for item in body["items"]}
    roadmap = by_name[("workflow", "roadmap")]
    assert (roadmap["status"], roadmap["distribution"]) == ("ok", "webapp-roadmap")
    assert [step["name"] for step in roadmap["steps"]] == ["intent", "curriculum", "validate", "schedule"]


def test_a_broken_plugin_is_listed_with_its_reason(app_factory):
    client = app_factory(WORKFLOWS={"needs-ghost": ["ghost"]}).test_client()
    items = {item["name"]: item for item in client.get("/api/v1/runners").json["items"]}
    assert items["needs-ghost"]["status"] == "broken"
    assert items["needs-ghost"]["reason"] == "step 'ghost': runner 'ghost' is not installed"


def test_the_openapi_document_describes_every_endpoint_and_has_a_page(client):
    spec = client.get("/api/v1/openapi.json").json
    assert spec["openapi"].startswith("3.")
    assert set(spec["paths"]) == {
        "/healthz", "/readyz", "/metrics", "/api/v1/executions", "/api/v1/executions/{execution_id}",
        "/api/v1/executions/{execution_id}/retry", "/api/v1/executions/{execution_id}/logs",
        "/api/v1/executions/{execution_id}/events", "/api/v1/logs", "/api/v1/runners", "/api/v1/tokens",
        "/api/v1/tokens/{name}", "/api/v1/executions/{execution_id}/logs.ndjson",
        "/api/v1/executions/{execution_id}/logs.txt"}
    start = spec["paths"]["/api/v1/executions"]["post"]
    assert {"202", "200", "400", "404", "409", "422", "503"} <= set(start["responses"])
    assert any(p["name"] == "Idempotency-Key" and p["in"] == "header" for p in start["parameters"])
    listing = {p["name"] for p in spec["paths"]["/api/v1/executions"]["get"]["parameters"]}
    assert listing == {"status", "workflow", "created_after", "created_before", "cursor", "limit"}
    events = spec["paths"]["/api/v1/executions/{execution_id}/events"]["get"]["responses"]["200"]
    assert "text/event-stream" in events["content"]
    assert spec["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
    assert spec["paths"]["/healthz"]["get"]["security"] == []
    for probe in ("/readyz", "/metrics"):  # a token optional: open unless API_PROTECT_PROBES=1
        assert spec["paths"][probe]["get"]["security"] == [{}, {"bearerAuth": []}]
        assert spec["paths"][probe]["get"]["x-required-scope"] == "read"

    page = client.get("/api/v1/docs")
    assert page.status_code == 200 and page.mimetype == "text/html"
    html = page.get_data(as_text=True)
    assert "/api/v1/openapi.json" in html
    assert "http" not in html.replace("http-equiv", ""), "the page loads nothing from elsewhere"
    assert '<script src="/api/v1/docs/static/redoc.standalone.js">' in html
    assert page.headers["Content-Security-Policy"].startswith("default-src 'self';")
    script = client.get("/api/v1/docs/static/redoc.standalone.js")
    assert script.status_code == 200 and script.mimetype in ("text/javascript", "application/javascript")
    assert b"Redoc" in script.get_data()
    script.close()


def test_an_unexpected_error_is_a_500_problem_without_a_trace(app_factory):
    app = app_factory(TESTING=False, PROPAGATE_EXCEPTIONS=False)

    @app.get("/api/v1/boom")
    def boom():
        raise RuntimeError("secret internals")

    body = assert_problem(app.test_client().get("/api/v1/boom"), 500, "Internal Server Error")
    assert "secret" not in str(body) and "Traceback" not in str(body)
    assert body["detail"] == "The server failed to answer; the error is in its log."


def test_an_unknown_path_is_a_404_problem(client):
    body = assert_problem(client.get("/api/v2/executions"), 404, "Not Found")
    assert body["type"] == "about:blank"


@pytest.mark.parametrize("scheme", ["redis", "rediss"])
def test_a_redis_broker_that_keeps_nothing_on_disk_is_named(app_factory, tmp_path, scheme):
    """Queued batches and jobs do not survive a restart of a Redis without
    appendonly or save points: /readyz and `flask execlog status` say so
    (a warning: the service works), and stop once Redis persists. Over TLS
    (``rediss://``, kombu's own Redis transport) as well."""
    import json

    import redis

    from ..support.processes import redis_server, wait_for_port

    port = free_port()
    server = redis_server(port, tmp_path, tls=scheme == "rediss").start()
    try:
        wait_for_port(port)
        url = f"{scheme}://127.0.0.1:{port}/0" + ("?ssl_cert_reqs=none" if scheme == "rediss" else "")
        app = app_factory(CELERY=celery_config(url, tmp_path), API_READY_CACHE_SECONDS=0)

        def reported() -> tuple[dict, dict]:
            body = app.test_client().get("/readyz").json
            status = app.test_cli_runner().invoke(args=["execlog", "status", "--json"])
            return body["checks"]["broker"], json.loads(status.output)

        broker, status = reported()
        assert broker["ok"] is True and broker["persistent"] is False
        assert "keeps nothing on disk" in broker["warning"] and "appendonly yes" in broker["warning"]
        assert status["broker_persistent"] is False and "keeps nothing on disk" in status["broker_warning"]

        redis.Redis.from_url(url).config_set("appendonly", "yes")
        broker, status = reported()
        assert broker["persistent"] is True and "warning" not in broker
        assert status["broker_persistent"] is True and "broker_warning" not in status
    finally:
        server.stop(timeout=10)

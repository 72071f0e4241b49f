"""Token scopes: read, start, ingest, admin. Each operation with and without
its scope; scopes from API_TOKENS (``token:scope+scope``), from ``flask
tokens create --scope`` and from ``/api/v1/tokens``; the OpenAPI document
names each operation's scope."""

from __future__ import annotations

import uuid

import pytest
import sqlalchemy as sa

from webapp.api import tokens
from webapp.config import celery_config

from .test_auth import bearer
from .test_executions import assert_problem

SCOPES = ("read", "start", "ingest", "admin")
TOKEN_OF = {scope: f"{scope}-{uuid.uuid4().hex}" for scope in SCOPES}
ALL = f"all-{uuid.uuid4().hex}"
LOG = {"records": [{"trace_id": "scopes", "level": "info", "category": "api", "message": "m"}]}


@pytest.fixture
def scoped(app_factory, spare_broker, tmp_path):
    """Token mode on a broker no worker reads; a token per scope, one with all."""
    app = app_factory(API_AUTH="token", CELERY=celery_config(spare_broker, tmp_path),
                      API_TOKENS=[f"{token}:{scope}" for scope, token in TOKEN_OF.items()] + [ALL])
    yield app
    app.extensions["execlog"].close(timeout=10)


def operations(execution_id: str) -> list[tuple[str, str, str, dict]]:
    """(scope, method, path, request arguments) of every operation."""
    missing = uuid.uuid4()
    return [
        ("read", "get", "/api/v1/executions", {}),
        ("read", "get", f"/api/v1/executions/{execution_id}", {}),
        ("read", "get", f"/api/v1/executions/{execution_id}/logs", {}),
        ("read", "get", f"/api/v1/executions/{execution_id}/logs.ndjson", {}),
        ("read", "get", f"/api/v1/executions/{execution_id}/logs.txt", {}),
        ("read", "get", f"/api/v1/executions/{missing}/events", {}),
        ("read", "get", "/api/v1/runners", {}),
        ("start", "post", "/api/v1/executions", {"json": {"workflow": "synthetic-emit", "input": {}}}),
        ("start", "post", f"/api/v1/executions/{execution_id}/retry", {}),
        ("ingest", "post", "/api/v1/logs", {"json": LOG}),
        ("admin", "get", "/api/v1/tokens", {}),
        ("admin", "post", "/api/v1/tokens", {"json": {"name": f"made-{uuid.uuid4().hex[:8]}"}}),
        ("admin", "delete", f"/api/v1/tokens/nobody-{uuid.uuid4().hex[:8]}", {}),
    ]


@pytest.mark.parametrize("held", [*SCOPES, "all"])
def test_each_operation_needs_its_scope(scoped, execution_id, held):
    client = scoped.test_client()
    token = ALL if held == "all" else TOKEN_OF[held]
    for scope, method, path, kwargs in operations(execution_id):
        response = getattr(client, method)(path, headers=bearer(token), **kwargs)
        if held in ("all", scope):
            assert response.status_code not in (401, 403), (method, path, response.get_data(as_text=True))
            assert response.status_code < 500, (method, path, response.get_data(as_text=True))
            continue
        body = assert_problem(response, 403, "urn:webapp:problem:missing-scope",
                              f"this operation needs the scope '{scope}'", f"has: {held}")
        assert body["required_scope"] == scope
        assert response.headers["WWW-Authenticate"] == (
            f'Bearer realm="webapp", error="insufficient_scope", scope="{scope}"')


def test_protected_probes_need_read(app_factory):
    client = app_factory(API_AUTH="token", API_PROTECT_PROBES=True,
                         API_TOKENS=[f"{TOKEN_OF['read']}:read", f"{TOKEN_OF['start']}:start"]).test_client()
    for path in ("/metrics", "/readyz"):
        assert_problem(client.get(path, headers=bearer(TOKEN_OF["start"])), 403, "needs the scope 'read'")
        assert client.get(path, headers=bearer(TOKEN_OF["read"])).status_code in (200, 503)


def test_a_view_that_declares_no_scope_needs_admin(app_factory):
    app = app_factory(API_AUTH="token", API_TOKENS=[f"{TOKEN_OF['read']}:read", f"{TOKEN_OF['admin']}:admin"])

    @app.get("/api/v1/undeclared")
    def undeclared():
        return {"ok": True}

    client = app.test_client()
    assert_problem(client.get("/api/v1/undeclared", headers=bearer(TOKEN_OF["read"])), 403,
                   "needs the scope 'admin'")
    assert client.get("/api/v1/undeclared", headers=bearer(TOKEN_OF["admin"])).json == {"ok": True}


@pytest.mark.parametrize(
    "entry, message",
    [
        ("tok:read+bogus", "API_TOKENS entry 1: unknown scope 'bogus' (known: read, start, ingest, admin)"),
        ("tok:", "API_TOKENS entry 1: no scope given"),
    ],
)
def test_an_api_tokens_entry_with_an_unknown_scope_stops_the_app(app_factory, entry, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        app_factory(API_AUTH="token", API_TOKENS=[entry])


def test_api_tokens_scopes_are_written_after_the_token(app_factory):
    client = app_factory(API_AUTH="token", API_TOKENS=["two:read+ingest"]).test_client()
    assert client.get("/api/v1/runners", headers=bearer("two")).status_code == 200
    assert client.post("/api/v1/logs", headers=bearer("two"), json=LOG).status_code == 202
    assert_problem(client.get("/api/v1/runners", headers=bearer("two:read+ingest")), 401, "not valid")
    assert_problem(client.get("/api/v1/tokens", headers=bearer("two")), 403, "needs the scope 'admin'",
                   "API_TOKENS[1] has: ingest, read")


def test_the_cli_makes_tokens_with_the_scopes_asked(app_factory, db_engine, monkeypatch):
    monkeypatch.setattr(tokens, "REFRESH_SECONDS", 0.0)
    app = app_factory(API_AUTH="token")
    client, cli = app.test_client(), app.test_cli_runner()
    names = {flags: f"cli-{uuid.uuid4().hex[:8]}" for flags in ("comma", "repeated", "default")}
    made = {
        "comma": cli.invoke(args=["tokens", "create", names["comma"], "--scope", "read,start"]),
        "repeated": cli.invoke(args=["tokens", "create", names["repeated"], "--scope", "ingest", "--scope",
                                     "read"]),
        "default": cli.invoke(args=["tokens", "create", names["default"]]),
    }
    assert all(result.exit_code == 0 for result in made.values()), {k: r.output for k, r in made.items()}
    with db_engine.connect() as connection:
        stored = dict(connection.execute(sa.text("SELECT name, scopes FROM api_tokens WHERE name IN "
                                                 "(:a, :b, :c)"), dict(zip("abc", names.values()))).all())
    assert stored == {names["comma"]: "read start", names["repeated"]: "read ingest",
                      names["default"]: "read start ingest admin"}
    comma = made["comma"].output.strip()
    assert client.get("/api/v1/runners", headers=bearer(comma)).status_code == 200
    assert_problem(client.post("/api/v1/logs", headers=bearer(comma), json=LOG), 403,
                   "needs the scope 'ingest'", f"{names['comma']} has: read, start")
    listed = cli.invoke(args=["tokens", "list"]).output
    assert "active  read start" in listed.split(names["comma"], 1)[1].splitlines()[0]

    wrong = cli.invoke(args=["tokens", "create", f"cli-{uuid.uuid4().hex[:8]}", "--scope", "read,write"])
    assert wrong.exit_code == 2
    assert "unknown scope 'write' (known: read, start, ingest, admin)" in wrong.output


def test_admin_tokens_manage_tokens_over_http(app_factory, monkeypatch):
    monkeypatch.setattr(tokens, "REFRESH_SECONDS", 0.0)  # before the app: its store reads the table each time
    app = app_factory(API_AUTH="token", API_TOKENS=[f"{TOKEN_OF['admin']}:admin"])
    client, admin = app.test_client(), bearer(TOKEN_OF["admin"])
    name = f"http-{uuid.uuid4().hex[:8]}"

    created = client.post("/api/v1/tokens", headers=admin, json={"name": name, "scopes": ["read"]})
    assert created.status_code == 201, created.get_data(as_text=True)
    body = created.json
    assert (body["name"], body["scopes"], body["revoked_at"]) == (name, ["read"], None)
    made = body["token"]
    assert client.get("/api/v1/runners", headers=bearer(made)).status_code == 200
    assert_problem(client.get("/api/v1/tokens", headers=bearer(made)), 403, "needs the scope 'admin'")
    listed = client.get("/api/v1/tokens", headers=admin).json
    assert {"name": name, "scopes": ["read"]}.items() <= next(
        item for item in listed["items"] if item["name"] == name).items()
    assert all("token" not in item for item in listed["items"])

    assert_problem(client.post("/api/v1/tokens", headers=admin, json={"name": name}), 409,
                   f"a token named '{name}' exists already")
    assert_problem(client.post("/api/v1/tokens", headers=admin, json={"name": "x", "scopes": ["write"]}), 400,
                   "scopes (json)")
    revoked = client.delete(f"/api/v1/tokens/{name}", headers=admin)
    assert revoked.status_code == 200 and revoked.json["revoked_at"]
    assert_problem(client.get("/api/v1/runners", headers=bearer(made)), 401, "unknown or revoked")
    assert_problem(client.delete(f"/api/v1/tokens/{name}", headers=admin), 404,
                   f"no active token named '{name}'")
    assert_problem(client.delete("/api/v1/tokens/a%00b", headers=admin), 404, "no active token named")


def test_two_tokens_made_at_once_with_one_name_make_one_and_a_409(app_factory, db_engine):
    """The second of two concurrent creations passes the name check and
    meets the unique constraint at commit: a 409, not a 500."""
    from webapp.api.token_admin import TokenExists, create_token
    from webapp.extensions import db

    app = app_factory(API_AUTH="token", API_TOKENS=[f"{TOKEN_OF['admin']}:admin"])
    name = f"race-{uuid.uuid4().hex[:8]}"

    raced = []

    def the_other_call_commits_first(session, flush_context, instances):
        if raced:
            return
        raced.append(name)
        with db_engine.begin() as connection:
            connection.execute(sa.text(
                "INSERT INTO api_tokens (name, token_hash, scopes, created_at) "
                "VALUES (:n, :h, 'read', now())"), {"n": name, "h": uuid.uuid4().hex * 2})

    with app.app_context():
        sa.event.listen(db.session, "before_flush", the_other_call_commits_first)
        try:
            with pytest.raises(TokenExists, match="exists already"):
                create_token(name)
        finally:
            sa.event.remove(db.session, "before_flush", the_other_call_commits_first)
        assert db.session.scalar(sa.text("SELECT count(*) FROM api_tokens WHERE name = :n"), {"n": name}) == 1


def test_the_openapi_document_names_each_operations_scope(client):
    spec = client.get("/api/v1/openapi.json").json
    found = {(method.upper(), path): operation.get("x-required-scope")
             for path, methods in spec["paths"].items() for method, operation in methods.items()
             if method != "parameters"}
    assert found == {
        ("GET", "/healthz"): None,
        ("GET", "/readyz"): "read",
        ("GET", "/metrics"): "read",
        ("POST", "/api/v1/executions"): "start",
        ("GET", "/api/v1/executions"): "read",
        ("GET", "/api/v1/executions/{execution_id}"): "read",
        ("POST", "/api/v1/executions/{execution_id}/retry"): "start",
        ("GET", "/api/v1/executions/{execution_id}/logs"): "read",
        ("GET", "/api/v1/executions/{execution_id}/logs.ndjson"): "read",
        ("GET", "/api/v1/executions/{execution_id}/logs.txt"): "read",
        ("GET", "/api/v1/executions/{execution_id}/events"): "read",
        ("POST", "/api/v1/logs"): "ingest",
        ("GET", "/api/v1/runners"): "read",
        ("GET", "/api/v1/tokens"): "admin",
        ("POST", "/api/v1/tokens"): "admin",
        ("DELETE", "/api/v1/tokens/{name}"): "admin",
    }
    for (method, path), scope in found.items():
        if scope is not None:
            described = spec["paths"][path][method.lower()]["responses"]["403"]["description"]
            assert f"`{scope}`" in described

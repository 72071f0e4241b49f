"""Bearer tokens: API_TOKENS and the api_tokens table (flask tokens), open
mode on loopback only, probes open unless protected."""

from __future__ import annotations

import hashlib
import threading
import uuid

import pytest
import sqlalchemy as sa

from webapp.api import tokens
from webapp.api.auth import open_bind_problem

from ..support.tcp import Blackhole, HangingProxy
from ..support.waiting import wait_for
from .test_executions import assert_problem

TOKEN = "t0k3n-" + uuid.uuid4().hex


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def token_client(app_factory):
    return app_factory(API_AUTH="token", API_TOKENS=[TOKEN, "another-" + uuid.uuid4().hex]).test_client()


@pytest.mark.parametrize(
    "headers, fragment, challenge",
    [
        ({}, "a bearer token is required", 'Bearer realm="webapp"'),
        ({"Authorization": f"Basic {TOKEN}"}, "a bearer token is required", 'Bearer realm="webapp"'),
        (bearer("wrong"), "the token is not valid", 'Bearer realm="webapp", error="invalid_token"'),
        (bearer(TOKEN[:-1]), "the token is not valid", 'Bearer realm="webapp", error="invalid_token"'),
    ],
)
def test_without_a_valid_token_every_api_request_gets_401(token_client, execution_id, headers, fragment,
                                                          challenge):
    for method, path in (("get", "/api/v1/executions"), ("get", f"/api/v1/executions/{execution_id}/events"),
                         ("post", "/api/v1/logs"), ("get", "/api/v1/runners"),
                         ("get", "/api/v1/nothing-here")):
        response = getattr(token_client, method)(path, headers=headers)
        assert_problem(response, 401, fragment)
        assert response.headers["WWW-Authenticate"] == challenge


def test_a_configured_token_opens_the_api_and_health_stays_open(token_client):
    assert token_client.get("/api/v1/runners", headers=bearer(TOKEN)).status_code == 200
    spaced = {"Authorization": f"bearer  {TOKEN} "}
    assert token_client.get("/api/v1/runners", headers=spaced).status_code == 200
    assert token_client.get("/healthz").status_code == 200
    assert token_client.get("/api/v1/openapi.json").status_code == 200
    assert token_client.get("/metrics").status_code == 200


def test_probes_can_be_protected(app_factory):
    client = app_factory(API_TOKENS=[TOKEN], API_AUTH="token", API_PROTECT_PROBES=True).test_client()
    assert client.get("/healthz").status_code == 200
    for path in ("/readyz", "/metrics"):
        assert_problem(client.get(path), 401, "a bearer token is required")
    assert client.get("/metrics", headers=bearer(TOKEN)).status_code == 200


def test_stored_tokens_are_made_by_the_cli_kept_hashed_and_revocable(app_factory, db_engine, monkeypatch):
    monkeypatch.setattr(tokens, "REFRESH_SECONDS", 0.0)  # re-read the table at every check
    app = app_factory(API_AUTH="token")
    client, cli = app.test_client(), app.test_cli_runner()
    name = f"ci-{uuid.uuid4().hex[:8]}"

    created = cli.invoke(args=["tokens", "create", name])
    assert created.exit_code == 0, created.output
    token = created.output.strip()
    assert len(token) >= 43
    with db_engine.connect() as connection:
        stored = connection.execute(sa.text("SELECT token_hash FROM api_tokens WHERE name = :n"),
                                    {"n": name}).scalar_one()
        plain = sa.text("SELECT count(*) FROM api_tokens WHERE token_hash = :t OR name = :t")
        assert connection.execute(plain, {"t": token}).scalar_one() == 0
    assert stored == hashlib.sha256(token.encode()).hexdigest()
    assert client.get("/api/v1/runners", headers=bearer(token)).status_code == 200
    assert name in cli.invoke(args=["tokens", "list"]).output

    again = cli.invoke(args=["tokens", "create", name])
    assert again.exit_code == 1 and f"a token named '{name}' exists already" in again.output
    assert cli.invoke(args=["tokens", "revoke", name]).output == f"revoked {name}\n"
    assert_problem(client.get("/api/v1/runners", headers=bearer(token)), 401, "unknown or revoked")
    assert cli.invoke(args=["tokens", "revoke", name]).exit_code == 1


def test_a_token_made_in_another_process_works_here_within_seconds(app_factory):
    """Not after the 10 s between two reads of the table: a token this
    process does not know makes it read the table again (at most every
    UNKNOWN_REFRESH_SECONDS)."""
    here = app_factory(API_AUTH="token").test_client()
    elsewhere = app_factory(API_AUTH="token").test_cli_runner()  # another process's token store
    assert_problem(here.get("/api/v1/runners", headers=bearer("not-a-token")), 401, "unknown or revoked")
    created = elsewhere.invoke(args=["tokens", "create", f"ci-{uuid.uuid4().hex[:8]}"])
    token = created.output.strip()
    assert wait_for(lambda: here.get("/api/v1/runners", headers=bearer(token)).status_code == 200,
                    timeout=tokens.REFRESH_SECONDS / 2, interval=0.2)


def test_open_mode_serves_loopback_clients_only(client):
    assert client.get("/api/v1/runners").status_code == 200
    assert client.get("/api/v1/runners", environ_base={"REMOTE_ADDR": "::1"}).status_code == 200
    assert_problem(client.get("/api/v1/runners", environ_base={"REMOTE_ADDR": "10.1.2.3"}), 403,
                   "API_AUTH=open serves clients on this host only")
    assert client.get("/healthz", environ_base={"REMOTE_ADDR": "10.1.2.3"}).status_code == 200


def test_api_auth_defaults_to_token_when_tokens_are_configured_and_refuses_unknown_modes(app_factory):
    from webapp.api.settings import ApiSettings

    assert ApiSettings.from_config({}).auth == "open"
    assert list(ApiSettings.from_config({"API_TOKENS": " a, b ,"}).tokens) == ["a", "b"]
    assert ApiSettings.from_config({"API_TOKENS": "a,b"}).auth == "token"
    assert ApiSettings.from_config({"API_TOKENS": "a", "API_AUTH": "Open"}).auth == "open"
    with pytest.raises(ValueError, match="API_AUTH must be one of open, token; got 'none'"):
        app_factory(API_AUTH="none")


@pytest.mark.parametrize(
    "setting, message",
    [
        ({"API_MAX_LIMIT": 0}, "API_MAX_LIMIT must be positive, got 0"),
        ({"MAX_CONTENT_LENGTH": -1}, "API_MAX_BODY_BYTES must be positive, got -1"),
        ({"API_SSE_HEARTBEAT": 0.0}, "API_SSE_HEARTBEAT must be positive, got 0.0"),
        ({"API_SSE_LOG_DELAY": -1.0}, "API_SSE_LOG_DELAY must be 0 or more, got -1.0"),
    ],
)
def test_a_bad_api_setting_stops_the_app_naming_it(app_factory, setting, message):
    with pytest.raises(ValueError, match=message):
        app_factory(**setting)


@pytest.mark.parametrize(
    "mode, addresses, refused",
    [
        ("open", [("127.0.0.1", 8000)], False),
        ("open", [("::1", 8000), ("localhost", 8001), "/run/webapp.sock"], False),
        ("open", [("0.0.0.0", 8000)], True),
        ("open", [("127.0.0.1", 8000), ("192.168.1.5", 8000)], True),
        ("token", [("0.0.0.0", 8000)], False),
    ],
)
def test_open_mode_may_not_bind_beyond_loopback(mode, addresses, refused):
    problem = open_bind_problem({"API_AUTH": mode}, addresses)
    assert (problem is not None) == refused
    if refused:
        assert problem.startswith("refusing to serve the API open (API_AUTH=open, no token asked) on ")


@pytest.mark.parametrize(
    "base_url, headers, fragment",
    [
        ("http://evil.example", {},
         "the Host header must be localhost, 127.0.0.1 or [::1], not 'evil.example'"),
        ("http://evil.example:8000", {}, "not 'evil.example:8000'"),
        ("http://127.0.0.1.evil.example", {}, "not '127.0.0.1.evil.example'"),
        ("http://localhost", {"X-Forwarded-For": "203.0.113.9"}, "refuses requests through a proxy "
                                                                 "(X-Forwarded-For)"),
        ("http://localhost", {"Forwarded": "for=203.0.113.9"}, "(Forwarded)"),
        ("http://localhost", {"X-Real-IP": "203.0.113.9", "X-Forwarded-Host": "api.example"},
         "(X-Forwarded-Host, X-Real-IP)"),
        ("http://localhost", {"Via": "1.1 proxy"}, "(Via)"),
        ("http://localhost", {"X-Forwarded-Prefix": "/x"}, "(X-Forwarded-Prefix)"),
        ("http://localhost", {"CF-Connecting-IP": "203.0.113.9"}, "(CF-Connecting-IP)"),
        ("http://localhost", {"True-Client-IP": "203.0.113.9"}, "(True-Client-IP)"),
        ("http://localhost", {"Host": ""}, "the Host header must be localhost"),
    ],
)
def test_open_mode_refuses_foreign_hosts_and_proxied_requests(client, base_url, headers, fragment):
    """A page of another site that resolves to 127.0.0.1 (DNS rebinding)
    sends its own Host; a reverse proxy or a tunnel on this host makes every
    peer loopback, and a proxy says so in its headers."""
    assert_problem(client.get("/api/v1/runners", base_url=base_url, headers=headers), 403, fragment)


@pytest.mark.parametrize("base_url", ["http://localhost:8000", "http://127.0.0.1:8000", "http://[::1]:8000",
                                      "http://127.1.2.3", "http://LOCALHOST"])
def test_open_mode_serves_loopback_hosts(client, base_url):
    assert client.get("/api/v1/runners", base_url=base_url).status_code == 200


def proxied(database_url: str, port: int) -> str:
    return sa.make_url(database_url).set(port=port).render_as_string(hide_password=False)


def stored_token(db_engine, name: str, scopes: str = "read") -> str:
    token = tokens.new_token()
    with db_engine.begin() as connection:
        connection.execute(sa.text("INSERT INTO api_tokens (name, token_hash, scopes, created_at) "
                                   "VALUES (:n, :h, :s, now())"),
                           {"n": name, "h": tokens.hash_token(token), "s": scopes})
    return token


def test_a_hanging_token_table_delays_one_request_not_the_others(app_factory, database_url, db_engine,
                                                                 monkeypatch):
    """The table is read outside any lock: while one request waits on a
    database that hangs, the others check against the hashes read last."""
    monkeypatch.setattr(tokens, "REFRESH_SECONDS", 0.0)  # every check wants a fresh read
    proxy = HangingProxy(sa.make_url(database_url).port or 5432)
    try:
        app = app_factory(API_AUTH="token", SQLALCHEMY_DATABASE_URI=proxied(database_url, proxy.port),
                          DB_CONNECT_TIMEOUT=60)
        token = stored_token(db_engine, f"hang-{uuid.uuid4().hex[:8]}")
        client = app.test_client()
        assert client.get("/api/v1/runners", headers=bearer(token)).status_code == 200

        proxy.hang()
        answers: list[int] = []
        stuck = threading.Thread(target=lambda: answers.append(
            app.test_client().get("/api/v1/runners", headers=bearer(token)).status_code))
        stuck.start()
        wait_for(lambda: proxy.hanging >= 1, timeout=30, message="a read of the table to hang")
        other = threading.Thread(target=lambda: answers.append(
            app.test_client().get("/api/v1/runners", headers=bearer(token)).status_code))
        other.start()
        wait_for(lambda: not other.is_alive(), timeout=30, message="the other request to be answered")
        assert answers == [200] and stuck.is_alive(), "the other request waited behind the stuck read"
    finally:
        proxy.close()  # the stuck read fails; its request is answered from the hashes read before
    stuck.join(timeout=60)
    assert answers == [200, 200]


def test_the_token_table_is_read_with_a_connect_timeout(app_factory):
    """A database that accepts the connection and never answers used to hold
    the request (and, under the lock, every other) for ever."""
    with Blackhole() as hole:
        app = app_factory(API_AUTH="token", DB_CONNECT_TIMEOUT=2, SQLALCHEMY_DATABASE_URI=hole.database_url)
        answers: list = []
        request = threading.Thread(target=lambda: answers.append(
            app.test_client().get("/api/v1/runners", headers=bearer("not-configured"))))
        request.start()
        wait_for(lambda: not request.is_alive(), timeout=30, message="the token check to give up")
    assert_problem(answers[0], 503, "tokens cannot be checked now")

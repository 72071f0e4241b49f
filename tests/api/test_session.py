"""The pages' browser session in token mode: a token given once on
/ui/login, a signed HttpOnly SameSite cookie that holds only the token's
hash, checked again at each request; CSRF tokens for state-changing
requests; other origins refused; the signing key shared by every process."""

from __future__ import annotations

import hashlib
import re
import uuid

import pytest
import sqlalchemy as sa

from webapp.api import tokens

from .conftest import response_lines
from .test_executions import assert_problem

TOKEN = "t0k3n-" + uuid.uuid4().hex


@pytest.fixture
def token_app(app_factory):
    return app_factory(API_AUTH="token", API_TOKENS=[TOKEN])


def csrf_of(html: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def sign_in(client, token: str = TOKEN, next_page: str = "/ui/"):
    form = client.get("/ui/login").get_data(as_text=True)
    return client.post("/ui/login", data={"token": token, "csrf_token": csrf_of(form), "next": next_page})


def page_csrf(client) -> str:
    html = client.get("/ui/").get_data(as_text=True)
    return re.search(r'name="csrf-token" content="([^"]+)"', html).group(1)


def test_the_pages_ask_for_a_token_once_and_then_keep_a_session(token_app, execution_id):
    client = token_app.test_client()
    refused = client.get(f"/ui/executions/{execution_id}")
    assert refused.status_code == 302
    assert refused.headers["Location"] == f"/ui/login?next=/ui/executions/{execution_id}"
    assert_problem(client.get(f"/api/v1/executions/{execution_id}"), 401, "a bearer token is required")

    signed_in = sign_in(client, next_page=f"/ui/executions/{execution_id}")

    assert signed_in.status_code == 302 and signed_in.headers["Location"] == f"/ui/executions/{execution_id}"
    cookie = signed_in.headers["Set-Cookie"]
    assert cookie.startswith("webapp_session=") and "HttpOnly" in cookie and "SameSite=Lax" in cookie
    held = token_app.session_interface.get_signing_serializer(token_app).loads(
        client.get_cookie("webapp_session").value)
    assert held["token_sha256"] == hashlib.sha256(TOKEN.encode()).hexdigest()
    assert TOKEN not in cookie and TOKEN not in str(held), "the session holds the hash, never the token"
    assert client.get(f"/ui/executions/{execution_id}").status_code == 200
    assert client.get("/ui/").status_code == 200
    for path in ("", "/logs", "/logs.ndjson", "/logs.txt"):
        assert client.get(f"/api/v1/executions/{execution_id}{path}").status_code == 200, path
    stream = client.get(f"/api/v1/executions/{execution_id}/events", buffered=False)
    try:
        assert stream.status_code == 200 and next(response_lines(stream)) == "retry: 2000"
    finally:
        stream.close()


def test_a_wrong_token_or_an_expired_form_signs_nobody_in(token_app):
    client = token_app.test_client()
    wrong = sign_in(client, token="not-" + TOKEN)
    assert wrong.status_code == 401 and "That token is not valid." in wrong.get_data(as_text=True)
    stale = client.post("/ui/login", data={"token": TOKEN, "csrf_token": "forged"})
    assert stale.status_code == 400 and "The form expired" in stale.get_data(as_text=True)
    assert client.get("/ui/").status_code == 302


def test_sign_in_goes_only_to_a_page_of_ours(token_app):
    for target in ("//elsewhere.example/ui/", "https://elsewhere.example/", "/api/v1/runners", "/ui/\\\\x"):
        client = token_app.test_client()
        assert sign_in(client, next_page=target).headers["Location"] == "/ui/", target


def test_state_changing_requests_of_a_session_need_its_csrf_token(token_app, execution_id):
    client = token_app.test_client()
    sign_in(client)
    retry = f"/api/v1/executions/{execution_id}/retry"
    assert_problem(client.post(retry), 403, "needs its CSRF token")
    assert_problem(client.post(retry, headers={"X-CSRF-Token": "forged"}), 403, "needs its CSRF token")

    answer = client.post(retry, headers={"X-CSRF-Token": page_csrf(client)})

    assert_problem(answer, 409, "only a failed execution can be resumed")  # past access: the request ran
    logout = client.post("/ui/logout", data={"csrf_token": page_csrf(client)})
    assert logout.status_code == 302 and client.get("/ui/").status_code == 302


def test_a_session_may_do_only_what_its_token_may(app_factory, execution_id):
    """Scopes hold for a session as for its bearer token: a token without
    ``read`` cannot sign in; a read-only session reads but may not retry."""
    reader, starter = "reader-" + uuid.uuid4().hex, "starter-" + uuid.uuid4().hex
    app = app_factory(API_AUTH="token", API_TOKENS=[f"{reader}:read", f"{starter}:start"])

    refused = sign_in(app.test_client(), token=starter)
    assert refused.status_code == 403 and "lacks the scope &#39;read&#39;" in refused.get_data(as_text=True)

    client = app.test_client()
    assert sign_in(client, token=reader).status_code == 302
    assert client.get(f"/api/v1/executions/{execution_id}").status_code == 200
    answer = client.post(f"/api/v1/executions/{execution_id}/retry",
                         headers={"X-CSRF-Token": page_csrf(client)})
    assert_problem(answer, 403, "start")


def test_a_bearer_token_needs_no_csrf_token(token_app, execution_id):
    client = token_app.test_client()
    answer = client.post(f"/api/v1/executions/{execution_id}/retry",
                         headers={"Authorization": f"Bearer {TOKEN}"})
    assert_problem(answer, 409)


def test_a_revoked_token_ends_its_sessions(app_factory, db_engine, execution_id, monkeypatch):
    monkeypatch.setattr(tokens, "REFRESH_SECONDS", 0.0)
    name, stored = f"ui-{uuid.uuid4().hex[:8]}", tokens.new_token()
    with db_engine.begin() as connection:
        connection.execute(
            sa.text("INSERT INTO api_tokens (name, token_hash, created_at) VALUES (:n, :h, now())"),
            {"n": name, "h": tokens.hash_token(stored)})
    client = app_factory(API_AUTH="token").test_client()
    sign_in(client, token=stored)
    assert client.get("/ui/").status_code == 200

    with db_engine.begin() as connection:
        connection.execute(sa.text("UPDATE api_tokens SET revoked_at = now() WHERE name = :n"), {"n": name})

    assert client.get("/ui/").status_code == 302
    assert_problem(client.get(f"/api/v1/executions/{execution_id}"), 401)


def test_every_process_of_a_host_accepts_the_sessions_of_the_others(app_factory, tmp_path, execution_id):
    """gunicorn workers, restarts: the key is kept under WEBAPP_VAR_DIR."""
    shared = str(tmp_path / "shared-var")
    first = app_factory(API_AUTH="token", API_TOKENS=[TOKEN], VAR_DIR=shared).test_client()
    sign_in(first)
    cookie = first.get_cookie("webapp_session")

    second = app_factory(API_AUTH="token", API_TOKENS=[TOKEN], VAR_DIR=shared).test_client()
    second.set_cookie("webapp_session", cookie.value)
    assert second.get(f"/api/v1/executions/{execution_id}").status_code == 200

    elsewhere = app_factory(API_AUTH="token", API_TOKENS=[TOKEN]).test_client()
    elsewhere.set_cookie("webapp_session", cookie.value)
    assert_problem(elsewhere.get(f"/api/v1/executions/{execution_id}"), 401), "another key: refused"


def test_an_old_key_in_secret_key_fallbacks_still_verifies(app_factory, execution_id):
    old, new = "old-" + uuid.uuid4().hex, "new-" + uuid.uuid4().hex
    first = app_factory(API_AUTH="token", API_TOKENS=[TOKEN], SECRET_KEY=old).test_client()
    sign_in(first)
    rotated = app_factory(API_AUTH="token", API_TOKENS=[TOKEN], SECRET_KEY=new,
                          SECRET_KEY_FALLBACKS=[old]).test_client()
    rotated.set_cookie("webapp_session", first.get_cookie("webapp_session").value)
    assert rotated.get(f"/api/v1/executions/{execution_id}").status_code == 200


@pytest.mark.parametrize("auth", ["open", "token"])
def test_a_page_of_another_origin_cannot_change_state(app_factory, execution_id, auth):
    client = app_factory(API_AUTH=auth, API_TOKENS=[TOKEN]).test_client()
    headers = {"Authorization": f"Bearer {TOKEN}"} if auth == "token" else {}
    retry = f"/api/v1/executions/{execution_id}/retry"
    for origin in ("http://elsewhere.example", "null", "http://[zz]", "http://[", "http://a]", "://"):
        assert_problem(client.post(retry, headers={**headers, "Origin": origin}), 403, "another origin")
    assert_problem(client.post(retry, headers={**headers, "Origin": "http://localhost"}), 409)


def test_in_open_mode_the_pages_need_no_sign_in(client, execution_id):
    assert client.get("/ui/login").headers["Location"] == "/ui/"
    assert client.get("/ui/").status_code == 200
    assert client.get(f"/ui/executions/{execution_id}").status_code == 200

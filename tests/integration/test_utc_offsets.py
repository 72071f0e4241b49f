"""Every time the API returns carries its UTC offset: on the embedded SQLite
default (which keeps none, and answered ``2026-12-03T12:38:03.147339``),
and on a PostgreSQL session in another time zone (which answered in it)."""

from __future__ import annotations

import re
import uuid

from flask_migrate import upgrade

from webapp.config import celery_config

from ..api.conftest import Rows, response_lines, sse_messages

UTC = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?\+00:00")


def times_in(value, key: str = "") -> dict[str, str]:
    """Every ``*_at`` value in a JSON document, by its path."""
    found = {}
    if isinstance(value, dict):
        for name, item in value.items():
            if name.endswith("_at") and isinstance(item, str):
                found[f"{key}.{name}"] = item
            found.update(times_in(item, f"{key}.{name}"))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found.update(times_in(item, f"{key}.{index}"))
    return found


def served_times(app) -> dict[str, str]:
    client = app.test_client()
    started = client.post("/api/v1/executions", json={"workflow": "synthetic-emit", "input": {}})
    assert started.status_code == 202, started.get_data(as_text=True)
    execution_id = started.json["id"]
    with app.app_context():
        from webapp.extensions import db

        Rows(db.engine).log(execution_id, "a record")
    found = times_in(started.json, "start")
    found.update(times_in(client.get(f"/api/v1/executions/{execution_id}").json, "read"))
    found.update(times_in(client.get("/api/v1/executions?limit=1").json, "list"))
    found.update(times_in(client.get(f"/api/v1/executions/{execution_id}/logs").json, "logs"))
    stream = client.get(f"/api/v1/executions/{execution_id}/events", buffered=False)
    try:
        messages = sse_messages(response_lines(stream))
        first_two = [next(m for m in messages if "event" in m) for _ in range(2)]
    finally:
        stream.close()
    for position, message in enumerate(first_two):
        found.update(times_in(message["data"], f"stream.{position}"))
    return found


def test_times_carry_their_offset_on_sqlite(app_factory, tmp_path):
    url = f"sqlite:///{tmp_path / 'embedded.sqlite3'}"
    app = app_factory(SQLALCHEMY_DATABASE_URI=url, SQLALCHEMY_ENGINE_OPTIONS={},
                      CELERY=celery_config("filesystem://", tmp_path / "broker"))
    with app.app_context():
        upgrade()
    found = served_times(app)
    assert {"start.created_at", "read.updated_at", "logs.items.0.created_at", "stream.0.created_at",
            "stream.1.created_at"} <= set(found)
    assert {path: moment for path, moment in found.items() if not UTC.fullmatch(moment)} == {}


def test_times_are_in_utc_whatever_the_postgresql_session_time_zone(app_factory, tmp_path):
    name = f"kolkata-{uuid.uuid4().hex[:8]}"
    app = app_factory(CELERY=celery_config("filesystem://", tmp_path / "broker"), SQLALCHEMY_ENGINE_OPTIONS={
        "connect_args": {"application_name": name, "options": "-c timezone=Asia/Kolkata"}})
    found = served_times(app)
    assert {path: moment for path, moment in found.items() if not UTC.fullmatch(moment)} == {}

"""The stack as a user meets it: probes and the API on 127.0.0.1:8000 with a
token, a roadmap execution that succeeds with its log read back in order,
and Flower's API behind basic auth showing the worker."""

from __future__ import annotations

import pytest

from ..support.waiting import wait_for
from .traffic import ROADMAP_INPUT

pytestmark = [pytest.mark.containers, pytest.mark.timeout(1200)]

ROADMAP_STEPS = ["intent", "curriculum", "validate", "schedule"]


def test_the_probes_answer_and_the_api_wants_a_token(stack):
    assert stack.api_url == f"http://127.0.0.1:{stack.ports['api']}"
    healthz = stack.api("GET", "/healthz", token=None)
    readyz = stack.api("GET", "/readyz", token=None)
    assert (healthz.status, healthz.body) == (200, {"status": "ok"})
    assert (readyz.status, readyz.body["status"]) == (200, "ready")
    assert stack.api("GET", "/api/v1/executions", token=None).status == 401
    assert stack.api("GET", "/api/v1/executions", token="not-a-token").status == 401
    assert stack.api("GET", "/api/v1/executions").status == 200


def test_a_roadmap_execution_succeeds_and_its_log_reads_back_in_order(stack, roadmap_reference):
    started = stack.api("POST", "/api/v1/executions", {"workflow": "roadmap", "input": ROADMAP_INPUT})
    assert started.status == 202, started
    execution_id = started.body["id"]

    def finished() -> dict | None:
        execution = stack.api("GET", f"/api/v1/executions/{execution_id}").body
        return execution if execution["status"] in ("succeeded", "failed") else None

    execution = wait_for(finished, timeout=60, interval=0.2, message="the execution to finish")
    assert execution["status"] == "succeeded", execution
    assert [(s["name"], s["status"]) for s in execution["steps"]] == [(n, "succeeded") for n in ROADMAP_STEPS]
    assert execution["result"]

    def whole_log() -> list[dict] | None:
        items = stack.api("GET", f"/api/v1/executions/{execution_id}/logs?limit=1000").body["items"]
        return items if sorted(i["message"] for i in items) == sorted(roadmap_reference) else None

    items = wait_for(whole_log, timeout=60, interval=0.5, message="the execution's whole log")
    assert [(i["created_at"], i["id"]) for i in items] == sorted((i["created_at"], i["id"]) for i in items)
    assert items[0]["message"] == "workflow roadmap started"
    assert items[-1]["message"] == "workflow roadmap succeeded"
    step_order = [i["step"] for i in items if i["message"].startswith("step ") and i["message"].endswith(
        " started")]
    assert step_order == ROADMAP_STEPS
    assert {i["trace_id"] for i in items} == {execution_id}


def test_flower_shows_the_worker_behind_basic_auth(stack):
    [worker] = stack.containers("worker")
    node = f"worker@{worker[:12]}"  # the container's host name is its short id

    def listed() -> dict | None:
        workers = stack.flower("/api/workers?refresh=1").body
        return workers if isinstance(workers, dict) and node in workers else None

    workers = wait_for(listed, timeout=60, interval=1.0, message=f"Flower to list {node}")
    assert workers[node]["stats"]["pool"]["max-concurrency"] == 2
    assert {queue["name"] for queue in workers[node]["active_queues"]} == {"logs", "workflows"}
    assert stack.flower("/api/workers", auth="ops:wrong").status == 401

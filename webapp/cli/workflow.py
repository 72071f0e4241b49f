"""``flask runners list``, ``flask executions start [--follow]``, ``flask
executions resume``, ``flask executions logs`` and ``flask executions
fail-stalled``."""

from __future__ import annotations

import json
import uuid
from typing import Any

import click
from flask import current_app
from flask.cli import AppGroup

from ..api.settings import current_settings as api_settings
from ..extensions import db
from ..models import Execution
from ..workflow.current import current_notifier, current_registry
from ..workflow.errors import InvalidInput, WorkflowError
from ..workflow.heartbeat import fail_stalled as fail_stalled_executions
from ..workflow.retry import resume_execution
from ..workflow.service import start_execution
from ..workflow.settings import current_settings

runners_cli = AppGroup("runners", help="Runner plugins and workflows.")
executions_cli = AppGroup("executions", help="Workflow executions.")

COLUMNS = ("kind", "name", "distribution", "version", "status")


@runners_cli.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array.")
def list_runners(as_json: bool) -> None:
    """Every runner and workflow: where it comes from, and whether it works."""
    described = current_registry().describe()
    if as_json:
        click.echo(json.dumps(described, indent=2))
        return
    rows = [[_cell(item, column) for column in COLUMNS] for item in described]
    widths = [max([len(column), *(len(row[i]) for row in rows)]) for i, column in enumerate(COLUMNS)]
    for row in [[column.upper() for column in COLUMNS], *rows]:
        click.echo("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())


def _cell(item: dict[str, Any], column: str) -> str:
    if column == "status":
        return item["status"] if item["reason"] is None else f"{item['status']}: {item['reason']}"
    if column == "distribution" and item["distribution"] is None:
        return item["source"]
    return str(item[column] or "-")


@executions_cli.command("start")
@click.argument("workflow")
@click.option("--input", "input_json", default="{}", show_default=True, help="The input, a JSON object.")
@click.option("--idempotency-key", help="Starting twice with the same key starts once.")
@click.option("--follow", is_flag=True, help="Then print its events and logs live until it ends "
                                             "(exit status 1 if it fails).")
def start(workflow: str, input_json: str, idempotency_key: str | None, follow: bool) -> None:
    """Queue a run of WORKFLOW; print the execution id and its status (by
    the time it is read, a worker may have started it)."""
    try:
        data = json.loads(input_json)
    except ValueError as exc:
        raise click.BadParameter(f"not JSON: {exc}", param_hint="--input") from None
    try:
        execution = start_execution(workflow, data, idempotency_key=idempotency_key)
    except InvalidInput as exc:
        raise click.ClickException(_with_fields(exc)) from None
    except WorkflowError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"{execution.id} {execution.status}")
    if follow:
        _follow(execution.id)


@executions_cli.command("resume")
@click.argument("execution_id")
def resume(execution_id: str) -> None:
    """Run a failed execution again from its failed step."""
    try:
        execution = resume_execution(execution_id)
    except WorkflowError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"{execution.id} {execution.status}")


@executions_cli.command("fail-stalled")
@click.option("--stale-after", type=click.FloatRange(min=0), default=None,
              help="Seconds without a heartbeat [default: WORKFLOW_STALE_SECONDS].")
@click.option("--queued-after", type=click.FloatRange(min=0), default=None,
              help="Seconds in the queue [default: WORKFLOW_QUEUED_STALE_SECONDS].")
def fail_stalled(stale_after: float | None, queued_after: float | None) -> None:
    """Fail the running executions whose worker stopped giving signs of life
    (worker_lost) and the queued ones no worker took (lost_in_queue), as the
    beat task does every minute; print their ids."""
    settings = current_settings()
    stale = settings.stale_seconds if stale_after is None else stale_after
    queued = settings.queued_stale_seconds if queued_after is None else queued_after
    failed = fail_stalled_executions(current_notifier(), stale, queued_stale_seconds=queued)
    for execution_id in failed:
        execution = db.session.get(Execution, execution_id)
        click.echo(f"{execution_id} failed ({execution.error['kind'] if execution else '?'})")
    click.echo(f"{len(failed)} execution(s) failed: worker_lost (no heartbeat for {stale:g} s) or "
               f"lost_in_queue (queued over {queued:g} s ago)")


@executions_cli.command("logs")
@click.argument("execution_id", type=click.UUID)
@click.option("--level", type=click.Choice(["debug", "info", "warning", "error"]), help="Minimum level.")
def logs(execution_id: uuid.UUID, level: str | None) -> None:
    """Print the logs of an execution, in time order."""
    from ..queries.formats import log_line
    from ..queries.reads import LogFilter, get_execution, logs_after
    from ..queries.records import LogRecordOut

    try:
        trace_id = str(get_execution(execution_id).id)
    except WorkflowError as exc:
        raise click.ClickException(str(exc)) from None
    after = None
    while rows := logs_after(trace_id, after, 500, LogFilter(level=level)):
        for row in rows:
            click.echo(log_line(LogRecordOut().dump(row)))
        after = (rows[-1].created_at, rows[-1].id)


def _follow(execution_id: uuid.UUID) -> None:
    """Print the execution's feed until it ends; fail if the execution did."""
    from ..queries.feed import ExecutionFeed, Wakeup, follow
    from ..queries.formats import log_line

    app = current_app._get_current_object()  # type: ignore[attr-defined]
    api = api_settings()  # a stream's pace, as the API's event stream has it
    feed = ExecutionFeed(execution_id, log_delay=api.sse_log_delay)
    wakeup = Wakeup(current_notifier().client, execution_id)
    final = None
    for messages in follow(app, feed, wakeup, poll_interval=api.sse_poll_interval,
                           idle_every=float("inf")):
        for message in messages:
            click.echo(log_line(message.data) if message.name == "log" else _event_line(message.data))
            final = message
    if final is not None and final.name == "execution_failed":
        error = final.data["data"]["error"]
        raise click.ClickException(f"execution {execution_id} failed: {error['message']}")


def _event_line(event: dict[str, Any]) -> str:
    """``<time>  EVENT   step_started {"step": ...}``"""
    return f"{event['created_at']}  EVENT   {event['type']} {json.dumps(event['data'], sort_keys=True)}"


def _with_fields(exc: InvalidInput) -> str:
    if not exc.fields:
        return exc.message
    problems = "; ".join(f"{field}: {' '.join(map(str, messages))}" for field, messages in exc.fields.items())
    return f"{exc.message}: {problems}"

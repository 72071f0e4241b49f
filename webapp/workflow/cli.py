"""``flask runners list``, ``flask executions start`` and ``flask executions resume``."""

from __future__ import annotations

import json
from typing import Any

import click
from flask.cli import AppGroup

from .errors import InvalidInput, WorkflowError
from .extension import current_registry
from .retry import resume_execution
from .service import start_execution

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
def start(workflow: str, input_json: str, idempotency_key: str | None) -> None:
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


@executions_cli.command("resume")
@click.argument("execution_id")
def resume(execution_id: str) -> None:
    """Run a failed execution again from its failed step."""
    try:
        execution = resume_execution(execution_id)
    except WorkflowError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"{execution.id} {execution.status}")


def _with_fields(exc: InvalidInput) -> str:
    if not exc.fields:
        return exc.message
    problems = "; ".join(f"{field}: {' '.join(map(str, messages))}" for field, messages in exc.fields.items())
    return f"{exc.message}: {problems}"

"""``flask execlog status``, ``replay`` and ``prune``: the execution log
pipeline."""

from __future__ import annotations

import json

import click
from flask import current_app
from flask.cli import AppGroup

execlog_cli = AppGroup("execlog", help="The execution log pipeline.")


@execlog_cli.command("status")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def execlog_status(as_json: bool) -> None:
    """Counters of this process's logger, the logs queue and the spool."""
    from ..execlog.monitoring import status

    result = status(current_app.extensions["execlog"], current_app.extensions.get("celery"))
    if as_json:
        click.echo(json.dumps(result, sort_keys=True))
        return
    for key in sorted(result):
        click.echo(f"{key:16} {result[key]}")


@execlog_cli.command("replay")
def execlog_replay() -> None:
    """Replay every spool segment no live process holds, oldest first."""
    report = current_app.extensions["execlog"].replay()
    if report is None:
        raise click.ClickException("no spool is configured")
    click.echo(f"replayed {report.records} record(s) from {report.segments} segment(s); "
               f"{report.remaining} segment(s) left")
    if report.sink_down:
        raise click.ClickException(report.sink_down)


@execlog_cli.command("prune")
def execlog_prune() -> None:
    """Apply EXECLOG_RETENTION_DAYS now, as the hourly beat task does: on
    PostgreSQL create the coming days' partitions and drop the old ones; on
    SQLite delete old rows. Prints what it did."""
    from ..execlog.retention import apply_retention
    from ..extensions import db

    settings = current_app.extensions["execlog"].settings
    for line in apply_retention(db.engine, settings.retention_days).lines():
        click.echo(line)

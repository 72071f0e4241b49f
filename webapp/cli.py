"""``flask`` commands: ``flask execlog status``, ``replay`` and ``prune``;
the workflow commands (``flask runners``, ``flask executions``) live in
:mod:`webapp.workflow.cli`."""

from __future__ import annotations

import json

import click
from flask import Flask, current_app
from flask.cli import AppGroup

execlog_cli = AppGroup("execlog", help="The execution log pipeline.")


@execlog_cli.command("status")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def execlog_status(as_json: bool) -> None:
    """Counters of this process's logger, the logs queue and the spool."""
    from .execlog.monitoring import status

    result = status(current_app.extensions["execlog"], current_app.extensions.get("celery"))
    if as_json:
        click.echo(json.dumps(result, sort_keys=True))
        return
    for key in sorted(result):
        click.echo(f"{key:16} {result[key]}")


@execlog_cli.command("replay")
def execlog_replay() -> None:
    """Replay every spool segment no live process holds, oldest first."""
    logger = current_app.extensions["execlog"]
    delivery = logger.backend.shipper
    if delivery.spool is None:
        raise click.ClickException("no spool is configured")
    segments, rows = delivery.replay_all()
    remaining = delivery.spool.usage()
    click.echo(
        f"replayed {rows} record(s) from {segments} segment(s); "
        f"{remaining.segments} segment(s) left"
    )
    if remaining.segments and delivery.primary_down:
        error = delivery.counters.last_error
        raise click.ClickException(f"the {delivery.primary.name} sink is down: {error}")


@execlog_cli.command("prune")
def execlog_prune() -> None:
    """Apply EXECLOG_RETENTION_DAYS now, as the hourly beat task does: on
    PostgreSQL create the coming days' partitions and drop the old ones; on
    SQLite delete old rows. Prints what it did."""
    from .execlog.retention import apply_retention
    from .extensions import db

    settings = current_app.extensions["execlog"].settings
    for line in apply_retention(db.engine, settings.retention_days).lines():
        click.echo(line)


def init_app(app: Flask) -> None:
    from .api.token_admin import tokens_cli
    from .workflow.cli import executions_cli, runners_cli

    app.cli.add_command(execlog_cli)
    app.cli.add_command(tokens_cli)
    app.cli.add_command(runners_cli)
    app.cli.add_command(executions_cli)

"""``flask runners list``."""

from __future__ import annotations

import json
from typing import Any

import click
from flask.cli import AppGroup

from .extension import current_registry

runners_cli = AppGroup("runners", help="Runner plugins and workflows.")

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

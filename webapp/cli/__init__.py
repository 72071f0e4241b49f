"""The ``flask`` commands, all of them: ``flask execlog`` (:mod:`.execlog`),
``flask runners`` and ``flask executions`` (:mod:`.workflow`), ``flask
tokens`` (:mod:`.tokens`). An interface, like the HTTP API: above every
part whose work it asks for."""

from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    from .execlog import execlog_cli
    from .tokens import tokens_cli
    from .workflow import executions_cli, runners_cli

    for group in (execlog_cli, tokens_cli, runners_cli, executions_cli):
        app.cli.add_command(group)

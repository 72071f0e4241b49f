"""Alembic environment, run by Flask-Migrate inside the app context."""

import logging
from logging.config import fileConfig

from alembic import context
from flask import current_app

from webapp.execlog.retention import include_name

config = context.config
if config.config_file_name is not None:
    # Keep the app's own loggers working when migrations run in-process.
    fileConfig(config.config_file_name, disable_existing_loggers=False)
logger = logging.getLogger("alembic.env")

target_db = current_app.extensions["migrate"].db


def get_engine():
    return target_db.engine


config.set_main_option(
    "sqlalchemy.url", get_engine().url.render_as_string(hide_password=False).replace("%", "%%")
)


def run_migrations_offline() -> None:
    context.configure(
        url=config.get_main_option("sqlalchemy.url"),
        target_metadata=target_db.metadata,
        literal_binds=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    def process_revision_directives(context, revision, directives):
        if getattr(config.cmd_opts, "autogenerate", False):
            script = directives[0]
            if script.upgrade_ops.is_empty():
                directives[:] = []
                logger.info("No changes in schema detected.")

    conf_args = current_app.extensions["migrate"].configure_args
    conf_args.setdefault("process_revision_directives", process_revision_directives)
    # The partitions of execution_logs are not in the models: leave them be.
    conf_args.setdefault("include_name", include_name)

    with get_engine().connect() as connection:
        if connection.dialect.name == "postgresql":
            # A migration may rewrite a large table: DB_STATEMENT_TIMEOUT is
            # for requests and tasks, not for this.
            connection.exec_driver_sql("SET statement_timeout = 0")
            connection.commit()
        context.configure(connection=connection, target_metadata=target_db.metadata, **conf_args)
        with context.begin_transaction():
            context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()

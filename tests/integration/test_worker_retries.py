"""A database outage makes the batch task retry with backoff; nothing is lost."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from flask_migrate import upgrade

from webapp import create_app
from webapp.config import config_from_env

from ..conftest import TEST_DB_NAME, admin_sql, make_config, service_env
from ..support.processes import start_celery_worker
from ..support.waiting import wait_for

OUTAGE_DB = f"{TEST_DB_NAME}_outage"


@pytest.fixture
def missing_database(database_url):
    """A database of ours that does not exist yet (the outage)."""
    admin_sql(f'DROP DATABASE IF EXISTS "{OUTAGE_DB}" WITH (FORCE)')
    url = sa.make_url(database_url).set(database=OUTAGE_DB).render_as_string(hide_password=False)
    yield url
    admin_sql(f'DROP DATABASE IF EXISTS "{OUTAGE_DB}" WITH (FORCE)')


def test_batches_wait_through_a_database_outage_and_land_after_it(
    missing_database, spare_broker, tmp_path, trace_id
):
    env = service_env(missing_database, spare_broker, tmp_path / "worker",
                      EXECLOG_RETRY_BACKOFF="0.2", EXECLOG_RETRY_BACKOFF_MAX="1")
    worker = start_celery_worker(env, tmp_path / "worker.log", name="outage")
    try:
        producer = create_app(make_config(missing_database, spare_broker, tmp_path / "producer"))
        logger = producer.extensions["execlog"]
        ids = {logger.info(trace_id, "database", f"during the outage {i}").id for i in range(100)}
        assert logger.flush(timeout=30) is True
        worker.wait_for_output("not stored", timeout=60)
        worker.wait_for_output("retry 3 in", timeout=60)

        admin_sql(f'CREATE DATABASE "{OUTAGE_DB}"')
        migrator = create_app(config_from_env({"DATABASE_URL": missing_database,
                                               "WEBAPP_VAR_DIR": str(tmp_path / "migrate")}))
        with migrator.app_context():
            upgrade()

        engine = sa.create_engine(missing_database, poolclass=sa.pool.NullPool)

        def stored() -> set[str]:
            with engine.connect() as connection:
                return {str(r[0]) for r in connection.execute(
                    sa.text("SELECT id FROM execution_logs WHERE trace_id = :t"), {"t": trace_id})}

        wait_for(lambda: stored() == ids, timeout=60, message="the 100 records after the outage")
        engine.dispose()
        logger.close()
        for app in (producer, migrator):
            with app.app_context():
                from webapp.extensions import db

                db.engine.dispose()
    finally:
        worker.stop()

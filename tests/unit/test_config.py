"""Settings from the environment and the logger's settings."""

from __future__ import annotations

from pathlib import Path

import pytest

from webapp.config import config_from_env
from webapp.execlog.extension import ExecLogSettings


def test_with_nothing_set_the_app_runs_on_sqlite_and_the_file_system_broker(tmp_path):
    config = config_from_env({"WEBAPP_VAR_DIR": str(tmp_path)})
    assert config["SQLALCHEMY_DATABASE_URI"] == f"sqlite:///{tmp_path / 'webapp.sqlite3'}"
    celery = config["CELERY"]
    assert celery["broker_url"] == "filesystem://"
    assert celery["broker_transport_options"]["data_folder_in"] == str(tmp_path / "broker" / "queue")
    assert celery["worker_enable_remote_control"] is False
    assert ExecLogSettings.from_config(config).spool_dir == str(tmp_path / "spool")


@pytest.mark.parametrize("url", ["postgres://u@h/db", "postgresql://u@h/db"])
def test_postgresql_urls_without_a_driver_use_psycopg2(url):
    config = config_from_env({"DATABASE_URL": url})
    assert config["SQLALCHEMY_DATABASE_URI"] == "postgresql+psycopg2://u@h/db"
    assert config["SQLALCHEMY_ENGINE_OPTIONS"]["pool_pre_ping"] is True


def test_redis_url_is_the_broker_when_celery_broker_url_is_unset():
    config = config_from_env({"REDIS_URL": "redis://r:6379/2", "CELERY_VISIBILITY_TIMEOUT": "60"})
    assert config["CELERY"]["broker_url"] == "redis://r:6379/2"
    assert config["CELERY"]["broker_transport_options"]["visibility_timeout"] == 60
    assert config["CELERY"]["task_routes"]["execlog.*"] == {"queue": "logs"}


def test_the_rejected_items_cap_reaches_the_redis_channel():
    import kombu

    from webapp.execlog.broker import SafeRedisTransport

    config = config_from_env({"CELERY_BROKER_URL": "redis://127.0.0.1:6379/5",
                              "CELERY_REJECTED_KEEP": "5", "CELERY_REJECTED_MAX_CHARS": "64"})
    options = config["CELERY"]["broker_transport_options"]
    with kombu.Connection(config["CELERY"]["broker_url"], transport=SafeRedisTransport,
                          transport_options=options) as connection:
        channel = connection.default_channel
        assert (channel.rejected_keep, channel.rejected_max_chars, channel.claim_idle_wait) == (5, 64, 0.1)
    for name in ("CELERY_REJECTED_KEEP", "CELERY_REJECTED_MAX_CHARS"):
        with pytest.raises(ValueError, match=f"{name} must be at least 1"):
            config_from_env({"CELERY_BROKER_URL": "redis://r/0", name: "0"})


def test_rabbitmq_gets_confirmed_publishes_and_quorum_queues_that_dead_letter():
    config = config_from_env({"CELERY_BROKER_URL": "amqp://u:p@rmq1:5672/webapp"})["CELERY"]
    assert config["broker_transport_options"] == {"confirm_publish": True}
    logs, workflows = config["task_queues"]
    assert (logs.name, logs.exchange.type, logs.durable) == ("logs", "topic", True)
    assert logs.queue_arguments["x-queue-type"] == "quorum"
    assert logs.queue_arguments["x-delivery-limit"] == 10
    assert logs.queue_arguments["x-dead-letter-routing-key"] == "logs.rejected"
    assert [q.name for q in config["rejected_queues"]] == ["logs.rejected", "workflows.rejected"]
    assert config["rejected_queues"][0].queue_arguments["x-max-length"] == 1000

    classic = config_from_env({"CELERY_BROKER_URL": "amqp://h//", "CELERY_QUEUE_TYPE": "Classic",
                               "CELERY_DELIVERY_LIMIT": "3"})["CELERY"]
    assert "x-queue-type" not in classic["task_queues"][0].queue_arguments
    with pytest.raises(ValueError, match="CELERY_QUEUE_TYPE must be one of quorum, classic"):
        config_from_env({"CELERY_BROKER_URL": "amqp://h//", "CELERY_QUEUE_TYPE": "stream"})
    with pytest.raises(ValueError, match="CELERY_DELIVERY_LIMIT must be at least 1"):
        config_from_env({"CELERY_BROKER_URL": "amqp://h//", "CELERY_DELIVERY_LIMIT": "0"})


def test_a_bad_number_names_the_variable():
    with pytest.raises(ValueError, match="DB_POOL_SIZE must be a number"):
        config_from_env({"DATABASE_URL": "postgresql://h/db", "DB_POOL_SIZE": "many"})


def test_execlog_variables_are_parsed_by_the_extension():
    settings = ExecLogSettings.from_config(
        config_from_env({"EXECLOG_BATCH_SIZE": "10", "EXECLOG_FLUSH_INTERVAL": "0.5",
                         "EXECLOG_DURABILITY": "DISK", "WEBAPP_VAR_DIR": "/srv/var"})
    )
    assert (settings.batch_size, settings.flush_interval, settings.durability) == (10, 0.5, "disk")
    assert Path(settings.spool_dir) == Path("/srv/var/spool")


@pytest.mark.parametrize(
    "config, message",
    [
        ({"EXECLOG_BATCH_SIZE": "fifty"}, "EXECLOG_BATCH_SIZE must be int"),
        ({"EXECLOG_BACKEND": "kafka"}, "EXECLOG_BACKEND must be one of celery, thread"),
        ({"EXECLOG_DURABILITY": "paper"}, "EXECLOG_DURABILITY must be one of memory, disk"),
        ({"EXECLOG_BATCH_SIZE": 0}, "EXECLOG_BATCH_SIZE must be at least 1"),
        ({"EXECLOG_MAX_BUFFER": 10}, "EXECLOG_MAX_BUFFER must be at least EXECLOG_BATCH_SIZE"),
        ({"EXECLOG_FLUSH_INTERVAL": 0}, "EXECLOG_FLUSH_INTERVAL must be positive"),
        ({"EXECLOG_BATCHSIZE": 5}, "unknown setting\\(s\\) EXECLOG_BATCHSIZE"),
    ],
)
def test_bad_execlog_settings_name_the_key(config, message):
    with pytest.raises(ValueError, match=message):
        ExecLogSettings.from_config(config)


def test_a_variable_of_the_prefix_that_is_no_setting_of_ours_is_left_alone_in_the_environment(
    tmp_path, monkeypatch, caplog
):
    """Compose's API_PUBLISH (and whatever API_* a host sets for something
    else) reaches the containers' environment: the app starts; the same key
    given in code is a typo and is refused."""
    from webapp import create_app
    from webapp.api.settings import ApiSettings

    monkeypatch.setenv("WEBAPP_VAR_DIR", str(tmp_path))
    monkeypatch.setenv("API_PUBLISH", "127.0.0.1:8000")
    monkeypatch.setenv("EXECLOG_SOMETHING_ELSE", "1")
    monkeypatch.setenv("API_MAX_LIMIT", "7")
    with caplog.at_level("WARNING", logger="webapp.settings"):
        app = create_app()
    assert app.config["API_MAX_LIMIT"] == 7, "the settings it knows, it reads"
    warned = " ".join(r.getMessage() for r in caplog.records)
    assert "ignoring EXECLOG_SOMETHING_ELSE from the environment" in warned, "a typo is said, not silent"

    with pytest.raises(ValueError, match="unknown setting\\(s\\) API_PUBLISH"):
        ApiSettings.from_config({"API_PUBLISH": "127.0.0.1:8000"})

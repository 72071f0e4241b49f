"""Settings from the environment, with embedded defaults.

With nothing set the app runs on its own: a SQLite file and kombu's
file-system transport under ``var/`` (``WEBAPP_VAR_DIR``). With
``DATABASE_URL`` and ``CELERY_BROKER_URL`` (or ``REDIS_URL``) set, it runs on
PostgreSQL and Redis. Every variable is listed in ``.env.example``.

This module only maps the environment to the app's configuration: the
settings of the app's own parts (``EXECLOG_*``, ``API_*``, ``WORKFLOW_*``,
``WORKFLOWS``, ``WEBAPP_DISABLED_PLUGINS``) are passed through as they are,
and each part reads them as a typed, frozen, checked settings object
(:mod:`webapp.settings`: ``ExecLogSettings``, ``ApiSettings``,
``WorkflowSettings``). What it builds here are the libraries' own settings
(Celery's, SQLAlchemy's, Flask's session cookie).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from celery.schedules import crontab
from kombu import Exchange, Queue


from .names import BATCH_CONTENT_TYPE, FAIL_STALLED_TASK, LOGS_QUEUE, RETENTION_TASK, WORKFLOWS_QUEUE
from .settings import ENVIRONMENT_KEYS

#: Variables passed to the app's configuration as they are: the settings
#: classes of the parts that read them parse and check them
#: (:mod:`webapp.settings`): the execution log's, the API's, the workflow
#: engine's.
PASSED_PREFIXES = ("EXECLOG_", "API_", "WORKFLOW_")
PASSED_KEYS = ("WORKFLOWS", "WEBAPP_DISABLED_PLUGINS")


def _number(environ: Mapping[str, str], name: str, default: Any, kind: type) -> Any:
    raw = environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return kind(raw)
    except ValueError:
        raise ValueError(f"{name} must be a number ({kind.__name__}), got {raw!r}") from None


def _int(environ: Mapping[str, str], name: str, default: int) -> int:
    return int(_number(environ, name, default, int))


def _float(environ: Mapping[str, str], name: str, default: float) -> float:
    return float(_number(environ, name, default, float))


def _flag(environ: Mapping[str, str], name: str) -> bool:
    return environ.get(name, "0").strip().lower() in ("1", "true", "yes")


def _list(environ: Mapping[str, str], name: str) -> list[str]:
    return [item.strip() for item in environ.get(name, "").split(",") if item.strip()]


def database_url(environ: Mapping[str, str], var_dir: Path) -> str:
    url = environ.get("DATABASE_URL") or f"sqlite:///{var_dir / 'webapp.sqlite3'}"
    # A URL without a driver means psycopg2, the driver this project ships
    # (SQLAlchemy 2.1 would pick psycopg 3 for "postgresql://").
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            url = "postgresql+psycopg2://" + url[len(prefix) :]
    return url


def broker_url(environ: Mapping[str, str]) -> str:
    return environ.get("CELERY_BROKER_URL") or environ.get("REDIS_URL") or "filesystem://"


def postgres_connect_args(application_name: str, connect_timeout: int,
                          statement_timeout: float) -> dict[str, Any]:
    """psycopg2's connection arguments: the name ``pg_stat_activity`` shows,
    the connect timeout (s) and the statement timeout (s; 0: none)."""
    args: dict[str, Any] = {"application_name": application_name, "connect_timeout": int(connect_timeout)}
    if statement_timeout > 0:
        args["options"] = f"-c statement_timeout={round(statement_timeout * 1000)}"
    return args


def connect_args(url: str, config: Mapping[str, Any], application_name: str) -> dict[str, Any]:
    """The DBAPI connection arguments of an engine of ours. On PostgreSQL:
    the name ``pg_stat_activity`` shows, how long connecting may take
    (``DB_CONNECT_TIMEOUT`` seconds) and how long one statement may run
    (``DB_STATEMENT_TIMEOUT`` seconds; 0: no limit). Without them a database
    that hangs, or a query over a huge trace, held a request (and the token
    store's lock) for as long as it lasted. On SQLite: the lock wait."""
    if url.startswith("sqlite"):
        return {"timeout": 30}
    for key in ("DB_CONNECT_TIMEOUT", "DB_STATEMENT_TIMEOUT"):
        if config[key] < 0:
            raise ValueError(f"{key} must be 0 or more, got {config[key]!r}")
    return postgres_connect_args(application_name, config["DB_CONNECT_TIMEOUT"],
                                 config["DB_STATEMENT_TIMEOUT"])


def engine_options(url: str, environ: Mapping[str, str]) -> dict[str, Any]:
    """SQLAlchemy engine options. On PostgreSQL the factory adds
    :func:`connect_args` (``application_name`` from ``DB_APPLICATION_NAME``,
    so that ``pg_stat_activity`` shows which process holds which connection,
    and the timeouts)."""
    if url.startswith("sqlite"):
        return {"connect_args": {"timeout": 30}}
    return {
        "pool_pre_ping": True,
        "pool_size": _int(environ, "DB_POOL_SIZE", 5),
        "max_overflow": _int(environ, "DB_MAX_OVERFLOW", 5),
        "pool_timeout": _float(environ, "DB_POOL_TIMEOUT", 10.0),
    }


#: Broker URLs of RabbitMQ (kombu's py-amqp transport).
AMQP_SCHEMES = ("amqp://", "amqps://", "pyamqp://")
QUEUE_TYPES = ("quorum", "classic")
#: Where a queue's dead letters go: ``<queue>.rejected``.
REJECTED_SUFFIX = ".rejected"


def rabbitmq_queues(queue_type: str, delivery_limit: int,
                    rejected_keep: int) -> tuple[tuple[Queue, ...], tuple[Queue, ...]]:
    """The queues on RabbitMQ, and the queues of what they reject.

    ``logs`` and ``workflows`` are durable; as quorum queues (the default)
    they are replicated across the cluster, and a message delivered
    ``delivery_limit`` times without being acknowledged (one that kills its
    workers) is dead-lettered instead of looping. Dead letters, and messages
    a worker rejects (not task messages), go to ``<queue>.rejected``, which
    keeps the newest ``rejected_keep``.
    """
    if queue_type not in QUEUE_TYPES:
        raise ValueError(f"CELERY_QUEUE_TYPE must be one of {', '.join(QUEUE_TYPES)}, got {queue_type!r}")
    if delivery_limit < 1:
        raise ValueError(f"CELERY_DELIVERY_LIMIT must be at least 1, got {delivery_limit}")
    replicated = {"x-queue-type": "quorum"} if queue_type == "quorum" else {}
    queues, rejected = [], []
    for name in (LOGS_QUEUE, WORKFLOWS_QUEUE):
        dead = name + REJECTED_SUFFIX
        arguments: dict[str, Any] = {**replicated, "x-dead-letter-exchange": "",
                                     "x-dead-letter-routing-key": dead}
        if queue_type == "quorum":
            arguments.update({"x-delivery-limit": delivery_limit,
                              # a dead letter is kept until its queue took it
                              "x-dead-letter-strategy": "at-least-once", "x-overflow": "reject-publish"})
        # Topic exchanges: Celery delays a retry (countdown) through
        # RabbitMQ itself, without holding it in a worker, only with those.
        queues.append(Queue(name, Exchange(name, type="topic"), routing_key=name, durable=True,
                            queue_arguments=arguments))
        rejected.append(Queue(dead, Exchange(""), routing_key=dead, durable=True,
                              queue_arguments={**replicated, "x-max-length": rejected_keep}))
    return tuple(queues), tuple(rejected)


def celery_config(
    broker: str,
    var_dir: Path,
    *,
    visibility_timeout: int = 300,
    worker_prefetch_multiplier: int = 4,
    rejected_keep: int = 1000,
    rejected_max_chars: int = 16384,
    queue_type: str = "quorum",
    delivery_limit: int = 10,
) -> dict[str, Any]:
    """Celery settings, the one ``app.config["CELERY"]`` dict (Flask's
    documented pattern)."""
    for name, value in (("CELERY_REJECTED_KEEP", rejected_keep),
                        ("CELERY_REJECTED_MAX_CHARS", rejected_max_chars)):
        if value < 1:
            raise ValueError(f"{name} must be at least 1, got {value}")
    config: dict[str, Any] = {
        "broker_url": broker,
        "broker_connection_retry_on_startup": True,
        # Workers and beat wait for the broker as long as an outage lasts
        # (Celery's default gives up after 100 attempts, some 45 minutes,
        # and the worker exits).
        "broker_connection_max_retries": None,
        "task_serializer": "json",
        # Log batches have a serializer of their own (webapp.execlog.serializer).
        "accept_content": ["json", BATCH_CONTENT_TYPE],
        "result_backend": None,
        # No results are kept, so beat has nothing to expire (it would send a
        # daily celery.backend_cleanup otherwise).
        "result_expires": None,
        "task_ignore_result": True,
        "task_default_queue": WORKFLOWS_QUEUE,
        "task_routes": {
            "execlog.*": {"queue": LOGS_QUEUE},
            "workflow.*": {"queue": WORKFLOWS_QUEUE},
        },
        "worker_prefetch_multiplier": worker_prefetch_multiplier,
        "worker_hijack_root_logger": False,
        # Messages Celery refuses are kept in "<queue>.rejected", not dropped.
        "worker_consumer": "webapp.execlog.consumer:Consumer",
        # Modules a worker imports at start, for tasks create_app() does not
        # import (the producer side only needs their names).
        "imports": ("webapp.execlog.retention",),
        # celery beat: hourly at :07. Idempotent and cheap when there is
        # nothing to do, so a beat or worker outage, or a step that lost a
        # lock race, costs at most an hour; partitions are made a week ahead.
        "beat_schedule": {
            "execlog-retention": {"task": RETENTION_TASK, "schedule": crontab(minute="7")},
            # Every minute: an execution whose worker died is failed
            # (worker_lost) within WORKFLOW_STALE_SECONDS plus a minute.
            "workflow-fail-stalled": {"task": FAIL_STALLED_TASK, "schedule": 60.0},
        },
        "broker_transport_options": {},
    }
    if broker.startswith("filesystem"):
        queue_dir = var_dir / "broker" / "queue"
        config["broker_transport_options"] = {
            "data_folder_in": str(queue_dir),
            "data_folder_out": str(queue_dir),
            "processed_folder": str(var_dir / "broker" / "processed"),
            "control_folder": str(var_dir / "broker" / "control"),
            "store_processed": False,
        }
        # The file-system transport has no fan-out: no remote control.
        config["worker_enable_remote_control"] = False
    elif broker.startswith(("redis", "rediss")):
        if broker.startswith("redis://"):
            # kombu's Redis channel, but an item that is not a message is set
            # aside instead of stopping the worker (webapp.execlog.broker).
            config["broker_transport"] = "webapp.execlog.broker:SafeRedisTransport"
        config["broker_transport_options"] = {
            # A message a dead worker had taken is handed out again after
            # this many seconds; longer than any log batch takes.
            "visibility_timeout": visibility_timeout,
            # Look for such messages every 5 s rather than every 100 s.
            "unacked_restore_interval": 5,
            "unacked_restore_throttle": 1,
            # A publish to an unreachable broker fails within seconds (and
            # the batch goes to the spool) instead of hanging the flusher.
            "socket_connect_timeout": 3,
            "socket_timeout": 10,
            # Items of a queue that are not messages: the newest kept in
            # "<queue>.rejected", and how much of each.
            "rejected_keep": rejected_keep,
            "rejected_max_chars": rejected_max_chars,
        }
    elif broker.startswith(AMQP_SCHEMES):
        # A publish counts once RabbitMQ confirmed it (a log batch it did not
        # confirm goes to the spool); the queues are declared as
        # rabbitmq_queues() says, checked at start (webapp.execlog.rabbitmq).
        config["broker_transport_options"] = {"confirm_publish": True}
        config["task_queues"], config["rejected_queues"] = rabbitmq_queues(
            queue_type, delivery_limit, rejected_keep)
    return config


def session_config(environ: Mapping[str, str]) -> dict[str, Any]:
    """The browser session of the pages (:mod:`webapp.api.session`): a
    signed cookie, HttpOnly, SameSite=Lax, Secure when ``UI_COOKIE_SECURE=1``
    (set it behind HTTPS)."""
    return {
        "SESSION_COOKIE_NAME": "webapp_session",
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
        "SESSION_COOKIE_SECURE": _flag(environ, "UI_COOKIE_SECURE"),
        "PERMANENT_SESSION_LIFETIME": _float(environ, "UI_SESSION_HOURS", 12.0) * 3600.0,
    }


def config_from_env(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The app's configuration from environment variables and defaults."""
    environ = os.environ if environ is None else environ
    var_dir = Path(environ.get("WEBAPP_VAR_DIR") or Path.cwd() / "var").resolve()
    db_url = database_url(environ, var_dir)
    config: dict[str, Any] = {
        "VAR_DIR": str(var_dir),
        # None: the factory takes the key kept under VAR_DIR (webapp.secret_key).
        "SECRET_KEY": environ.get("SECRET_KEY") or None,
        "SECRET_KEY_FALLBACKS": _list(environ, "SECRET_KEY_FALLBACKS"),
        "SQLALCHEMY_DATABASE_URI": db_url,
        "SQLALCHEMY_ENGINE_OPTIONS": engine_options(db_url, environ),
        "DB_APPLICATION_NAME": environ.get("DB_APPLICATION_NAME", "webapp"),
        "DB_CONNECT_TIMEOUT": _int(environ, "DB_CONNECT_TIMEOUT", 5),
        "DB_STATEMENT_TIMEOUT": _float(environ, "DB_STATEMENT_TIMEOUT", 30.0),
        "CELERY": celery_config(
            broker_url(environ),
            var_dir,
            visibility_timeout=_int(environ, "CELERY_VISIBILITY_TIMEOUT", 300),
            worker_prefetch_multiplier=_int(environ, "CELERY_PREFETCH_MULTIPLIER", 4),
            rejected_keep=_int(environ, "CELERY_REJECTED_KEEP", 1000),
            rejected_max_chars=_int(environ, "CELERY_REJECTED_MAX_CHARS", 16384),
            queue_type=(environ.get("CELERY_QUEUE_TYPE") or "quorum").strip().lower(),
            delivery_limit=_int(environ, "CELERY_DELIVERY_LIMIT", 10),
        ),
        **session_config(environ),
    }
    passed = {name: value for name, value in environ.items()
              if name.startswith(PASSED_PREFIXES) or name in PASSED_KEYS}
    config.update(passed)
    config[ENVIRONMENT_KEYS] = frozenset(passed)
    return config

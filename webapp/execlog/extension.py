"""The Flask extension that gives an app its ExecutionLogger.

``ExecLog().init_app(app)`` builds the app's logger from its configuration and
stores it in ``app.extensions["execlog"]``. The module-level
``execution_logger`` is what callers import; it resolves to the current app's
logger inside an app context, and otherwise to the process's default logger
(the last one initialised with ``set_default=True``), so threads that never
push an app context log as before.

Configuration keys (read once by ``init_app``; environment variables of the
same name reach them through :mod:`webapp.config`):

=============================  ===========  =======================================
key                            default      meaning
=============================  ===========  =======================================
``EXECLOG_BACKEND``            ``celery``   ``celery``: batches through the
                                            ``logs`` queue; ``thread``: the
                                            flusher inserts itself, one
                                            connection
``EXECLOG_BATCH_SIZE``         ``50``       records that trigger a flush
``EXECLOG_FLUSH_INTERVAL``     ``2.0``      seconds the oldest record may wait
``EXECLOG_MAX_BATCH_SIZE``     ``1000``     records in one message at most
``EXECLOG_MAX_BUFFER``         ``100000``   records kept in memory at most; more
                                            go to the spool
``EXECLOG_MAX_MESSAGE_CHARS``  ``32768``    longer messages are truncated
``EXECLOG_MAX_DETAILS_CHARS``  ``65536``    longer ``details`` JSON is truncated
``EXECLOG_QUEUE``              ``logs``     Celery queue of log batches
``EXECLOG_DURABILITY``         ``disk``     ``disk``: every record also journaled
                                            to the spool at ``log()`` (memory if
                                            the spool cannot be written);
                                            ``memory``: only what cannot be
                                            published goes there
``EXECLOG_SPOOL_DIR``          ``$VAR_DIR/spool`` local spool directory
``EXECLOG_SPOOL_MAX_BYTES``    ``1 GiB``    the spool's cap; beyond it records
                                            are dropped and counted
``EXECLOG_FSYNC``              ``off``      ``interval``: the journal is written
                                            to the disk every
                                            ``EXECLOG_FSYNC_INTERVAL`` s (to
                                            survive a power loss of the host)
``EXECLOG_FSYNC_INTERVAL``     ``1.0``      seconds between those syncs
``EXECLOG_FALLBACK``           ``none``     ``database``: insert directly while
                                            the broker is down
``EXECLOG_PROBE_INTERVAL``     ``5.0``      seconds between tries of a sink that
                                            is down (meanwhile batches spool)
``EXECLOG_SHUTDOWN_TIMEOUT``   ``10.0``     seconds a shutdown flush may take
``EXECLOG_RETRY_BACKOFF``      ``1.0``      worker: first retry delay, seconds
``EXECLOG_RETRY_BACKOFF_MAX``  ``60.0``     worker: longest retry delay
``EXECLOG_RETENTION_DAYS``     ``30``       whole days of logs kept besides today
                                            (older partitions dropped, older rows
                                            deleted on SQLite); ``0`` keeps all
=============================  ===========  =======================================
"""

from __future__ import annotations

import atexit
import logging
import tempfile
import threading
import weakref
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, cast

from flask import current_app, has_app_context
from werkzeug.local import LocalProxy

from ..names import LOGS_QUEUE
from ..settings import Settings
from .buffer import JournaledBuffer, RecordBuffer
from .delivery import Delivery
from .logger import Backend, ExecutionLogger
from .fields import Limits
from .sinks import CelerySink, DatabaseSink, Sink
from .spool import Spool, SpoolJournal

if TYPE_CHECKING:
    from flask import Flask

log = logging.getLogger(__name__)

EXTENSION_KEY = "execlog"
BACKENDS = ("celery", "thread")
DURABILITIES = ("memory", "disk")
FALLBACKS = ("none", "database")
FSYNCS = ("off", "interval")
_ENUMERATED = ("EXECLOG_BACKEND", "EXECLOG_DURABILITY", "EXECLOG_FALLBACK", "EXECLOG_FSYNC")


@dataclass(frozen=True)
class ExecLogSettings(Settings):
    PREFIX: ClassVar[str] = "EXECLOG_"
    ENUMERATED: ClassVar[frozenset[str]] = frozenset(_ENUMERATED)

    backend: str = "celery"
    batch_size: int = 50
    flush_interval: float = 2.0
    max_batch_size: int = 1000
    max_buffer: int = 100_000
    max_message_chars: int = 32_768
    max_details_chars: int = 65_536
    queue: str = LOGS_QUEUE
    durability: str = "disk"
    #: Empty: ``<VAR_DIR>/spool`` (``var/spool`` without a ``VAR_DIR``).
    spool_dir: str = ""
    spool_max_bytes: int = 1024 * 1024 * 1024
    fsync: str = "off"
    fsync_interval: float = 1.0
    fallback: str = "none"
    probe_interval: float = 5.0
    shutdown_timeout: float = 10.0
    retry_backoff: float = 1.0
    retry_backoff_max: float = 60.0
    retention_days: int = 30

    @classmethod
    def derive(cls, values: dict[str, Any], config: Mapping[str, Any]) -> dict[str, Any]:
        if not values["spool_dir"]:
            values["spool_dir"] = str(Path(config.get("VAR_DIR") or "var") / "spool")
        return values

    def check(self) -> None:
        for key, value, allowed in (
            ("EXECLOG_BACKEND", self.backend, BACKENDS),
            ("EXECLOG_DURABILITY", self.durability, DURABILITIES),
            ("EXECLOG_FALLBACK", self.fallback, FALLBACKS),
            ("EXECLOG_FSYNC", self.fsync, FSYNCS),
        ):
            if value not in allowed:
                raise ValueError(f"{key} must be one of {', '.join(allowed)}; got {value!r}")
        if self.batch_size < 1:
            raise ValueError("EXECLOG_BATCH_SIZE must be at least 1")
        if self.max_batch_size < self.batch_size:
            raise ValueError("EXECLOG_MAX_BATCH_SIZE must be at least EXECLOG_BATCH_SIZE")
        if self.max_buffer < self.batch_size:
            raise ValueError("EXECLOG_MAX_BUFFER must be at least EXECLOG_BATCH_SIZE")
        if self.flush_interval <= 0:
            raise ValueError("EXECLOG_FLUSH_INTERVAL must be positive")
        if self.probe_interval <= 0:
            raise ValueError("EXECLOG_PROBE_INTERVAL must be positive")
        if self.spool_max_bytes < 1024 * 1024:
            raise ValueError("EXECLOG_SPOOL_MAX_BYTES must be at least 1 MiB (1048576)")
        if self.fsync_interval <= 0:
            raise ValueError("EXECLOG_FSYNC_INTERVAL must be positive")
        if self.retention_days < 0:
            raise ValueError("EXECLOG_RETENTION_DAYS must be 0 (keep everything) or more")
        if self.max_message_chars < 1 or self.max_details_chars < 2:
            raise ValueError("EXECLOG_MAX_MESSAGE_CHARS and EXECLOG_MAX_DETAILS_CHARS must be positive")


def build_backend(app: Flask, settings: ExecLogSettings) -> Backend:
    """The buffer and delivery chain that ``settings`` describe."""
    from .store import store_rows

    spool = Spool(Path(settings.spool_dir), max_bytes=settings.spool_max_bytes)
    primary: Sink
    if settings.backend == "celery":
        celery = app.extensions.get("celery")
        if celery is None:
            raise RuntimeError("EXECLOG_BACKEND=celery needs the app's Celery (celery_init_app) first")
        primary = CelerySink(celery, queue=settings.queue)
    else:
        primary = DatabaseSink(own_engine(app, "execlog-thread"), store_rows)
    fallback = None
    if settings.fallback == "database" and settings.backend != "thread":
        fallback = DatabaseSink(own_engine(app, "execlog-fallback"), store_rows)
    delivery = Delivery(
        primary,
        spool=spool,
        fallback=fallback,
        max_batch_size=settings.max_batch_size,
        retry_interval=settings.probe_interval,
        scan_interval=settings.flush_interval,
    )
    options = {"batch_size": settings.batch_size, "flush_interval": settings.flush_interval,
               "max_batch_size": settings.max_batch_size, "max_records": settings.max_buffer}
    if settings.durability == "disk" and spool_writable(spool):
        fsync_interval = settings.fsync_interval if settings.fsync == "interval" else 0.0
        journal = SpoolJournal(spool, delivery.counters.error, fsync_interval=fsync_interval)
        return JournaledBuffer(delivery, journal, **options)
    return RecordBuffer(delivery, **options)


def spool_writable(spool: Spool) -> bool:
    """Whether this process can write segments in the spool directory; disk
    durability falls back to memory (with a warning) where it cannot."""
    try:
        spool.ensure_directory()
        with tempfile.NamedTemporaryFile(dir=spool.directory, prefix=".probe-"):
            pass
    except OSError as exc:
        log.warning("execlog: the spool directory %s cannot be written (%s): records are kept in "
                    "memory only (EXECLOG_DURABILITY=memory); a killed process loses what it held",
                    spool.directory, exc)
        return False
    return True


def own_engine(app: Flask, role: str, pool_size: int = 1) -> Any:
    """An engine of the logger's own, apart from the app's pool.

    No pre-ping: SQLAlchemy's ping costs a transaction of its own at every
    checkout (measured: 2 commits per batch instead of 1). A connection that
    died fails its batch, which is retried (or spooled) on a fresh one. It
    connects as the app's engine does (the ``connect_args`` of
    ``SQLALCHEMY_ENGINE_OPTIONS``: on PostgreSQL the app's connect and
    statement timeouts, so a database that hangs fails the batch, to be
    retried, instead of holding a worker or the flusher for good), under the
    name ``<application_name>-<role>``.
    """
    import sqlalchemy as sa

    url = app.config["SQLALCHEMY_DATABASE_URI"]
    if url.startswith("sqlite"):
        return sa.create_engine(url, connect_args={"timeout": 30})
    connect_args = dict((app.config.get("SQLALCHEMY_ENGINE_OPTIONS") or {}).get("connect_args") or {})
    base = connect_args.get("application_name") or app.config.get("DB_APPLICATION_NAME", "webapp")
    connect_args["application_name"] = f"{base}-{role}"
    return sa.create_engine(url, pool_size=pool_size, max_overflow=0, pool_pre_ping=False,
                            connect_args=connect_args)


STORE_ENGINE_KEY = "execlog_store_engine"


def store_engine(app: Flask) -> Any:
    """The worker's engine for log batches (made on first use, per process)."""
    engine = app.extensions.get(STORE_ENGINE_KEY)
    if engine is None:
        engine = app.extensions[STORE_ENGINE_KEY] = own_engine(app, "execlog-store", pool_size=2)
    return engine


# -- process-wide registry ---------------------------------------------------

_loggers: weakref.WeakSet[ExecutionLogger] = weakref.WeakSet()
_default_logger: ExecutionLogger | None = None
_registry_lock = threading.Lock()


def set_default_logger(logger: ExecutionLogger | None) -> None:
    global _default_logger
    _default_logger = logger


def register_logger(logger: ExecutionLogger, *, default: bool) -> None:
    """Count ``logger`` among this process's (started and closed with them),
    and make it the process default when ``default``."""
    with _registry_lock:
        _loggers.add(logger)
        if default:
            set_default_logger(logger)


def current_logger() -> ExecutionLogger:
    """The current app's logger, else the process default."""
    if has_app_context():
        logger = current_app.extensions.get(EXTENSION_KEY)
        if logger is not None:
            return cast(ExecutionLogger, logger)
    if _default_logger is None:
        raise RuntimeError(
            "no ExecutionLogger yet: create the app with webapp.create_app() "
            "(or call ExecLog().init_app(app)) before logging"
        )
    return _default_logger


def start_all() -> None:
    """Start the flusher thread of every logger of this process."""
    for logger in list(_loggers):
        logger.start()


def close_all(timeout: float | None = None) -> None:
    """Flush and stop every logger of this process (shutdown hooks call this)."""
    for logger in list(_loggers):
        logger.close(timeout)


atexit.register(close_all)

#: What callers import: ``from webapp.execlog import execution_logger``.
execution_logger = cast(ExecutionLogger, LocalProxy(current_logger))


class ExecLog:
    """Flask extension: ``ExecLog(app)`` or ``ExecLog().init_app(app)``."""

    def __init__(self, app: Flask | None = None, *, set_default: bool = True) -> None:
        self.set_default = set_default
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> None:
        if EXTENSION_KEY in app.extensions:
            raise RuntimeError("ExecLog is already registered on this app")
        settings = ExecLogSettings.from_config(app.config)
        app.config.update(settings.as_config())
        logger = ExecutionLogger(
            build_backend(app, settings),
            shutdown_timeout=settings.shutdown_timeout,
            settings=settings,
            limits=Limits(settings.max_message_chars, settings.max_details_chars),
        )
        app.extensions[EXTENSION_KEY] = logger
        register_logger(logger, default=self.set_default)

    @property
    def logger(self) -> ExecutionLogger:
        """The current app's logger."""
        try:
            return cast(ExecutionLogger, current_app.extensions[EXTENSION_KEY])
        except KeyError:
            raise RuntimeError("ExecLog.init_app(app) was not called for this app") from None


#: The extension instance the app factory binds (``webapp.extensions``
#: re-exports it).
execlog = ExecLog()

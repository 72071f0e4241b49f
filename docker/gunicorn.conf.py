"""gunicorn settings for the API (``make run``, the Docker image, the bench).

Every setting can be overridden from the environment (``GUNICORN_*``, or the
standard ``WEB_CONCURRENCY`` for the worker count).
"""

import os
from pathlib import Path

from webapp.config import config_from_env

bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8000")
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
# gthread: a worker holds several requests at once, so a slow client (or a
# long-lived stream) does not take a whole process.
worker_class = os.environ.get("GUNICORN_WORKER_CLASS", "gthread")
threads = int(os.environ.get("GUNICORN_THREADS", "8"))
# Event streams may take at most half the threads of a worker: the others
# serve ordinary requests (webapp.api.streams; on_starting checks a value set).
os.environ.setdefault("API_SSE_MAX_STREAMS", str(max(1, threads // 2)))
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "60"))
graceful_timeout = int(os.environ.get("GUNICORN_GRACEFUL_TIMEOUT", "30"))
keepalive = 5
# Build the app once in the master and fork it: workers start fast and share
# memory. The execution logger starts its flusher thread lazily in each
# worker, and inherited database connections are dropped in post_fork.
preload_app = os.environ.get("GUNICORN_PRELOAD", "1") == "1"
# gunicorn's control socket (gunicornc) defaults to one path per user: two
# servers on a host (tests, benchmarks) would fight over it. Opt in with a path.
control_socket_disable = not os.environ.get("GUNICORN_CONTROL_SOCKET")
if os.environ.get("GUNICORN_CONTROL_SOCKET"):
    control_socket = os.environ["GUNICORN_CONTROL_SOCKET"]
accesslog = os.environ.get("GUNICORN_ACCESSLOG") or None
errorlog = "-"
loglevel = os.environ.get("GUNICORN_LOGLEVEL", "info")

# Prometheus multiprocess mode: every worker writes its metrics to files in
# this directory and GET /metrics reads them all. It must be set before the
# app (and so prometheus_client) is imported, which this file precedes.
os.environ.setdefault(
    "PROMETHEUS_MULTIPROC_DIR", str(Path(config_from_env(os.environ)["VAR_DIR"]) / "prometheus" / "web")
)
os.makedirs(os.environ["PROMETHEUS_MULTIPROC_DIR"], exist_ok=True)


def on_starting(server):
    """Refuse to serve the API open on a public address, or with event
    streams allowed to take every thread; say how access is controlled;
    forget the metrics of an earlier run; answer gunicorn's own errors (a
    request it cannot parse) as problem documents, like the API's."""
    from webapp.api import gunicorn_errors
    from webapp.api.auth import open_bind_problem
    from webapp.api.settings import ApiSettings
    from webapp.api.streams import stream_threads_problem
    from webapp.metrics import clear_multiprocess_dir, multiprocess_dir

    config = config_from_env(os.environ)
    problem = (open_bind_problem(config, server.cfg.address)
               or stream_threads_problem(config, server.cfg.worker_class_str, server.cfg.threads))
    if problem:
        raise RuntimeError(problem)
    if ApiSettings.from_config(config).auth == "open":
        server.log.warning("API access is OPEN (API_AUTH=open): no token is asked; "
                           "only clients on this host are served")
    else:
        server.log.info("API access: bearer tokens required (API_AUTH=token)")
        if not config["SECRET_KEY"]:
            server.log.info("page sessions are signed with the key in %s/secret_key: with more than one "
                            "web host, set SECRET_KEY, the same on every host", config["VAR_DIR"])
    clear_multiprocess_dir(multiprocess_dir(), keep_pid=os.getpid())
    gunicorn_errors.install()


def pre_fork(server, worker):
    """The master built the app (``--preload``): what it made leaves the
    garbage collector's scans before it forks (webapp.lifecycle)."""
    from webapp import lifecycle

    lifecycle.loaded()


def post_worker_init(worker):
    """A worker process starts serving (webapp.lifecycle: inherited
    connections dropped, its log flusher started, what it made frozen)."""
    from webapp import lifecycle

    lifecycle.child_started(worker.wsgi)


def worker_exit(server, worker):
    """A worker process stops: its execution logs are flushed. gunicorn may
    call this hook in the master too; only the worker holds its buffer."""
    if os.getpid() != worker.pid:
        return
    from webapp import lifecycle

    lifecycle.stopping()


def child_exit(server, worker):
    """A worker is gone: its live gauges (records buffered) no longer count."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def worker_abort(worker):
    """SIGABRT after a timeout: a short best-effort flush (the rest spools)."""
    from webapp import lifecycle

    lifecycle.stopping(timeout=2.0)


def on_exit(server):
    """With ``--preload`` the master built the app too: flush whatever it
    logged (workers' records are flushed by ``worker_exit``)."""
    from webapp import lifecycle

    lifecycle.stopping(timeout=5.0)

"""The app the benchmark serves: the real app, plus one route that does what
a busy request of the original system did.

``POST /bench/work?log=1`` takes the body of ``POST /api/v1/logs`` (K
records), validates it with the same schema and logs the K records through
``execution_logger``. One request in :data:`TIMED_EVERY` (of each process)
times each of its ``log()`` calls: wall time, which includes waiting for
the GIL behind the process's other threads, and the calling thread's CPU
time (``thread_time_ns``, which itself costs about 0.6 us). Timing every
call cost the requests more than ``log()`` did (a py-spy profile of a
gunicorn worker: 7.7% of its samples in the timing lines, 3.5% in
``log()``), a cost of the measurement that the comparison with no logging
charged to logging; the sampled requests give the percentiles. ``log=0`` is the same
request with logging disabled: the baseline the overhead of logging is
measured against. ``hold=1`` first reads from the database the way handlers
do, so that the request holds a connection of the app's pool until it ends
(the pool-exhaustion scenario); without it the request touches the database
only through logging, so the connections the web tier holds are logging's.

    gunicorn -c docker/gunicorn.conf.py bench.app:app

The route lives here, not in the product: only the benchmark serves it.
With ``BENCH_LOGGER=direct`` the app logs through the direct back end
(:mod:`bench.direct`), the design the project replaces.
"""

from __future__ import annotations

import itertools
import os
import time

import sqlalchemy as sa
from flask import Blueprint, Flask, current_app, request
from flask.typing import ResponseReturnValue

from bench.direct import ENVIRONMENT_KEY, use_direct_logger
from webapp import create_app
from webapp.api.logs import LogBatchIn
from webapp.extensions import db

bp = Blueprint("bench", __name__)

#: One request in this many times its log() calls.
TIMED_EVERY = 10
_requests = itertools.count()


@bp.post("/bench/work")
def work() -> ResponseReturnValue:
    batch = LogBatchIn().load(request.get_json())
    if request.args.get("hold") == "1":
        # A real handler reads something first; with Flask-SQLAlchemy its
        # session keeps the connection until the request ends.
        db.session.execute(sa.select(sa.func.now()))
    wall: list[int] = []
    cpu: list[int] = []
    first_id = None
    if request.args.get("log", "1") == "1":
        logger = current_app.extensions["execlog"]
        records = batch["records"]
        if next(_requests) % TIMED_EVERY:
            first_id = logger.log(**records[0]).id if records else None
            for record in records[1:]:
                logger.log(**record)
        else:
            clock, cpu_clock = time.perf_counter_ns, time.thread_time_ns
            for record in records:
                started, started_cpu = clock(), cpu_clock()
                logged = logger.log(**record)
                cpu.append(cpu_clock() - started_cpu)
                wall.append(clock() - started)
                if first_id is None:
                    first_id = logged.id
    return {"accepted": len(batch["records"]), "first_id": first_id, "log_ns": wall, "log_cpu_ns": cpu}


def create_bench_app() -> Flask:
    os.environ.setdefault("DB_APPLICATION_NAME", "webapp-web")  # as wsgi.py
    app = create_app()
    if os.environ.get(ENVIRONMENT_KEY) == "direct":
        use_direct_logger(app)
    app.register_blueprint(bp)
    return app


app = create_bench_app()

"""The Celery worker of the benchmark: the project's (``celery_worker``), or
with ``BENCH_LOGGER=direct`` one whose workflows log through the direct back
end (:mod:`bench.direct`).

    celery -A bench.worker worker ...
"""

from __future__ import annotations

import os

from bench.direct import ENVIRONMENT_KEY, use_direct_logger
from celery_worker import celery, flask_app

if os.environ.get(ENVIRONMENT_KEY) == "direct":
    use_direct_logger(flask_app)

__all__ = ["celery", "flask_app"]

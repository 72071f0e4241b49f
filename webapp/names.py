"""The names every process must agree on: the Celery queues and task names.

A leaf module, which any layer may import (the execution log, the workflow
engine, the configuration): a producer publishes to these names, and a
worker, perhaps of another version on another host, consumes them.
"""

#: Log batches (``redis-cli LLEN logs`` is the backlog).
LOGS_QUEUE = "logs"
#: Workflow runs.
WORKFLOWS_QUEUE = "workflows"

#: Stores one batch of log records (:mod:`webapp.execlog.tasks`).
INSERT_BATCH_TASK = "execlog.insert_batch"
#: The serializer of its messages, and their content type: JSON read back
#: as it was written (:mod:`webapp.execlog.serializer`).
BATCH_SERIALIZER = "execlog-json"
BATCH_CONTENT_TYPE = "application/x-execlog-batch+json"
#: The beat task that keeps ``execution_logs`` partitioned and pruned
#: (:mod:`webapp.execlog.retention`); an ``execlog.*`` task, so on ``logs``.
RETENTION_TASK = "execlog.maintain_partitions"
#: Runs (or resumes) one execution (:mod:`webapp.workflow.tasks`).
RUN_TASK = "workflow.run"
#: The beat task that fails executions whose worker is gone
#: (:mod:`webapp.workflow.heartbeat`).
FAIL_STALLED_TASK = "workflow.fail_stalled"

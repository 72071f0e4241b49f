"""WorkflowBrain: runs one execution, step after step, in a Celery task.

The task claims the execution first: one UPDATE from ``queued`` to
``running``. A second delivery of the same message, or a resume racing a run,
finds it no longer queued and does nothing, so an execution never runs twice
at once.

Every try of every step goes through one place, :meth:`step_try`: it
marks the step and the execution, logs the start and the end with its
duration, publishes the progress events, and hands a failure to the
ErrorHandler. Runners hold only their own logic.

No database connection is held while a runner runs: the state changes before
and after it are committed, and the runner's input is read before. A record
that says the state changed is logged after its commit, so that a process
killed in between never leaves a log that claims what the database does not
have (a run killed while it commits its success would otherwise say
"succeeded" twice once resumed).

Each run is an attempt of the execution (``Execution.attempts`` once
claimed). Everything the run logs goes through its
:class:`~.tally.AttemptLogger`, which tags each record with the attempt and
counts it; when the run ends, the count is stored with what the process
dropped for good, for the log's completeness verdict.

While the run lasts, a :class:`~.heartbeat.Heartbeat` stamps the execution,
so that one whose worker died is found and failed (``worker_lost``); if that
sweep failed this very run (its stamps could not be written), the run stops
before the next step and writes nothing more.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from types import MappingProxyType
from typing import Any

import sqlalchemy as sa

from webapp.execlog import ExecutionLogger, LogCategory
from webapp.execlog import execution_logger as _default_logger

from ..extensions import db
from ..models import Execution, ExecutionStep, utcnow
from .definition import Step
from .error_handler import ErrorHandler, Failure
from .errors import INTERNAL_ERROR, WORKFLOW_UNAVAILABLE, UnknownWorkflow, WorkflowUnavailable
from .current import current_notifier, current_registry
from .heartbeat import ExecutionLost, Heartbeat
from .notify import NotificationService
from .registry import Registry
from .retry import RetryService, StepFailed
from .runner import Runner, StepContext
from .settings import WorkflowSettings, current_settings
from .steplog import StepLogger
from .tally import REPORT_FLUSH_TIMEOUT, AttemptLogger

#: What ``run`` returns when the execution was not queued (nothing done).
NOT_CLAIMED = "not_claimed"
#: What ``run`` returns when the run was taken away from this process.
LOST = "lost"


@dataclass
class StepTry:
    """One try of one step, what :meth:`WorkflowBrain.step_try` yields: which
    step, which try of it, and its logger; the body sets ``output``."""

    execution_id: str
    workflow: str
    step: str
    attempt: int
    logger: StepLogger
    output: dict[str, Any] | None = None


@dataclass
class Run:
    """One attempt's tools: its logger (tags and counts), the error handler
    and the retry service that log through it, and its heartbeat."""

    log: AttemptLogger
    errors: ErrorHandler
    retries: RetryService
    heartbeat: Heartbeat | None = None


class WorkflowBrain:
    def __init__(
        self,
        registry: Registry,
        notifier: NotificationService,
        *,
        logger: ExecutionLogger | None = None,
        heartbeat_seconds: float = WorkflowSettings.heartbeat_seconds,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.registry = registry
        self.heartbeat_seconds = heartbeat_seconds
        self.notifier = notifier
        self.logger = _default_logger if logger is None else logger
        self.sleep = sleep
        #: For failures of the engine after a run (``abandon``): not an
        #: attempt's record.
        self.errors = ErrorHandler(self.logger)

    @classmethod
    def for_current_app(cls) -> WorkflowBrain:
        return cls(current_registry(), current_notifier(),
                   heartbeat_seconds=current_settings().heartbeat_seconds)

    def run(self, execution_id: uuid.UUID) -> str:
        """Run a queued execution to its end; its final status,
        ``NOT_CLAIMED`` when it was not queued, or ``LOST`` when it was failed
        as ``worker_lost`` while it ran."""
        execution = self._claim(execution_id)
        if execution is None:
            return NOT_CLAIMED
        run = self.new_run(execution.attempts)
        try:
            with Heartbeat(db.engine, execution_id, self.heartbeat_seconds) as heartbeat:
                run.heartbeat = heartbeat
                try:
                    return self._run_claimed(execution, run)
                except ExecutionLost as exc:
                    db.session.rollback()
                    run.log.warning(str(execution_id), LogCategory.WORKFLOW, f"run stopped: {exc}")
                    return LOST
        finally:
            run.log.report(execution_id, REPORT_FLUSH_TIMEOUT)

    def new_run(self, attempt: int) -> Run:
        """The tools of attempt ``attempt``, all logging through one
        AttemptLogger."""
        log = AttemptLogger(self.logger, attempt)
        return Run(log, ErrorHandler(log), RetryService(self.notifier, log, sleep=self.sleep))

    def _run_claimed(self, execution: Execution, run: Run) -> str:
        execution_id = execution.id
        started = time.perf_counter()
        rows = list(db.session.scalars(
            sa.select(ExecutionStep).where(ExecutionStep.execution_id == execution_id)
            .order_by(ExecutionStep.position)
        ))
        assert run.heartbeat is not None
        try:
            result = self._run_steps(execution, self._plan(execution.workflow, rows), run)
        except (UnknownWorkflow, WorkflowUnavailable) as exc:
            failure = Failure(WORKFLOW_UNAVAILABLE, str(exc))
        except StepFailed as failed:
            failure = failed.failure
        else:
            run.heartbeat.check()
            self._succeed(execution, result, started, run)
            return "succeeded"
        run.heartbeat.check()
        self._fail(execution, rows, failure, started, run)
        return "failed"

    def _run_steps(self, execution: Execution, plan: list[tuple[Step, ExecutionStep]], run: Run) -> Any:
        """Run the steps that have not succeeded yet, reusing the outputs of
        those that have; the last step's output. ``StepFailed`` when a step
        fails for good."""
        workflow_input = dict(execution.input)
        run.log.log_workflow_start(
            str(execution.id), None, f"workflow {execution.workflow} started",
            details={"steps": [step.name for step, _ in plan], "run": execution.attempts,
                     "completed_steps": [row.name for _, row in plan if row.status == "succeeded"]},
        )
        outputs: dict[str, Any] = {}
        for step, row in plan:
            if row.status == "succeeded":
                outputs[step.name] = row.output
                continue
            runner = self.registry.runner(step.runner)
            attempt = partial(self._attempt, execution, row, runner, workflow_input, outputs, run)
            outputs[step.name] = run.retries.run(execution.id, step, attempt)
        return outputs[plan[-1][0].name]

    @contextmanager
    def step_try(self, step: ExecutionStep, execution: Execution, run: Run) -> Iterator[StepTry]:
        """One try of ``step``: mark it running, log and publish its start;
        on success record the output the body set, log and publish; on an
        exception record the classified failure, publish it and raise
        ``StepFailed``. With a heartbeat that has found the execution
        taken away, raise ``ExecutionLost`` instead of writing anything."""
        heartbeat = run.heartbeat
        if heartbeat is not None:
            heartbeat.check()
        execution_id, name, position = execution.id, step.name, step.position
        trace_id, attempt = str(execution_id), step.attempts + 1
        step.status, step.attempts, step.started_at = "running", attempt, utcnow()
        step.finished_at = step.duration_ms = None
        step.error = sa.null()
        execution.current_step = name
        this_try = StepTry(trace_id, execution.workflow, name, attempt,
                           StepLogger(trace_id, name, run.log))
        where = {"step": name, "position": position, "attempt": attempt}
        self.notifier.publish(execution_id, "step_started", where)
        db.session.commit()
        this_try.logger.log_workflow_start(
            f"step {name} started", details={"runner": step.runner, "position": position, "attempt": attempt}
        )
        started = time.perf_counter()
        try:
            yield this_try
        except Exception as exc:
            duration_ms = (time.perf_counter() - started) * 1000.0
            db.session.rollback()  # whatever the runner left in the session
            if heartbeat is not None:
                heartbeat.check()
            failure = run.errors.step_failed(exc, step, attempt, duration_ms)
            self.notifier.publish(execution_id, "step_failed",
                                  {**where, "duration_ms": duration_ms, "error": failure.to_json()})
            db.session.commit()
            run.errors.log_step_failed(trace_id, failure, duration_ms, exc)
            raise StepFailed(failure) from exc
        duration_ms = (time.perf_counter() - started) * 1000.0
        if heartbeat is not None:
            heartbeat.check()
        step.status, step.output = "succeeded", this_try.output
        step.finished_at, step.duration_ms = utcnow(), duration_ms
        self.notifier.publish(execution_id, "step_succeeded", {**where, "duration_ms": duration_ms})
        db.session.commit()
        this_try.logger.log_workflow_complete(
            f"step {name} succeeded", duration_ms=duration_ms, details={"attempt": attempt}
        )

    def abandon(self, execution_id: uuid.UUID, exc: BaseException) -> None:
        """Mark a running execution failed after the engine itself failed
        (e.g. the database went away), so that it can be resumed."""
        db.session.rollback()
        execution = db.session.get(Execution, execution_id)
        if execution is None or execution.status != "running":
            return
        failure = Failure(INTERNAL_ERROR, f"{type(exc).__name__}: {exc}", execution.current_step,
                          exception=type(exc).__name__)
        self.errors.fail_execution(execution, failure, self.notifier)

    # -- the steps of a run ----------------------------------------------

    def _claim(self, execution_id: uuid.UUID) -> Execution | None:
        now = utcnow()
        claimed = db.session.execute(
            sa.update(Execution)
            .where(Execution.id == execution_id, Execution.status == "queued")
            .values(status="running", attempts=Execution.attempts + 1, error=sa.null(),
                    started_at=sa.func.coalesce(Execution.started_at, now), finished_at=None,
                    updated_at=now, heartbeat_at=now)
            .execution_options(synchronize_session=False)
        ).rowcount
        if not claimed:
            db.session.rollback()
            status = db.session.scalar(sa.select(Execution.status).where(Execution.id == execution_id))
            self.logger.warning(
                str(execution_id), LogCategory.WORKFLOW,
                f"run request ignored: the execution is {status or 'unknown'}, not queued",
                details={"status": status},
            )
            db.session.rollback()
            return None
        execution = db.session.get(Execution, execution_id, populate_existing=True)
        assert execution is not None
        self.notifier.publish(execution_id, "execution_started",
                              {"workflow": execution.workflow, "run": execution.attempts})
        db.session.commit()
        return execution

    def _plan(self, workflow_name: str, rows: list[ExecutionStep]) -> list[tuple[Step, ExecutionStep]]:
        """The workflow's steps with the execution's rows; the definition
        must still have the steps the execution was created with."""
        workflow = self.registry.workflow(workflow_name)
        now = [(step.name, step.runner) for step in workflow.steps]
        then = [(row.name, row.runner) for row in rows]
        if now != then:
            raise WorkflowUnavailable(
                f"workflow {workflow_name!r} changed since the execution was created: its steps are "
                f"{_steps(now)}, the execution's are {_steps(then)}"
            )
        return list(zip(workflow.steps, rows))

    def _attempt(
        self,
        execution: Execution,
        row: ExecutionStep,
        runner: type[Runner],
        workflow_input: Mapping[str, Any],
        outputs: Mapping[str, Any],
        run: Run,
    ) -> dict[str, Any]:
        with self.step_try(row, execution, run) as this_try:
            context = StepContext(
                execution_id=this_try.execution_id,
                workflow=this_try.workflow,
                step=this_try.step,
                attempt=this_try.attempt,
                workflow_input=MappingProxyType(runner.load_input(workflow_input)),
                outputs=MappingProxyType(dict(outputs)),
                logger=this_try.logger,
            )
            this_try.output = runner.check_output(runner().run(context))
        return this_try.output

    def _succeed(self, execution: Execution, result: Any, started: float, run: Run) -> None:
        duration_ms = (time.perf_counter() - started) * 1000.0
        execution_id, workflow_name, attempt = execution.id, execution.workflow, execution.attempts
        execution.status, execution.result = "succeeded", result
        execution.finished_at, execution.current_step = utcnow(), None
        db.session.merge(run.log.count_row(execution_id, still_to_log=1))
        self.notifier.publish(execution_id, "execution_succeeded", {"duration_ms": duration_ms})
        db.session.commit()
        run.log.log_workflow_complete(
            str(execution_id), None, f"workflow {workflow_name} succeeded",
            duration_ms=duration_ms, details={"run": attempt},
        )

    def _fail(
        self, execution: Execution, rows: list[ExecutionStep], failure: Failure, started: float, run: Run
    ) -> None:
        duration_ms = (time.perf_counter() - started) * 1000.0
        for row in rows:
            if row.status == "pending":
                row.status = "skipped"
        db.session.merge(run.log.count_row(execution.id, still_to_log=1))
        run.errors.fail_execution(execution, failure, self.notifier, duration_ms)


def _steps(pairs: list[tuple[str, str]]) -> str:
    return " -> ".join(name if name == runner else f"{name} ({runner})" for name, runner in pairs)

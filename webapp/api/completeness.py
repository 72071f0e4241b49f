"""Whether an execution's log is complete: what its runs logged, against
what is stored.

Each run of an execution is an attempt (``Execution.attempts``: 1, then one
more per resume). The run counts every record it logs, and once it has
flushed its logger it stores that count with the records its process
dropped for good (:mod:`webapp.workflow.tally`, ``execution_log_counts``).
Here, for each attempt:

* ``emitted``: what the run counted (null until it reports);
* ``stored``: the rows of ``execution_logs`` of the trace and attempt;
* ``dropped`` (the run's own count) and ``dead_letters`` (rows of
  ``execution_log_dead_letters`` of the trace and attempt): lost for good.

and its ``state``:

=============  ==============================================================
``running``    the run has not reported yet and the execution is running
``unreported`` the execution is over and the run never reported (its worker
               died): nothing can be said of what it logged
``in_flight``  reported, and stored + lost < emitted: records on their way
``incomplete`` some records are lost for good (``reason`` says how many, and
               why): a permanent shortfall
``pruned``     stored + lost < emitted, and the execution began before the
               retention cutoff (``EXECLOG_RETENTION_DAYS``): its older
               records were removed on purpose, none are on their way
``complete``   every record the run emitted is stored
=============  ==============================================================

Records of the trace with no attempt come from elsewhere (``POST
/api/v1/logs``, web requests such as a resume): they count in ``stored``
and are reported apart (``from_elsewhere``), never against ``emitted``, so
they cannot make a complete log look incomplete.

The execution's verdict: ``emitted`` summed over its attempts (null while
one has not reported; 0 before any run, when there is no attempt to wait
for), ``stored`` every row of the trace, ``complete`` when the execution is
over and every attempt is complete, and the ``state`` of its worst attempt
(``pending`` before any run).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone

import sqlalchemy as sa
from flask import current_app

from ..execlog.retention import retention_cutoff
from ..extensions import db
from ..models import DeadLetter, Execution, ExecutionLog, ExecutionLogCount

#: Attempt states, the worst first: an execution's state is its worst attempt's.
STATES = ("incomplete", "unreported", "pruned", "in_flight", "running", "complete")
#: States that will not change by themselves.
SETTLED = ("incomplete", "unreported", "pruned", "complete")
OVER = ("succeeded", "failed")


@dataclass(frozen=True)
class AttemptVerdict:
    attempt: int
    emitted: int | None
    stored: int
    dropped: int
    dead_letters: int
    state: str
    reason: str | None

    @property
    def complete(self) -> bool:
        return self.state == "complete"


@dataclass(frozen=True)
class Verdict:
    emitted: int | None
    stored: int
    from_elsewhere: int
    complete: bool
    state: str
    reason: str | None
    attempts: list[AttemptVerdict] = field(default_factory=list)

    @property
    def settled(self) -> bool:
        """Whether the verdict can still change by itself (records landing)."""
        return self.state in SETTLED

    @property
    def dropped(self) -> int:
        return sum(a.dropped for a in self.attempts)

    @property
    def dead_letters(self) -> int:
        return sum(a.dead_letters for a in self.attempts)


def verdict(execution: Execution) -> Verdict:
    return verdicts([execution])[execution.id]


def verdicts(executions: Sequence[Execution]) -> dict[uuid.UUID, Verdict]:
    """The verdict of each execution, in three grouped reads whatever
    their number (the list page asks for a page of them)."""
    traces = [str(e.id) for e in executions]
    if not traces:
        return {}
    stored = _grouped(ExecutionLog.trace_id, ExecutionLog.attempt, traces)
    dead = _grouped(DeadLetter.trace_id, DeadLetter.attempt, traces)
    counts = {(row.execution_id, row.attempt): row for row in db.session.scalars(
        sa.select(ExecutionLogCount).where(ExecutionLogCount.execution_id.in_([e.id for e in executions])))}
    cutoff = _retention_cutoff()
    return {e.id: _verdict(e, stored, dead, counts, cutoff) for e in executions}


def _retention_cutoff() -> datetime | None:
    """The moment before which retention removes records (None: kept)."""
    days = current_app.extensions["execlog"].settings.retention_days
    return retention_cutoff(datetime.now(timezone.utc).date(), days)


def _began_before(execution: Execution, cutoff: datetime | None) -> bool:
    if cutoff is None or execution.created_at is None:
        return False
    created = execution.created_at
    if created.tzinfo is None:  # SQLite gives naive UTC
        created = created.replace(tzinfo=timezone.utc)
    return created < cutoff


def _grouped(trace: sa.ColumnElement[str], attempt: sa.ColumnElement[int | None],
             traces: list[str]) -> dict[tuple[str, int | None], int]:
    rows = db.session.execute(
        sa.select(trace, attempt, sa.func.count()).where(trace.in_(traces)).group_by(trace, attempt))
    return {(row[0], row[1]): row[2] for row in rows}


def _verdict(execution: Execution, stored: dict[tuple[str, int | None], int],
             dead: dict[tuple[str, int | None], int],
             counts: dict[tuple[uuid.UUID, int], ExecutionLogCount], cutoff: datetime | None) -> Verdict:
    trace = str(execution.id)
    pruned_before = cutoff if _began_before(execution, cutoff) else None
    attempts = [
        _attempt(number, counts.get((execution.id, number)), stored.get((trace, number), 0),
                 dead.get((trace, number), 0),
                 running=execution.status not in OVER and number == execution.attempts,
                 pruned_before=pruned_before)
        for number in range(1, execution.attempts + 1)
    ]
    every_stored = sum(n for (t, _), n in stored.items() if t == trace)
    from_elsewhere = stored.get((trace, None), 0)
    emitted = None if any(a.emitted is None for a in attempts) else sum(a.emitted or 0 for a in attempts)
    if not attempts:
        return Verdict(emitted, every_stored, from_elsewhere, False, "pending",
                       "the execution has not run yet", [])
    state = min((a.state for a in attempts), key=STATES.index)
    reasons = [a.reason for a in attempts if a.reason]
    complete = execution.status in OVER and state == "complete"
    return Verdict(emitted, every_stored, from_elsewhere, complete, state,
                   "; ".join(reasons) or None, attempts)


def _attempt(number: int, count: ExecutionLogCount | None, stored: int, dead: int, *,
             running: bool, pruned_before: datetime | None) -> AttemptVerdict:
    if count is None:
        if running:
            return AttemptVerdict(number, None, stored, 0, dead, "running", None)
        return AttemptVerdict(number, None, stored, 0, dead, "unreported",
                              f"attempt {number}: its run never reported what it logged (its worker "
                              f"stopped before the end); {_records(stored)} of it "
                              f"{'is' if stored == 1 else 'are'} stored")
    lost = count.dropped + dead
    if lost == 0 and stored >= count.emitted:
        return AttemptVerdict(number, count.emitted, stored, 0, 0, "complete", None)
    why = _lost(number, count.dropped, dead)
    if stored + lost >= count.emitted:
        return AttemptVerdict(number, count.emitted, stored, count.dropped, dead, "incomplete", why)
    if pruned_before is not None:
        kept = (f"attempt {number}: {stored} of {_records(count.emitted)} kept; those logged before "
                f"{pruned_before:%Y-%m-%d %H:%M} UTC were removed by retention (EXECLOG_RETENTION_DAYS)")
        return AttemptVerdict(number, count.emitted, stored, count.dropped, dead, "pruned",
                              f"{kept}; {why}" if why else kept)
    waiting = (f"attempt {number}: {count.emitted - stored - lost} of {_records(count.emitted)} "
               f"not stored yet")
    return AttemptVerdict(number, count.emitted, stored, count.dropped, dead, "in_flight",
                          f"{waiting}; {why}" if why else waiting)


def _lost(number: int, dropped: int, dead: int) -> str | None:
    parts = []
    if dropped:
        parts.append(f"{dropped} dropped by the process that ran it (memory and spool both full "
                     f"or failing)")
    if dead:
        parts.append(f"{dead} refused by the database (see execution_log_dead_letters)")
    if not parts:
        return None
    noun = "record" if dropped + dead == 1 else "records"
    return f"attempt {number}: {noun} lost for good: {', '.join(parts)}"


def _records(number: int) -> str:
    """``1 record``, ``2 records``."""
    return f"{number} record" if number == 1 else f"{number} records"

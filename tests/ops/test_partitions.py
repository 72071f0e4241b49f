"""Daily partitions of execution_logs on PostgreSQL: inserts with the worker's
own code (store_rows), maintenance with apply_retention, on a database of
this module's own. Each test picks its own "today", far from the others."""

from __future__ import annotations

import threading
from datetime import date, timedelta

import pytest
import sqlalchemy as sa

from webapp.execlog import retention
from webapp.execlog.retention import DAYS_AHEAD, DEFAULT_PARTITION, apply_retention, partition_name
from webapp.execlog.store import TransientStoreError, store_rows

from ..support.waiting import wait_for
from .conftest import at, rows_at, where_stored

DAY = timedelta(days=1)


@pytest.fixture
def engine(own_engine):
    """The module's database with no day partition and an empty default one."""
    with own_engine.begin() as connection:
        days = retention._partition_days(connection)
        for day in days:
            connection.execute(sa.text(f"DROP TABLE {partition_name(day)}"))
        retention._ensure_default_partition(connection)
        connection.execute(sa.text("TRUNCATE execution_logs, execution_log_dead_letters"))
    return own_engine


def partitions(engine) -> set[date]:
    with engine.connect() as connection:
        return retention._partition_days(connection)


def dead_letters(engine) -> int:
    with engine.connect() as connection:
        return connection.execute(sa.text("SELECT count(*) FROM execution_log_dead_letters")).scalar_one()


def test_maintenance_creates_today_and_the_days_ahead_once(engine):
    today = date(2031, 3, 10)
    first = apply_retention(engine, 30, today=today)
    again = apply_retention(engine, 30, today=today)

    expected = {today + n * DAY for n in range(DAYS_AHEAD + 1)}
    assert partitions(engine) == expected
    assert first.created == [partition_name(day) for day in sorted(expected)]
    assert (again.created, again.dropped, again.moved) == ([], [], 0)


def test_records_land_in_the_partition_of_their_utc_day_on_both_sides_of_midnight(engine, trace_id):
    today = date(2031, 3, 10)
    apply_retention(engine, 30, today=today)
    rows = rows_at(trace_id, at(today, 23, 59, 59, 999_999), at(today + DAY), at(today + DAY, 0, 0, 0, 1))

    result = store_rows(engine, rows)

    assert result.inserted == 3
    assert [table for table, _ in where_stored(engine, trace_id)] == [
        partition_name(today), partition_name(today + DAY), partition_name(today + DAY),
    ]


def test_a_day_with_no_partition_is_stored_and_maintenance_moves_it_into_its_own(engine, trace_id):
    today = date(2031, 3, 10)
    apply_retention(engine, 30, today=today)
    late, skewed = at(today - 3 * DAY, 12), at(today + 40 * DAY, 12)

    result = store_rows(engine, rows_at(trace_id, late, at(today, 12), skewed))

    assert (result.inserted, result.dead) == (3, 0)
    assert [table for table, _ in where_stored(engine, trace_id)] == [
        DEFAULT_PARTITION, partition_name(today), DEFAULT_PARTITION,
    ]
    report = apply_retention(engine, 30, today=today)
    assert (report.created, report.moved) == ([partition_name(today - 3 * DAY)], 1)
    # The row from a clock 40 days ahead stays where it is: no partition is
    # made for days beyond the ones ahead (a wild clock must not make dozens).
    assert [table for table, _ in where_stored(engine, trace_id)] == [
        partition_name(today - 3 * DAY), partition_name(today), DEFAULT_PARTITION,
    ]


def test_a_replayed_batch_lands_once_across_partitions_and_the_default_one(engine, trace_id):
    today = date(2031, 3, 10)
    apply_retention(engine, 30, today=today)
    batch = rows_at(trace_id, at(today - DAY, 23, 59), at(today, 0, 0, 1), at(today + DAY, 8))

    first = store_rows(engine, batch)
    replay_before = store_rows(engine, batch)
    apply_retention(engine, 30, today=today)  # moves yesterday's row out of the default partition
    replay_after = store_rows(engine, list(reversed(batch)))

    assert (first.inserted, replay_before.duplicates, replay_after.duplicates) == (3, 3, 3)
    assert [table for table, _ in where_stored(engine, trace_id)] == [
        partition_name(today - DAY), partition_name(today), partition_name(today + DAY),
    ]


def test_prune_drops_whole_partitions_before_the_window_and_keeps_every_row_after(engine, trace_id):
    today = date(2031, 3, 10)
    cutoff = at(today - 3 * DAY)
    # Days today-5 .. today, filled through the default partition, as after an outage.
    kept = [cutoff, at(today - 2 * DAY, 12), at(today, 9)]
    gone = [at(today - 5 * DAY, 1), cutoff - timedelta(microseconds=1)]
    store_rows(engine, rows_at(trace_id, *gone, *kept))
    apply_retention(engine, 0, today=today)
    straggler = rows_at(trace_id, at(today - 10 * DAY))  # a late, very old record
    store_rows(engine, straggler)
    before = where_stored(engine, trace_id)

    report = apply_retention(engine, 3, today=today)

    assert report.cutoff == cutoff
    assert report.dropped == [partition_name(today - 5 * DAY), partition_name(today - 4 * DAY)]
    assert report.deleted == 1
    assert where_stored(engine, trace_id) == [row for row in before if row[1] >= cutoff]
    assert [moment for _, moment in where_stored(engine, trace_id)] == kept
    assert min(partitions(engine)) == today - 3 * DAY


def test_keeping_everything_drops_nothing(engine, trace_id):
    today = date(2031, 3, 10)
    store_rows(engine, rows_at(trace_id, at(today - 400 * DAY)))
    report = apply_retention(engine, 0, today=today)
    assert (report.cutoff, report.dropped, report.deleted, report.moved) == (None, [], 0, 1)
    assert len(where_stored(engine, trace_id)) == 1


def test_with_no_partition_for_a_row_at_all_the_batch_waits_and_is_never_dead_lettered(engine, trace_id):
    today = date(2031, 3, 10)
    apply_retention(engine, 30, today=today)
    with engine.begin() as connection:
        connection.execute(sa.text(f"DROP TABLE {DEFAULT_PARTITION}"))  # an operator's mistake
    batch = rows_at(trace_id, at(today, 10), at(today - 2 * DAY, 10))

    with pytest.raises(TransientStoreError, match="no partition of relation"):
        store_rows(engine, batch)
    assert dead_letters(engine) == 0 and where_stored(engine, trace_id) == []

    report = apply_retention(engine, 30, today=today)  # the next maintenance run
    assert report.created == [DEFAULT_PARTITION]
    assert store_rows(engine, batch).inserted == 2


def test_an_insert_that_races_a_partition_attach_is_retried_not_dead_lettered(engine, trace_id):
    today = date(2031, 3, 10)
    apply_retention(engine, 30, today=today)
    day = today - DAY
    batch = rows_at(trace_id, at(day, 6))
    outcome: list[BaseException | object] = []

    def insert() -> None:
        try:
            outcome.append(store_rows(engine, batch))
        except BaseException as exc:  # noqa: BLE001 - the test looks at it
            outcome.append(exc)

    with engine.connect() as maintenance:
        with maintenance.begin():
            retention._create_partition(maintenance, day)  # holds the default partition
            inserter = threading.Thread(target=insert)
            inserter.start()
            wait_for(lambda: _waiting_for(engine, DEFAULT_PARTITION), timeout=30,
                     message="the insert to wait for the default partition")
    inserter.join(timeout=30)

    assert isinstance(outcome[0], TransientStoreError), outcome
    assert "violates partition constraint" in str(outcome[0])
    assert dead_letters(engine) == 0
    assert store_rows(engine, batch).inserted == 1  # the task's retry
    assert [table for table, _ in where_stored(engine, trace_id)] == [partition_name(day)]


def test_a_drop_that_cannot_get_its_lock_gives_up_instead_of_stalling_inserts(engine, own_engine):
    today = date(2031, 3, 10)
    apply_retention(engine, 0, today=today - 40 * DAY)
    with own_engine.connect() as report_query:
        with report_query.begin():  # a long read holds the parent table
            report_query.execute(sa.text("SELECT count(*) FROM execution_logs")).scalar_one()
            with pytest.raises(sa.exc.OperationalError, match="lock timeout"):
                apply_retention(engine, 30, today=today)
    report = apply_retention(engine, 30, today=today)  # the next run
    assert report.dropped == [partition_name(today - n * DAY) for n in range(40, 32, -1)]


def test_two_maintenance_runs_at_once_make_and_drop_each_partition_once(engine):
    today = date(2031, 3, 10)
    apply_retention(engine, 0, today=today - 40 * DAY)  # the days a run 40 days ago made
    reports: list[retention.RetentionReport] = []
    runs = [threading.Thread(target=lambda: reports.append(apply_retention(engine, 30, today=today)))
            for _ in range(2)]
    for run in runs:
        run.start()
    for run in runs:
        run.join(timeout=60)

    created = [name for report in reports for name in report.created]
    dropped = [name for report in reports for name in report.dropped]
    assert len(reports) == 2
    assert sorted(created) == [partition_name(today + n * DAY) for n in range(DAYS_AHEAD + 1)]
    assert sorted(dropped) == [partition_name(today - n * DAY) for n in range(40, 32, -1)]
    assert partitions(engine) == {today + n * DAY for n in range(DAYS_AHEAD + 1)}


def _waiting_for(engine, table: str) -> bool:
    with engine.connect() as connection:
        return bool(connection.execute(
            sa.text("SELECT count(*) FROM pg_locks WHERE relation = to_regclass(:t) AND NOT granted"),
            {"t": table},
        ).scalar_one())

"""Crons (declarative `on_crons` and `create_cron` / `hatchet.cron`) and one-time
schedules (`schedule` / `hatchet.scheduled`), driven by the test clock."""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import BaseModel

from hatchlite import Context, EmptyModel, Hatchet, InvalidDefinitionError
from hatchlite.cron import due_ticks, parse
from hatchlite.exceptions import InputValidationError
from hatchlite.features.cron import CronNotFoundError
from hatchlite.features.scheduled import ScheduleNotFoundError
from hatchlite.features.workflows import WorkflowNotFoundError
from hatchlite.models import CronWorkflowsMethod, ScheduledRunStatus
from hatchlite.runnables import BaseWorkflow
from hatchlite.testing import TestClock
from tests.conftest import query, wait_until

START = datetime(2030, 1, 1, tzinfo=UTC)


class Report(BaseModel):
    customer: str


def cron_runs(db: str, workflow: str) -> list[dict[str, str]]:
    """The metadata of `workflow`'s runs, oldest first."""
    rows = query(
        db,
        "SELECT additional_metadata FROM workflow_runs WHERE workflow_name = ? ORDER BY seq",
        (workflow,),
    )
    return [json.loads(str(row[0])) for row in rows]


def ticks(db: str, workflow: str) -> list[str]:
    return [m["hatchet__cron_scheduled_at"] for m in cron_runs(db, workflow)]


def iso(when: datetime) -> str:
    return when.isoformat(timespec="milliseconds").replace("+00:00", "Z")


class Serving:
    """A worker serving `workflows` on its own task, stopped at the end of the test."""

    def __init__(self, client: Hatchet, workflows: list[BaseWorkflow[object]]) -> None:
        self.client = client
        self.worker = client.worker("cron-worker", slots=8, workflows=workflows)
        self.task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Serving:
        self.task = asyncio.create_task(self.worker.aio_start())
        engine = self.client._engine
        await wait_until(lambda: any(w.id == self.worker.id for w in engine.workers))
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.worker.stop()
        assert self.task is not None
        await self.task


@pytest.fixture
async def clocked(tmp_path: Path) -> AsyncIterator[tuple[Hatchet, TestClock, str]]:
    clock = TestClock(START, auto_advance=False)
    db = str(tmp_path / "crons.db")
    client = Hatchet(db=db, clock=clock, auto_worker=False)
    yield client, clock, db
    await client.aio_close()


# -- the expression rules ---------------------------------------------------------------


@pytest.mark.parametrize(
    "expression",
    ["@daily", "@hourly", "*/5 * * * *", "0 9 * * 1-5", "*/10 * * * * *", "0,30 8-18 * * *"],
)
def test_hatchet_accepts_these_expressions(expression: str) -> None:
    parse(expression)


@pytest.mark.parametrize(
    ("expression", "why"),
    [
        ("", "non-empty"),
        ("* * *", "needs 5"),
        ("61 * * * *", "out of range"),
        ("@every 5s", "unknown alias"),
        ("0 0 30 2 *", "invalid cron expression"),
        ("CRON_TZ=Nowhere/Land 0 9 * * *", "unknown time zone"),
    ],
)
def test_bad_expressions_name_what_is_wrong(expression: str, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        parse(expression)


def test_six_fields_lead_with_seconds() -> None:
    spec = parse("*/15 * * * * *")
    t0 = START.timestamp()
    assert spec.next_after(t0) == t0 + 15


def test_cron_tz_prefix_reads_the_fields_in_that_zone_across_daylight_saving() -> None:
    spec = parse("CRON_TZ=Europe/Paris 30 9 * * *")
    winter = datetime(2030, 1, 10, tzinfo=UTC).timestamp()
    summer = datetime(2030, 7, 10, tzinfo=UTC).timestamp()
    assert datetime.fromtimestamp(spec.next_after(winter), UTC).hour == 8  # UTC+1
    assert datetime.fromtimestamp(spec.next_after(summer), UTC).hour == 7  # UTC+2


def test_missed_ticks_policy() -> None:
    spec = parse("*/5 * * * *")
    t0 = START.timestamp()
    # On time, and a little late (the engine was busy): each tick fires.
    assert due_ticks(spec, t0, t0 + 1, "latest") == ([t0], t0 + 300)
    # Two hours down: only the most recent missed tick, once; or none.
    down = t0 + 2 * 3600 + 60
    assert due_ticks(spec, t0, down, "latest") == ([t0 + 2 * 3600], t0 + 2 * 3600 + 300)
    assert due_ticks(spec, t0, down, "skip") == ([], t0 + 2 * 3600 + 300)
    # An every-second cron after a 3-second stall loses no tick.
    every = parse("* * * * * *")
    assert due_ticks(every, t0, t0 + 3, "skip") == ([t0, t0 + 1, t0 + 2, t0 + 3], t0 + 4)


# -- declarative crons --------------------------------------------------------------------


async def test_every_five_minutes_for_a_simulated_day_fires_288_times(tmp_path: Path) -> None:
    clock = TestClock(START, auto_advance=True)
    db = str(tmp_path / "day.db")
    client = Hatchet(db=db, clock=clock, auto_worker=False)
    seen: list[tuple[str, str]] = []
    wf = client.workflow(
        name="every-5",
        input_validator=Report,
        on_crons=["*/5 * * * *"],
        cron_input=Report(customer="acme"),
    )

    @wf.task()
    async def report(input: Report, ctx: Context) -> None:
        seen.append((input.customer, ctx.additional_metadata["hatchet__cron_scheduled_at"]))

    try:
        async with Serving(client, [wf]):
            await wait_until(lambda: len(seen) >= 288, timeout=30)
    finally:
        await client.aio_close()
    expected = [iso(START + timedelta(minutes=5 * i)) for i in range(1, 289)]
    assert [tick for _, tick in seen[:288]] == expected
    assert {customer for customer, _ in seen} == {"acme"}
    meta = cron_runs(db, "every-5")[0]
    assert meta["hatchet__cron_expression"] == "*/5 * * * *"
    assert meta["hatchet__cron_name"] == ""


async def test_six_field_cron_fires_every_second(clocked: tuple[Hatchet, TestClock, str]) -> None:
    client, clock, db = clocked
    wf = client.workflow(name="every-second", on_crons=["* * * * * *"])

    @wf.task()
    def noop(input: EmptyModel, ctx: Context) -> None:
        pass

    async with Serving(client, [wf]):
        for i in range(1, 11):
            clock.advance(1)
            await wait_until(lambda i=i: len(ticks(db, "every-second")) == i)  # type: ignore[misc]
    assert ticks(db, "every-second") == [iso(START + timedelta(seconds=i)) for i in range(1, 11)]


async def test_downtime_fires_the_most_recent_missed_tick_once_or_none(tmp_path: Path) -> None:
    clock = TestClock(START)
    db = str(tmp_path / "down.db")
    client = Hatchet(db=db, clock=clock, auto_worker=False)
    latest = client.workflow(name="latest", on_crons=["0 * * * *"])
    skip = client.workflow(name="skip", on_crons=["0 * * * *"], cron_missed="skip")
    for wf in (latest, skip):
        wf.task(name="noop")(lambda input, ctx: None)
    try:
        async with Serving(client, [latest, skip]):
            pass
        await client.aio_close()  # every process down from here
        clock.advance(timedelta(hours=5, minutes=20))
        client = Hatchet(db=db, clock=clock, auto_worker=False)
        async with Serving(client, [latest, skip]):
            await wait_until(lambda: len(ticks(db, "latest")) == 1)
            clock.advance(timedelta(minutes=40))  # the next hour fires in both
            await wait_until(lambda: len(ticks(db, "skip")) == 1)
            await wait_until(lambda: len(ticks(db, "latest")) == 2)
    finally:
        await client.aio_close()
    assert ticks(db, "latest") == [iso(START + timedelta(hours=5)), iso(START + timedelta(hours=6))]
    assert ticks(db, "skip") == [iso(START + timedelta(hours=6))]


async def test_removing_a_declarative_cron_stops_it_when_registered_again(
    tmp_path: Path,
) -> None:
    clock = TestClock(START)
    db = str(tmp_path / "redeploy.db")
    client = Hatchet(db=db, clock=clock, auto_worker=False)
    wf = client.workflow(name="job", on_crons=["*/5 * * * *", "0 * * * *"])
    wf.task(name="noop")(lambda input, ctx: None)
    async with Serving(client, [wf]):
        rows = (await client.cron.aio_list(workflow_name="job")).rows or []
        assert sorted(r.cron for r in rows) == ["*/5 * * * *", "0 * * * *"]
        assert {r.method for r in rows} == {CronWorkflowsMethod.DEFAULT}
    await client.aio_close()
    client = Hatchet(db=db, clock=clock, auto_worker=False)
    try:
        redeployed = client.workflow(name="job", on_crons=["0 * * * *"])
        redeployed.task(name="noop")(lambda input, ctx: None)
        async with Serving(client, [redeployed]):
            rows = (await client.cron.aio_list(workflow_name="job")).rows or []
            assert [r.cron for r in rows] == ["0 * * * *"]
            clock.advance(timedelta(minutes=30))
            await asyncio.sleep(0.05)
            clock.advance(timedelta(minutes=30))
            await wait_until(lambda: len(ticks(db, "job")) == 1)
    finally:
        await client.aio_close()
    assert cron_runs(db, "job")[0]["hatchet__cron_expression"] == "0 * * * *"


def test_bad_declarative_crons_fail_at_definition(hatchet: Hatchet) -> None:
    with pytest.raises(InvalidDefinitionError, match=r"'nightly'.*on_crons"):
        hatchet.workflow(name="nightly", on_crons=["0 25 * * *"])
    with pytest.raises(InvalidDefinitionError, match=r"'typed'.*cron_input"):
        hatchet.workflow(
            name="typed", input_validator=Report, on_crons=["@daily"], cron_input={"x": 1}
        )
    with pytest.raises(InvalidDefinitionError, match="cron_missed"):
        hatchet.workflow(name="policy", on_crons=["@daily"], cron_missed="all")  # type: ignore[arg-type]


# -- API crons -------------------------------------------------------------------------------


async def test_api_cron_lifecycle(clocked: tuple[Hatchet, TestClock, str]) -> None:
    client, clock, db = clocked
    wf = client.workflow(name="reports", input_validator=Report)

    @wf.task()
    def build(input: Report, ctx: Context) -> dict[str, str]:
        return {"customer": input.customer}

    async with Serving(client, [wf]):
        cron = await wf.aio_create_cron(
            "acme-daily",
            "0 12 * * *",
            input=Report(customer="acme"),
            additional_metadata={"team": "billing"},
            priority=3,
        )
        assert cron.method == CronWorkflowsMethod.API
        assert (cron.name, cron.cron, cron.input, cron.priority) == (
            "acme-daily",
            "0 12 * * *",
            {"customer": "acme"},
            3,
        )
        same = await client.cron.aio_get(cron.metadata.id)
        assert same == cron
        other = await client.cron.aio_create(
            "reports", "beta-hourly", "@hourly", {"customer": "beta"}, {"team": "growth"}
        )
        listed = await client.cron.aio_list(additional_metadata={"team": "billing"})
        assert [r.name for r in listed.rows or []] == ["acme-daily"]
        by_name = await client.cron.aio_list(
            order_by_field="name",  # type: ignore[arg-type]
            order_by_direction="ASC",  # type: ignore[arg-type]
        )
        assert [r.name for r in by_name.rows or []] == ["acme-daily", "beta-hourly"]

        # A jump of 12 hours: each cron fires its most recent tick (noon), once.
        clock.set(START + timedelta(hours=12))
        await wait_until(lambda: len(cron_runs(db, "reports")) == 2)
        await client.cron.aio_delete(other.metadata.id)
        clock.set(START + timedelta(days=1, hours=12))
        await wait_until(lambda: len(cron_runs(db, "reports")) == 3)
    noon = [m for m in cron_runs(db, "reports") if m["hatchet__cron_name"] == "acme-daily"]
    assert [m["hatchet__cron_scheduled_at"] for m in noon] == [
        iso(START + timedelta(hours=12)),
        iso(START + timedelta(days=1, hours=12)),
    ]
    assert noon[0]["team"] == "billing"
    priorities = query(
        db,
        "SELECT priority FROM workflow_runs WHERE json_extract(additional_metadata, "
        "'$.hatchet__cron_name') = 'acme-daily'",
    )
    assert priorities == [(3,), (3,)]


async def test_api_cron_bad_input_stores_nothing(clocked: tuple[Hatchet, TestClock, str]) -> None:
    client, _, db = clocked
    wf = client.workflow(name="reports", input_validator=Report)
    wf.task(name="noop")(lambda input, ctx: None)
    with pytest.raises(ValueError, match="5 or 6 parts"):
        await wf.aio_create_cron("x", "* * *")
    with pytest.raises(ValueError, match="invalid cron expression part 'MON'"):
        await wf.aio_create_cron("x", "0 9 * * MON", input=Report(customer="a"))
    with pytest.raises(InputValidationError):
        await client.cron.aio_create("reports", "bad", "@daily", {"wrong": 1}, {})
    with pytest.raises(ValueError, match="priority"):
        await wf.aio_create_cron("x", "@daily", input=Report(customer="a"), priority=7)
    with pytest.raises(WorkflowNotFoundError, match="no-such"):
        await client.cron.aio_create("no-such", "x", "@daily", {}, {})
    await wf.aio_create_cron("dup", "@daily", input=Report(customer="a"))
    with pytest.raises(ValueError, match="already has a cron named 'dup'"):
        await wf.aio_create_cron("dup", "@hourly", input=Report(customer="a"))
    with pytest.raises(CronNotFoundError):
        await client.cron.aio_get("nope")
    with pytest.raises(CronNotFoundError):
        await client.cron.aio_delete("nope")
    assert query(db, "SELECT name FROM crons") == [("dup",)]


async def test_a_paused_workflow_drops_or_queues_cron_runs(
    clocked: tuple[Hatchet, TestClock, str],
) -> None:
    client, clock, db = clocked
    dropped = client.workflow(name="dropped", on_crons=["0 * * * *"])
    queued = client.workflow(name="queued", on_crons=["0 * * * *"])
    for wf in (dropped, queued):
        wf.task(name="noop")(lambda input, ctx: None)
    async with Serving(client, [dropped, queued]):
        await dropped.aio_pause(timedelta(days=1), paused_workflow_cron_run_queue_behavior="DROP")
        await queued.aio_pause(timedelta(days=1), paused_workflow_cron_run_queue_behavior="QUEUE")
        clock.advance(timedelta(hours=1))
        await wait_until(lambda: len(cron_runs(db, "queued")) == 1)
        assert cron_runs(db, "dropped") == []
        status = query(db, "SELECT status FROM workflow_runs WHERE workflow_name = 'queued'")
        assert status == [("QUEUED",)]
        await queued.aio_unpause()
        await wait_until(
            lambda: (
                query(db, "SELECT status FROM workflow_runs WHERE workflow_name = 'queued'")
                == [("COMPLETED",)]
            )
        )


# -- one-time schedules -----------------------------------------------------------------------


async def test_schedule_fires_once_at_its_time(clocked: tuple[Hatchet, TestClock, str]) -> None:
    client, clock, db = clocked
    wf = client.workflow(name="remind", input_validator=Report)

    @wf.task()
    def send(input: Report, ctx: Context) -> dict[str, str]:
        return {"to": input.customer}

    async with Serving(client, [wf]):
        version = await wf.aio_schedule(
            START + timedelta(hours=2), Report(customer="ann"), additional_metadata={"k": "v"}
        )
        [scheduled] = version.scheduled_workflows
        assert scheduled.trigger_at == START + timedelta(hours=2)
        before = await client.scheduled.aio_get(scheduled.id)
        assert before.workflow_run_id is None
        assert before.input == {"customer": "ann"}
        listed = await client.scheduled.aio_list(statuses=[ScheduledRunStatus.SCHEDULED])
        assert [r.metadata.id for r in listed.rows or []] == [scheduled.id]

        clock.advance(timedelta(hours=1, minutes=59))
        await asyncio.sleep(0.05)
        assert cron_runs(db, "remind") == []
        clock.advance(timedelta(minutes=1))
        await wait_until(lambda: len(cron_runs(db, "remind")) == 1)
        after = await client.scheduled.aio_get(scheduled.id)
        assert after.workflow_run_id is not None
        run_id = after.workflow_run_id
        done = "SELECT status FROM workflow_runs WHERE id = ?"
        await wait_until(lambda: query(db, done, (run_id,)) == [("COMPLETED",)])
        result = await client.runs.aio_get_result(run_id)
        clock.advance(timedelta(days=3))
        await asyncio.sleep(0.05)
    assert cron_runs(db, "remind") == [{"k": "v"}]
    assert result == {"to": "ann"}


async def test_reschedule_and_delete_before_it_fires(
    clocked: tuple[Hatchet, TestClock, str],
) -> None:
    client, clock, db = clocked
    wf = client.workflow(name="later")
    wf.task(name="noop")(lambda input, ctx: None)
    async with Serving(client, [wf]):
        first = (await wf.aio_schedule(START + timedelta(hours=1))).scheduled_workflows[0]
        second = (await wf.aio_schedule(START + timedelta(hours=1))).scheduled_workflows[0]
        moved = await client.scheduled.aio_update(first.id, START + timedelta(hours=3))
        assert moved.trigger_at == START + timedelta(hours=3)
        await client.scheduled.aio_delete(second.id)
        clock.advance(timedelta(hours=2))
        await asyncio.sleep(0.05)
        assert cron_runs(db, "later") == []
        clock.advance(timedelta(hours=1))
        await wait_until(lambda: len(cron_runs(db, "later")) == 1)
        with pytest.raises(ScheduleNotFoundError, match="already fired"):
            await client.scheduled.aio_update(first.id, START + timedelta(hours=9))
        with pytest.raises(ScheduleNotFoundError):
            await client.scheduled.aio_get(second.id)
        done = "SELECT 1 FROM workflow_runs WHERE status = 'COMPLETED'"
        await wait_until(lambda: bool(query(db, done)))
        fired = await client.scheduled.aio_list(statuses=[ScheduledRunStatus.SUCCEEDED])
        assert [r.metadata.id for r in fired.rows or []] == [first.id]


async def test_bulk_update_and_bulk_delete(clocked: tuple[Hatchet, TestClock, str]) -> None:
    client, _, _ = clocked
    wf = client.workflow(name="bulk")
    wf.task(name="noop")(lambda input, ctx: None)
    ids = [
        (
            await client.scheduled.aio_create("bulk", START + timedelta(days=i), {}, {"n": str(i)})
        ).metadata.id
        for i in range(1, 5)
    ]
    updated = await client.scheduled.aio_bulk_update(
        [(ids[0], START + timedelta(days=9)), ("missing", START)]
    )
    assert updated.updated_ids == [ids[0]]
    assert [e.id for e in updated.errors] == ["missing"]
    deleted = await client.scheduled.aio_bulk_delete(additional_metadata={"n": "2"})
    assert deleted.deleted_ids == [ids[1]]
    deleted = await client.scheduled.aio_bulk_delete(scheduled_ids=[ids[2], "missing"])
    assert deleted.deleted_ids == [ids[2]]
    assert [e.id for e in deleted.errors] == ["missing"]
    with pytest.raises(ValueError, match="scheduled_ids or at least one filter"):
        await client.scheduled.aio_bulk_delete()
    left = await client.scheduled.aio_list(order_by_direction="ASC")  # type: ignore[arg-type]
    assert [r.metadata.id for r in left.rows or []] == [ids[3], ids[0]]


async def test_a_naive_datetime_is_read_as_utc(
    clocked: tuple[Hatchet, TestClock, str], caplog: pytest.LogCaptureFixture
) -> None:
    client, _, _ = clocked
    wf = client.workflow(name="naive")
    wf.task(name="noop")(lambda input, ctx: None)
    with caplog.at_level(logging.WARNING, logger="hatchlite"):
        version = await wf.aio_schedule(datetime(2030, 6, 1, 9, 0))
    assert version.scheduled_workflows[0].trigger_at == datetime(2030, 6, 1, 9, 0, tzinfo=UTC)
    assert "assuming UTC" in caplog.text


async def test_schedules_due_during_downtime_fire_once_at_start(tmp_path: Path) -> None:
    clock = TestClock(START)
    db = str(tmp_path / "restart.db")
    client = Hatchet(db=db, clock=clock, auto_worker=False)
    wf = client.workflow(name="wake", input_validator=Report)
    wf.task(name="noop")(lambda input, ctx: None)
    await wf.aio_schedule(START + timedelta(hours=1), Report(customer="a"))
    await wf.aio_schedule(START + timedelta(hours=2), Report(customer="b"))
    await wf.aio_create_cron("nightly", "0 0 * * *", input=Report(customer="c"))
    await client.aio_close()

    clock.advance(timedelta(days=1, hours=3))  # every process was down
    client = Hatchet(db=db, clock=clock, auto_worker=False)
    try:
        assert len((await client.cron.aio_list()).rows or []) == 1
        async with Serving(client, [wf]):
            await wait_until(lambda: len(cron_runs(db, "wake")) == 3)
            clock.advance(timedelta(days=1))
            await wait_until(lambda: len(cron_runs(db, "wake")) == 4)
    finally:
        await client.aio_close()
    inputs = query(db, "SELECT input FROM workflow_runs ORDER BY seq")
    assert sorted(json.loads(str(i))["customer"] for (i,) in inputs) == ["a", "b", "c", "c"]


async def test_deleting_the_workflow_deletes_its_crons_and_pending_schedules(
    clocked: tuple[Hatchet, TestClock, str],
) -> None:
    client, _, db = clocked
    wf = client.workflow(name="gone", on_crons=["@daily"])
    wf.task(name="noop")(lambda input, ctx: None)
    await wf.aio_create_cron("x", "@hourly")
    await wf.aio_schedule(START + timedelta(hours=1))
    await wf.aio_delete()
    assert query(db, "SELECT count(*) FROM crons") == [(0,)]
    assert query(db, "SELECT count(*) FROM scheduled_runs") == [(0,)]
    with pytest.raises(CronNotFoundError):
        await client.cron.aio_delete("x")


# -- late ticks, and what cannot fire -----------------------------------------------------


def test_a_live_worker_fires_every_tick_of_a_stall_up_to_a_minute() -> None:
    every = parse("*/5 * * * * *")
    t0 = START.timestamp()
    fired, following = due_ticks(every, t0, t0 + 50, "skip", live_since=t0 - 1)
    assert fired == [t0 + 5 * i for i in range(11)] and following == t0 + 55
    # A longer gap since the process last fired is downtime: the policy applies.
    assert due_ticks(every, t0, t0 + 120, "skip", live_since=t0 - 1) == (
        [t0 + 115, t0 + 120],  # less than 5 s late
        t0 + 125,
    )


async def test_clock_moves_within_a_minute_fire_every_tick(
    clocked: tuple[Hatchet, TestClock, str],
) -> None:
    client, clock, db = clocked
    wf = client.workflow(name="five-seconds", on_crons=["*/5 * * * * *"], cron_missed="skip")
    wf.task(name="noop")(lambda input, ctx: None)
    async with Serving(client, [wf]):
        # Live from its first firing step on (before it, a jump counts as downtime).
        await wait_until(lambda: client._engine._fired_at is not None)
        clock.advance(50)
        await wait_until(lambda: len(ticks(db, "five-seconds")) == 10)
        # More than a minute: the ticks before the last 5 seconds were missed (skipped).
        clock.advance(timedelta(minutes=10))
        await wait_until(lambda: len(ticks(db, "five-seconds")) == 12)
    at = [START + timedelta(seconds=s) for s in (*range(5, 55, 5), 645, 650)]
    assert ticks(db, "five-seconds") == [iso(t) for t in at]


async def test_a_stored_cron_that_no_longer_parses_is_parked_and_the_engine_goes_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    clock = TestClock(START, auto_advance=True)
    db = str(tmp_path / "bad.db")
    client = Hatchet(db=db, clock=clock, auto_worker=False)
    wf = client.workflow(name="job")

    @wf.task()
    def work(input: EmptyModel, ctx: Context) -> dict[str, int]:
        return {"ok": 1}

    try:
        await wf.aio_create_cron("nightly", "0 0 * * *")
        # As a hatchlite with other time zones (or another version) might have stored it.
        conn = sqlite3.connect(db)
        conn.execute("UPDATE crons SET expression = 'CRON_TZ=Mars/Olympus 0 0 * * *'")
        conn.commit()
        conn.close()
        with caplog.at_level(logging.ERROR, logger="hatchlite"):
            async with Serving(client, [wf]):
                clock.advance(timedelta(days=1))
                await wait_until(lambda: "does not fire" in caplog.text)
                assert await wf.aio_run() == {"work": {"ok": 1}}
        assert clock.now().year == 2030  # the test clock did not jump to "never"
    finally:
        await client.aio_close()


async def test_a_schedule_for_a_workflow_deleted_meanwhile_is_refused(
    clocked: tuple[Hatchet, TestClock, str],
) -> None:
    client, _, db = clocked
    wf = client.workflow(name="short-lived")
    wf.task(name="noop")(lambda input, ctx: None)
    await wf.aio_schedule(START + timedelta(hours=1))
    # Deleted by another process: this one still defines it.
    conn = sqlite3.connect(db)
    conn.execute("UPDATE workflows SET deleted_at = 1 WHERE name = 'short-lived'")
    conn.commit()
    conn.close()
    with pytest.raises(WorkflowNotFoundError, match="deleted"):
        await wf.aio_schedule(START + timedelta(hours=2))
    with pytest.raises(WorkflowNotFoundError, match="deleted"):
        await wf.aio_create_cron("x", "@daily")
    assert query(db, "SELECT count(*) FROM scheduled_runs") == [(1,)]


async def test_a_paused_workflow_drops_or_queues_scheduled_runs(
    clocked: tuple[Hatchet, TestClock, str],
) -> None:
    client, clock, db = clocked
    dropped = client.workflow(name="dropped")
    queued = client.workflow(name="queued")
    for wf in (dropped, queued):
        wf.task(name="noop")(lambda input, ctx: None)
    async with Serving(client, [dropped, queued]):
        await dropped.aio_pause(
            timedelta(days=1), paused_workflow_scheduled_run_queue_behavior="DROP"
        )
        await queued.aio_pause(timedelta(days=1))  # QUEUE is the default
        gone = (await dropped.aio_schedule(START + timedelta(hours=1))).scheduled_workflows[0]
        kept = (await queued.aio_schedule(START + timedelta(hours=1))).scheduled_workflows[0]
        clock.advance(timedelta(hours=1))
        await wait_until(lambda: len(cron_runs(db, "queued")) == 1)
        fired = "SELECT count(*) FROM scheduled_runs WHERE fired_at IS NOT NULL"
        await wait_until(lambda: query(db, fired) == [(2,)])
        assert cron_runs(db, "dropped") == []
        dropped_list = await client.scheduled.aio_list(statuses=[ScheduledRunStatus.CANCELLED])
        assert [r.metadata.id for r in dropped_list.rows or []] == [gone.id]
        queued_now = await client.scheduled.aio_get(kept.id)
        assert queued_now.workflow_run_status == "QUEUED"

"""Event-triggered runs: `on_events` workflows and standalone tasks, `*` and `_`
wildcards, filters and scopes (runtime and default), `filter_payload` and the other
trigger fields of the context, bulk push, metadata and priority of triggered runs;
`hatchet.filters` and `hatchet.cel.debug`; `event.list` / `event.get` and
`runs.list(triggering_event_external_id=...)`; bad input.

A push stores the event and the runs it starts in one transaction, so the runs exist
when it returns; their tasks run on the implicit worker."""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from hatchlite import (
    BulkPushEventOptions,
    BulkPushEventWithMetadata,
    ClientConfig,
    Context,
    DefaultFilter,
    EmptyModel,
    Event,
    Hatchet,
    Priority,
    PushEventOptions,
    V1TaskStatus,
    Workflow,
)
from hatchlite.cel import InvalidCELError
from hatchlite.features.events import EventNotFoundError
from hatchlite.features.filters import FilterNotFoundError
from hatchlite.models import CELFailure, CELSuccess, V1TaskEventType, V1UpdateFilterRequest
from hatchlite.testing import TestClock
from tests.conftest import query, wait_until

pytestmark = pytest.mark.timeout(20)

START = datetime(2031, 6, 1, 12, 0, tzinfo=UTC)
TERMINAL = ("COMPLETED", "FAILED", "CANCELLED")


class Order(BaseModel):
    n: int = 0
    customer: str = ""


@dataclass
class Seen:
    """What a triggered task saw."""

    workflow: str
    input: dict[str, Any]
    metadata: dict[str, Any]
    by_event: bool
    event_id: str | None
    event_key: str | None
    trigger_data: dict[str, Any]
    filter_payload: dict[str, Any]
    priority: int | None
    run_id: str


@dataclass
class Env:
    hatchet: Hatchet
    clock: TestClock
    db: str
    seen: list[Seen] = field(default_factory=list)

    def listener(self, name: str, on_events: list[str], **kwargs: Any) -> Workflow[Order]:
        """A one-task workflow that records what its task saw."""
        wf = self.hatchet.workflow(name=name, on_events=on_events, input_validator=Order, **kwargs)

        @wf.task(name="record")
        def record(input: Order, ctx: Context) -> dict[str, int]:
            self.seen.append(
                Seen(
                    name,
                    input.model_dump(),
                    dict(ctx.additional_metadata),
                    ctx.was_triggered_by_event,
                    ctx.triggering_event_id,
                    ctx.triggering_event_key,
                    dict(ctx.trigger_data),
                    dict(ctx.filter_payload),
                    ctx.priority,
                    ctx.workflow_run_id,
                )
            )
            return {"n": input.n}

        return wf

    def runs_of(self, event_id: str) -> list[tuple[str, str | None]]:
        """(workflow name, filter id) of the runs an event started, in creation order."""
        return [
            (str(name), None if fid is None else str(fid))
            for name, fid in query(
                self.db,
                "SELECT workflow_name, filter_id FROM workflow_runs "
                "WHERE triggering_event_id = ? ORDER BY seq",
                (event_id,),
            )
        ]

    async def settled(self) -> None:
        """Wait until every run in the database has ended."""

        def ended() -> bool:
            rows = query(self.db, "SELECT status FROM workflow_runs")
            return all(status in TERMINAL for (status,) in rows)

        await wait_until(ended)

    def by_workflow(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for s in self.seen:
            out[s.workflow] = out.get(s.workflow, 0) + 1
        return out


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    clock = TestClock(START)
    db = str(tmp_path / "events.db")
    client = Hatchet(db=db, clock=clock)
    yield Env(client, clock, db)
    client.close()


def event_count(db: str) -> int:
    return int(query(db, "SELECT count(*) FROM events")[0][0])


async def workflow_id(client: Hatchet, wf: Workflow[Any]) -> str:
    """The registered id of `wf`, read without a blocking call."""
    listed = await client.workflows.aio_list(workflow_name=wf.name)
    [found] = [w for w in listed.rows if w.name == wf.name]
    return found.metadata.id


def has_rows(db: str, sql: str) -> bool:
    try:
        return bool(query(db, sql))
    except sqlite3.OperationalError:  # the schema is not there yet
        return False


# -- 1. triggers without filters ---------------------------------------------------


async def test_a_push_starts_one_run_of_each_listening_workflow(env: Env) -> None:
    h = env.hatchet
    env.listener(
        "Orders",
        ["order:placed"],
        default_additional_metadata={"team": "shop", "m": "default"},
        default_priority=Priority.LOW,
    )
    env.listener("Audit", ["order:placed", "order:cancelled"])
    env.listener("Unrelated", ["user:created"])

    pushed = await h.event.aio_push(
        "order:placed", {"n": 7, "customer": "ada"}, additional_metadata={"m": "event", "x": 1}
    )
    assert isinstance(pushed, Event)
    assert pushed.key == "order:placed"
    assert json.loads(pushed.payload) == {"n": 7, "customer": "ada"}
    assert pushed.additional_metadata is not None
    assert json.loads(pushed.additional_metadata) == {"m": "event", "x": 1}
    assert pushed.scope is None
    assert pushed.seen_at == START
    # The runs exist when the push returns.
    assert sorted(env.runs_of(pushed.event_id)) == [("Audit", None), ("Orders", None)]
    await env.settled()

    assert env.by_workflow() == {"Orders": 1, "Audit": 1}
    orders = next(s for s in env.seen if s.workflow == "Orders")
    assert orders.input == {"n": 7, "customer": "ada"}
    # Workflow defaults < event metadata < the engine's keys.
    assert orders.metadata == {
        "team": "shop",
        "m": "event",
        "x": 1,
        "hatchet__event_id": pushed.event_id,
        "hatchet__event_key": "order:placed",
    }
    assert orders.by_event is True
    assert orders.event_id == pushed.event_id
    assert orders.event_key == "order:placed"
    assert orders.trigger_data == {}
    assert orders.filter_payload == {}
    assert orders.priority == Priority.LOW  # no event priority: the workflow's default
    details = await h.runs.aio_get_details(orders.run_id)
    assert details.input == {"n": 7, "customer": "ada"}
    assert details.additional_metadata == orders.metadata


async def test_an_unmatched_event_is_stored_only(env: Env) -> None:
    h = env.hatchet
    env.listener("Orders", ["order:placed"])
    pushed = await h.event.aio_push("nobody:listens", {"n": 1})
    assert env.runs_of(pushed.event_id) == []
    stored = await h.event.aio_get(pushed.event_id)
    assert stored.payload == {"n": 1}
    assert stored.triggered_runs == []
    assert query(env.db, "SELECT count(*) FROM workflow_runs") == [(0,)]


async def test_event_priority_beats_the_workflow_default(env: Env) -> None:
    h = env.hatchet
    env.listener("Prio", ["prio:go"], default_priority=Priority.LOW)
    high = await h.event.aio_push("prio:go", {"n": 1}, priority=Priority.HIGH)
    plain = await h.event.aio_push("prio:go", {"n": 2})
    legacy = await h.event.aio_push(
        "prio:go", {"n": 3}, options=PushEventOptions(priority=2, additional_metadata={"o": 1})
    )
    await env.settled()
    by_n = {s.input["n"]: s for s in env.seen}
    assert (by_n[1].priority, by_n[2].priority, by_n[3].priority) == (3, 1, 2)
    assert by_n[3].metadata["o"] == 1
    rows = dict(
        query(
            env.db,
            "SELECT triggering_event_id, priority FROM workflow_runs WHERE workflow_name = 'Prio'",
        )
    )
    assert rows == {high.event_id: 3, plain.event_id: 1, legacy.event_id: 2}


async def test_explicit_push_arguments_beat_options(env: Env) -> None:
    h = env.hatchet
    pushed = await h.event.aio_push(
        "opts",
        {},
        options=PushEventOptions(
            additional_metadata={"a": "option", "b": "option"}, scope="option-scope"
        ),
        additional_metadata={"a": "arg"},
        scope="arg-scope",
    )
    assert pushed.scope == "arg-scope"
    assert json.loads(pushed.additional_metadata or "") == {"a": "arg", "b": "option"}


async def test_a_standalone_task_listens_to_events(env: Env) -> None:
    h = env.hatchet
    calls: list[tuple[int, str | None]] = []

    @h.task(name="OnSignup", on_events=["user:signup"], input_validator=Order)
    def on_signup(input: Order, ctx: Context) -> dict[str, int]:
        calls.append((input.n, ctx.triggering_event_key))
        return {"n": input.n}

    pushed = await h.event.aio_push("user:signup", {"n": 3})
    [(run_id, _)] = [(r, f) for r, f in _runs(env.db, pushed.event_id)]
    assert await asyncio.wait_for(on_signup.aio_get_result(run_id), 3) == {"n": 3}
    assert calls == [(3, "user:signup")]


def _runs(db: str, event_id: str) -> list[tuple[str, str | None]]:
    return [
        (str(r), None if f is None else str(f))
        for r, f in query(
            db,
            "SELECT id, filter_id FROM workflow_runs WHERE triggering_event_id = ? ORDER BY seq",
            (event_id,),
        )
    ]


async def test_wildcards_match_as_sql_like(env: Env) -> None:
    h = env.hatchet
    env.listener("Star", ["order:*"])
    env.listener("Under", ["a_c"])
    env.listener("Middle", ["user:*:created"])
    # Two patterns matching one key still start one run.
    env.listener("Overlap", ["x:*", "x:1", "*"])
    keys = [
        "order:1",
        "order:",
        "order:a:b",
        "orders:1",
        "Order:1",
        "abc",
        "a_c",
        "ac",
        "abbc",
        "user:7:created",
        "user::created",
        "user:7:deleted",
        "x:1",
    ]
    pushed = {k: await h.event.aio_push(k, {}) for k in keys}
    started = {k: sorted(name for name, _ in env.runs_of(p.event_id)) for k, p in pushed.items()}
    overlap = ["Overlap"]
    assert started == {
        "order:1": ["Overlap", "Star"],
        "order:": ["Overlap", "Star"],
        "order:a:b": ["Overlap", "Star"],
        "orders:1": overlap,
        "Order:1": overlap,  # case-sensitive, as LIKE is in Postgres
        "abc": ["Overlap", "Under"],
        "a_c": ["Overlap", "Under"],
        "ac": overlap,
        "abbc": overlap,
        "user:7:created": ["Middle", "Overlap"],
        "user::created": ["Middle", "Overlap"],
        "user:7:deleted": overlap,
        "x:1": overlap,
    }
    await env.settled()


async def test_keys_are_namespaced(tmp_path: Path) -> None:
    db = str(tmp_path / "ns.db")
    client = Hatchet(db=db, clock=TestClock(START), config=ClientConfig(namespace="Acme"))
    try:
        wf = client.workflow(name="spaced", on_events=["order:*"])

        @wf.task()
        def seen(input: EmptyModel, ctx: Context) -> dict[str, Any]:
            return {"key": ctx.triggering_event_key}

        pushed = await client.event.aio_push("order:1", {})
        assert pushed.key == "acme_order:1"
        [(run_id, _)] = _runs(db, pushed.event_id)
        assert await asyncio.wait_for(wf.aio_get_result(run_id), 3) == {
            "seen": {"key": "acme_order:1"}
        }
        listed = await client.event.aio_list(keys=["order:1"])
        assert [e.key for e in listed.rows] == ["acme_order:1"]
    finally:
        client.close()


async def test_a_deleted_workflow_is_not_triggered(env: Env) -> None:
    h = env.hatchet
    wf = env.listener("Gone", ["gone:go"])
    first = await h.event.aio_push("gone:go", {})
    assert env.runs_of(first.event_id) == [("Gone", None)]
    await env.settled()
    await wf.aio_delete()
    second = await h.event.aio_push("gone:go", {})
    assert env.runs_of(second.event_id) == []


async def test_a_push_inside_a_task_says_where_it_came_from(env: Env) -> None:
    h = env.hatchet
    env.listener("Downstream", ["chain:next"])

    @h.task(name="Upstream")
    async def upstream(input: EmptyModel, ctx: Context) -> dict[str, str]:
        pushed = await h.event.aio_push("chain:next", {"n": 1}, additional_metadata={"k": "v"})
        return {"event_id": pushed.event_id, "task": ctx.task_run_id, "run": ctx.workflow_run_id}

    result = await asyncio.wait_for(upstream.aio_run(), 3)
    stored = await h.event.aio_get(result["event_id"])
    assert stored.additional_metadata == {
        "k": "v",
        "hatchet__source_workflow_run_id": result["run"],
        "hatchet__source_step_run_id": result["task"],
    }
    await env.settled()
    [seen] = env.seen
    assert seen.metadata["hatchet__source_workflow_run_id"] == result["run"]
    assert seen.metadata["hatchet__event_id"] == result["event_id"]


# -- 2. filters and scopes -----------------------------------------------------------


async def test_filters_and_scopes(env: Env) -> None:
    h = env.hatchet
    wf = env.listener("Filtered", ["shop:order"])
    env.listener("Unfiltered", ["shop:order"])
    vip = await wf.aio_create_filter(
        "input.n > 100 && payload.tier == 'vip'", "store-1", {"tier": "vip"}
    )
    mine = await wf.aio_create_filter("input.customer == payload.who", "store-1", {"who": "ada"})
    other = await wf.aio_create_filter("true", "store-2", {"store": 2})

    no_scope = await h.event.aio_push("shop:order", {"n": 500, "customer": "ada"})
    unknown_scope = await h.event.aio_push("shop:order", {"n": 500}, scope="store-9")
    none_true = await h.event.aio_push("shop:order", {"n": 5, "customer": "bob"}, scope="store-1")
    one_true = await h.event.aio_push("shop:order", {"n": 500, "customer": "bob"}, scope="store-1")
    both_true = await h.event.aio_push("shop:order", {"n": 500, "customer": "ada"}, scope="store-1")
    store_2 = await h.event.aio_push("shop:order", {"n": 1}, scope="store-2")

    def filtered(event: Event) -> list[str | None]:
        return sorted(f or "" for name, f in env.runs_of(event.event_id) if name == "Filtered")

    # A workflow with filters starts no run for an event without a scope, or with a scope
    # none of its filters has; a workflow without filters always starts one.
    assert filtered(no_scope) == []
    assert filtered(unknown_scope) == []
    assert filtered(none_true) == []
    assert filtered(one_true) == [vip.metadata.id]
    assert filtered(both_true) == sorted([vip.metadata.id, mine.metadata.id])
    assert filtered(store_2) == [other.metadata.id]
    for event in (no_scope, unknown_scope, none_true, one_true, both_true, store_2):
        assert ("Unfiltered", None) in env.runs_of(event.event_id)
    await env.settled()

    payloads = sorted(
        (s.input["customer"], json.dumps(s.filter_payload, sort_keys=True))
        for s in env.seen
        if s.workflow == "Filtered"
    )
    assert payloads == [
        ("", '{"store": 2}'),
        ("ada", '{"tier": "vip"}'),
        ("ada", '{"who": "ada"}'),
        ("bob", '{"tier": "vip"}'),
    ]
    for s in env.seen:
        if s.workflow == "Filtered":
            assert s.trigger_data == {"filter_payload": s.filter_payload}
        else:
            assert s.trigger_data == {} and s.filter_payload == {}
    stored = await h.event.aio_get(both_true.event_id)
    assert sorted((r.filter_id or "") for r in stored.triggered_runs) == sorted(
        ["", vip.metadata.id, mine.metadata.id]
    )


async def test_filter_expressions_see_the_event_key_id_and_metadata(env: Env) -> None:
    h = env.hatchet
    wf = env.listener("Vars", ["vars:*"])
    await wf.aio_create_filter(
        "event_key == 'vars:b' && additional_metadata.region == 'eu' && event_id != ''", "s"
    )
    a = await h.event.aio_push("vars:a", {}, additional_metadata={"region": "eu"}, scope="s")
    b_us = await h.event.aio_push("vars:b", {}, additional_metadata={"region": "us"}, scope="s")
    b_eu = await h.event.aio_push("vars:b", {}, additional_metadata={"region": "eu"}, scope="s")
    assert [len(env.runs_of(e.event_id)) for e in (a, b_us, b_eu)] == [0, 0, 1]
    await env.settled()


async def test_filter_updates_and_deletes_take_effect(env: Env) -> None:
    h = env.hatchet
    wf = env.listener("Changing", ["chg:go"])
    made = await wf.aio_create_filter("input.n == 1", "s", {"v": 1})
    fid = made.metadata.id

    async def started(n: int, scope: str = "s") -> int:
        return len(env.runs_of((await h.event.aio_push("chg:go", {"n": n}, scope=scope)).event_id))

    assert (await started(1), await started(2)) == (1, 0)
    env.clock.advance(60)
    updated = await h.filters.aio_update(fid, V1UpdateFilterRequest(expression="input.n == 2"))
    assert updated.expression == "input.n == 2"
    assert updated.payload == {"v": 1} and updated.scope == "s"
    assert updated.metadata.updated_at == START + timedelta(seconds=60)
    assert updated.metadata.created_at == START
    assert (await started(1), await started(2)) == (0, 1)
    moved = await h.filters.aio_update(fid, V1UpdateFilterRequest(scope="t", payload={"v": 2}))
    assert (moved.scope, moved.payload) == ("t", {"v": 2})
    assert (await started(2, "s"), await started(2, "t")) == (0, 1)
    deleted = await h.filters.aio_delete(fid)
    assert deleted.metadata.id == fid
    # No filters left: every event starts a run again, whatever its scope.
    assert (await started(9, "zzz"), await started(9, "t")) == (1, 1)
    await env.settled()
    assert [s.filter_payload for s in env.seen if s.input["n"] == 2] == [{"v": 1}, {"v": 2}]


async def test_a_failing_filter_starts_nothing_and_is_logged_once(
    env: Env, caplog: pytest.LogCaptureFixture
) -> None:
    h = env.hatchet
    wf = env.listener("Fragile", ["fragile:go"])
    broken = await wf.aio_create_filter("input.n.deep == 1", "s")
    fine = await wf.aio_create_filter("input.n == 1", "s")
    with caplog.at_level(logging.WARNING, logger="hatchlite"):
        pushed = [await h.event.aio_push("fragile:go", {"n": 1}, scope="s") for _ in range(3)]
    for event in pushed:
        assert env.runs_of(event.event_id) == [("Fragile", fine.metadata.id)]
    reports = [r for r in caplog.records if broken.metadata.id in r.getMessage()]
    assert len(reports) == 1
    assert "input.n.deep == 1" in reports[0].getMessage()
    await env.settled()


async def test_default_filters_are_created_when_the_workflow_is_registered(
    tmp_path: Path,
) -> None:
    db = str(tmp_path / "defaults.db")
    clock = TestClock(START)

    def define(client: Hatchet, defaults: list[DefaultFilter]) -> Workflow[EmptyModel]:
        wf = client.workflow(name="WithDefaults", on_events=["dflt:*"], default_filters=defaults)

        @wf.task()
        def seen(input: EmptyModel, ctx: Context) -> dict[str, Any]:
            return {"fp": ctx.filter_payload}

        return wf

    first_defaults = [
        DefaultFilter(expression="input.kind == 'a'", scope="tenant", payload={"f": "a"}),
        DefaultFilter(expression="input.kind == 'b'", scope="tenant", payload={"f": "b"}),
    ]
    client = Hatchet(db=db, clock=clock)
    try:
        wf = define(client, first_defaults)
        # A push from the process that defines the workflow registers it first.
        pushed = await client.event.aio_push("dflt:x", {"kind": "a"}, scope="tenant")
        [(run_id, fid)] = _runs(db, pushed.event_id)
        assert await asyncio.wait_for(wf.aio_get_result(run_id), 3) == {"seen": {"fp": {"f": "a"}}}
        listed = await client.filters.aio_list(workflow_ids=[await workflow_id(client, wf)])
        assert sorted((f.expression, f.is_declarative) for f in listed.rows) == [
            ("input.kind == 'a'", True),
            ("input.kind == 'b'", True),
        ]
        ids = {f.expression: f.metadata.id for f in listed.rows}
        assert fid == ids["input.kind == 'a'"]
        runtime = await wf.aio_create_filter("input.kind == 'c'", "tenant")
        assert runtime.is_declarative is False
    finally:
        client.close()

    # Registered again with one default changed: the unchanged one keeps its id, the
    # removed one goes, the runtime filter stays.
    client = Hatchet(db=db, clock=clock)
    try:
        wf = define(
            client,
            [
                first_defaults[0],
                DefaultFilter(expression="input.kind == 'd'", scope="tenant"),
            ],
        )
        await client.event.aio_push("dflt:y", {"kind": "zzz"}, scope="tenant")
        listed = await client.filters.aio_list(workflow_ids=[await workflow_id(client, wf)])
        now = {f.expression: (f.metadata.id, f.is_declarative) for f in listed.rows}
        assert now == {
            "input.kind == 'a'": (ids["input.kind == 'a'"], True),
            "input.kind == 'c'": (runtime.metadata.id, False),
            "input.kind == 'd'": (now["input.kind == 'd'"][0], True),
        }
        pushed = await client.event.aio_push("dflt:z", {"kind": "b"}, scope="tenant")
        assert _runs(db, pushed.event_id) == []
    finally:
        client.close()


async def test_default_filters_are_created_when_a_worker_starts(tmp_path: Path) -> None:
    db = str(tmp_path / "worker_defaults.db")
    client = Hatchet(db=db, clock=TestClock(START), auto_worker=False)
    try:
        wf = client.workflow(
            name="WorkerDefaults",
            on_events=["wd:go"],
            default_filters=[DefaultFilter(expression="true", scope="s", payload={"w": 1})],
        )

        @wf.task()
        def t(input: EmptyModel, ctx: Context) -> dict[str, Any]:
            return {"fp": ctx.filter_payload}

        worker = client.worker("defaults", workflows=[wf])
        serving = asyncio.ensure_future(worker.aio_start())
        await wait_until(lambda: has_rows(db, "SELECT 1 FROM filters WHERE is_declarative = 1"))
        rows = query(db, "SELECT workflow_name, scope, expression, payload FROM filters")
        assert rows == [("WorkerDefaults", "s", "true", '{"w": 1}')]
        worker.stop()
        await asyncio.wait_for(serving, 10)
    finally:
        await client.aio_close()


async def test_a_replayed_event_run_keeps_its_trigger(env: Env) -> None:
    h = env.hatchet
    wf = env.listener("Replayed", ["replay:go"])
    made = await wf.aio_create_filter("true", "s", {"p": 1})
    pushed = await h.event.aio_push("replay:go", {"n": 4}, scope="s")
    [(run_id, filter_id)] = _runs(env.db, pushed.event_id)
    assert filter_id == made.metadata.id
    await env.settled()
    await h.runs.aio_replay(run_id)
    await wait_until(lambda: len(env.seen) == 2)
    first, again = env.seen
    assert again.run_id == first.run_id == run_id
    for seen in (first, again):
        assert (seen.event_id, seen.event_key) == (pushed.event_id, "replay:go")
        assert seen.filter_payload == {"p": 1}
        assert seen.trigger_data == {"filter_payload": {"p": 1}}
        assert seen.input == {"n": 4, "customer": ""}


async def test_a_child_of_an_event_run_is_not_event_triggered(env: Env) -> None:
    h = env.hatchet

    @h.task(name="EventChild")
    def child(input: EmptyModel, ctx: Context) -> dict[str, Any]:
        return {
            "by_event": ctx.was_triggered_by_event,
            "event_id": ctx.triggering_event_id,
            "key": ctx.triggering_event_key,
            "inherited": ctx.additional_metadata.get("hatchet__event_id"),
        }

    @h.task(name="EventParent", on_events=["parent:go"])
    async def parent(input: EmptyModel, ctx: Context) -> dict[str, Any]:
        return await child.aio_run()

    pushed = await h.event.aio_push("parent:go", {})
    [(run_id, _)] = _runs(env.db, pushed.event_id)
    result = await asyncio.wait_for(parent.aio_get_result(run_id), 3)
    # The child inherits its parent's metadata, but no event started it.
    assert result == {
        "by_event": False,
        "event_id": None,
        "key": None,
        "inherited": pushed.event_id,
    }


# -- 3. bulk push ------------------------------------------------------------------


async def test_bulk_push_returns_events_in_order_and_starts_their_runs(env: Env) -> None:
    h = env.hatchet
    wf = env.listener("Bulk", ["bulk:*"])
    await wf.aio_create_filter("input.n % 2 == 0", "even")
    items = [
        BulkPushEventWithMetadata(
            key=f"bulk:{i}",
            payload={"n": i},
            additional_metadata={"i": i},
            scope="even" if i < 4 else None,
            priority=Priority.HIGH if i == 0 else None,
        )
        for i in range(6)
    ]
    pushed = await h.event.aio_bulk_push(items)
    assert [p.key for p in pushed] == [f"bulk:{i}" for i in range(6)]
    assert [json.loads(p.payload) for p in pushed] == [{"n": i} for i in range(6)]
    assert [json.loads(p.additional_metadata or "") for p in pushed] == [{"i": i} for i in range(6)]
    assert [p.scope for p in pushed] == ["even"] * 4 + [None] * 2
    assert len({p.event_id for p in pushed}) == 6
    # Scoped events start a run through the true filter; unscoped ones none.
    assert [len(env.runs_of(p.event_id)) for p in pushed] == [1, 0, 1, 0, 0, 0]
    await env.settled()
    assert sorted((s.input["n"], s.priority) for s in env.seen) == [(0, 3), (2, 1)]

    sync_pushed = await asyncio.to_thread(
        h.event.bulk_push,
        [BulkPushEventWithMetadata(key="x", payload={"n": 1})],
        BulkPushEventOptions(namespace="other_"),
    )
    assert [p.key for p in sync_pushed] == ["other_x"]


async def test_a_bulk_push_with_one_bad_event_stores_nothing(env: Env) -> None:
    h = env.hatchet
    env.listener("BulkBad", ["bb:*"])
    await h.event.aio_push("unrelated", {})
    with pytest.raises(ValueError, match="non-empty"):
        await h.event.aio_bulk_push(
            [
                BulkPushEventWithMetadata(key="bb:1", payload={"n": 1}),
                BulkPushEventWithMetadata(key="", payload={"n": 2}),
            ]
        )
    assert event_count(env.db) == 1
    assert query(env.db, "SELECT count(*) FROM workflow_runs") == [(0,)]


# -- 4. bad input --------------------------------------------------------------------


async def test_bad_pushes_store_nothing(env: Env) -> None:
    h = env.hatchet
    env.listener("Strict", ["strict:*"])
    await h.event.aio_push("unrelated", {})
    cases: list[tuple[Any, Any, dict[str, Any], str]] = [
        ("strict:1", [1, 2], {}, "must be a dict"),
        ("strict:1", "text", {}, "must be a dict"),
        ("strict:1", None, {}, "must be a dict"),
        ("strict:1", {"when": datetime.now(UTC)}, {}, "JSON-serializable"),
        ("", {}, {}, "non-empty"),
        (None, {}, {}, "non-empty"),
        ("strict:1", {}, {"additional_metadata": {"x": object()}}, "JSON-serializable"),
        ("strict:1", {}, {"priority": 7}, "priority"),
    ]
    for key, payload, kwargs, message in cases:
        with pytest.raises(ValueError, match=message):
            await h.event.aio_push(key, payload, **kwargs)
    assert event_count(env.db) == 1
    assert query(env.db, "SELECT count(*) FROM workflow_runs") == [(0,)]


async def test_bad_filters_are_refused_and_store_nothing(env: Env) -> None:
    h = env.hatchet
    wf = env.listener("Refuse", ["refuse:go"])
    wid = await workflow_id(h, wf)
    with pytest.raises(InvalidCELError, match=r"input\.n >"):
        await h.filters.aio_create(wid, "input.n >", "s")
    with pytest.raises(InvalidCELError, match="not boolean"):
        await h.filters.aio_create(wid, "input.n + 1", "s")
    with pytest.raises(ValueError, match="scope"):
        await h.filters.aio_create(wid, "true", "")
    with pytest.raises(ValueError, match="payload"):
        await h.filters.aio_create(wid, "true", "s", [1])  # type: ignore[arg-type]
    with pytest.raises(FilterNotFoundError, match="no-such-workflow"):
        await h.filters.aio_create("no-such-workflow", "true", "s")
    assert query(env.db, "SELECT count(*) FROM filters") == [(0,)]

    made = await h.filters.aio_create(wid, "true", "s", {"a": 1})
    with pytest.raises(InvalidCELError):
        await h.filters.aio_update(made.metadata.id, V1UpdateFilterRequest(expression="(("))
    with pytest.raises(ValueError, match="scope"):
        await h.filters.aio_update(made.metadata.id, V1UpdateFilterRequest(scope=""))
    assert (await h.filters.aio_get(made.metadata.id)).expression == "true"
    for call in (h.filters.aio_get, h.filters.aio_delete):
        with pytest.raises(FilterNotFoundError, match="missing-id"):
            await call("missing-id")
    with pytest.raises(FilterNotFoundError, match="missing-id"):
        await h.filters.aio_update("missing-id", V1UpdateFilterRequest(scope="z"))
    assert query(env.db, "SELECT id, scope, expression FROM filters") == [
        (made.metadata.id, "s", "true")
    ]


def test_filter_crud_sync(env: Env) -> None:
    h = env.hatchet
    one = env.listener("CrudOne", ["crud:1"])
    two = env.listener("CrudTwo", ["crud:2"])
    a = one.create_filter("true", "alpha", {"n": 1})
    b = h.filters.create(two.id, "true", "beta")
    env.clock.advance(1)
    c = h.filters.create(two.id, "input.n == 1", "alpha")
    assert (a.workflow_id, b.workflow_id) == (one.id, two.id)
    assert b.payload == {} and not b.is_declarative
    assert h.filters.get(c.metadata.id) == c

    everything = h.filters.list()
    assert [f.metadata.id for f in everything.rows][-1] == c.metadata.id
    assert {f.metadata.id for f in everything.rows} == {a.metadata.id, b.metadata.id, c.metadata.id}
    assert {f.metadata.id for f in h.filters.list(workflow_ids=[two.id]).rows} == {
        b.metadata.id,
        c.metadata.id,
    }
    assert {f.metadata.id for f in h.filters.list(scopes=["alpha"]).rows} == {
        a.metadata.id,
        c.metadata.id,
    }
    assert [
        f.metadata.id for f in h.filters.list(workflow_ids=[two.id], scopes=["alpha"]).rows
    ] == [c.metadata.id]
    page = h.filters.list(limit=2, offset=2)
    assert [f.metadata.id for f in page.rows] == [c.metadata.id]
    assert h.filters.list(workflow_ids=["nope"]).rows == []
    h.filters.delete(a.metadata.id)
    assert {f.metadata.id for f in h.filters.list().rows} == {b.metadata.id, c.metadata.id}


# -- 5. cel.debug ------------------------------------------------------------------


def test_cel_debug(env: Env) -> None:
    cel = env.hatchet.cel
    ok = cel.debug("input.n > 1 && payload.tier == 'vip'", {"n": 2}, None, {"tier": "vip"})
    assert isinstance(ok.result, CELSuccess) and ok.result.output is True
    assert ok.result.status == "success"
    no = cel.debug("additional_metadata.region == 'eu'", {}, {"region": "us"})
    assert isinstance(no.result, CELSuccess) and no.result.output is False

    for expression, data, why in [
        ("input.n >", {}, "input.n >"),
        ("input.n + 1", {"n": 1}, "not boolean"),
        ("input.missing == 1", {}, "missing"),
        ("input.n", {"n": 3}, "not a bool"),
    ]:
        failed = cel.debug(expression, data)
        assert isinstance(failed.result, CELFailure), expression
        assert failed.result.status == "failure"
        assert why in failed.result.error, (expression, failed.result.error)


async def test_cel_debug_async(env: Env) -> None:
    result = await env.hatchet.cel.aio_debug("input.ok", {"ok": True})
    assert isinstance(result.result, CELSuccess) and result.result.output is True


# -- 6. reading events back ---------------------------------------------------------


async def test_event_list_filters_and_event_get(env: Env) -> None:
    h, clock = env.hatchet, env.clock
    wf = env.listener("Listed", ["listed:*"])
    other = env.listener("Other", ["listed:b"])

    @h.task(name="Breaks", on_events=["listed:fail"], retries=0)
    def breaks(input: EmptyModel, ctx: Context) -> None:
        raise RuntimeError("no")

    a = await h.event.aio_push("listed:a", {"n": 1}, additional_metadata={"team": "x"})
    clock.advance(10)
    b = await h.event.aio_push("listed:b", {"n": 2}, scope="s1", additional_metadata={"v": 1})
    clock.advance(10)
    c = await h.event.aio_push("listed:fail", {}, scope="s2")
    clock.advance(10)
    d = await h.event.aio_push("unheard", {"n": 4}, additional_metadata={"team": "y"})
    await env.settled()

    def ids(page: Any) -> list[str]:
        return [e.metadata.id for e in page.rows]

    everything = await h.event.aio_list()
    assert ids(everything) == [d.event_id, c.event_id, b.event_id, a.event_id]  # newest first
    assert ids(await h.event.aio_list(keys=["listed:a", "unheard"])) == [d.event_id, a.event_id]
    assert ids(await h.event.aio_list(since=START + timedelta(seconds=10))) == [
        d.event_id,
        c.event_id,
        b.event_id,
    ]
    assert ids(await h.event.aio_list(until=START + timedelta(seconds=10))) == [
        b.event_id,
        a.event_id,
    ]
    assert ids(await h.event.aio_list(event_ids=[a.event_id, c.event_id])) == [
        c.event_id,
        a.event_id,
    ]
    assert ids(await h.event.aio_list(scopes=["s1"])) == [b.event_id]
    assert ids(await h.event.aio_list(additional_metadata={"team": "x"})) == [a.event_id]
    assert ids(await h.event.aio_list(additional_metadata={"v": "1"})) == [b.event_id]
    assert ids(await h.event.aio_list(workflow_ids=[await workflow_id(h, other)])) == [b.event_id]
    assert ids(await h.event.aio_list(workflow_ids=[await workflow_id(h, wf)])) == [
        c.event_id,
        b.event_id,
        a.event_id,
    ]
    failed = await h.event.aio_list(workflow_run_statuses=[V1TaskStatus.FAILED])
    assert ids(failed) == [c.event_id]
    page = await h.event.aio_list(limit=2, offset=1)
    assert ids(page) == [c.event_id, b.event_id]
    assert page.pagination.num_pages == 2

    got = await h.event.aio_get(c.event_id)
    assert (got.key, got.scope, got.payload) == ("listed:fail", "s2", {})
    assert got.seen_at == START + timedelta(seconds=20)
    summary = got.workflow_run_summary
    assert (summary.failed, summary.succeeded, summary.running, summary.queued) == (1, 1, 0, 0)
    assert {r.workflow_run_id for r in got.triggered_runs} == {
        str(r)
        for (r,) in query(
            env.db, "SELECT id FROM workflow_runs WHERE triggering_event_id = ?", (c.event_id,)
        )
    }
    assert len(got.triggered_runs) == 2
    with pytest.raises(EventNotFoundError, match="nope"):
        await h.event.aio_get("nope")
    assert h.event.get(d.event_id).triggered_runs == []
    with pytest.raises(ValueError, match="since"):
        await h.event.aio_list(since=START + timedelta(days=1), until=START)


async def test_runs_list_by_triggering_event(env: Env) -> None:
    h = env.hatchet
    wf = env.listener("ByEvent", ["by:*"])
    env.listener("AlsoByEvent", ["by:one"])
    one = await h.event.aio_push("by:one", {"n": 1})
    two = await h.event.aio_push("by:two", {"n": 2})
    await wf.aio_run(Order(n=3))  # started directly: no triggering event
    await env.settled()
    since = START - timedelta(hours=1)
    runs_one = await h.runs.aio_list(since=since, triggering_event_external_id=one.event_id)
    assert sorted(r.workflow_name for r in runs_one.rows) == ["AlsoByEvent", "ByEvent"]
    assert all(r.status == V1TaskStatus.COMPLETED for r in runs_one.rows)
    runs_two = await h.runs.aio_list(since=since, triggering_event_external_id=two.event_id)
    assert [r.workflow_name for r in runs_two.rows] == ["ByEvent"]
    assert (await h.runs.aio_list(since=since, triggering_event_external_id="nope")).rows == []
    assert len((await h.runs.aio_list(since=since)).rows) == 4


def test_sync_push_and_get(env: Env) -> None:
    env.listener("SyncPush", ["sync:go"])
    pushed = env.hatchet.event.push("sync:go", {"n": 5}, scope="s")
    got = env.hatchet.event.get(pushed.event_id)
    assert got.payload == {"n": 5} and got.scope == "s"
    assert len(got.triggered_runs) == 1
    assert [e.metadata.id for e in env.hatchet.event.list(scopes=["s"]).rows] == [pushed.event_id]


async def test_event_list_metadata_filter_needs_every_pair(env: Env) -> None:
    h = env.hatchet
    both = await h.event.aio_push("meta", {}, additional_metadata={"team": "x", "env": "prod"})
    await h.event.aio_push("meta", {}, additional_metadata={"team": "x", "env": "dev"})
    await h.event.aio_push("meta", {}, additional_metadata={"team": "y", "env": "prod"})
    listed = await h.event.aio_list(additional_metadata={"team": "x", "env": "prod"})
    assert [e.metadata.id for e in listed.rows] == [both.event_id]


# -- found in review of the first version ----------------------------------------------


async def test_an_updated_failing_filter_is_logged_again(
    env: Env, caplog: pytest.LogCaptureFixture
) -> None:
    wf = env.listener("Refiltered", ["refiltered:go"])
    broken = await wf.aio_create_filter("input.n.deep == 1", "s")
    with caplog.at_level(logging.WARNING, logger="hatchlite"):
        await env.hatchet.event.aio_push("refiltered:go", {"n": 1}, scope="s")
        await env.hatchet.filters.aio_update(
            broken.metadata.id, V1UpdateFilterRequest(expression="input.n.other == 2")
        )
        await env.hatchet.event.aio_push("refiltered:go", {"n": 1}, scope="s")
    reports = [r.getMessage() for r in caplog.records if broken.metadata.id in r.getMessage()]
    assert len(reports) == 2 and "input.n.other == 2" in reports[1]


async def test_an_event_does_not_meet_the_wait_of_a_run_it_started(env: Env) -> None:
    from hatchlite import UserEventCondition

    wf = env.hatchet.workflow(name="SelfWait", on_events=["self:go"])

    @wf.task(wait_for=[UserEventCondition(event_key="self:go")])
    def gated(input: EmptyModel, ctx: Context) -> dict[str, int]:
        return {"ok": 1}

    first = await env.hatchet.event.aio_push("self:go", {})
    [(run_id,)] = query(
        env.db, "SELECT id FROM workflow_runs WHERE triggering_event_id = ?", (first.event_id,)
    )
    assert query(env.db, "SELECT status FROM task_runs WHERE workflow_run_id = ?", (run_id,)) == [
        ("PENDING",)
    ]
    await env.hatchet.event.aio_push("self:go", {})  # meets the first run's wait
    await wait_until(
        lambda: (
            query(env.db, "SELECT status FROM workflow_runs WHERE id = ?", (run_id,))
            == [("COMPLETED",)]
        )
    )
    env.hatchet.runs.bulk_cancel_by_filters_with_pagination(sleep_time=0, since=START)


async def test_a_percent_sign_in_a_key_is_a_wildcard_too(env: Env) -> None:
    env.listener("Percent", ["p%z"])
    event = await env.hatchet.event.aio_push("pabcz", {})
    assert env.runs_of(event.event_id) == [("Percent", None)]
    await env.settled()


def test_cel_debug_sees_event_key_and_event_id(env: Env) -> None:
    result = env.hatchet.cel.debug("event_key == '' && event_id == ''", {})
    assert isinstance(result.result, CELSuccess) and result.result.output is True


def test_an_empty_default_filter_scope_or_an_empty_or_group_is_refused(env: Env) -> None:
    from hatchlite import InvalidDefinitionError, or_

    with pytest.raises(InvalidDefinitionError, match="non-empty scope"):
        env.hatchet.workflow(
            name="NoScope", default_filters=[DefaultFilter(expression="true", scope="")]
        )
    with pytest.raises(ValueError, match="at least one condition"):
        or_()


@pytest.mark.timeout(60)
def test_a_listener_registered_by_another_process_is_seen_by_the_next_push(
    tmp_path: Path,
) -> None:
    import os
    import subprocess
    import sys
    import textwrap

    from tests.test_processes import ROOT

    db = str(tmp_path / "listeners.db")
    pusher = Hatchet(db=db, auto_worker=False)
    try:
        first = pusher.event.push("remote:go", {})  # no listener yet: stored only
        assert pusher.event.get(first.event_id).triggered_runs == []
        script = textwrap.dedent(
            f"""
            from hatchlite import Context, EmptyModel, Hatchet
            client = Hatchet(db={db!r}, auto_worker=False)
            wf = client.workflow(name="Remote", on_events=["remote:*"])

            @wf.task()
            def step(input: EmptyModel, ctx: Context) -> None:
                pass

            client.workflows.list()  # registers what this process defines
            """
        )
        subprocess.run(
            [sys.executable, "-c", script],
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            check=True,
            timeout=30,
        )
        second = pusher.event.push("remote:go", {})
        assert len(pusher.event.get(second.event_id).triggered_runs) == 1
    finally:
        pusher.close()


@pytest.mark.timeout(60)
def test_a_push_starts_runs_of_the_definition_registered_last_by_any_process(
    tmp_path: Path,
) -> None:
    """A long-lived pushing process defined version 1; another process registers version
    2 (a second task, another priority): the pusher's next event starts version 2."""
    import os
    import subprocess
    import sys
    import textwrap

    from tests.test_processes import ROOT

    db = str(tmp_path / "versions.db")
    pusher = Hatchet(db=db, auto_worker=False)
    try:
        old = pusher.workflow(name="Versioned", on_events=["v:go"], default_priority=1)

        @old.task()
        def a(input: EmptyModel, ctx: Context) -> None:
            pass

        first = pusher.event.push("v:go", {})
        script = textwrap.dedent(
            f"""
            from hatchlite import Context, EmptyModel, Hatchet
            client = Hatchet(db={db!r}, auto_worker=False)
            wf = client.workflow(name="Versioned", on_events=["v:go"], default_priority=3)

            @wf.task()
            def a2(input: EmptyModel, ctx: Context) -> None:
                pass

            @wf.task(parents=[a2])
            def b(input: EmptyModel, ctx: Context) -> None:
                pass

            client.workflows.list()  # registers what this process defines
            """
        )
        subprocess.run(
            [sys.executable, "-c", script],
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            check=True,
            timeout=30,
        )
        second = pusher.event.push("v:go", {})

        def started(event_id: str) -> tuple[object, ...]:
            [run_id] = [r.workflow_run_id for r in pusher.event.get(event_id).triggered_runs or []]
            [(priority, is_dag)] = query(
                db, "SELECT priority, is_dag FROM workflow_runs WHERE id = ?", (run_id,)
            )
            names = query(
                db,
                "SELECT task_name FROM task_runs WHERE workflow_run_id = ? ORDER BY task_name",
                (run_id,),
            )
            return priority, is_dag, [n for (n,) in names]

        assert started(first.event_id) == (1, 0, ["a"])
        assert started(second.event_id) == (3, 1, ["a2", "b"])
    finally:
        pusher.close()


async def test_a_run_started_by_an_event_that_no_worker_serves_says_so(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    db = str(tmp_path / "unserved.db")
    pusher = Hatchet(db=db, auto_worker=False)
    try:
        wf = pusher.workflow(name="Nobody", on_events=["nobody:go"])

        @wf.task()
        def step(input: EmptyModel, ctx: Context) -> None:
            pass

        with caplog.at_level(logging.WARNING, logger="hatchlite"):
            event = await pusher.event.aio_push("nobody:go", {})
        assert "workflow Nobody was started by an event, but no running worker" in caplog.text
        [run] = (await pusher.event.aio_get(event.event_id)).triggered_runs
        details = await pusher.runs.aio_get(run.workflow_run_id)
        kinds = [e.event_type for e in details.task_events]
        assert V1TaskEventType.REQUEUED_NO_WORKER in kinds
    finally:
        pusher.close()

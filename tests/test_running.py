"""Triggering runs and the shapes of their results, as Hatchet returns them."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import threading
import time

import pytest
from pydantic import BaseModel

from hatchlite import (
    Context,
    EmptyModel,
    FailedTaskRunExceptionGroup,
    Hatchet,
    InputValidationError,
    TaskRunRef,
    TriggerWorkflowOptions,
    WorkflowRunRef,
)
from tests.conftest import query


class Numbers(BaseModel):
    x: int
    y: int = 0


class Sum(BaseModel):
    total: int


@dataclasses.dataclass
class Pair:
    left: int
    right: int


def make_dag(hatchet: Hatchet, name: str = "dag") -> object:
    wf = hatchet.workflow(name=name, input_validator=Numbers)

    @wf.task()
    def first(input: Numbers, ctx: Context) -> Sum:
        return Sum(total=input.x + input.y)

    @wf.task(parents=[first])
    async def Second(input: Numbers, ctx: Context) -> dict[str, int]:
        return {"double": ctx.task_output(first).total * 2}

    @wf.task(parents=[first, Second])
    def last(input: Numbers, ctx: Context) -> None:
        assert isinstance(ctx.task_output(first), Sum)
        return None

    return wf


def test_dag_result_is_keyed_by_lower_cased_task_names(hatchet: Hatchet) -> None:
    wf = make_dag(hatchet)
    # run() has ref.result() semantics: every task, None for no output.
    assert wf.run(Numbers(x=1, y=2)) == {  # type: ignore[attr-defined]
        "first": {"total": 3},
        "second": {"double": 6},
        "last": None,
    }


async def test_aio_run_omits_tasks_without_output(hatchet: Hatchet) -> None:
    wf = make_dag(hatchet)
    result = await wf.aio_run({"x": 2})  # type: ignore[attr-defined]
    assert result == {"first": {"total": 2}, "second": {"double": 4}}


def test_standalone_returns_typed_output(hatchet: Hatchet) -> None:
    @hatchet.task(input_validator=Numbers)
    def add(input: Numbers, ctx: Context) -> Sum:
        return Sum(total=input.x + input.y)

    @hatchet.task()
    def nothing(input: EmptyModel, ctx: Context) -> None:
        return None

    @hatchet.task()
    def pair(input: EmptyModel, ctx: Context) -> Pair:
        return Pair(1, 2)

    assert add.run(Numbers(x=2, y=3)) == Sum(total=5)
    assert nothing.run() == EmptyModel()
    assert pair.run() == Pair(1, 2)


def test_one_task_workflow_run_id_is_its_task_id(hatchet: Hatchet, db_path: str) -> None:
    @hatchet.task()
    def solo(input: EmptyModel, ctx: Context) -> dict[str, str]:
        return {"task": ctx.task_run_id, "run": ctx.workflow_run_id}

    ref = solo.run_no_wait()
    assert isinstance(ref, TaskRunRef)
    out = ref.result()
    assert out["task"] == out["run"] == ref.workflow_run_id
    dag = make_dag(hatchet)
    dag_ref = dag.run_no_wait(Numbers(x=1))  # type: ignore[attr-defined]
    dag_ref.result()
    ids = query(
        db_path, "SELECT id FROM task_runs WHERE workflow_run_id = ?", (dag_ref.workflow_run_id,)
    )
    assert len(ids) == 3 and all(i[0] != dag_ref.workflow_run_id for i in ids)


def test_no_wait_refs_and_results(hatchet: Hatchet) -> None:
    wf = make_dag(hatchet)
    ref = wf.run(Numbers(x=1), wait_for_result=False)  # type: ignore[attr-defined]
    assert isinstance(ref, WorkflowRunRef)
    assert str(ref) == ref.workflow_run_id
    assert ref.result()["first"] == {"total": 1}
    again = hatchet.runs.get_run_ref(ref.workflow_run_id)
    assert again.result() == ref.result()


async def test_aio_no_wait(hatchet: Hatchet) -> None:
    @hatchet.task()
    async def echo(input: EmptyModel, ctx: Context) -> dict[str, int]:
        return {"n": 1}

    ref = await echo.aio_run_no_wait()
    assert await ref.aio_result() == {"n": 1}
    ref2 = await echo.aio_run(wait_for_result=False)
    assert ref2.result() == {"n": 1}


def test_sync_run_inside_a_running_event_loop(hatchet: Hatchet) -> None:
    @hatchet.task()
    def ping(input: EmptyModel, ctx: Context) -> dict[str, str]:
        return {"pong": "yes"}

    async def inside() -> dict[str, str]:
        # Hatchet's own examples call the sync API inside async tests.
        return ping.run()

    assert asyncio.run(inside()) == {"pong": "yes"}


def test_run_many_and_return_exceptions(hatchet: Hatchet) -> None:
    @hatchet.task(input_validator=Numbers)
    def maybe_fail(input: Numbers, ctx: Context) -> dict[str, int]:
        if input.x < 0:
            raise ValueError(f"negative {input.x}")
        return {"x": input.x}

    items = [maybe_fail.create_bulk_run_item(Numbers(x=i)) for i in (1, -1, 2)]
    out = maybe_fail.run_many(items, return_exceptions=True)
    assert out[0] == {"x": 1} and out[2] == {"x": 2}
    assert isinstance(out[1], FailedTaskRunExceptionGroup)
    assert "negative -1" in str(out[1])
    with pytest.raises(FailedTaskRunExceptionGroup):
        maybe_fail.run_many(items)
    refs = maybe_fail.run_many_no_wait(items[:1])
    assert refs[0].result() == {"x": 1}


async def test_aio_run_many(hatchet: Hatchet) -> None:
    wf = make_dag(hatchet)
    items = [wf.create_bulk_run_item(Numbers(x=i)) for i in range(20)]  # type: ignore[attr-defined]
    results = await wf.aio_run_many(items)  # type: ignore[attr-defined]
    assert [r["first"]["total"] for r in results] == list(range(20))
    refs = await wf.aio_run_many_no_wait(items[:2])  # type: ignore[attr-defined]
    assert [(await r.aio_result())["first"] for r in refs] == [{"total": 0}, {"total": 1}]


def test_invalid_input_is_rejected_before_anything_is_stored(
    hatchet: Hatchet, db_path: str
) -> None:
    wf = make_dag(hatchet)
    wf.run(Numbers(x=1))  # type: ignore[attr-defined]
    before = query(db_path, "SELECT count(*) FROM workflow_runs")
    with pytest.raises(InputValidationError, match=r"(?s)workflow 'dag'.*Numbers.*x"):
        wf.run({"y": 1})  # type: ignore[attr-defined]
    with pytest.raises(InputValidationError):
        wf.create_bulk_run_item({"x": "not a number"})  # type: ignore[attr-defined]
    assert query(db_path, "SELECT count(*) FROM workflow_runs") == before


def test_dict_and_dataclass_input_validators(hatchet: Hatchet) -> None:
    @hatchet.task(input_validator=Pair)
    def swap(input: Pair, ctx: Context) -> Pair:
        return Pair(input.right, input.left)

    @hatchet.task(input_validator=dict)
    def keys(input: dict[str, int], ctx: Context) -> dict[str, list[str]]:
        return {"keys": sorted(input)}

    assert swap.run(Pair(1, 2)) == Pair(2, 1)
    assert swap.run({"left": 3, "right": 4}) == Pair(4, 3)  # type: ignore[arg-type]
    assert keys.run({"b": 1, "a": 2}) == {"keys": ["a", "b"]}


def test_metadata_merge_and_priority(hatchet: Hatchet, db_path: str) -> None:
    wf = hatchet.workflow(name="meta", default_additional_metadata={"a": 1, "b": 1})

    @wf.task()
    def show(input: EmptyModel, ctx: Context) -> dict[str, object]:
        return {"meta": ctx.additional_metadata, "priority": ctx.priority}

    out = wf.run(additional_metadata={"b": 2, "c": 3}, priority=3)
    assert out["show"] == {"meta": {"a": 1, "b": 2, "c": 3}, "priority": 3}
    opts = TriggerWorkflowOptions(additional_metadata={"d": 4}, priority=2)
    assert wf.run(options=opts)["show"]["priority"] == 2
    with pytest.raises(ValueError, match="priority must be 1, 2 or 3"):
        wf.run(priority=4)
    with pytest.raises(ValueError, match="JSON-serializable"):
        wf.run(additional_metadata={"x": object()})
    stored = query(db_path, "SELECT additional_metadata, priority FROM workflow_runs")
    assert (json.dumps({"a": 1, "b": 2, "c": 3}), 3) in stored


def test_output_is_stored_and_typed_for_children(hatchet: Hatchet, db_path: str) -> None:
    wf = make_dag(hatchet)
    ref = wf.run_no_wait(Numbers(x=5))  # type: ignore[attr-defined]
    ref.result()
    rows = dict(
        query(
            db_path,
            "SELECT task_name, output FROM task_runs WHERE workflow_run_id=?",
            (ref.workflow_run_id,),
        )
    )
    assert json.loads(rows["first"]) == {"total": 5}
    assert rows["last"] is None
    details = hatchet.runs.get_details(ref.workflow_run_id)
    assert details.status.value == "COMPLETED" and details.done
    assert details.input == {"x": 5, "y": 0}
    assert details.task_runs["second"].output == {"double": 10}


def test_diamond_middle_tasks_overlap(hatchet: Hatchet) -> None:
    wf = hatchet.workflow(name="diamond")
    spans: dict[str, tuple[float, float]] = {}
    both_running = threading.Barrier(2, timeout=5)

    @wf.task()
    def top(input: EmptyModel, ctx: Context) -> None:
        return None

    def middle(name: str) -> None:
        start = time.monotonic()
        both_running.wait()  # only returns once the other middle task runs too
        spans[name] = (start, time.monotonic())

    @wf.task(parents=[top])
    def left(input: EmptyModel, ctx: Context) -> None:
        middle("left")

    @wf.task(parents=[top])
    def right(input: EmptyModel, ctx: Context) -> None:
        middle("right")

    @wf.task(parents=[left, right])
    def bottom(input: EmptyModel, ctx: Context) -> None:
        return None

    wf.run()
    (l0, l1), (r0, r1) = spans["left"], spans["right"]
    assert l0 < r1 and r0 < l1  # the two intervals intersect


def test_one_slot_serialises_the_diamond(db_path: str) -> None:
    client = Hatchet(db=db_path, auto_worker=False)
    wf = client.workflow(name="serial")
    running = 0
    peak = 0
    lock = threading.Lock()

    def work() -> None:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        time.sleep(0.02)  # hold the slot long enough for an overlap to show
        with lock:
            running -= 1

    @wf.task()
    def top(input: EmptyModel, ctx: Context) -> None:
        work()

    @wf.task(parents=[top])
    def left(input: EmptyModel, ctx: Context) -> None:
        work()

    @wf.task(parents=[top])
    def right(input: EmptyModel, ctx: Context) -> None:
        work()

    worker = client.worker("one-slot", slots=1, workflows=[wf])
    thread = threading.Thread(target=worker.start)
    thread.start()
    try:
        for _ in range(3):
            wf.run()
    finally:
        worker.stop()
        thread.join(10)
        client.close()
    assert peak == 1


def test_thousand_dag_runs_store_every_output(hatchet: Hatchet, db_path: str) -> None:
    wf = hatchet.workflow(name="three", input_validator=Numbers)

    @wf.task()
    async def a(input: Numbers, ctx: Context) -> dict[str, int]:
        return {"a": input.x}

    @wf.task(parents=[a])
    async def b(input: Numbers, ctx: Context) -> dict[str, int]:
        return {"b": ctx.task_output(a)["a"] + 1}

    @wf.task(parents=[b])
    async def c(input: Numbers, ctx: Context) -> dict[str, int]:
        return {"c": ctx.task_output(b)["b"] + 1}

    results = wf.run_many([wf.create_bulk_run_item(Numbers(x=i)) for i in range(1000)])
    assert [r["c"]["c"] for r in results] == [i + 2 for i in range(1000)]
    rows = query(db_path, "SELECT status, count(*), count(output) FROM task_runs GROUP BY status")
    assert rows == [("COMPLETED", 3000, 3000)]
    runs = query(db_path, "SELECT status, count(*), count(finished_at) FROM workflow_runs")
    assert runs == [("COMPLETED", 1000, 1000)]

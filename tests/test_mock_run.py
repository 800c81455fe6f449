"""`mock_run` / `aio_mock_run`: a task's function called with a stand-in context, no
engine, for standalone, DAG and durable tasks."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import timedelta

import pytest
from pydantic import BaseModel

from hatchlite import Context, DurableContext, EmptyModel, Hatchet, UserEventCondition


class Item(BaseModel):
    sku: str


@pytest.fixture
def client() -> Hatchet:
    return Hatchet(db=":memory:")


def test_sync_and_async_standalone_tasks(client: Hatchet) -> None:
    @client.task(input_validator=Item)
    def price(input: Item, ctx: Context) -> dict[str, object]:
        return {"sku": input.sku, "meta": ctx.additional_metadata, "retry": ctx.retry_count}

    @client.task(input_validator=Item)
    async def stock(input: Item, ctx: Context) -> dict[str, object]:
        return {"sku": input.sku, "lifespan": ctx.lifespan}

    out = price.mock_run(Item(sku="a"), additional_metadata={"k": "v"}, retry_count=2)
    assert out == {"sku": "a", "meta": {"k": "v"}, "retry": 2}
    assert asyncio.run(stock.aio_mock_run(Item(sku="b"), lifespan="pool")) == {
        "sku": "b",
        "lifespan": "pool",
    }
    with pytest.raises(TypeError, match=r"not a sync function\. Use `aio_mock_run`"):
        stock.mock_run(Item(sku="b"))
    with pytest.raises(TypeError, match=r"not an async function\. Use `mock_run`"):
        asyncio.run(price.aio_mock_run(Item(sku="a")))


def test_a_dag_task_reads_its_parents_outputs(client: Hatchet) -> None:
    wf = client.workflow(name="order", input_validator=Item)

    @wf.task()
    def reserve(input: Item, ctx: Context) -> dict[str, int]:
        return {"units": 3}

    @wf.task(parents=[reserve])
    def ship(input: Item, ctx: Context) -> dict[str, object]:
        return {"sku": input.sku, "units": ctx.task_output(reserve)["units"]}

    out = ship.mock_run(Item(sku="c"), parent_outputs={"reserve": {"units": 5}})
    assert out == {"sku": "c", "units": 5}
    with pytest.raises(ValueError, match="reserve"):
        ship.mock_run(Item(sku="c"))  # no parent output given


def test_mock_ids_are_random_uuids(client: Hatchet) -> None:
    @client.task()
    def ids(input: EmptyModel, ctx: Context) -> dict[str, str]:
        return {"run": ctx.workflow_run_id, "task": ctx.step_run_id}

    first, second = ids.mock_run(), ids.mock_run()
    assert first != second
    assert all(uuid.UUID(value) for value in first.values())


def test_a_durable_task_sleeps_no_time_under_mock_run(client: Hatchet) -> None:
    @client.durable_task()
    async def weekly(input: EmptyModel, ctx: DurableContext) -> dict[str, str]:
        slept = await ctx.aio_sleep_for(timedelta(days=7))
        return {"slept": str(slept.duration)}

    started = time.monotonic()
    assert asyncio.run(weekly.aio_mock_run()) == {"slept": "7 days, 0:00:00"}
    assert time.monotonic() - started < 1


def test_a_durable_wait_for_an_event_says_mock_run_cannot_deliver_it(client: Hatchet) -> None:
    @client.durable_task()
    async def approval(input: EmptyModel, ctx: DurableContext) -> dict[str, object]:
        return await ctx.aio_wait_for("ok", UserEventCondition(event_key="approved"))

    with pytest.raises(TypeError, match="mock_run: there is no engine to wait for events"):
        asyncio.run(approval.aio_mock_run())


def test_mock_context_carries_the_input_and_model_parent_outputs(client: Hatchet) -> None:
    wf = client.workflow(name="shipping", input_validator=Item)

    @wf.task()
    def weigh(input: Item, ctx: Context) -> Item:
        return Item(sku=input.sku)

    @wf.task(parents=[weigh])
    def label(input: Item, ctx: Context) -> dict[str, object]:
        return {"input": ctx.workflow_input, "weighed": ctx.task_output(weigh).sku}

    out = label.mock_run(Item(sku="d"), parent_outputs={"weigh": Item(sku="w")})  # type: ignore[dict-item]
    assert out == {"input": {"sku": "d"}, "weighed": "w"}

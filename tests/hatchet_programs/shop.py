"""A shop's workflows, written for Hatchet's SDK: a DAG with a concurrency limit, a rate
limit and a skip condition, a durable task that sleeps and then waits for an event, a
nightly cron, an event-triggered workflow with a filter, and an idempotent task. It
imports `hatchet_sdk` only; `main()` exercises it against whatever engine backs it."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

from hatchet_sdk import (
    ConcurrencyExpression,
    ConcurrencyLimitStrategy,
    Context,
    DefaultFilter,
    DurableContext,
    EmptyModel,
    Hatchet,
    IdempotencyCollisionError,
    ParentCondition,
    PushEventOptions,
    RateLimit,
    RateLimitDuration,
    TTLBasedIdempotencyConfig,
    UserEventCondition,
    V1TaskStatus,
)
from hatchet_sdk.clients.rest.models.v1_task_status import V1TaskStatus as RestTaskStatus
from pydantic import BaseModel

hatchet = Hatchet()


class Order(BaseModel):
    id: str
    amount: int


checkout = hatchet.workflow(
    name="shop-checkout",
    input_validator=Order,
    concurrency=ConcurrencyExpression(
        expression="input.id",
        max_runs=1,
        limit_strategy=ConcurrencyLimitStrategy.GROUP_ROUND_ROBIN,
    ),
)


@checkout.task(rate_limits=[RateLimit(static_key="payments", units=1)])
def charge(input: Order, ctx: Context) -> dict[str, int]:
    return {"charged": input.amount}


@checkout.task(
    parents=[charge],
    skip_if=[ParentCondition(parent=charge, expression="output.charged == 0")],
)
def receipt(input: Order, ctx: Context) -> dict[str, Any]:
    return {"receipt": ctx.task_output(charge)["charged"]}


@hatchet.durable_task(name="shop-approval", execution_timeout=timedelta(minutes=5))
async def approval(input: EmptyModel, ctx: DurableContext) -> dict[str, Any]:
    await ctx.aio_sleep_for(timedelta(seconds=1))
    event = await ctx.aio_wait_for("approved", UserEventCondition(event_key="shop:approved"))
    return {"approved": True, "by": event}


nightly = hatchet.workflow(name="shop-nightly", on_crons=["0 3 * * *"])


@nightly.task()
def restock(input: EmptyModel, ctx: Context) -> dict[str, str]:
    return {"restocked": "yes"}


refunds = hatchet.workflow(
    name="shop-refunds",
    on_events=["shop:refund"],
    default_filters=[DefaultFilter(expression="input.amount > 0", scope="refunds")],
)


@refunds.task()
def refund(input: EmptyModel, ctx: Context) -> dict[str, Any]:
    return {"filtered": ctx.filter_payload}


@hatchet.task(
    name="shop-invoice",
    input_validator=Order,
    idempotency=TTLBasedIdempotencyConfig(key_expression="input.id", ttl=timedelta(hours=1)),
)
def invoice(input: Order, ctx: Context) -> dict[str, str]:
    return {"invoice": input.id}


def main() -> None:
    hatchet.rate_limits.put("payments", 10, RateLimitDuration.SECOND)
    assert checkout.run(Order(id="a", amount=5))["receipt"] == {"receipt": 5}
    assert checkout.run(Order(id="b", amount=0))["receipt"] == {"skipped": True}

    ref = approval.run_no_wait()
    while hatchet.runs.get_status(ref.workflow_run_id) != V1TaskStatus.RUNNING:
        time.sleep(0.01)
    time.sleep(1.5)  # past the durable sleep: the task waits for the event now
    hatchet.event.push("shop:approved", {"who": "ann"})
    assert ref.result()["approved"] is True

    pushed = hatchet.event.push(
        "shop:refund", {"amount": 3}, options=PushEventOptions(scope="refunds")
    )
    assert pushed.key == "shop:refund"
    while not (runs := hatchet.runs.list(workflow_ids=[refunds.id]).rows) or any(
        run.status != V1TaskStatus.COMPLETED for run in runs
    ):
        time.sleep(0.01)
    assert len(runs) == 1  # the filter of scope "refunds" matched the event once

    assert invoice.run(Order(id="i-1", amount=1)) == {"invoice": "i-1"}
    try:
        invoice.run(Order(id="i-1", amount=1))
    except IdempotencyCollisionError:
        pass
    else:
        raise AssertionError("the second invoice run should collide")

    crons = hatchet.cron.list(workflow_name="shop-nightly").rows or []
    assert [c.cron for c in crons] == ["0 3 * * *"]
    assert V1TaskStatus is RestTaskStatus
    print("shop ok")


if __name__ == "__main__":
    main()

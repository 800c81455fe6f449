"""A user's program, type-checked by tests/test_typing.py the way a user checks theirs:
`mypy --strict` outside the repository, with hatchlite found only as an installed package.

No casts and no `type: ignore`. The annotations fail if a type is wrong, and the typed
`return`s fail under `--strict` (warn_return_any) if hatchlite hands back `Any`.
Nothing runs on import.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from pydantic import BaseModel

from hatchlite import (
    Context,
    DurableContext,
    EmptyModel,
    Event,
    Hatchet,
    RunStatus,
    SleepResult,
    TaskRunRef,
    Worker,
    Workflow,
    WorkflowRunDetail,
    WorkflowRunRef,
)

hatchet = Hatchet(db="shop.db")


class Order(BaseModel):
    order_id: str
    amount_cents: int


class Priced(BaseModel):
    total_cents: int
    tax_cents: int


class Receipt(BaseModel):
    order_id: str
    charged_cents: int


# -- a workflow without input: its tasks take `EmptyModel` --------------------------

nightly = hatchet.workflow(name="nightly-report")


@nightly.task()
def count_orders(input: EmptyModel, ctx: Context) -> dict[str, int]:
    return {"orders": 3, "refunds": 1}


@nightly.task(parents=[count_orders])
async def summarize(input: EmptyModel, ctx: Context) -> str:
    counts = ctx.task_output(count_orders)
    return f"{counts['orders']} orders, {counts['refunds']} refunds"


# -- a workflow with a typed input ---------------------------------------------------

checkout = hatchet.workflow(name="checkout", input_validator=Order, on_events=["order:placed"])


@checkout.task(execution_timeout=timedelta(seconds=30), retries=2)
async def price(input: Order, ctx: Context) -> Priced:
    tax = input.amount_cents // 10
    return Priced(total_cents=input.amount_cents + tax, tax_cents=tax)


@checkout.task(parents=[price])
def charge(input: Order, ctx: Context) -> Receipt:
    priced = ctx.task_output(price)
    ctx.log(f"charging {priced.total_cents} for {input.order_id}")
    return Receipt(order_id=input.order_id, charged_cents=priced.total_cents)


# -- standalone tasks ----------------------------------------------------------------


@hatchet.task(name="send-receipt", input_validator=Order, retries=3)
def send_receipt(input: Order, ctx: Context) -> Receipt:
    return Receipt(order_id=input.order_id, charged_cents=input.amount_cents)


@hatchet.task()
async def health_check(input: EmptyModel, ctx: Context) -> bool:
    return True


@hatchet.durable_task(name="follow-up", input_validator=Order, execution_timeout=timedelta(days=2))
async def follow_up(input: Order, ctx: DurableContext) -> Receipt:
    slept: SleepResult = await ctx.aio_sleep_for(timedelta(hours=24))
    waited: timedelta = slept.duration
    ctx.log(f"followed up on {input.order_id} after {waited}")
    return Receipt(order_id=input.order_id, charged_cents=0)


# -- typed returns: each fails under --strict if hatchlite returned Any ----------------


def priced_total(ctx: Context) -> int:
    return ctx.task_output(price).total_cents


def nightly_workflow() -> Workflow[EmptyModel]:
    return nightly


def checkout_workflow() -> Workflow[Order]:
    return checkout


def report() -> dict[str, Any]:
    return nightly.run()


def place(order: Order) -> dict[str, Any]:
    return checkout.run(order)


def receipt_for(order: Order) -> Receipt:
    return send_receipt.run(order)


def healthy() -> bool:
    return health_check.run()


def later(order: Order) -> TaskRunRef[Order, Receipt]:
    return send_receipt.run_no_wait(order)


def checkout_later(order: Order) -> WorkflowRunRef:
    return checkout.run_no_wait(order)


def status_of(ref: WorkflowRunRef) -> RunStatus:
    return hatchet.runs.get_details(ref.workflow_run_id).status


def announce(order: Order) -> Event:
    return hatchet.event.push("order:placed", order.model_dump())


def make_worker() -> Worker:
    return hatchet.worker(
        "shop-worker",
        slots=8,
        workflows=[nightly, checkout, send_receipt, health_check, follow_up],
    )


# -- the program ---------------------------------------------------------------------


def main() -> None:
    order = Order(order_id="o-1", amount_cents=1200)
    total: dict[str, Any] = checkout.run(order)
    summary: dict[str, Any] = nightly.run()
    receipt: Receipt = send_receipt.run(order)
    ok: bool = health_check.run()

    ref: TaskRunRef[Order, Receipt] = send_receipt.run_no_wait(order)
    eventual: Receipt = ref.result()
    wf_ref: WorkflowRunRef = checkout.run(order, wait_for_result=False)
    outputs: dict[str, Any] = wf_ref.result()
    details: WorkflowRunDetail = hatchet.runs.get_details(wf_ref.workflow_run_id)
    done: bool = details.done
    event: Event = hatchet.event.push("order:placed", {"order_id": "o-2", "amount_cents": 5})

    print(total, summary, receipt, ok, eventual, outputs, details.status, done, event.event_id)


async def amain() -> None:
    order = Order(order_id="o-3", amount_cents=300)
    total: dict[str, Any] = await checkout.aio_run(order)
    receipt: Receipt = await send_receipt.aio_run(order)
    followed: Receipt = await follow_up.aio_run(order)
    ref: TaskRunRef[Order, Receipt] = await send_receipt.aio_run_no_wait(order)
    eventual: Receipt = await ref.aio_result()
    details: WorkflowRunDetail = await hatchet.runs.aio_get_details(ref.workflow_run_id)
    print(total, receipt, followed, eventual, details.task_runs)


if __name__ == "__main__":
    main()
    asyncio.run(amain())
    make_worker().start()

"""A durable task: a recorded time, a durable sleep, a wait for an event, a child run."""

from datetime import timedelta

from pydantic import BaseModel

from hatchlite import Context, DurableContext, Hatchet

hatchet = Hatchet()


class Order(BaseModel):
    order_id: str


class Payment(BaseModel):
    order_id: str
    amount: float


@hatchet.task(input_validator=Order)
def send_receipt(input: Order, ctx: Context) -> dict[str, str]:
    return {"sent_to": f"customer of {input.order_id}"}


@hatchet.durable_task(input_validator=Order, execution_timeout=timedelta(minutes=5))
async def fulfil(input: Order, ctx: DurableContext) -> dict[str, object]:
    placed_at = await ctx.aio_now()  # the same instant on every replay
    await ctx.aio_sleep_for(timedelta(seconds=0.2))  # holds no worker slot meanwhile
    payment = await ctx.aio_wait_for_event(
        "order:paid",
        f"input.order_id == '{input.order_id}'",  # CEL over the event's payload
        scope=input.order_id,
        lookback_window=timedelta(hours=1),  # a payment pushed before the wait counts
        payload_validator=Payment,
    )
    receipt = await send_receipt.aio_run(input)  # spawned once, even across replays
    return {"placed_at": placed_at.isoformat(), "paid": payment.amount, **receipt}


if __name__ == "__main__":
    ref = fulfil.run_no_wait(Order(order_id="A-17"))
    hatchet.event.push("order:paid", {"order_id": "A-17", "amount": 42.0}, scope="A-17")
    result = ref.result()
    print(result["paid"])  # 42.0
    print(result["sent_to"])  # customer of A-17

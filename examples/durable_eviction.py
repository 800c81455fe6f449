"""A durable task that waits for a day leaves memory after its eviction policy's ttl and
comes back, replayed from its history, when its wait is over. The test clock skips the
day; on the system clock it takes a day."""

import asyncio
from datetime import UTC, datetime, timedelta

from pydantic import BaseModel

from hatchlite import DurableContext, EvictionPolicy, Hatchet
from hatchlite.testing import TestClock

clock = TestClock(datetime(2030, 1, 1, 9, 0, tzinfo=UTC), auto_advance=True)
hatchet = Hatchet(clock=clock)


class Invoice(BaseModel):
    number: str


@hatchet.durable_task(
    input_validator=Invoice,
    eviction_policy=EvictionPolicy(ttl=timedelta(minutes=10)),  # the default: 15 minutes
)
async def remind(input: Invoice, ctx: DurableContext) -> dict[str, str | int]:
    sent = await ctx.aio_now()  # recorded: the same instant when it is replayed
    await ctx.aio_sleep_for(timedelta(days=1))  # evicted 10 minutes into the day
    return {"invoice": input.number, "sent": sent.isoformat(), "starts": ctx.invocation_count}


async def main() -> None:
    ref = await remind.aio_run_no_wait(Invoice(number="F-17"))
    result = await ref.aio_result()
    print(result["starts"])  # 2
    run = await hatchet.runs.aio_get(ref.workflow_run_id)
    events = [e.event_type.value for e in run.task_events]
    durable = [e for e in events if e.startswith("DURABLE")]
    print(durable)  # ['DURABLE_EVICTED', 'DURABLE_RESTORING']
    await hatchet.aio_close()


asyncio.run(main())

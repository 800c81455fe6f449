"""Idempotency: a payment is charged once however often its webhook is delivered, and an
account is synced by one run at a time."""

import threading
from datetime import UTC, datetime, timedelta

from pydantic import BaseModel

from hatchlite import (
    BulkTriggerIdempotencyCollisionError,
    Context,
    Hatchet,
    IdempotencyCollisionError,
    StatusBasedIdempotencyConfig,
    TestClock,
    TTLBasedIdempotencyConfig,
)

clock = TestClock(datetime(2030, 1, 1, 9, 0, tzinfo=UTC))
hatchet = Hatchet(clock=clock)


class Payment(BaseModel):
    payment_id: str
    cents: int


# TTL-based: one run per payment id for 10 minutes after the first trigger, however
# that run ends.
@hatchet.task(
    input_validator=Payment,
    on_events=["payment:received"],
    idempotency=TTLBasedIdempotencyConfig(
        key_expression="input.payment_id", ttl=timedelta(minutes=10)
    ),
)
def charge(input: Payment, ctx: Context) -> dict[str, int]:
    return {"charged": input.cents}


class Account(BaseModel):
    account: str


sync_started = threading.Event()
sync_may_finish = threading.Event()


# Status-based: one run per account until that run ends (at most an hour).
@hatchet.task(
    input_validator=Account,
    idempotency=StatusBasedIdempotencyConfig(
        key_expression="input.account", fallback_ttl=timedelta(hours=1)
    ),
)
def sync(input: Account, ctx: Context) -> dict[str, str]:
    sync_started.set()
    sync_may_finish.wait(timeout=10)
    return {"synced": input.account}


if __name__ == "__main__":
    first = charge.run_no_wait(Payment(payment_id="p-1", cents=500))
    try:
        charge.run_no_wait(Payment(payment_id="p-1", cents=500))  # the webhook, again
    except IdempotencyCollisionError as error:
        print(error.existing_run_external_id == first.workflow_run_id)  # True
    print(first.result())  # {'charged': 500}

    # A bulk trigger creates the runs whose keys are free, then raises for the others.
    items = [charge.create_bulk_run_item(Payment(payment_id=p, cents=1)) for p in ("p-1", "p-2")]
    try:
        charge.run_many_no_wait(items)
    except BulkTriggerIdempotencyCollisionError as error:
        print(len(error.successful_workflow_run_external_ids), len(error.collisions))  # 1 1

    # An event whose run would collide is stored and starts no run of `charge`.
    event = hatchet.event.push("payment:received", {"payment_id": "p-1", "cents": 500})
    print(hatchet.event.get(event.event_id).triggered_runs)  # []

    clock.advance(timedelta(minutes=10))  # the key of p-1 expires: a new charge may run
    print(charge.run(Payment(payment_id="p-1", cents=700)))  # {'charged': 700}

    running = sync.run_no_wait(Account(account="acme"))
    sync_started.wait(timeout=10)
    try:
        sync.run(Account(account="acme"))
    except IdempotencyCollisionError:
        print("acme is being synced")  # acme is being synced
    sync_may_finish.set()
    running.result()
    print(sync.run(Account(account="acme")))  # {'synced': 'acme'}

"""Rate limits: a geocoding API that allows 3 calls a second, 7 addresses to look up,
and a test clock moved one second at a time."""

import time
from datetime import UTC, datetime, timedelta

from pydantic import BaseModel

from hatchlite import (
    Context,
    Hatchet,
    RateLimit,
    RateLimitDuration,
    TestClock,
    V1TaskStatus,
)

clock = TestClock(datetime(2030, 1, 1, 9, 0, tzinfo=UTC))
hatchet = Hatchet(clock=clock)
hatchet.rate_limits.put("geocoder", 3, RateLimitDuration.SECOND)  # a static key


class Address(BaseModel):
    street: str


@hatchet.task(
    input_validator=Address,
    rate_limits=[RateLimit(static_key="geocoder", units=1)],
    execution_timeout=timedelta(minutes=5),
)
def geocode(input: Address, ctx: Context) -> dict[str, str]:
    return {"street": input.street, "at": clock.now().strftime("%H:%M:%S")}


def ran_so_far(run_ids: list[str]) -> int:
    """How many runs completed, once this second's units are spent (or all are done):
    with the clock standing still, no other run can start until it moves."""
    while True:
        status = [hatchet.runs.get_status(run_id) for run_id in run_ids]
        [limit] = hatchet.rate_limits.list(search="geocoder")
        done = status.count(V1TaskStatus.COMPLETED)
        if V1TaskStatus.RUNNING not in status and (limit.value == 0 or done == len(run_ids)):
            return done
        time.sleep(0.01)


if __name__ == "__main__":
    run_ids = [
        geocode.run_no_wait(Address(street=f"{n} Main St")).workflow_run_id for n in range(7)
    ]
    print(ran_so_far(run_ids))  # 3
    clock.advance(timedelta(seconds=1))
    print(ran_so_far(run_ids))  # 6
    clock.advance(timedelta(seconds=1))
    print(ran_so_far(run_ids))  # 7

    print(geocode.get_result(run_ids[6]))  # {'street': '6 Main St', 'at': '09:00:02'}
    # The last run waited twice and says so once: it held no worker slot meanwhile.
    events = [e.event_type.value for e in hatchet.runs.get(run_ids[6]).task_events]
    print(events)  # ['QUEUED', 'REQUEUED_RATE_LIMIT', 'STARTED', 'FINISHED']

"""A worker serving one task that takes a unit of the static rate limit `burst`, for
the test that two worker processes on one database file respect the limit together.

Usage: python -m tests.procs.rate_limit_worker DB SLOTS
"""

from __future__ import annotations

import asyncio
import sys

from pydantic import BaseModel

from hatchlite import Context, Hatchet, RateLimit, Standalone

KEY = "burst"


class Shot(BaseModel):
    n: int


def build(hatchet: Hatchet) -> Standalone[Shot, dict[str, int]]:
    @hatchet.task(
        name="rate-limited-shot",
        input_validator=Shot,
        rate_limits=[RateLimit(static_key=KEY, units=1)],
    )
    async def shot(input: Shot, ctx: Context) -> dict[str, int]:
        # Long enough that one worker's slots fill up and the other worker claims too.
        await asyncio.sleep(0.2)
        return {"n": input.n}

    return shot


def main() -> None:
    hatchet = Hatchet(db=sys.argv[1])
    shot = build(hatchet)
    hatchet.worker("rate-limit-worker", slots=int(sys.argv[2]), workflows=[shot]).start()


if __name__ == "__main__":
    main()

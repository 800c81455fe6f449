"""A worker whose workflow has an every-second cron, for the tests that two worker
processes on one file never fire a tick twice and that a worker killed with SIGKILL and
restarted loses no tick.

Usage: python -m tests.procs.cron_worker DB
"""

from __future__ import annotations

import sys

from hatchlite import Context, EmptyModel, Hatchet


def main() -> None:
    hatchet = Hatchet(db=sys.argv[1])
    wf = hatchet.workflow(name="heartbeat", on_crons=["* * * * * *"])

    @wf.task()
    async def beat(input: EmptyModel, ctx: Context) -> dict[str, str]:
        return {"tick": ctx.additional_metadata["hatchet__cron_scheduled_at"]}

    hatchet.worker("cron-worker", slots=4, workflows=[wf]).start()


if __name__ == "__main__":
    main()

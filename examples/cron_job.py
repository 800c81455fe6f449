"""A cron job on one machine: a nightly cleanup declared with `on_crons`, a weekly report
per customer created with `create_cron`, and one worker serving both. Here a test clock
plays a week in well under a second; in production drop `clock=` and end with
`worker.start()` (see docs/crons.md)."""

import asyncio
import threading
from datetime import UTC, datetime

from pydantic import BaseModel

from hatchlite import Context, EmptyModel, Hatchet
from hatchlite.testing import TestClock

clock = TestClock(datetime(2030, 1, 7, 12, 0, tzinfo=UTC), auto_advance=True)  # a Monday
hatchet = Hatchet(clock=clock)  # the file: HATCHLITE_DB, else hatchlite.db

cleanup = hatchet.workflow(name="nightly-cleanup", on_crons=["0 3 * * *"])


@cleanup.task()
def purge_old_sessions(input: EmptyModel, ctx: Context) -> dict[str, str]:
    return {"ran_at": clock.now().strftime("%a %H:%M")}


class Customer(BaseModel):
    name: str


reports: list[str] = []
mondays_reports_done = threading.Event()


@hatchet.task(name="weekly-report", input_validator=Customer)
def weekly_report(input: Customer, ctx: Context) -> dict[str, str]:
    reports.append(input.name)
    if len(reports) == 2:  # the demo's week ends with Monday's reports
        clock.auto_advance = False
        mondays_reports_done.set()
    return {"customer": input.name}


def ensure_crons() -> None:
    """Create each customer's cron once: a cron name is unique per workflow, and the
    service runs this at every start."""
    existing = {c.name for c in hatchet.cron.list(workflow_name="weekly-report").rows or []}
    for name in ("acme", "globex"):
        if f"{name}-weekly" not in existing:
            weekly_report.create_cron(f"{name}-weekly", "0 8 * * 1", Customer(name=name))


def what_fired() -> list[str]:
    """Each cron run, oldest first: the tick that made it and the cron's name."""
    runs = hatchet.runs.list(since=datetime(2030, 1, 8, tzinfo=UTC), limit=100).rows
    return sorted(
        f"{meta['hatchet__cron_scheduled_at'][:16]} {run.workflow_name} "
        f"{meta['hatchet__cron_name']}".rstrip()
        for run in runs
        if "hatchet__cron_scheduled_at" in (meta := run.additional_metadata or {})
    )


async def play_a_week() -> None:
    worker = hatchet.worker("cron-worker", workflows=[cleanup, weekly_report])
    serving = asyncio.create_task(worker.aio_start())
    await asyncio.to_thread(mondays_reports_done.wait)  # the clock jumps tick to tick
    worker.stop()
    await serving


if __name__ == "__main__":
    ensure_crons()
    ensure_crons()  # a second start creates nothing new
    asyncio.run(play_a_week())
    crons = sorted((c.method.value, c.name or c.cron) for c in hatchet.cron.list().rows or [])
    print(crons)  # [('API', 'acme-weekly'), ('API', 'globex-weekly'), ('DEFAULT', '0 3 * * *')]
    week = what_fired()
    print(week[0])  # 2030-01-08T03:00 nightly-cleanup
    print(week[-1])  # 2030-01-14T08:00 weekly-report globex-weekly
    print(len(week))  # 9
    hatchet.close()

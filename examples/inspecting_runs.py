"""Reading runs back and operating them: list, details and timeline, logs, replay,
streams, workers, workflows, metrics and retention."""

import asyncio
import contextlib
import logging
from datetime import timedelta

from hatchlite import Context, EmptyModel, FailedTaskRunExceptionGroup, Hatchet, V1TaskStatus

hatchet = Hatchet()
report = hatchet.workflow(name="Report")
upstream = {"healthy": False}


@report.task()
def fetch(input: EmptyModel, ctx: Context) -> dict[str, int]:
    ctx.log("fetching rows")
    return {"rows": 42}


@report.task(parents=[fetch], retries=1)
def render(input: EmptyModel, ctx: Context) -> dict[str, str]:
    logging.getLogger("report").warning("rendering attempt %d", ctx.attempt_number)
    if not upstream["healthy"]:
        raise ConnectionError("template service down")
    for part in ("<h1>", "42 rows", "</h1>"):
        ctx.put_stream(part)
    return {"html": f"<h1>{ctx.task_output(fetch)['rows']} rows</h1>"}


async def read_stream(run_id: str) -> list[str]:
    return [chunk async for chunk in hatchet.runs.subscribe_to_stream(run_id)]


if __name__ == "__main__":
    with contextlib.suppress(FailedTaskRunExceptionGroup):  # render fails: upstream is down
        report.run()

    # Every run of the last day, newest first; one row per run (DAG tasks as children).
    run = hatchet.runs.list(statuses=[V1TaskStatus.FAILED]).rows[0]
    tasks = [c.status.value for c in run.children or []]
    print(run.status.value, tasks)  # FAILED ['COMPLETED', 'FAILED']

    # The whole story of a run: tasks, and each task's events in order.
    details = hatchet.runs.get(run.metadata.id)
    render_id = details.tasks[1].task_external_id
    events = [e.event_type.value for e in details.task_events if e.task_id == render_id]
    print(events[:4])  # ['QUEUED', 'STARTED', 'FAILED', 'RETRYING']
    print(events[4:])  # ['QUEUED', 'STARTED', 'FAILED']

    # Log lines: ctx.log and the logging records a task emits while it runs.
    lines = [line.message for line in hatchet.logs.list(render_id).rows]
    print(lines)  # ['rendering attempt 1', 'rendering attempt 2']

    # Fix the cause, then replay: failed tasks run again, completed outputs are kept.
    upstream["healthy"] = True
    hatchet.runs.replay(run.metadata.id)
    result = hatchet.runs.get_run_ref(run.metadata.id).result()
    print(result["render"])  # {'html': '<h1>42 rows</h1>'}

    # Stream chunks are stored: a late subscriber still gets them all, in order.
    print(asyncio.run(read_stream(run.metadata.id)))  # ['<h1>', '42 rows', '</h1>']

    # Workers and workflows: pause one and its new runs wait in the queue.
    workers = [(w.name, w.status) for w in hatchet.workers.list().rows]
    print(workers)  # [('hatchlite-implicit', 'ACTIVE')]
    report.pause(queue_ttl=timedelta(hours=1))
    paused = report.run_no_wait()
    print(hatchet.runs.get_status(paused.workflow_run_id).value)  # QUEUED
    report.unpause()
    print(sorted(paused.result()))  # ['fetch', 'render']

    metrics = hatchet.metrics.get_task_metrics(workflow_ids=[report.id])
    print(metrics)  # cancelled=0 completed=4 failed=0 queued=0 running=0

    # Retention: delete finished runs older than a week (with their tasks, logs, ...).
    print(hatchet.runs.purge(older_than=timedelta(days=7)))  # 0

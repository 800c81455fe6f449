"""Priority: runs queued while no worker is up start, on a one-slot worker, highest
priority first within a workflow, oldest first across workflows."""

import threading

from pydantic import BaseModel

from hatchlite import Context, EmptyModel, Hatchet, Priority

hatchet = Hatchet(auto_worker=False)  # nothing runs until the worker below starts
started: list[str] = []


class Charge(BaseModel):
    name: str


@hatchet.task(input_validator=Charge)  # default_priority: Priority.LOW
def charge(input: Charge, ctx: Context) -> dict[str, int]:
    started.append(f"{input.name} ({Priority(ctx.priority).name})")
    return {"priority": ctx.priority}


@hatchet.task(default_priority=Priority.MEDIUM)
def digest(input: EmptyModel, ctx: Context) -> dict[str, int]:
    started.append(f"digest ({Priority(ctx.priority).name})")
    return {"priority": ctx.priority}


if __name__ == "__main__":
    run_ids = [
        digest.run_no_wait().workflow_run_id,  # the oldest run of all
        charge.run_no_wait(Charge(name="c1")).workflow_run_id,
        charge.run_no_wait(Charge(name="c2"), priority=Priority.HIGH).workflow_run_id,
        charge.run_no_wait(Charge(name="c3"), priority=2).workflow_run_id,  # an int works too
    ]
    bulk = [charge.create_bulk_run_item(Charge(name="c4"), priority=Priority.HIGH)]
    run_ids += [ref.workflow_run_id for ref in charge.run_many_no_wait(bulk)]

    worker = hatchet.worker("one-slot", slots=1, workflows=[charge, digest])
    thread = threading.Thread(target=worker.start)  # off the main thread: no signal handlers
    thread.start()
    for run_id in run_ids:
        hatchet.runs.get_run_ref(run_id).result()
    worker.stop()
    thread.join()

    # Each workflow's queue is read by priority, then age; the queues take turns by the
    # age of their next run: digest's is older than any charge.
    print(started[0])  # digest (MEDIUM)
    print(started[1:])  # ['c2 (HIGH)', 'c4 (HIGH)', 'c3 (MEDIUM)', 'c1 (LOW)']

"""Concurrency limits: one export per user at a time (other users do not wait), a
search where the latest query wins, and a report that never runs twice at once."""

import threading

from pydantic import BaseModel

from hatchlite import (
    ConcurrencyExpression,
    ConcurrencyLimitStrategy,
    Context,
    EmptyModel,
    Hatchet,
)

hatchet = Hatchet()
work_done = threading.Event()  # the tasks below wait for it: it stands in for slow work


class Export(BaseModel):
    user: str
    n: int


# Workflow level: a run holds its user's key from the moment it is admitted until the
# whole run (both tasks) ends; the user's next run waits, holding no worker slot.
export = hatchet.workflow(
    name="Export",
    input_validator=Export,
    concurrency=ConcurrencyExpression(
        expression="input.user",
        max_runs=1,
        limit_strategy=ConcurrencyLimitStrategy.GROUP_ROUND_ROBIN,
    ),
)


@export.task()
def collect(input: Export, ctx: Context) -> dict[str, str]:
    if input.user == "ann":
        work_done.wait(timeout=10)
    return {"file": f"{input.user}-{input.n}.csv"}


@export.task(parents=[collect])
def upload(input: Export, ctx: Context) -> dict[str, str]:
    return {"url": "https://files.example/" + ctx.task_output(collect)["file"]}


class Query(BaseModel):
    session: str
    text: str


# Task level (a standalone task's `concurrency` is task-level): a new search of a
# session cancels the one in progress, queued or running.
@hatchet.task(
    input_validator=Query,
    concurrency=ConcurrencyExpression(
        expression="input.session",
        max_runs=1,
        limit_strategy=ConcurrencyLimitStrategy.CANCEL_IN_PROGRESS,
    ),
)
def search(input: Query, ctx: Context) -> dict[str, str]:
    work_done.wait(timeout=10)
    return {"results_for": input.text}


# One constant key: a report asked for while another holds the key is cancelled.
@hatchet.task(
    concurrency=ConcurrencyExpression(
        expression="'report'",
        max_runs=1,
        limit_strategy=ConcurrencyLimitStrategy.CANCEL_NEWEST,
    )
)
def report(input: EmptyModel, ctx: Context) -> dict[str, bool]:
    work_done.wait(timeout=10)
    return {"done": True}


def statuses(run_ids: list[str]) -> list[str]:
    return [hatchet.runs.get_status(run_id).value for run_id in run_ids]


if __name__ == "__main__":
    ann = [export.run_no_wait(Export(user="ann", n=n)).workflow_run_id for n in (1, 2, 3)]
    bob = export.run(Export(user="bob", n=1))  # runs while ann's first export is busy
    print(bob["upload"]["url"])  # https://files.example/bob-1.csv
    print(statuses(ann))  # ['RUNNING', 'QUEUED', 'QUEUED']

    # A key is decided in its trigger's transaction: "h" and "he" are cancelled by the
    # next keystroke, and the second report at once, whether or not they had started.
    typed = [search.run_no_wait(Query(session="s1", text=t)) for t in ("h", "he", "hel")]
    searches = [ref.workflow_run_id for ref in typed]
    reports = [report.run_no_wait().workflow_run_id for _ in range(2)]

    work_done.set()
    files = [export.get_result(run_id)["upload"]["url"][-9:] for run_id in ann]
    print(files)  # ['ann-1.csv', 'ann-2.csv', 'ann-3.csv']
    print(typed[-1].result())  # {'results_for': 'hel'}
    print(statuses(searches))  # ['CANCELLED', 'CANCELLED', 'COMPLETED']
    print(report.get_result(reports[0]))  # {'done': True}
    print(statuses(reports))  # ['COMPLETED', 'CANCELLED']

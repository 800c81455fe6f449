"""Worker labels: two workers in one process, a GPU box and a small box; tasks that
require or prefer a label, a sticky workflow, a preferred worker, and labels a task
changes."""

import threading
import time

from pydantic import BaseModel

from hatchlite import (
    Context,
    DesiredWorkerLabel,
    EmptyModel,
    Hatchet,
    StickyStrategy,
    WorkerLabelComparator,
    WorkerStatus,
)

hatchet = Hatchet(auto_worker=False)  # only the two workers below run tasks


class Ran(BaseModel):
    worker_id: str
    labels: dict[str, str | int] = {}


@hatchet.task(desired_worker_labels={"gpu": DesiredWorkerLabel(value="yes", required=True)})
def train(input: EmptyModel, ctx: Context) -> Ran:
    return Ran(worker_id=ctx.worker_id)


# Optional (required=False is the default): prefer a worker with at least 32 GB while
# one with room is up; any worker takes it otherwise.
@hatchet.task(
    desired_worker_labels={
        "memory": DesiredWorkerLabel(
            value=32, weight=50, comparator=WorkerLabelComparator.GREATER_THAN_OR_EQUAL
        )
    }
)
def resize(input: EmptyModel, ctx: Context) -> Ran:
    return Ran(worker_id=ctx.worker_id)


@hatchet.task()
def anywhere(input: EmptyModel, ctx: Context) -> Ran:
    return Ran(worker_id=ctx.worker_id)


# Every task of a run on the worker that took its first task.
pipeline = hatchet.workflow(name="Pipeline", sticky=StickyStrategy.HARD)


@pipeline.task()
def load(input: EmptyModel, ctx: Context) -> Ran:
    return Ran(worker_id=ctx.worker_id)


@pipeline.task(parents=[load])
def transform(input: EmptyModel, ctx: Context) -> Ran:
    return Ran(worker_id=ctx.worker_id)


# A task can change its worker's labels: here `warm_up` loads a model on a small box,
# and `predict` requires a worker that has it.
inference = hatchet.workflow(name="Inference")


@inference.task(
    desired_worker_labels=[  # the list form names each label's key
        DesiredWorkerLabel(
            key="memory", value=16, required=True, comparator=WorkerLabelComparator.LESS_THAN
        )
    ]
)
def warm_up(input: EmptyModel, ctx: Context) -> Ran:
    ctx.upsert_worker_labels({"model": "resnet"})
    return Ran(worker_id=ctx.worker_id)


@inference.task(
    parents=[warm_up],
    desired_worker_labels={"model": DesiredWorkerLabel(value="resnet", required=True)},
)
def predict(input: EmptyModel, ctx: Context) -> Ran:
    return Ran(worker_id=ctx.worker_id, labels=ctx.worker_labels)


tasks = [train, resize, anywhere, pipeline, inference]
gpu_box = hatchet.worker("gpu-box", slots=4, labels={"gpu": "yes", "memory": 64}, workflows=tasks)
small_box = hatchet.worker("small-box", slots=4, labels={"memory": 8}, workflows=tasks)


def serve() -> list[threading.Thread]:
    """Start both workers (off the main thread) and return once both take tasks."""
    threads = [threading.Thread(target=w.start) for w in (gpu_box, small_box)]
    for thread in threads:
        thread.start()
    while not all(w.status is WorkerStatus.HEALTHY for w in (gpu_box, small_box)):
        time.sleep(0.01)
    return threads


if __name__ == "__main__":
    threads = serve()
    name = {gpu_box.id: "gpu-box", small_box.id: "small-box"}

    print(name[train.run().worker_id])  # gpu-box
    print(name[resize.run().worker_id])  # gpu-box
    # A trigger may ask for a worker by id: a soft preference, like `sticky=True` on a
    # child run (its parent's worker).
    print(name[anywhere.run(desired_worker_id=small_box.id).worker_id])  # small-box
    result = pipeline.run()
    print(result["load"] == result["transform"])  # True

    result = inference.run()
    print(name[result["warm_up"]["worker_id"]])  # small-box
    print(name[result["predict"]["worker_id"]])  # small-box
    print(result["predict"]["labels"])  # {'memory': 8, 'model': 'resnet'}

    for worker in (gpu_box, small_box):
        worker.stop()
    for thread in threads:
        thread.join()

"""Runs spawned from inside a task are recorded as its children."""

from __future__ import annotations

from pydantic import BaseModel

from hatchlite import Context, EmptyModel, Hatchet
from tests.conftest import query


class Item(BaseModel):
    n: int


def test_async_children_are_linked_to_the_parent_task(hatchet: Hatchet, db_path: str) -> None:
    @hatchet.task(input_validator=Item)
    async def child(input: Item, ctx: Context) -> dict[str, int]:
        return {"square": input.n * input.n, "index": ctx.child_index or 0}

    @hatchet.task()
    async def parent(input: EmptyModel, ctx: Context) -> dict[str, object]:
        one = await child.aio_run(Item(n=3))
        many = await child.aio_run_many([child.create_bulk_run_item(Item(n=i)) for i in (1, 2)])
        return {"one": one, "many": many, "task": ctx.task_run_id, "run": ctx.workflow_run_id}

    ref = parent.run_no_wait(additional_metadata={"tenant": "t1"})
    out = ref.result()
    assert out["one"] == {"square": 9, "index": 0}
    assert out["many"] == [{"square": 1, "index": 1}, {"square": 4, "index": 2}]
    rows = query(
        db_path,
        """SELECT parent_workflow_run_id, parent_task_run_id, child_index, additional_metadata
           FROM workflow_runs WHERE workflow_name = 'child' ORDER BY child_index""",
    )
    assert [r[2] for r in rows] == [0, 1, 2]
    assert all(r[0] == ref.workflow_run_id and r[1] == out["task"] for r in rows)
    assert all('"tenant": "t1"' in str(r[3]) for r in rows)  # metadata is inherited


def test_sync_task_can_run_children(hatchet: Hatchet, db_path: str) -> None:
    @hatchet.task()
    def leaf(input: EmptyModel, ctx: Context) -> dict[str, str]:
        return {"parent": str(ctx.parent_workflow_run_id)}

    wf = hatchet.workflow(name="outer")

    @wf.task()
    def spawn(input: EmptyModel, ctx: Context) -> dict[str, object]:
        return {"child": leaf.run(), "me": ctx.workflow_run_id}

    out = wf.run()["spawn"]
    assert out["child"] == {"parent": out["me"]}


def test_child_key_returns_the_existing_child_on_retry(hatchet: Hatchet, db_path: str) -> None:
    spawned: list[str] = []

    @hatchet.task()
    async def once(input: EmptyModel, ctx: Context) -> dict[str, str]:
        spawned.append(ctx.workflow_run_id)
        return {"id": ctx.workflow_run_id}

    @hatchet.task(retries=2)
    async def flaky_parent(input: EmptyModel, ctx: Context) -> dict[str, str]:
        child_out = await once.aio_run(child_key="the-child")
        indexed = await once.aio_run()  # spawn index 1 on every attempt
        if ctx.retry_count < 2:
            raise RuntimeError("try again")
        return {"keyed": child_out["id"], "indexed": indexed["id"]}

    out = flaky_parent.run()
    # Two children in all (one keyed, one by index), however many attempts the parent made.
    assert len(spawned) == 2
    assert set(spawned) == {out["keyed"], out["indexed"]}
    assert query(db_path, "SELECT count(*) FROM workflow_runs WHERE workflow_name='once'") == [(2,)]

"""Hatchet's spawn-index test, written for Hatchet's SDK: a durable task reads its
action key and moves its spawn counter back, so its next child reuses an index."""

from __future__ import annotations

from typing import Any, Literal

from hatchet_sdk import Context, DurableContext, EmptyModel, Hatchet, V1TaskStatus
from hatchet_sdk.runnables.contextvars import ctx_action_key, workflow_spawn_indices
from pydantic import BaseModel

hatchet = Hatchet()


class Scenario(BaseModel):
    scenario: Literal["collision", "self_dedupe"]


class OutputA(BaseModel):
    which_child: Literal["a"]


class OutputB(BaseModel):
    which_child: Literal["b"]


@hatchet.task()
async def spawn_child_a(input: EmptyModel, ctx: Context) -> OutputA:
    return OutputA(which_child="a")


@hatchet.task()
async def spawn_child_b(input: EmptyModel, ctx: Context) -> OutputB:
    return OutputB(which_child="b")


@hatchet.durable_task(input_validator=Scenario)
async def respawner(input: Scenario, ctx: DurableContext) -> dict[str, Any]:
    first = await spawn_child_a.aio_run()  # child index 0
    await spawn_child_b.aio_run()  # child index 1
    key = ctx_action_key.get()
    assert key is not None
    workflow_spawn_indices[key] -= 1 if input.scenario == "collision" else 2
    respawned = await spawn_child_a.aio_run()  # index 1 (B's) or 0 (A's own)
    return {"first": first.model_dump(), "respawned": respawned.model_dump()}


def main() -> None:
    ref = respawner.run_no_wait(Scenario(scenario="collision"))
    try:
        ref.result()
    except Exception as exc:
        assert "non-determinism" in str(exc).lower(), exc
    else:
        raise AssertionError("a spawn on another workflow's index must fail")
    children = hatchet.runs.list(parent_task_external_id=ref.workflow_run_id).rows
    assert len(children) == 2, children

    ref = respawner.run_no_wait(Scenario(scenario="self_dedupe"))
    result = ref.result()
    assert result["first"] == result["respawned"] == {"which_child": "a"}, result
    children = hatchet.runs.list(parent_task_external_id=ref.workflow_run_id).rows
    assert len(children) == 2 and all(c.status == V1TaskStatus.COMPLETED for c in children)
    print("spawn index ok")


if __name__ == "__main__":
    main()

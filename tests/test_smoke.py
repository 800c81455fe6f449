from __future__ import annotations

from hatchlite import Context, EmptyModel, Hatchet


def test_standalone_runs(hatchet: Hatchet) -> None:
    @hatchet.task()
    def hello(input: EmptyModel, ctx: Context) -> dict[str, str]:
        return {"hello": "world"}

    assert hello.run() == {"hello": "world"}

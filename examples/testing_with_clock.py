"""Testing a workflow with an hour-long backoff in milliseconds, on a temporary file."""

import tempfile
import time
from datetime import timedelta
from pathlib import Path

from hatchlite import Context, EmptyModel, Hatchet
from hatchlite.testing import TestClock


def build(hatchet: Hatchet):  # type: ignore[no-untyped-def]
    @hatchet.task(retries=2, backoff_factor=3600, execution_timeout=timedelta(hours=2))
    def nightly_sync(input: EmptyModel, ctx: Context) -> dict[str, int]:
        if ctx.retry_count < 2:
            raise ConnectionError("upstream is down")
        return {"attempt": ctx.attempt_number}

    return nightly_sync


def test_nightly_sync_retries_for_hours() -> None:
    clock = TestClock(auto_advance=True)  # jumps to the next deadline whenever idle
    with tempfile.TemporaryDirectory() as folder:
        hatchet = Hatchet(db=str(Path(folder) / "test.db"), clock=clock)
        nightly_sync = build(hatchet)
        before, started = clock.now(), time.monotonic()
        assert nightly_sync.run() == {"attempt": 3}
        hatchet.close()
    assert clock.now() - before >= timedelta(hours=2)  # 3600 s, then min(86400, 3600**2)
    assert time.monotonic() - started < 1.0


if __name__ == "__main__":
    test_nightly_sync_retries_for_hours()
    print("ok")  # ok

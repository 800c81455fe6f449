"""The test clock: hour-long backoffs and timeouts take no real time."""

from __future__ import annotations

import itertools
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from hatchlite import Context, EmptyModel, Hatchet
from hatchlite.testing import TestClock
from tests.conftest import query


def test_hour_long_backoff_with_auto_advance(tmp_path: Path) -> None:
    clock = TestClock(datetime(2030, 1, 1, tzinfo=UTC), auto_advance=True)
    client = Hatchet(db=str(tmp_path / "clock.db"), clock=clock)
    seen: list[float] = []

    @client.task(retries=2, backoff_factor=60, backoff_max_seconds=7200)
    def flaky(input: EmptyModel, ctx: Context) -> dict[str, int]:
        seen.append(clock.time())
        if ctx.retry_count < 2:
            raise RuntimeError("not yet")
        return {"attempts": ctx.attempt_number}

    started = time.monotonic()
    try:
        assert flaky.run() == {"attempts": 3}
    finally:
        client.close()
    assert time.monotonic() - started < 2.0
    # Retry k waits min(backoff_max_seconds, factor ** k): 60 s, then 3600 s.
    assert [round(b - a) for a, b in itertools.pairwise(seen)] == [60, 3600]


def test_manual_clock_holds_work_until_advanced(tmp_path: Path) -> None:
    clock = TestClock()
    db = str(tmp_path / "manual.db")
    client = Hatchet(db=db, clock=clock)

    @client.task(retries=1, backoff_factor=3600)
    def once_more(input: EmptyModel, ctx: Context) -> dict[str, int]:
        if ctx.retry_count == 0:
            raise RuntimeError("first attempt fails")
        return {"retry_count": ctx.retry_count}

    try:
        ref = once_more.run_no_wait()
        deadline = time.monotonic() + 5
        while query(db, "SELECT count(*) FROM task_attempts") != [(1,)]:
            assert time.monotonic() < deadline
            time.sleep(0.005)
        row = query(db, "SELECT status, available_at FROM task_runs")[0]
        assert row[0] == "QUEUED" and row[1] == pytest.approx(clock.time() + 3600, abs=1)
        clock.advance(timedelta(minutes=59))
        time.sleep(0.05)  # give the engine a chance to (wrongly) run it early
        assert query(db, "SELECT status FROM task_runs") == [("QUEUED",)]
        clock.advance(timedelta(minutes=1))
        assert ref.result() == {"retry_count": 1}
    finally:
        client.close()


def test_one_clock_per_database(tmp_path: Path) -> None:
    db = str(tmp_path / "one.db")
    first = Hatchet(db=db, clock=TestClock())
    try:
        with pytest.raises(ValueError, match="another clock"):
            Hatchet(db=db, clock=TestClock())
        assert Hatchet(db=db).clock is first.clock
    finally:
        first.close()


def test_clock_rejects_naive_and_backwards_times() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        TestClock(datetime(2030, 1, 1))
    clock = TestClock(datetime(2030, 1, 1, tzinfo=UTC))
    with pytest.raises(ValueError, match="only moves forward"):
        clock.set(datetime(2029, 1, 1, tzinfo=UTC))
    assert clock.advance(10).timestamp() == datetime(2030, 1, 1, 0, 0, 10, tzinfo=UTC).timestamp()

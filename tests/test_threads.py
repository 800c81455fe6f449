"""The daemon thread pool that runs `def` tasks: every item runs, threads come and go."""

from __future__ import annotations

import threading
import time
from concurrent.futures import wait

import pytest

from hatchlite.scheduler import threads
from hatchlite.scheduler.threads import TaskThreadPool


def test_work_queued_while_the_pool_is_full_runs_after_idle_threads_exit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(threads, "IDLE_SECONDS", 0.05)
    pool = TaskThreadPool(2, "t")
    gate = threading.Event()
    blocked = [pool.submit(gate.wait, 5) for _ in range(2)]
    backlog = [pool.submit(lambda n=n: n) for n in range(5)]  # waits: the pool is full
    gate.set()
    wait([*blocked, *backlog], timeout=5)
    assert [f.result() for f in backlog] == list(range(5))
    deadline = time.monotonic() + 5
    while pool._threads and time.monotonic() < deadline:  # idle threads exit
        time.sleep(0.01)
    assert (pool._threads, pool._waiting, pool._queued) == (0, 0, 0)
    assert pool.submit(lambda: "ran").result(timeout=5) == "ran"


def test_threads_are_started_only_when_work_outnumbers_them() -> None:
    pool = TaskThreadPool(8, "t")
    for n in range(50):  # one at a time: one thread serves them all
        assert pool.submit(lambda n=n: n).result(timeout=5) == n
    assert pool._threads == 1
    gate = threading.Event()
    futures = [pool.submit(gate.wait, 5) for _ in range(20)]
    assert pool._threads == 8  # never more than max_workers
    gate.set()
    assert all(f.result(timeout=5) for f in futures)


def test_a_base_exception_in_the_function_reaches_the_future() -> None:
    pool = TaskThreadPool(1, "t")

    def interrupt() -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        pool.submit(interrupt).result(timeout=5)
    assert pool.submit(lambda: 1).result(timeout=5) == 1


def test_the_threads_are_daemons_and_shutdown_cancels_queued_work() -> None:
    pool = TaskThreadPool(1, "t")
    gate = threading.Event()
    running = pool.submit(gate.wait, 5)
    queued = pool.submit(lambda: 1)
    assert all(t.daemon for t in threading.enumerate() if t.name.startswith("t-"))
    pool.shutdown(wait=False, cancel_futures=True)
    assert queued.cancelled()
    gate.set()
    assert running.result(timeout=5) is True
    with pytest.raises(RuntimeError):
        pool.submit(lambda: 1)

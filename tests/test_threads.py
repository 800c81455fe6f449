"""The daemon thread pool that runs `def` tasks: every item runs, threads come and go."""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import wait
from typing import Any

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


# -- results handed to an event loop (`TaskThreadPool.run`) ------------------------------


async def test_results_finished_together_wake_the_loop_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pool = TaskThreadPool(4, "t")
    loop = asyncio.get_running_loop()
    wakeups = 0
    threadsafe = loop.call_soon_threadsafe

    def counting(callback: Any, *args: Any) -> Any:
        nonlocal wakeups
        wakeups += 1
        return threadsafe(callback, *args)

    monkeypatch.setattr(loop, "call_soon_threadsafe", counting)
    finished = threading.Semaphore(0)

    def square(n: int) -> int:
        finished.release()
        return n * n

    futures = [pool.run(square, n) for n in range(20)]
    for _ in range(20):  # the loop is held here while every call ends
        assert finished.acquire(timeout=5)
    inbox = pool._inboxes[loop]
    deadline = time.monotonic() + 5
    while len(inbox._results) < 20 and time.monotonic() < deadline:
        time.sleep(0.001)  # each thread hands its result over just after `finished`
    assert await asyncio.gather(*futures) == [n * n for n in range(20)]
    assert wakeups == 1


async def test_a_call_cancelled_before_a_thread_takes_it_never_runs() -> None:
    pool = TaskThreadPool(1, "t")
    gate = threading.Event()
    ran: list[str] = []
    blocking = pool.run(gate.wait, 5)
    skipped = pool.run(ran.append, "skipped")
    skipped.cancel()
    gate.set()
    assert await blocking is True
    await pool.run(ran.append, "after")  # one thread, in order
    assert ran == ["after"]


async def test_a_base_exception_reaches_the_awaiting_task() -> None:
    pool = TaskThreadPool(1, "t")

    def interrupt() -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        await pool.run(interrupt)
    assert await pool.run(lambda: 1) == 1


def test_a_result_for_a_closed_loop_is_dropped_and_the_thread_goes_on() -> None:
    pool = TaskThreadPool(1, "t")
    gate = threading.Event()
    loop = asyncio.new_event_loop()

    async def start() -> None:
        pool.run(gate.wait, 5)  # its loop is gone before it ends

    loop.run_until_complete(start())
    loop.close()
    gate.set()
    assert pool.submit(lambda: "still serving").result(timeout=5) == "still serving"


async def test_a_stop_iteration_fails_its_call_alone() -> None:
    """An asyncio future refuses StopIteration: it arrives as a RuntimeError, and the
    results handed over with it still arrive."""
    pool = TaskThreadPool(2, "t")

    def stop() -> None:
        raise StopIteration

    outcomes = await asyncio.gather(
        pool.run(lambda: 1), pool.run(stop), pool.run(lambda: 3), return_exceptions=True
    )
    assert outcomes[0] == 1 and outcomes[2] == 3
    assert isinstance(outcomes[1], RuntimeError)
    assert isinstance(outcomes[1].__cause__, StopIteration)

"""The threads that run plain `def` tasks.

`concurrent.futures.ThreadPoolExecutor` joins its threads when the interpreter exits,
so one sync task stuck past its execution timeout would keep the whole process alive
until the task returned by itself. These threads are daemons and nothing waits for
them at exit: an abandoned task thread dies with the process.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import queue
import threading
import weakref
from collections.abc import Callable
from concurrent.futures import Executor, Future
from typing import Any, TypeVar

T = TypeVar("T")

IDLE_SECONDS = 30.0  # an idle thread exits after this long


class _WorkItem:
    __slots__ = ("args", "fn", "future")

    def __init__(self, future: Future[Any], fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
        self.future = future
        self.fn = fn
        self.args = args

    def run(self) -> Callable[[], None]:
        """Call the function; returns what resolves the future (the caller first counts
        its thread as waiting again, so work submitted on that news finds it)."""
        if not self.future.set_running_or_notify_cancel():
            return _nothing
        try:
            result = self.fn(*self.args)
        except BaseException as exc:  # a task's KeyboardInterrupt or SystemExit included
            return functools.partial(self.future.set_exception, exc)
        return functools.partial(self.future.set_result, result)


def _nothing() -> None:
    pass


class _LoopWorkItem:
    """A call whose result goes to an asyncio future, through the loop's `_Inbox`."""

    __slots__ = ("args", "fn", "future", "inbox")

    def __init__(
        self,
        inbox: _Inbox,
        future: asyncio.Future[Any],
        fn: Callable[..., Any],
        args: tuple[Any, ...],
    ) -> None:
        self.inbox = inbox
        self.future = future
        self.fn = fn
        self.args = args

    def run(self) -> Callable[[], None]:
        if self.future.cancelled():  # cancelled while queued: it never runs
            return _nothing
        try:
            result = self.fn(*self.args)
        except StopIteration as exc:  # an asyncio future refuses it, as a coroutine does
            error = RuntimeError(f"the function raised StopIteration: {exc!r}")
            error.__cause__ = exc
            return functools.partial(self.inbox.put, self.future, None, error)
        except BaseException as exc:  # a task's KeyboardInterrupt or SystemExit included
            return functools.partial(self.inbox.put, self.future, None, exc)
        return functools.partial(self.inbox.put, self.future, result, None)


class _Inbox:
    """Results on their way from task threads to one event loop. The loop is woken once
    for all the results that arrive while it is busy, not once per result: a hundred
    short `def` tasks ending together cost one wake-up."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self._lock = threading.Lock()
        self._results: list[tuple[asyncio.Future[Any], Any, BaseException | None]] = []

    def put(self, future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
        with self._lock:
            first = not self._results
            self._results.append((future, result, error))
        if first:
            with contextlib.suppress(RuntimeError):  # the loop closed: nobody waits
                self.loop.call_soon_threadsafe(self._deliver)

    def _deliver(self) -> None:
        with self._lock:
            results, self._results = self._results, []
        for future, result, error in results:
            if future.done():
                continue  # cancelled meanwhile (a timeout, a cancel)
            try:
                if error is None:
                    future.set_result(result)
                else:
                    future.set_exception(error)
            except Exception as exc:  # one result the future refuses spoils no other
                future.set_exception(RuntimeError(f"a task thread's result was refused: {exc}"))


class TaskThreadPool(Executor):
    """Up to `max_workers` daemon threads, started when queued work outnumbers the
    threads waiting for it. The counts are exact (kept under one lock): `_waiting`
    threads are ready to take work (started or blocked on the queue), `_queued` work
    items are not taken yet."""

    def __init__(self, max_workers: int, thread_name_prefix: str) -> None:
        self._max_workers = max_workers
        self._prefix = thread_name_prefix
        self._queue: queue.SimpleQueue[_WorkItem | _LoopWorkItem | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._threads = 0
        self._waiting = 0
        self._queued = 0
        self._started = 0
        self._shutdown = False
        self._inboxes: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Inbox] = (
            weakref.WeakKeyDictionary()
        )

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        if kwargs:
            raise TypeError("TaskThreadPool.submit takes positional arguments only")
        future: Future[T] = Future()
        self._put(_WorkItem(future, fn, args))
        return future

    def run(self, fn: Callable[..., T], /, *args: Any) -> asyncio.Future[T]:
        """`fn(*args)` on a thread of the pool; the future is the running loop's. What
        `loop.run_in_executor` does, without a concurrent future and a wake-up of the
        loop per call. Cancelling the future before a thread takes the call skips it."""
        loop = asyncio.get_running_loop()
        inbox = self._inboxes.get(loop)
        if inbox is None:
            inbox = self._inboxes[loop] = _Inbox(loop)
        future: asyncio.Future[T] = loop.create_future()
        self._put(_LoopWorkItem(inbox, future, fn, args))
        return future

    def _put(self, item: _WorkItem | _LoopWorkItem) -> None:
        with self._lock:
            if self._shutdown:
                raise RuntimeError("cannot schedule new tasks after shutdown")
            self._queue.put(item)
            self._queued += 1
            if self._queued > self._waiting and self._threads < self._max_workers:
                self._threads += 1
                self._waiting += 1
                self._started += 1
                threading.Thread(
                    target=self._work, name=f"{self._prefix}-{self._started}", daemon=True
                ).start()

    def _work(self) -> None:
        while True:
            try:
                item = self._queue.get(timeout=IDLE_SECONDS)
            except queue.Empty:
                with self._lock:
                    if self._queued == 0:  # nothing left for this thread: it ends
                        self._waiting -= 1
                        self._threads -= 1
                        return
                continue
            with self._lock:
                self._waiting -= 1
                if item is None:  # shutdown
                    self._threads -= 1
                    return
                self._queued -= 1
            resolve = item.run()
            del item
            with self._lock:
                self._waiting += 1
            resolve()
            del resolve

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Stop taking work; running task threads are not waited for."""
        with self._lock:
            self._shutdown = True
            threads = self._threads
            if cancel_futures:
                while True:
                    try:
                        item = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if isinstance(item, _LoopWorkItem):
                        self._queued -= 1
                        with contextlib.suppress(RuntimeError):  # its loop is closed
                            item.inbox.loop.call_soon_threadsafe(item.future.cancel)
                    elif item is not None:
                        self._queued -= 1
                        item.future.cancel()
        for _ in range(threads):
            self._queue.put(None)

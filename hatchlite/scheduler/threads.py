"""The threads that run plain `def` tasks.

`concurrent.futures.ThreadPoolExecutor` joins its threads when the interpreter exits,
so one sync task stuck past its execution timeout would keep the whole process alive
until the task returned by itself. These threads are daemons and nothing waits for
them at exit: an abandoned task thread dies with the process.
"""

from __future__ import annotations

import queue
import threading
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

    def run(self) -> None:
        if not self.future.set_running_or_notify_cancel():
            return
        try:
            result = self.fn(*self.args)
        except BaseException as exc:  # a task's KeyboardInterrupt or SystemExit included
            self.future.set_exception(exc)
        else:
            self.future.set_result(result)


class TaskThreadPool(Executor):
    """A pool of up to `max_workers` daemon threads, started on demand."""

    def __init__(self, max_workers: int, thread_name_prefix: str) -> None:
        self._max_workers = max_workers
        self._prefix = thread_name_prefix
        self._queue: queue.SimpleQueue[_WorkItem | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._threads = 0
        self._idle = 0
        self._shutdown = False

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        if kwargs:
            raise TypeError("TaskThreadPool.submit takes positional arguments only")
        with self._lock:
            if self._shutdown:
                raise RuntimeError("cannot schedule new tasks after shutdown")
            future: Future[T] = Future()
            self._queue.put(_WorkItem(future, fn, args))
            if self._idle == 0 and self._threads < self._max_workers:
                self._threads += 1
                threading.Thread(
                    target=self._work, name=f"{self._prefix}-{self._threads}", daemon=True
                ).start()
            else:
                self._idle = max(0, self._idle - 1)
            return future

    def _work(self) -> None:
        while True:
            try:
                item = self._queue.get(timeout=IDLE_SECONDS)
            except queue.Empty:
                with self._lock:
                    if self._queue.empty():
                        self._threads -= 1
                        self._idle = max(0, self._idle - 1)
                        return
                continue
            if item is None:
                with self._lock:
                    self._threads -= 1
                return
            item.run()
            del item
            with self._lock:
                self._idle += 1

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Stop taking work; running task threads are not waited for (`wait` only
        waits for nothing more to be queued)."""
        with self._lock:
            self._shutdown = True
            threads = self._threads
        if cancel_futures:
            while True:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is not None:
                    item.future.cancel()
        for _ in range(threads):
            self._queue.put(None)

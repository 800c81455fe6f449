"""The process's engine thread: one asyncio loop that hosts every engine of this
process, and the bridges that sync and async callers use.

The loop survives what user code may throw at it: a `KeyboardInterrupt` or
`SystemExit` that escapes a background task a user started (asyncio lets those two
out of `run_forever`) is logged and the loop runs on, so no task can stop the engine
for the rest of the process. A real Ctrl-C or SIGTERM is delivered to the main
thread, never to this one.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import contextlib
import logging
import threading
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from hatchlite.exceptions import SyncCallInEngineLoopError

T = TypeVar("T")
logger = logging.getLogger("hatchlite")


class Runtime:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._thread_ident: int | None = None
        self._closers: list[Callable[[], Awaitable[None]]] = []
        self._stopping = False

    def _ensure_loop(self) -> asyncio.AbstractEventLoop:
        loop = self.loop
        if loop is not None:
            return loop
        with self._lock:
            if self.loop is None:
                loop = asyncio.new_event_loop()
                ready = threading.Event()
                thread = threading.Thread(
                    target=self._serve, args=(loop, ready), name="hatchlite-engine", daemon=True
                )
                thread.start()
                ready.wait()
                self._thread = thread
                self.loop = loop
                atexit.register(self.shutdown)
            return self.loop

    def _serve(self, loop: asyncio.AbstractEventLoop, ready: threading.Event) -> None:
        asyncio.set_event_loop(loop)
        self._thread_ident = threading.get_ident()
        loop.call_soon(ready.set)
        while True:
            try:
                loop.run_forever()
            except BaseException as exc:  # escaped a task's step: log it and go on
                logger.error(
                    "%s escaped a task on the hatchlite engine loop; the engine goes on",
                    type(exc).__name__,
                    exc_info=exc,
                )
                continue
            if self._stopping:
                break  # stopped by shutdown()
            logger.error("something called loop.stop() on the hatchlite engine loop; it goes on")
        with contextlib.suppress(Exception):
            loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()

    def in_engine_thread(self) -> bool:
        return self._thread_ident is not None and threading.get_ident() == self._thread_ident

    def call(self, fn: Callable[..., Awaitable[T]], *args: Any) -> T:
        """Run `fn(*args)` on the engine loop and block for its result. Interrupting
        the wait (Ctrl-C) cancels the call."""
        if self.in_engine_thread():
            name = getattr(fn, "__name__", "this call")
            raise SyncCallInEngineLoopError(
                f"{name} blocks, and was called from inside an async task running on the "
                f"hatchlite engine loop; use the aio_ form (e.g. `await wf.aio_run(...)`)"
            )
        future = asyncio.run_coroutine_threadsafe(_awaited(fn, args), self._ensure_loop())
        try:
            return future.result()
        except BaseException:
            future.cancel()
            raise

    def submit(self, fn: Callable[..., Awaitable[T]], *args: Any) -> concurrent.futures.Future[T]:
        """Start `fn(*args)` on the engine loop; the caller waits on the returned future."""
        return asyncio.run_coroutine_threadsafe(_awaited(fn, args), self._ensure_loop())

    async def acall(self, fn: Callable[..., Awaitable[T]], *args: Any) -> T:
        """Await `fn(*args)` on the engine loop from any event loop."""
        loop = self._ensure_loop()
        if self.in_engine_thread():
            return await fn(*args)
        future = asyncio.run_coroutine_threadsafe(_awaited(fn, args), loop)
        return await asyncio.wrap_future(future)

    def on_shutdown(self, closer: Callable[[], Awaitable[None]]) -> None:
        self._closers.append(closer)

    def forget(self, closer: Callable[[], Awaitable[None]]) -> None:
        """`closer` ran already: drop it (a process that opens many databases in turn,
        such as a test suite, keeps no closed engine alive)."""
        with contextlib.suppress(ValueError):
            self._closers.remove(closer)

    def shutdown(self) -> None:
        """Close every engine and stop the loop (at interpreter exit)."""
        loop, thread = self.loop, self._thread
        if loop is None or thread is None:
            return
        closers, self._closers = self._closers, []
        for closer in closers:
            with contextlib.suppress(Exception):
                asyncio.run_coroutine_threadsafe(_awaited(closer, ()), loop).result(timeout=30)
        with self._lock:
            self.loop = None
            self._thread = None
            self._stopping = True
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=5)


async def _awaited(fn: Callable[..., Awaitable[T]], args: tuple[Any, ...]) -> T:
    return await fn(*args)


RUNTIME = Runtime()

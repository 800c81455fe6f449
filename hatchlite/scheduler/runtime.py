"""The process's engine thread: one asyncio loop (an anyio blocking portal) that hosts
every engine of this process, and the bridges that sync and async callers use."""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import threading
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from anyio.from_thread import BlockingPortal, start_blocking_portal

from hatchlite.exceptions import SyncCallInEngineLoopError

T = TypeVar("T")


class Runtime:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._portal_cm: Any = None
        self._portal: BlockingPortal | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self._thread_ident: int | None = None
        self._closers: list[Callable[[], Awaitable[None]]] = []

    def portal(self) -> BlockingPortal:
        portal = self._portal
        if portal is not None:
            return portal
        with self._lock:
            if self._portal is None:
                cm = start_blocking_portal("asyncio")
                portal = cm.__enter__()
                self.loop = portal.call(asyncio.get_running_loop)
                self._thread_ident = portal.call(threading.get_ident)
                self._portal_cm = cm
                self._portal = portal
                atexit.register(self.shutdown)
            return self._portal

    def in_engine_thread(self) -> bool:
        return self._thread_ident is not None and threading.get_ident() == self._thread_ident

    def call(self, fn: Callable[..., Awaitable[T]], *args: Any) -> T:
        """Run `fn(*args)` on the engine loop and block for its result."""
        if self.in_engine_thread():
            name = getattr(fn, "__name__", "this call")
            raise SyncCallInEngineLoopError(
                f"{name} blocks, and was called from inside an async task running on the "
                f"hatchlite engine loop; use the aio_ form (e.g. `await wf.aio_run(...)`)"
            )
        return self.portal().call(fn, *args)

    async def acall(self, fn: Callable[..., Awaitable[T]], *args: Any) -> T:
        """Await `fn(*args)` on the engine loop from any event loop."""
        self.portal()
        if self.in_engine_thread():
            return await fn(*args)
        assert self.loop is not None

        async def wrapper() -> T:
            return await fn(*args)

        future = asyncio.run_coroutine_threadsafe(wrapper(), self.loop)
        return await asyncio.wrap_future(future)

    def on_shutdown(self, closer: Callable[[], Awaitable[None]]) -> None:
        self._closers.append(closer)

    def shutdown(self) -> None:
        """Close every engine (at interpreter exit)."""
        portal = self._portal
        if portal is None:
            return
        closers, self._closers = self._closers, []
        for closer in closers:
            with contextlib.suppress(Exception):
                portal.call(closer)
        with self._lock:
            cm, self._portal_cm, self._portal = self._portal_cm, None, None
        with contextlib.suppress(Exception):
            cm.__exit__(None, None, None)


RUNTIME = Runtime()

"""The database thread: one SQLite connection, every statement, group commit.

All work reaches SQLite as a *job*: a function of the connection run on this
module's thread. Jobs that arrive while a batch is being written wait and are
then written together in one transaction (group commit), each inside its own
savepoint so one failing job rolls back alone. Read-only jobs take no write lock.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import os
import queue
import shlex
import sqlite3
import threading
import time
import urllib.parse
from collections.abc import Callable
from typing import Any, TypeVar

from hatchlite.exceptions import DatabaseError
from hatchlite.store.schema import APP_ID, LATEST_VERSION, MIGRATIONS

logger = logging.getLogger("hatchlite")

T = TypeVar("T")
Job = Callable[[sqlite3.Connection], Any]

_STOP = object()
_KICK = object()  # wakes the thread so it starts watching at a new poll interval
# How long a batch keeps retrying when another process holds the write lock.
LOCK_WAIT_SECONDS = 60.0
# The WAL file's size bound: checkpoints reset it past this, and SQLite truncates it
# back to it after a reset (journal_size_limit).
WAL_LIMIT = 64 * 1024 * 1024


class DatabaseLockedError(DatabaseError):
    """Another process held the database's write lock for too long."""


class _Pending:
    __slots__ = ("fn", "future", "loop", "write")

    def __init__(
        self,
        fn: Job,
        write: bool,
        future: asyncio.Future[Any] | concurrent.futures.Future[Any],
        loop: asyncio.AbstractEventLoop | None,
    ) -> None:
        self.fn = fn
        self.write = write
        self.future = future
        self.loop = loop


def is_busy(exc: sqlite3.OperationalError) -> bool:
    text = str(exc)
    return "database is locked" in text or "database is busy" in text


class Database:
    """A SQLite file (or `:memory:`) served by one thread."""

    def __init__(self, path: str, *, synchronous: str = "NORMAL") -> None:
        self.path = path
        self.synchronous = synchronous.upper()
        if self.synchronous not in {"OFF", "NORMAL", "FULL", "EXTRA"}:
            raise ValueError(f"invalid synchronous setting {synchronous!r}")
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._conn: sqlite3.Connection | None = None
        self._closed = False
        self._stopped = threading.Event()
        self._checkpointer: threading.Thread | None = None
        # Watching for other processes' commits: while `poll_interval` is set, this thread
        # reads `PRAGMA data_version` (changed only by other connections' commits) at
        # least that often, and calls `on_external_change` when it moved.
        self._poll_interval: float | None = None
        self.on_external_change: Callable[[], None] | None = None
        # Called on this thread before a batch's jobs see the database (after BEGIN for a
        # batch that writes): caches of what other processes change check they are
        # current there, once per transaction.
        self.on_batch: Callable[[sqlite3.Connection], None] | None = None
        self.batches = 0  # number of transactions written, for benchmarks

    # -- lifecycle -------------------------------------------------------------

    def open(self) -> None:
        """Connect, check the file is ours, migrate it, and start the thread."""
        ready: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._thread = threading.Thread(
            target=self._serve, args=(ready,), name=f"hatchlite-db:{self.path}", daemon=True
        )
        self._thread.start()
        ready.result()
        if self.path != ":memory:" and "mode=memory" not in self.path:
            self._checkpointer = threading.Thread(
                target=self._checkpoint_loop,
                name=f"hatchlite-checkpoint:{self.path}",
                daemon=True,
            )
            self._checkpointer.start()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._stopped.set()
        self._queue.put(_STOP)
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=30)
        if self._checkpointer is not None:
            self._checkpointer.join(timeout=5)

    def _checkpoint_loop(self) -> None:
        """Copy the WAL back into the database file off the commit path, so no commit
        pays for a checkpoint (the writer connection's auto-checkpoint is off)."""
        try:
            conn = sqlite3.connect(
                self.path,
                isolation_level=None,
                check_same_thread=False,
                uri=self.path.startswith("file:"),
            )
        except sqlite3.Error:
            return
        wal = self.path.removeprefix("file:").split("?")[0] + "-wal"
        last: tuple[float, int] | None = None
        try:
            conn.execute("PRAGMA busy_timeout = 100")
            while not self._stopped.wait(0.5):
                try:
                    stat = os.stat(wal)
                except OSError:
                    continue
                if (stat.st_mtime, stat.st_size) == last:
                    continue  # nothing written since the last checkpoint
                # PASSIVE never waits for the writer, but under a steady stream of
                # commits the log never starts over and the file only grows; past
                # WAL_LIMIT, TRUNCATE waits (up to the busy timeout) for a moment
                # between commits to reset it.
                mode = "TRUNCATE" if stat.st_size > WAL_LIMIT else "PASSIVE"
                with contextlib.suppress(sqlite3.Error):
                    conn.execute(f"PRAGMA wal_checkpoint({mode})").fetchall()
                with contextlib.suppress(OSError):
                    stat = os.stat(wal)
                last = (stat.st_mtime, stat.st_size)
        finally:
            conn.close()

    # -- submitting work ---------------------------------------------------------

    def submit(self, fn: Job, *, write: bool = True) -> asyncio.Future[Any]:
        """Run `fn(conn)` on the database thread; await the returned future for its result."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        if self._closed:
            future.set_exception(DatabaseError(f"database {self.path} is closed"))
            return future
        self._queue.put(_Pending(fn, write, future, loop))
        return future

    async def run(self, fn: Callable[[sqlite3.Connection], T], *, write: bool = True) -> T:
        result: T = await self.submit(fn, write=write)
        return result

    def run_sync(self, fn: Callable[[sqlite3.Connection], T], *, write: bool = True) -> T:
        """Blocking form of `run`, for threads that are not the engine's loop."""
        future: concurrent.futures.Future[T] = concurrent.futures.Future()
        if self._closed:
            raise DatabaseError(f"database {self.path} is closed")
        self._queue.put(_Pending(fn, write, future, None))
        return future.result()

    # -- the thread ------------------------------------------------------------

    def _serve(self, ready: concurrent.futures.Future[None]) -> None:
        try:
            self._conn = _connect(self.path, self.synchronous)
        except BaseException as exc:
            ready.set_exception(exc)
            return
        ready.set_result(None)
        conn = self._conn
        version = conn.execute("PRAGMA data_version").fetchone()[0]
        last_poll = time.monotonic()
        try:
            while True:
                interval = self._poll_interval
                try:
                    item = self._queue.get(timeout=interval) if interval else self._queue.get()
                except queue.Empty:
                    item = None
                if interval and time.monotonic() - last_poll >= interval:
                    last_poll = time.monotonic()
                    version = self._check_version(conn, version)
                if item is None or item is _KICK:
                    continue
                if item is _STOP:
                    break
                batch = [item]
                stop = False
                while True:
                    try:
                        nxt = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if nxt is _STOP:
                        stop = True
                        break
                    if nxt is not _KICK:
                        batch.append(nxt)
                try:
                    self._run_batch(conn, batch)
                except Exception as exc:
                    # A bug outside the jobs (the on_batch hook): it fails this batch's
                    # jobs, not the thread, which would leave every later job waiting.
                    logger.exception("hatchlite database thread: a batch failed")
                    with contextlib.suppress(sqlite3.Error):
                        if conn.in_transaction:
                            conn.execute("ROLLBACK")
                    _resolve_all([(item, None, exc) for item in batch])
                # Drop the jobs (and the data their closures hold) before waiting again.
                del batch
                item = nxt = None
                if stop:
                    break
        finally:
            self._fail_leftovers()
            with contextlib.suppress(sqlite3.Error):
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                conn.close()

    @property
    def poll_interval(self) -> float | None:
        return self._poll_interval

    @poll_interval.setter
    def poll_interval(self, value: float | None) -> None:
        previous, self._poll_interval = self._poll_interval, value
        if value is not None and (previous is None or value < previous):
            self._queue.put(_KICK)

    def _check_version(self, conn: sqlite3.Connection, seen: int) -> int:
        try:
            now = int(conn.execute("PRAGMA data_version").fetchone()[0])
        except sqlite3.Error:
            return seen
        callback = self.on_external_change
        if now != seen and callback is not None:
            callback()
        return now

    def _fail_leftovers(self) -> None:
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return
            if isinstance(item, _Pending):
                _resolve_one(item, None, DatabaseError(f"database {self.path} was closed"))

    def _run_batch(self, conn: sqlite3.Connection, batch: list[_Pending]) -> None:
        deadline = time.monotonic() + LOCK_WAIT_SECONDS
        while True:
            try:
                outcomes = self._write_batch(conn, batch)
                break
            except sqlite3.OperationalError as exc:
                with contextlib.suppress(sqlite3.Error):
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                if is_busy(exc) and time.monotonic() < deadline:
                    time.sleep(0.0005)
                    continue
                error: BaseException = (
                    DatabaseLockedError(
                        f"database {self.path} stayed locked by another process for "
                        f"{LOCK_WAIT_SECONDS:.0f}s"
                    )
                    if is_busy(exc)
                    else translate_error(exc, self.path)
                )
                outcomes = [(item, None, error) for item in batch]
                break
            except sqlite3.Error as exc:
                with contextlib.suppress(sqlite3.Error):
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                outcomes = [(item, None, translate_error(exc, self.path)) for item in batch]
                break
        self.batches += 1
        _resolve_all(outcomes)

    def _write_batch(
        self, conn: sqlite3.Connection, batch: list[_Pending]
    ) -> list[tuple[_Pending, Any, BaseException | None]]:
        writes = sum(1 for item in batch if item.write)
        use_savepoints = writes > 1
        outcomes: list[tuple[_Pending, Any, BaseException | None]] = []
        wrote = False  # a job of this batch has written into the open transaction
        hook = self.on_batch
        if hook is not None and not batch[0].write:
            hook(conn)
        for item in batch:
            if item.write and not conn.in_transaction:
                conn.execute("BEGIN IMMEDIATE")
                if hook is not None:
                    hook(conn)
            if use_savepoints and item.write:
                conn.execute("SAVEPOINT job")
            try:
                result = item.fn(conn)
            except sqlite3.Error as exc:
                if isinstance(exc, sqlite3.OperationalError) and is_busy(exc):
                    raise  # the whole batch waits and retries
                if wrote and not conn.in_transaction:
                    # SQLite rolled the whole transaction back (disk full, I/O error):
                    # the jobs before this one are undone too, so the batch fails as one.
                    raise
                outcomes.append((item, None, translate_error(exc, self.path)))
                self._undo_job(conn, item, use_savepoints)
            except Exception as exc:
                outcomes.append((item, None, exc))  # a bug in store code: keep it as it is
                self._undo_job(conn, item, use_savepoints)
            else:
                outcomes.append((item, result, None))
                if item.write:
                    wrote = True
                    if use_savepoints:
                        conn.execute("RELEASE job")
        if conn.in_transaction:
            conn.execute("COMMIT")
        return outcomes

    @staticmethod
    def _undo_job(conn: sqlite3.Connection, item: _Pending, use_savepoints: bool) -> None:
        if not item.write or not conn.in_transaction:
            return
        if use_savepoints:
            conn.execute("ROLLBACK TO job")
            conn.execute("RELEASE job")
        else:
            conn.execute("ROLLBACK")


def _resolve_one(item: _Pending, result: Any, error: BaseException | None) -> None:
    future = item.future
    if isinstance(future, concurrent.futures.Future):
        if error is None:
            future.set_result(result)
        else:
            future.set_exception(error)
        return
    loop = item.loop
    assert loop is not None
    with contextlib.suppress(RuntimeError):  # the loop is already closed
        loop.call_soon_threadsafe(_settle, future, result, error)


def _resolve_all(outcomes: list[tuple[_Pending, Any, BaseException | None]]) -> None:
    by_loop: dict[asyncio.AbstractEventLoop, list[tuple[Any, Any, BaseException | None]]] = {}
    for item, result, error in outcomes:
        if item.loop is None:
            _resolve_one(item, result, error)
        else:
            by_loop.setdefault(item.loop, []).append((item.future, result, error))
    for loop, settled in by_loop.items():
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(_settle_many, settled)


def _settle(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.done():
        return
    if error is None:
        future.set_result(result)
    else:
        future.set_exception(error)


def _settle_many(settled: list[tuple[asyncio.Future[Any], Any, BaseException | None]]) -> None:
    for future, result, error in settled:
        _settle(future, result, error)


# SQLite's primary result codes (an extended code's low byte) that `translate_error` explains.
_PERM, _NOMEM, _READONLY, _IOERR, _CORRUPT = 3, 7, 8, 10, 11
_FULL, _CANTOPEN, _PROTOCOL, _NOTADB, _NOLCK = 13, 14, 15, 26, 37
_READONLY_DIRECTORY = 1544  # SQLITE_READONLY_DIRECTORY: cannot create a file beside it
# Recognised by their text when an error carries no code.
_CODE_BY_TEXT = (("malformed", _CORRUPT), ("not a database", _NOTADB), ("readonly", _READONLY))

# What each kind of error means for the file and what to do: formatted with `path` (as
# the user gave it), `file` (shell-quoted), `text` (SQLite's message) and `kind`.
_INTEGRITY_HINT = "check the file with: sqlite3 {file} 'PRAGMA integrity_check'"
_MESSAGES = {
    _CORRUPT: "database {path} is damaged (SQLite: {text}). Stop the processes that use "
    "it, then restore it from a backup, or recover what is readable into a new file with "
    "the sqlite3 shell: sqlite3 {file} .recover | sqlite3 recovered.db",
    _NOTADB: "{path} is not a SQLite database, or its header is damaged (SQLite: {text}). "
    "Check that the path names a hatchlite database; if it does, restore it from a backup",
    _READONLY: "database {path} is read-only (SQLite: {text}); hatchlite writes to its "
    "database: open it without mode=ro and give this user write permission on the file "
    "and its folder",
    _FULL: "database {path} could not grow: the disk is full or the file reached its size "
    "limit (SQLite: {text}); the change was rolled back. Free space on the disk that "
    "holds it and try again",
    _IOERR: "database {path}: the operating system reported an I/O error (SQLite: {text}). "
    "Check the disk and file system that hold it (free space, a removed or failing drive, "
    "a network file system), then " + _INTEGRITY_HINT,
    _PROTOCOL: "database {path}: file locking failed (SQLite: {text}); SQLite's WAL mode "
    "needs a local file system with working locks, not a network share",
    _CANTOPEN: "cannot open database {path} (SQLite: {text}); check that the file and its "
    "folder exist and that this user may read and write both",
    _NOMEM: "database {path}: SQLite ran out of memory (SQLite: {text})",
}
_MESSAGES[_NOLCK] = _MESSAGES[_PROTOCOL]
_MESSAGES[_PERM] = _MESSAGES[_CANTOPEN]
_OTHER = (
    "database {path}: SQLite failed ({kind}: {text}). If it repeats, "
    + _INTEGRITY_HINT
    + " and restore it from a backup if that reports damage"
)


def _file_of(path: str) -> str | None:
    """The file behind a database path or `file:` URI; None for an in-memory database."""
    if path in (":memory:", "") or "mode=memory" in path:
        return None
    if path.startswith("file:"):
        path = urllib.parse.unquote(path.removeprefix("file:").split("?")[0])
        path = path.removeprefix("//")  # file:///abs/path
    return path


def _folder_blocks_wal(file: str) -> bool:
    """Whether SQLite cannot create the `-wal` and `-shm` files it needs beside `file`."""
    folder = os.path.dirname(os.path.abspath(file))
    if os.access(folder, os.W_OK | os.X_OK):
        return False
    return not (os.path.exists(file + "-wal") and os.path.exists(file + "-shm"))


def _read_only_folder_error(path: str, file: str) -> DatabaseError:
    folder = os.path.dirname(os.path.abspath(file))
    name = os.path.basename(file)
    return DatabaseError(
        f"database {path} cannot be used: its folder {folder} is read-only for this user, "
        f"and SQLite needs to create {name}-wal and {name}-shm there (write-ahead log). "
        f"Make the folder writable by this user, or move the database file to a folder "
        f"that is writable"
    )


def translate_error(exc: sqlite3.Error, path: str) -> DatabaseError:
    """Say what an SQLite error means for the database file and what to do about it."""
    text = str(exc)
    code = getattr(exc, "sqlite_errorcode", None)
    if isinstance(code, int):
        primary = code & 0xFF
    else:
        primary = next((c for needle, c in _CODE_BY_TEXT if needle in text), -1)
    file = _file_of(path)
    error: DatabaseError
    if isinstance(exc, sqlite3.OperationalError) and is_busy(exc):
        error = DatabaseLockedError(
            f"database {path} stayed locked by another process (SQLite: {text}); wait "
            f"for the process that holds it, or stop it"
        )
    elif file is not None and (
        code == _READONLY_DIRECTORY
        or (primary in (_READONLY, _CANTOPEN) and _folder_blocks_wal(file))
    ):
        error = _read_only_folder_error(path, file)
    else:
        template = _MESSAGES.get(primary, _OTHER)
        shown = shlex.quote(file) if file is not None else "<file>"
        error = DatabaseError(
            template.format(path=path, file=shown, text=text, kind=type(exc).__name__)
        )
    error.__cause__ = exc
    return error


# -- opening and migrating ---------------------------------------------------------


def _connect(path: str, synchronous: str) -> sqlite3.Connection:
    if path != ":memory:" and not path.startswith("file:"):
        _check_access(path)
    try:
        conn = sqlite3.connect(
            path,
            isolation_level=None,
            check_same_thread=False,
            cached_statements=512,
            uri=path.startswith("file:"),
        )
    except sqlite3.Error as exc:
        raise translate_error(exc, path) from exc
    try:
        # Opening and migrating may wait for another process; once open, a busy batch is
        # retried by `_run_batch` with short sleeps, which keeps cross-process latency low
        # where SQLite's own busy handler backs off (1, 2, 5, 10 ms ...).
        conn.execute("PRAGMA busy_timeout = 10000")
        if _check_ours(conn, path):
            # A new file: let `runs.purge` give freed pages back to the file system.
            conn.execute("PRAGMA auto_vacuum = INCREMENTAL")
        if path != ":memory:":
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise DatabaseError(f"database {path} cannot use WAL mode (got {mode})")
        conn.execute(f"PRAGMA synchronous = {synchronous}")
        conn.execute("PRAGMA temp_store = MEMORY")
        conn.execute("PRAGMA wal_autocheckpoint = 0")  # see Database._checkpoint_loop
        conn.execute(f"PRAGMA journal_size_limit = {WAL_LIMIT}")
        conn.execute("PRAGMA cache_size = -32000")
        _migrate(conn, path)
        conn.execute("PRAGMA busy_timeout = 0")
    except sqlite3.Error as exc:
        conn.close()
        raise translate_error(exc, path) from exc
    except BaseException:
        conn.close()
        raise
    return conn


def _check_access(path: str) -> None:
    """Refuse, with the reason, a file or folder that SQLite could not write."""
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise DatabaseError(f"cannot open database {path}: folder {folder} does not exist")
    if not os.path.exists(path):
        if not os.access(folder, os.W_OK | os.X_OK):
            raise DatabaseError(
                f"cannot create database {path}: folder {folder} is read-only for this "
                f"user; make it writable or choose a database path in a writable folder"
            )
        return
    if not os.access(path, os.R_OK | os.W_OK):
        raise DatabaseError(
            f"database {path} is read-only (no write permission); give this user read "
            f"and write permission on the file"
        )
    # A writable file is not enough: in WAL mode SQLite creates two files beside it,
    # and reports a folder it cannot write to as "attempt to write a readonly database".
    if _folder_blocks_wal(path):
        raise _read_only_folder_error(path, path)


def _check_ours(conn: sqlite3.Connection, path: str) -> bool:
    """Refuse a file that is not a hatchlite database, before writing anything to it.
    Returns whether the database is new (empty)."""
    tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if not tables and version == 0:
        return True
    if "hatchlite_meta" not in tables:
        raise DatabaseError(
            f"{path} is a SQLite database but not a hatchlite database "
            f"(it has tables {sorted(tables)[:5]}); refusing to touch it"
        )
    row = conn.execute("SELECT value FROM hatchlite_meta WHERE key = 'app'").fetchone()
    if row is None or row[0] != APP_ID:
        raise DatabaseError(f"{path} is not a hatchlite database; refusing to touch it")
    if version > LATEST_VERSION:
        raise DatabaseError(
            f"{path} was written by a newer hatchlite (schema version {version}; this "
            f"version knows up to {LATEST_VERSION}); upgrade hatchlite to open it"
        )
    return False


def _migrate(conn: sqlite3.Connection, path: str) -> None:
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version == LATEST_VERSION:
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        # Re-read under the write lock: another process may have migrated meanwhile.
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        for target, statements in MIGRATIONS:
            if target <= version:
                continue
            for statement in statements:
                if callable(statement):
                    statement(conn)
                else:
                    conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {target}")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise

"""`logging` records emitted while a task runs become that task run's log lines (as
Hatchet forwards them), unless its client says `disable_log_capture=True`.

One handler on the root logger, installed when a worker starts in this process; it
finds the running task through the `current_context` variable, which is set in the
task's asyncio task and copied into a sync task's thread. hatchlite's own records are
not captured.
"""

from __future__ import annotations

import logging
import threading

from hatchlite.context import current_context


def _level(levelno: int) -> str:
    """Hatchet's log level for a record: custom levels count as the standard level at or
    below them (25 is INFO, 35 is WARN, CRITICAL is ERROR)."""
    if levelno >= logging.ERROR:
        return "ERROR"
    if levelno >= logging.WARNING:
        return "WARN"
    if levelno >= logging.INFO:
        return "INFO"
    return "DEBUG"


class TaskLogHandler(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        last_resort = logging.lastResort
        if (
            last_resort is not None
            and record.levelno >= last_resort.level
            and self._only_handler(record.name)
        ):
            # Without it Python would print this record with its last-resort handler:
            # a handler of ours must not silence a program's warnings.
            last_resort.handle(record)
        if record.name == "hatchlite" or record.name.startswith("hatchlite."):
            return
        ctx = current_context.get()
        if ctx is None or not ctx.captures_logs:
            return
        try:
            message = self.format(record)
            ctx._log(message, _level(record.levelno))
        except Exception:
            self.handleError(record)

    def _only_handler(self, name: str) -> bool:
        logger: logging.Logger | None = logging.getLogger(name)
        while logger is not None:
            if any(handler is not self for handler in logger.handlers):
                return False
            if not logger.propagate:
                break
            logger = logger.parent
        return True


_lock = threading.Lock()
_handler: TaskLogHandler | None = None


def install() -> None:
    """Add the handler to the root logger (once per process)."""
    global _handler
    with _lock:
        if _handler is None:
            _handler = TaskLogHandler()
            _handler.setFormatter(logging.Formatter("%(message)s"))
            logging.getLogger().addHandler(_handler)

"""Template filters: times, durations and JSON as people read them."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any


def duration(ms: int | float | None) -> str:
    """`850 ms`, `4.2 s`, `3 m 02 s`, `2 h 05 m`; an empty string for none."""
    if ms is None:
        return ""
    if ms < 1000:
        return f"{int(ms)} ms"
    seconds = ms / 1000
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes} m {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} m"


def when(value: datetime | None) -> str:
    """A UTC time to the second: `2030-03-01 12:00:05`."""
    if value is None:
        return ""
    if value.tzinfo is not None:
        value = value.astimezone(UTC)
    return value.strftime("%Y-%m-%d %H:%M:%S")


def ago(value: datetime | None, now: datetime | None = None) -> str:
    """How long before `now`: `4 s ago`, `3 m ago`; `in 5 m` for a future time."""
    if value is None:
        return ""
    now = now or datetime.now(UTC)
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    delta = (now - value).total_seconds()
    text = duration(abs(delta) * 1000).split(" ")
    short = f"{text[0]} {text[1]}" if abs(delta) >= 1 else "now"
    if short == "now":
        return short
    return f"{short} ago" if delta >= 0 else f"in {short}"


def pretty(value: Any) -> str:
    """JSON, indented, for a `<pre>` (the template escapes it)."""
    try:
        return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=False, default=str)
    except (TypeError, ValueError):
        return repr(value)


def status_class(status: Any) -> str:
    """The CSS class of a status badge: `st-completed`, `st-failed`, ..."""
    name = getattr(status, "value", status)
    return f"st-{str(name or 'pending').lower()}"

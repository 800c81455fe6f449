"""Cron expressions: checking them, and which ticks of a cron are due.

Expressions are Hatchet's: 5 fields (minute hour day month weekday), or 6 with a leading
seconds field, or an alias (`@yearly @annually @monthly @weekly @daily @hourly`), read
in UTC. hatchlite adds one thing Hatchet does not have: a `CRON_TZ=<IANA zone>` (or
`TZ=`) prefix reads the fields in that zone, with croniter's daylight-saving rules (a
time skipped by the change fires at the first time after it; a time repeated fires
twice).

Late and missed ticks: a tick that came due while a worker serving the cron was live
fires, however late (the engine was busy or stalled: up to `LIVE_GAP` seconds without a
step), as does any tick less than `LATE_GRACE` seconds old (a worker restarted quickly).
Older ones were missed while no worker ran the cron (downtime, a suspended machine, a
test clock moved further than `LIVE_GAP` at once); the workflow's `cron_missed` policy
decides what fires of them: `latest` (the default) the most recent one, once; `skip`
none.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter

MissedTicks = Literal["latest", "skip"]
MISSED_POLICIES: tuple[str, ...] = ("latest", "skip")

ALIASES = frozenset({"@yearly", "@annually", "@monthly", "@weekly", "@daily", "@hourly"})
# A tick this late (seconds) still fires: the engine was busy, not down.
LATE_GRACE = 5.0
# A process that fired less than this many seconds ago was live meanwhile: every tick
# since then fires.
LIVE_GAP = 60.0


class InvalidCronError(ValueError):
    """A cron expression hatchlite cannot read."""


@dataclass(frozen=True, slots=True)
class CronSpec:
    """A parsed expression: the fields croniter reads and the zone they are read in."""

    fields: str
    zone: tzinfo
    seconds_first: bool

    def next_after(self, instant: float) -> float:
        """The first tick strictly after `instant` (epoch seconds)."""
        start = datetime.fromtimestamp(instant, self.zone)
        it = croniter(self.fields, start, second_at_beginning=self.seconds_first)
        return float(it.get_next(float))

    def latest_at_or_before(self, instant: float) -> float:
        """The last tick at or before `instant`."""
        after = self.next_after(instant)
        start = datetime.fromtimestamp(after, self.zone)
        it = croniter(self.fields, start, second_at_beginning=self.seconds_first)
        return float(it.get_prev(float))


def check_hatchet_expression(expression: str) -> str:
    """Hatchet's client check of `cron.create` expressions (raises `ValueError`), then
    hatchlite's own parse: the expression, stripped."""
    text = _strip_zone(expression)[1]
    if not isinstance(expression, str) or not expression.strip():
        raise InvalidCronError("Cron expression is required")
    if text.strip() not in ALIASES:
        parts = text.split()
        if len(parts) not in (5, 6):
            raise InvalidCronError(
                f"cron expression {expression!r} must have 5 or 6 parts "
                f"([second] minute hour day month weekday) or be an alias such as @daily"
            )
        for part in parts:
            bare = part.replace("*/", "").replace("-", "").replace(",", "")
            if part != "*" and not bare.isdigit():
                raise InvalidCronError(f"invalid cron expression part {part!r} in {expression!r}")
    parse(expression)
    return expression.strip()


@functools.lru_cache(maxsize=1024)
def parse(expression: str) -> CronSpec:
    """Parse an expression (5 or 6 fields, or an alias; optionally `CRON_TZ=zone` first)
    or raise `InvalidCronError` saying what is wrong."""
    if not isinstance(expression, str) or not expression.strip():
        raise InvalidCronError("a cron expression must be a non-empty string")
    zone_name, text = _strip_zone(expression)
    zone: tzinfo = UTC
    if zone_name is not None:
        try:
            zone = ZoneInfo(zone_name)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise InvalidCronError(
                f"cron expression {expression!r}: unknown time zone {zone_name!r}"
            ) from exc
    text = text.strip()
    if text.startswith("@"):
        if text not in ALIASES:
            raise InvalidCronError(
                f"cron expression {expression!r}: unknown alias (use one of "
                f"{', '.join(sorted(ALIASES))})"
            )
        fields, seconds_first = text, False
    else:
        parts = text.split()
        if len(parts) not in (5, 6):
            raise InvalidCronError(
                f"cron expression {expression!r} has {len(parts)} fields; it needs 5 (minute "
                f"hour day month weekday) or 6 (with a leading seconds field)"
            )
        fields, seconds_first = " ".join(parts), len(parts) == 6
    try:
        croniter(fields, datetime(2000, 1, 1, tzinfo=UTC), second_at_beginning=seconds_first)
        spec = CronSpec(fields, zone, seconds_first)
        spec.next_after(0.0)  # a valid but impossible date (Feb 30) never matches
    except Exception as exc:  # croniter raises several error types, and ValueError
        raise InvalidCronError(f"invalid cron expression {expression!r}: {exc}") from exc
    return spec


def _strip_zone(expression: str) -> tuple[str | None, str]:
    if not isinstance(expression, str):
        return None, ""
    text = expression.strip()
    for prefix in ("CRON_TZ=", "TZ="):
        if text.startswith(prefix):
            zone, _, rest = text[len(prefix) :].partition(" ")
            return zone, rest
    return None, text


def check_missed_policy(policy: str, where: str) -> MissedTicks:
    if policy not in MISSED_POLICIES:
        raise InvalidCronError(
            f"{where}: cron_missed must be one of {', '.join(MISSED_POLICIES)}, got {policy!r}"
        )
    return policy  # type: ignore[return-value]


def due_ticks(
    spec: CronSpec, next_at: float, now: float, policy: str, live_since: float | None = None
) -> tuple[list[float], float]:
    """The ticks to fire now of a cron whose first unfired tick is `next_at` (at or
    before `now`), and the tick to fire after them. `live_since`: when the firing
    process last fired (it was live since)."""
    window = now - LATE_GRACE
    if live_since is not None and now - live_since <= LIVE_GAP:
        window = min(window, live_since)
    late: list[float] = []
    tick = next_at if next_at >= window else spec.next_after(window - 1e-6)
    while tick <= now:
        late.append(tick)
        tick = spec.next_after(tick)
    if next_at < window and not late and policy == "latest":
        late.append(spec.latest_at_or_before(now))  # the most recent missed tick, once
    return late, tick


def format_instant(instant: float) -> str:
    """A tick as Hatchet writes instants in metadata (RFC 3339, UTC)."""
    text = datetime.fromtimestamp(instant, UTC).isoformat(timespec="milliseconds")
    return text.replace("+00:00", "Z")

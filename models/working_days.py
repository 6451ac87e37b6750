"""Working days and working hours in England, for response and acknowledgement targets.

Bank holidays come from the maintained `holidays` library (England subdivision of
GB), so substitute days, Easter and one-off holidays (jubilees, state funerals)
need no hand-kept table. Working hours are 09:00-17:00 Europe/London on working
days; DST changes happen overnight at weekends, so wall-clock arithmetic inside
the working day is also elapsed time.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

import holidays

from models.vocab import URGENCIES

__all__ = [
    "DAY_END",
    "DAY_START",
    "acknowledgement_due",
    "add_working_days",
    "add_working_hours",
    "bank_holidays",
    "is_working_day",
    "working_days_between",
]

DAY_START = time(9, 0)
DAY_END = time(17, 0)
LONDON = "Europe/London"

# DESIGN §4 (Flag): acknowledgement target per urgency.
_EMERGENCY_CLOCK = timedelta(hours=1)
_URGENT_WORKING_HOURS = 4.0
_ROUTINE_WORKING_DAYS = 2


@lru_cache(maxsize=64)
def bank_holidays(year: int) -> frozenset[date]:
    """England and Wales bank holidays in `year` (cached: the sweep asks constantly)."""
    return frozenset(holidays.country_holidays("GB", subdiv="ENG", years=year))


def _as_date(d: date) -> date:
    # datetime is a subclass of date but never equals one, so a datetime would
    # silently miss every holiday; and which calendar day it is depends on the
    # time zone, which only the caller knows.
    if isinstance(d, datetime):
        raise TypeError("pass a date (convert the datetime to Europe/London first)")
    return d


def is_working_day(d: date) -> bool:
    """Monday to Friday and not an England bank holiday."""
    d = _as_date(d)
    return d.weekday() < 5 and d not in bank_holidays(d.year)


def _next_working_day(d: date) -> date:
    d += timedelta(days=1)
    while not is_working_day(d):
        d += timedelta(days=1)
    return d


def add_working_days(start: date, n: int) -> date:
    """The n-th working day after `start` (n=0 returns `start` unchanged)."""
    start = _as_date(start)
    if n < 0:
        raise ValueError("n must be zero or more")
    d = start
    for _ in range(n):
        d = _next_working_day(d)
    return d


def working_days_between(a: date, b: date) -> int:
    """Working days after `a` up to and including `b`; negative if b is before a.

    Inverse of add_working_days: working_days_between(a, add_working_days(a, n)) == n.
    """
    a, b = _as_date(a), _as_date(b)
    if b < a:
        return -working_days_between(b, a)
    return sum(1 for i in range(1, (b - a).days + 1) if is_working_day(a + timedelta(days=i)))


def _at(d: date, t: time, tz: ZoneInfo) -> datetime:
    return datetime.combine(d, t, tzinfo=tz)


def _working_moment(local: datetime, tz: ZoneInfo) -> datetime:
    """`local` (already in `tz`) if inside working hours, else the next 09:00 start."""
    d = local.date()
    if is_working_day(d):
        if local.time() < DAY_START:
            return _at(d, DAY_START, tz)
        if local.time() < DAY_END:
            return local
    return _at(_next_working_day(d), DAY_START, tz)


def _require_aware(value: datetime) -> None:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("an aware datetime is required (UTC is fine)")


def add_working_hours(start: datetime, hours: float, tz: str = LONDON) -> datetime:
    """The moment `hours` of 09:00-17:00 working time have passed since `start`.

    Time outside working hours does not count, so a start at Friday 16:00 plus
    4 hours lands on Monday 12:00. The result is in the time zone of `start`
    (UTC in, UTC out). hours == 0 returns `start` unchanged.
    """
    _require_aware(start)
    if hours < 0:
        raise ValueError("hours must be zero or more")
    if hours == 0:
        return start
    zone = ZoneInfo(tz)
    remaining = timedelta(hours=hours)
    cursor = _working_moment(start.astimezone(zone), zone)
    while True:
        left_today = _at(cursor.date(), DAY_END, zone) - cursor
        if remaining <= left_today:
            return (cursor + remaining).astimezone(start.tzinfo)
        remaining -= left_today
        cursor = _at(_next_working_day(cursor.date()), DAY_START, zone)


def acknowledgement_due(urgency: str, raised_at: datetime) -> datetime:
    """When a flag of this urgency must be acknowledged (DESIGN §4), in raised_at's zone.

    - emergency: 1 hour of clock time, day or night (computed in UTC, so a DST
      change cannot stretch or shrink it);
    - urgent: 4 working hours;
    - routine: 2 working days, i.e. the same London clock time on the 2nd working
      day after. A flag raised outside working hours (evening, weekend, bank
      holiday, before 09:00) counts from the next working morning at 09:00, so
      Friday 18:00 is due Wednesday 09:00 -- nobody is on duty to start the
      clock earlier, and this matches 16 working hours.
    """
    _require_aware(raised_at)
    if urgency not in URGENCIES:
        raise ValueError(f"unknown urgency {urgency!r}; expected one of {URGENCIES}")
    if urgency == "emergency":
        return (raised_at.astimezone(UTC) + _EMERGENCY_CLOCK).astimezone(raised_at.tzinfo)
    if urgency == "urgent":
        return add_working_hours(raised_at, _URGENT_WORKING_HOURS)
    zone = ZoneInfo(LONDON)
    begins = _working_moment(raised_at.astimezone(zone), zone)
    due_day = add_working_days(begins.date(), _ROUTINE_WORKING_DAYS)
    return datetime.combine(due_day, begins.time(), tzinfo=zone).astimezone(raised_at.tzinfo)

"""Working days and London dates inside SQL, so the flows figures never leave the database.

Why a lookup CTE: the England working-day calendar (weekends plus bank holidays from the
`holidays` library, via models.working_days) is Python knowledge that neither SQLite nor
PostgreSQL has. Rather than load rows into Python, the query carries a small calendar
as an inline ``VALUES`` list, one row per calendar day of the report's window:

    working_day(ymd, idx)   ymd = the date as the integer YYYYMMDD
                            idx = how many working days fall on or before that date
                                  (counted from the start of the window)

so ``idx(b) - idx(a)`` is exactly ``models.working_days.working_days_between(a, b)``
(working days after a, up to and including b) and a join on ``ymd`` turns each
timestamp into a working-day position. The window is the two periods being compared
plus a year of slack for decisions and contacts recorded after the period ends: about
1,100 rows for a quarter, a few thousand at most, which both engines hash-join in
microseconds per row. The list is generated per request, so a newly announced bank
holiday needs only an updated `holidays` package, no table to maintain or migrate.

Dates are integers because both engines compare and join integers identically (SQLite
has no date type), and YYYYMMDD keeps year/month arithmetic trivial (ymd / 100 is the
month).

London dates: timestamps are stored as naive UTC. A day belongs to the Europe/London
calendar, so 23:30 UTC on a summer evening is already the next day. ``local_ymd``
builds a CASE over the British Summer Time intervals of the window (taken from
zoneinfo, in UTC) and shifts those timestamps by their offset before taking the date.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from models.working_days import is_working_day

LONDON = ZoneInfo("Europe/London")


def ymd(d: date) -> int:
    return d.year * 10000 + d.month * 100 + d.day


def london_midnight_utc(d: date) -> datetime:
    """The UTC instant a London calendar day starts (naive UTC, as stored)."""
    return datetime(d.year, d.month, d.day, tzinfo=LONDON).astimezone(UTC).replace(tzinfo=None)


def offset_intervals(first: date, last: date) -> list[tuple[datetime, datetime, int]]:
    """[(utc_from, utc_to, offset_hours)] for every non-zero London offset in the window."""
    intervals: list[tuple[datetime, datetime, int]] = []
    start = datetime(first.year, first.month, first.day) - timedelta(days=1)
    end = datetime(last.year, last.month, last.day) + timedelta(days=2)

    def offset(utc_naive: datetime) -> int:
        local = utc_naive.replace(tzinfo=UTC).astimezone(LONDON)
        return int(local.utcoffset().total_seconds() // 3600)

    current, since = offset(start), start
    day = start
    while day < end:
        tomorrow = day + timedelta(days=1)
        if offset(tomorrow) != current:  # a change tonight: find its hour
            hour = day
            while offset(hour) == current:
                hour += timedelta(hours=1)
            if current:
                intervals.append((since, hour, current))
            current, since = offset(hour), hour
        day = tomorrow
    if current:
        intervals.append((since, end, current))
    return intervals


@dataclass(frozen=True)
class Calendar:
    """The working-day lookup for a window of London dates."""

    first: date
    last: date

    def rows(self) -> list[tuple[int, int]]:
        out = []
        idx = 0
        d = self.first
        while d <= self.last:
            if is_working_day(d):
                idx += 1
            out.append((ymd(d), idx))
            d += timedelta(days=1)
        return out

    def cte(self, name: str = "working_day") -> str:
        """SQL text for the CTE (integers only, so it is safe to inline)."""
        values = ", ".join(f"({a}, {b})" for a, b in self.rows())
        return f"{name}(ymd, idx) AS (VALUES {values})"


def _ymd_sql(dialect: str, column: str, hours: int = 0) -> str:
    if dialect == "sqlite":
        shifted = f"{column}, '+{hours} hours'" if hours else column
        return f"CAST(strftime('%Y%m%d', {shifted}) AS INTEGER)"
    shifted = f"({column} + INTERVAL '{hours} hours')" if hours else column
    return (f"(EXTRACT(YEAR FROM {shifted}) * 10000 + EXTRACT(MONTH FROM {shifted}) * 100"
            f" + EXTRACT(DAY FROM {shifted}))::integer")


def _ts_literal(dialect: str, value: datetime) -> str:
    text = value.strftime("%Y-%m-%d %H:%M:%S")
    if dialect == "sqlite":
        # SQLAlchemy stores SQLite datetimes as 'YYYY-MM-DD HH:MM:SS.ffffff'; the
        # string comparison orders the same.
        return f"'{text}'"
    return f"TIMESTAMP '{text}'"


def local_ymd(dialect: str, column: str, first: date, last: date) -> str:
    """SQL: the London calendar date (YYYYMMDD) of a naive-UTC timestamp column."""
    cases = [
        f"WHEN {column} >= {_ts_literal(dialect, lo)} AND {column} < {_ts_literal(dialect, hi)} "
        f"THEN {_ymd_sql(dialect, column, hours)}"
        for lo, hi, hours in offset_intervals(first, last)
    ]
    if not cases:
        return _ymd_sql(dialect, column)
    return f"(CASE {' '.join(cases)} ELSE {_ymd_sql(dialect, column)} END)"

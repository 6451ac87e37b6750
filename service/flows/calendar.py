"""London dates inside the flows SQL.

Timestamps are stored as naive UTC, but a day belongs to the Europe/London calendar, so
23:30 UTC on a summer evening is already the next day. Referrals carry their London dates
and working days in their flow rows (models.flows, worked out when they change); the few
timestamps the report still dates in SQL (a journey's step-up) use ``local_date``:
PostgreSQL's own time zone rules, and on SQLite (which has none) a CASE over the British
Summer Time intervals of the window, taken from zoneinfo in UTC.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

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


def _ts_literal(dialect: str, value: datetime) -> str:
    text = value.strftime("%Y-%m-%d %H:%M:%S")
    if dialect == "sqlite":
        # SQLAlchemy stores SQLite datetimes as 'YYYY-MM-DD HH:MM:SS.ffffff'; the
        # string comparison orders the same.
        return f"'{text}'"
    return f"TIMESTAMP '{text}'"


def local_date(dialect: str, column: str, first: date, last: date) -> str:
    """SQL: the London calendar date of a naive-UTC timestamp column (a DATE on PostgreSQL,
    'YYYY-MM-DD' text on SQLite, as each stores dates)."""
    if dialect != "sqlite":
        return f"CAST(({column} AT TIME ZONE 'UTC') AT TIME ZONE 'Europe/London' AS DATE)"
    cases = [
        f"WHEN {column} >= {_ts_literal(dialect, lo)} AND {column} < {_ts_literal(dialect, hi)} "
        f"THEN date({column}, '+{hours} hours')"
        for lo, hi, hours in offset_intervals(first, last)
    ]
    if not cases:
        return f"date({column})"
    return f"(CASE {' '.join(cases)} ELSE date({column}) END)"

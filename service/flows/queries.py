# ruff: noqa: S608 -- SQL is assembled from constants, column names and integers only;
# every value that comes from a request is a bound parameter.
"""The flows figures as SQL: grouping, window functions, percentiles.

Nothing here loads referral rows into Python. One statement returns every count as tidy
rows ``(measure, period, a, b, c, n)`` -- already summed in SQL, including the totals
(``'*'`` in a position means "all") -- and one more returns the medians and 90th
percentiles. Journeys (safety net) and flags have their own small statements.

Referrals are counted from ``cells``: the monthly counts of models.flows.FlowMonth for the
whole London months of each period, plus the daily counts of FlowDay for the days of a
month the period only partly covers. A one-year report so reads a few thousand to a few
tens of thousands of counts, however many referrals there are. (``Window(months=False)``
works the same cells out from every flow row instead, with service.flows.facts.cells_sql:
the tests hold the counts to it.) ``ck`` names each cell's referring group and receiving unit for the grouping
asked for and keeps the alliance's own; every count is then a small GROUP BY of ``ck``.

Times are whole working days, so medians and 90th percentiles come from histograms
(value, count): the value at rank r is the one whose cumulative count passes r, and the
interpolation is percentile_cont's (position (n - 1) * q, between the values at its floor
and the next rank). The same SQL runs on SQLite and PostgreSQL; on PostgreSQL
``percentile_cont`` itself can be asked for, and a test holds the two to the same answers.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import sqlalchemy as sa
from sqlmodel import Session

from models.flows import EQUALITY_FIELDS
from service.flows.calendar import local_date, london_midnight_utc
from service.flows.facts import cells_sql

GROUPS = ("offer", "organisation", "team")
ALL = "*"


@dataclass(frozen=True)
class Window:
    """The two periods compared, and when the report is made."""

    alliance_id: int
    group: str
    current: tuple[date, date]
    previous: tuple[date, date]
    as_of: datetime  # aware
    # False: count every referral from its flow row, no monthly counts (tests compare).
    months: bool = True

    @property
    def first(self) -> date:
        return self.previous[0]

    @property
    def last(self) -> date:
        return self.current[1]

    @property
    def slack_end(self) -> date:
        """The last day a step-up after the period is dated for (SQLite's London offsets)."""
        end = max(self.last, min(self.as_of.date(), self.last + timedelta(days=3 * 366)))
        return end + timedelta(days=366)

    def split(self, period: tuple[date, date]) -> tuple[list[int], list[tuple[date, date]]]:
        """The period's whole months (YYYYMM) and the runs of days left over."""
        start, end = period
        if not self.months:
            return [], [(start, end)]
        whole, days = [], []
        first = date(start.year, start.month, 1)
        while first <= end:
            following = date(first.year + first.month // 12, first.month % 12 + 1, 1)
            lo, hi = max(first, start), min(following - timedelta(days=1), end)
            if (lo, hi) == (first, following - timedelta(days=1)):
                whole.append(first.year * 100 + first.month)
            else:
                days.append((lo, hi))
            first = following
        return whole, days


def _text(dialect: str, expr: str) -> str:
    return f"CAST({expr} AS {'TEXT' if dialect == 'sqlite' else 'VARCHAR'})"


def _cells_cte(dialect: str, window: Window) -> str:
    """SQL for ``members``, ``cells`` and ``ck`` (no WITH keyword)."""
    cur_whole, cur_days = window.split(window.current)
    prev_whole, prev_days = window.split(window.previous)
    parts = []
    if cur_whole or prev_whole:
        months = ", ".join(str(m) for m in cur_whole + prev_whole)
        current = (f"c.sent_month IN ({', '.join(str(m) for m in cur_whole)})" if cur_whole
                   else "1 = 0")
        parts.append(
            f"SELECT CASE WHEN {current} THEN 'current' ELSE 'previous' END AS period, "
            f"c.sent_month, c.referring_team_id, c.offer_id, c.measure, c.a, c.b, c.n "
            f"FROM flow_month c WHERE c.sent_month IN ({months})")
    days = cur_days + prev_days
    if days and window.months:
        where = " OR ".join(f"d.sent_on BETWEEN :d{i}_lo AND :d{i}_hi" for i in range(len(days)))
        parts.append(
            "SELECT CASE WHEN d.sent_on >= :current_from THEN 'current' ELSE 'previous' END "
            "AS period, d.sent_month, d.referring_team_id, d.offer_id, d.measure, d.a, d.b, d.n "
            f"FROM flow_day d WHERE {where}")
    elif days:  # every referral from its flow row: the reference the tests compare to
        where = " OR ".join(f"f.sent_on BETWEEN :d{i}_lo AND :d{i}_hi" for i in range(len(days)))
        parts.append(
            "SELECT CASE WHEN e.sent_on >= :current_from THEN 'current' ELSE 'previous' END "
            "AS period, e.sent_month, e.referring_team_id, e.offer_id, e.measure, e.a, e.b, "
            "1 AS n "
            f"FROM ({cells_sql(dialect, f'({where})', ', f.sent_on')}) e")
    ref_key = "c.referring_team_id" if window.group == "team" else "t.organisation_id"
    unit_key = "o.organisation_id" if window.group == "organisation" else "c.offer_id"
    return f"""
members AS (SELECT organisation_id FROM alliance_member WHERE alliance_id = :alliance_id),
cells AS (
    {chr(10).join(parts[:1])}{chr(10) + '    UNION ALL ' + parts[1] if len(parts) > 1 else ''}
),
ck AS (
    SELECT c.period, c.sent_month, {_text(dialect, ref_key)} AS ref_key,
           {_text(dialect, unit_key)} AS unit_key, c.measure, c.a, c.b, c.n,
           o.response_target_days AS target_days
    FROM cells c
    JOIN team t ON t.id = c.referring_team_id
    JOIN offer o ON o.id = c.offer_id
    WHERE t.organisation_id IN (SELECT organisation_id FROM members)
      AND o.organisation_id IN (SELECT organisation_id FROM members)
)"""


_DECISION = ("CASE WHEN a = 'declined' THEN 'declined' WHEN a IN ('awaiting', 'withdrawn') "
             "THEN 'undecided' ELSE 'accepted' END")
_CLOSED = ("CASE WHEN a = 'declined' THEN 'rejected' WHEN a = 'failed' THEN 'failed' "
           "ELSE 'cancelled' END")
_TARGET = ("CASE WHEN a = '' THEN 'outside' WHEN CAST(NULLIF(a, '') AS INTEGER) <= target_days "
           "THEN 'within' ELSE 'outside' END")


def _grouped_sql(dialect: str) -> str:
    """SQL for the CTE ``grouped(measure, period, a, b, c, n)``: one row per group."""
    parts = [
        "SELECT 'sent' AS measure, period, ref_key AS a, unit_key AS b, '' AS c, SUM(n) AS n "
        "FROM ck WHERE measure = 'outcome' GROUP BY period, ref_key, unit_key",
        "SELECT 'outcome', period, unit_key, a, '', SUM(n) FROM ck WHERE measure = 'outcome' "
        "GROUP BY period, unit_key, a",
        f"SELECT 'decision', period, unit_key, {_DECISION}, '', SUM(n) FROM ck "
        f"WHERE measure = 'outcome' GROUP BY period, unit_key, {_DECISION}",
        "SELECT 'contact', period, unit_key, a, '', SUM(n) FROM ck WHERE measure = 'accepted' "
        "GROUP BY period, unit_key, a",
        "SELECT 'waitlist', period, unit_key, b, '', SUM(n) FROM ck WHERE measure = 'accepted' "
        "GROUP BY period, unit_key, b",
        f"SELECT 'target', period, unit_key, {_TARGET}, '', SUM(n) FROM ck "
        f"WHERE measure = 'decision_days' AND b = 'target' GROUP BY period, unit_key, {_TARGET}",
        f"SELECT 'reason', period, unit_key, {_CLOSED}, b, SUM(n) FROM ck "
        f"WHERE measure = 'outcome' AND b <> '' GROUP BY period, unit_key, {_CLOSED}, b",
        *(f"SELECT 'eq:{field}', period, a, b, '', SUM(n) FROM ck WHERE measure = '{field}' "
          "GROUP BY period, a, b" for field in EQUALITY_FIELDS),
        f"SELECT 'month', period, {_text(dialect, 'sent_month')}, '', '', SUM(n) FROM ck "
        "WHERE measure = 'outcome' GROUP BY period, sent_month",
    ]
    return "grouped AS (\n    " + "\n    UNION ALL ".join(parts) + "\n)"


def counts_sql(dialect: str, window: Window) -> str:
    eq = "measure LIKE 'eq:%'"
    two_way = f"(measure = 'sent' OR {eq})"
    return f"""
WITH {_cells_cte(dialect, window)},
{_grouped_sql(dialect)}
SELECT measure, period, a, b, c, n FROM grouped
UNION ALL
SELECT measure, period, '{ALL}', b, c, SUM(n) FROM grouped GROUP BY measure, period, b, c
UNION ALL
SELECT measure, period, a, '{ALL}', c, SUM(n) FROM grouped WHERE {two_way}
    GROUP BY measure, period, a, c
UNION ALL
SELECT measure, period, '{ALL}', '{ALL}', c, SUM(n) FROM grouped WHERE {two_way}
    GROUP BY measure, period, c
UNION ALL
SELECT measure, period, a, b, '{ALL}', SUM(n) FROM grouped WHERE measure = 'reason'
    GROUP BY measure, period, a, b
UNION ALL
SELECT measure, period, '{ALL}', b, '{ALL}', SUM(n) FROM grouped WHERE measure = 'reason'
    GROUP BY measure, period, b
"""


TIME_MEASURES = ("decision_days", "contact_days")
QUANTILES = (("median", 0.5), ("p90", 0.9))


def times_sql(dialect: str, window: Window, percentile: str | None = None) -> str:
    """Medians and 90th percentiles per (measure, period, unit) and for all units ('*')."""
    days = "CAST(NULLIF(a, '') AS INTEGER)"
    timed = "measure IN ('decision_days', 'contact_days') AND a <> ''"
    head = f"""WITH {_cells_cte(dialect, window)},
hist AS (
    SELECT measure, period, unit_key, {days} AS x, SUM(n) AS n FROM ck WHERE {timed}
    GROUP BY measure, period, unit_key, {days}
    UNION ALL
    SELECT measure, period, '{ALL}', {days}, SUM(n) FROM ck WHERE {timed}
    GROUP BY measure, period, {days}
)"""
    if percentile == "percentile_cont":  # PostgreSQL only: the reference the tests compare to
        stats = ", ".join(
            f"percentile_cont({q}) WITHIN GROUP (ORDER BY x) AS {name}" for name, q in QUANTILES)
        return head + (f"SELECT measure, period, unit_key, COUNT(*) AS n, {stats} "
                       "FROM hist, generate_series(1, hist.n) GROUP BY measure, period, unit_key")
    picks, finals = [], []
    for name, q in QUANTILES:
        # q as a fraction num/den so floor(h) is integer division on both engines.
        num, den = round(q * 10), 10
        lo = f"(((total - 1) * {num}) / {den})"
        frac = f"((((total - 1) * {num}) % {den}) * 1.0 / {den})"
        picks.append(f"MAX(CASE WHEN {lo} >= before AND {lo} < before + n THEN x END) "
                     f"AS {name}_lo")
        picks.append(f"MAX(CASE WHEN {lo} + 1 >= before AND {lo} + 1 < before + n THEN x END) "
                     f"AS {name}_hi")
        finals.append(f"{name}_lo + {frac} * (COALESCE({name}_hi, {name}_lo) - {name}_lo) "
                      f"AS {name}")
    part = "PARTITION BY measure, period, unit_key"
    return head + f""",
ranked AS (
    SELECT measure, period, unit_key, x, n,
           CAST(SUM(n) OVER ({part} ORDER BY x ROWS UNBOUNDED PRECEDING) AS BIGINT) - n
               AS before,
           CAST(SUM(n) OVER ({part}) AS BIGINT) AS total
    FROM hist
),
picked AS (
    SELECT measure, period, unit_key, MAX(total) AS total, {', '.join(picks)}
    FROM ranked GROUP BY measure, period, unit_key
)
SELECT measure, period, unit_key, total, {', '.join(finals)} FROM picked"""


def journeys_flags_sql(dialect: str, window: Window) -> str:
    """Safety net (journeys discharged in the periods) and flags raised in them, tidy."""
    group_key = "s.team_id" if window.group == "team" else "t.organisation_id"
    stepped = local_date(dialect, "j.stepped_up_at", window.first, window.slack_end)
    within = ("date(j.discharged_on, '+90 days')" if dialect == "sqlite"
              else "j.discharged_on + 90")
    return f"""
WITH members AS (SELECT organisation_id FROM alliance_member WHERE alliance_id = :alliance_id),
sn_team AS (
    -- Per team, with 1/0 flags: cheap to count from the index; named after counting.
    SELECT j.team_id,
           CASE WHEN j.discharged_on >= :current_from THEN 1 ELSE 0 END AS current_period,
           CASE WHEN j.stepped_up_at IS NULL THEN 0
                WHEN {stepped} BETWEEN j.discharged_on AND {within} THEN 1 ELSE 0 END
               AS stepped_up,
           COUNT(*) AS n
    FROM journey j
    WHERE j.discharged_on BETWEEN :previous_from AND :current_to
    GROUP BY 1, 2, 3
),
sn AS (
    SELECT CASE WHEN s.current_period = 1 THEN 'current' ELSE 'previous' END AS period,
           {_text(dialect, group_key)} AS group_key,
           CASE WHEN s.stepped_up = 1 THEN 'stepped-up' ELSE 'not-stepped-up' END AS outcome,
           s.n
    FROM sn_team s JOIN team t ON t.id = s.team_id
    WHERE t.organisation_id IN (SELECT organisation_id FROM members)
),
fl AS (
    SELECT
        CASE WHEN f.raised_at >= :current_lo THEN 'current' ELSE 'previous' END AS period,
        f.trigger AS trigger_code,
        f.urgency,
        CASE
            WHEN COALESCE(f.acknowledged_at, f.resolved_at) IS NOT NULL THEN
                CASE WHEN COALESCE(f.acknowledged_at, f.resolved_at) <= f.acknowledgement_due
                     THEN 'within' ELSE 'late' END
            WHEN f.acknowledgement_due <= :as_of THEN 'late'
            ELSE 'pending'
        END AS ack
    FROM flag f
    JOIN journey j ON j.id = f.journey_id
    JOIN team t ON t.id = j.team_id
    WHERE f.raised_at >= :lo AND f.raised_at < :hi
      AND t.organisation_id IN (SELECT organisation_id FROM members)
),
grouped AS (
    SELECT 'safety-net' AS measure, period, group_key AS a, outcome AS b, SUM(n) AS n
    FROM sn GROUP BY period, group_key, outcome
    UNION ALL
    SELECT 'flags', period, trigger_code, urgency, COUNT(*) FROM fl
    GROUP BY period, trigger_code, urgency
    UNION ALL
    SELECT 'ack', period, urgency, ack, COUNT(*) FROM fl GROUP BY period, urgency, ack
)
SELECT measure, period, a, b, '' AS c, n FROM grouped
UNION ALL SELECT measure, period, '{ALL}', b, '', SUM(n) FROM grouped GROUP BY measure, period, b
UNION ALL SELECT measure, period, a, '{ALL}', '', SUM(n) FROM grouped GROUP BY measure, period, a
UNION ALL SELECT measure, period, '{ALL}', '{ALL}', '', SUM(n) FROM grouped
    GROUP BY measure, period
"""


def capacity_sql(dialect: str) -> str:
    """Seconds each offer of the alliance spent at each capacity in each period, from its
    capacity changes (a change holds until the next one; time before the first is not
    recorded, time after the report was made not counted)."""
    if dialect == "sqlite":
        start, end = "MAX(s.since, p.lo)", "MIN(COALESCE(s.until, :end_at), p.hi)"
        seconds = f"(julianday({end}) - julianday({start})) * 86400"
    else:
        start, end = "GREATEST(s.since, p.lo)", "LEAST(COALESCE(s.until, :end_at), p.hi)"
        seconds = f"EXTRACT(EPOCH FROM ({end} - {start}))"
    return f"""
WITH members AS (SELECT organisation_id FROM alliance_member WHERE alliance_id = :alliance_id),
spans AS (
    SELECT c.offer_id, c.capacity, c.changed_at AS since,
           LEAD(c.changed_at) OVER (PARTITION BY c.offer_id ORDER BY c.changed_at, c.id)
               AS until
    FROM offer_capacity_change c JOIN offer o ON o.id = c.offer_id
    WHERE o.organisation_id IN (SELECT organisation_id FROM members)
),
periods AS (
    SELECT 'current' AS period, :current_lo AS lo, :end_at AS hi
    UNION ALL SELECT 'previous', :lo, :current_lo
)
SELECT s.offer_id, p.period, s.capacity, SUM({seconds}) AS seconds
FROM spans s JOIN periods p
  ON p.lo < p.hi AND s.since < p.hi AND COALESCE(s.until, :end_at) > p.lo
GROUP BY s.offer_id, p.period, s.capacity
"""


def run_capacity(db: Session, window: Window) -> list[tuple[str, str, str, float]]:
    """(offer, period, capacity, seconds) for the alliance's offers."""
    dialect = db.get_bind().dialect.name
    rows = db.execute(_bind(capacity_sql(dialect), window)).all()
    return [(str(o), p, c, float(s)) for o, p, c, s in rows]


def parameters(window: Window) -> dict:
    cur_from, cur_to = window.current
    prev_from, _ = window.previous
    return {
        "alliance_id": window.alliance_id,
        "lo": london_midnight_utc(prev_from),
        "hi": london_midnight_utc(cur_to + timedelta(days=1)),
        "current_lo": london_midnight_utc(cur_from),
        "current_from": cur_from,
        "current_to": cur_to,
        "previous_from": prev_from,
        "as_of": window.as_of.astimezone(UTC).replace(tzinfo=None),
        # The current period is only counted up to when the report is made.
        "end_at": min(london_midnight_utc(cur_to + timedelta(days=1)),
                      window.as_of.astimezone(UTC).replace(tzinfo=None)),
        # The runs of days counted from flow rows, in the order _cells_cte numbers them.
        **{f"d{i}_{end}": day
           for i, run in enumerate(window.split(window.current)[1]
                                   + window.split(window.previous)[1])
           for end, day in zip(("lo", "hi"), run, strict=True)},
    }


def _bind(statement: str, window: Window) -> sa.TextClause:
    params = parameters(window)
    clause = sa.text(statement)
    binds = []
    for name, value in params.items():
        if f":{name}" not in statement:
            continue
        kind = (sa.DateTime() if isinstance(value, datetime) else sa.Date()
                if isinstance(value, date) else sa.Integer())
        binds.append(sa.bindparam(name, value, type_=kind))
    return clause.bindparams(*binds)


def _no_jit(db: Session, dialect: str) -> None:
    # The statements read a few thousand counts: compiling them (40-90 ms each on
    # PostgreSQL's cost estimates) costs more than it saves. For this transaction only.
    if dialect == "postgresql":
        db.execute(sa.text("SET LOCAL jit = off"))


def run_counts(db: Session, window: Window) -> list[tuple[str, str, str, str, str, int]]:
    dialect = db.get_bind().dialect.name
    _no_jit(db, dialect)
    rows = db.execute(_bind(counts_sql(dialect, window), window)).all()
    rows += db.execute(_bind(journeys_flags_sql(dialect, window), window)).all()
    return [(m, p, str(a), str(b), str(c), int(n)) for m, p, a, b, c, n in rows]


def run_times(db: Session, window: Window, percentile: str | None = None) -> list[tuple]:
    dialect = db.get_bind().dialect.name
    _no_jit(db, dialect)
    rows = db.execute(_bind(times_sql(dialect, window, percentile), window)).all()
    return [(m, p, str(u), int(n), _num(med), _num(p90)) for m, p, u, n, med, p90 in rows]


def _num(value) -> float | None:
    return None if value is None else float(value)

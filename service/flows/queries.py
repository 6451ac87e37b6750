# ruff: noqa: S608 -- SQL is assembled from constants, column names and integers only;
# every value that comes from a request is a bound parameter.
"""The flows figures as SQL: grouping, grouping sets, window functions, percentiles.

Nothing here loads referral rows into Python. One statement returns every count as tidy
rows ``(measure, period, a, b, c, n)`` -- already summed in SQL, including the totals
(``'*'`` in a position means "all") -- and one more returns the medians and 90th
percentiles. Journeys (safety net) and flags have their own small statements.

Counting happens over ``base``: one row per referral of the alliance sent in either
period, read from its flow row (models.flows: London dates, working days, outcome and
equality fields were worked out when the referral last changed), with the dimensions each
figure needs. A dimension is NULL where it does not apply (e.g. ``contact`` only for
accepted referrals), so each grouping set simply drops its NULL group.

- PostgreSQL: one ``GROUP BY GROUPING SETS`` pass over ``base`` (hash aggregation of all
  sets in a single scan), and ``percentile_cont`` for the times.
- SQLite (no grouping sets, no percentile_cont): the same sets as ``UNION ALL`` of
  ``GROUP BY`` over a ``MATERIALIZED`` ``base``, and percentiles from ``ROW_NUMBER()`` /
  ``COUNT()`` windows with the same linear interpolation as percentile_cont
  (position (n - 1) * q, interpolating between the neighbouring values).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import sqlalchemy as sa
from sqlmodel import Session

from models.flows import ACCEPTED_OUTCOMES
from service.flows.calendar import local_date, london_midnight_utc

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


# (measure, its dimensions: a, b and c of the tidy output, in order)
COUNT_SETS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("sent", ("ref_key", "unit_key")),
    ("outcome", ("unit_key", "outcome")),
    ("decision", ("unit_key", "decision")),
    ("contact", ("unit_key", "contact")),
    ("target", ("unit_key", "target")),
    ("waitlist", ("unit_key", "waitlist")),
    ("reason", ("unit_key", "closed_status", "reason")),
    ("eq:borough", ("borough", "eq_decision")),
    ("eq:age_band", ("age_band", "eq_decision")),
    ("eq:sex", ("sex", "eq_decision")),
    ("eq:ethnic_category", ("ethnic_category", "eq_decision")),
    ("month", ("month",)),
)


def _text(dialect: str, expr: str) -> str:
    return f"CAST({expr} AS {'TEXT' if dialect == 'sqlite' else 'VARCHAR'})"


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def base_cte(dialect: str, window: Window) -> str:
    """SQL for the ``members`` and ``base`` CTEs (no WITH keyword).

    Each referral's dimensions were worked out when it last changed (models.flows); here
    they are only renamed for the grouping, and the target compared with the offer's.
    """
    ref_key = "f.referring_team_id" if window.group == "team" else "f.referring_organisation_id"
    unit_key = "f.receiving_organisation_id" if window.group == "organisation" else "f.offer_id"
    materialized = "MATERIALIZED " if dialect == "sqlite" else ""
    accepted = _in("f.outcome", ACCEPTED_OUTCOMES)
    undecided = _in("f.outcome", ("awaiting", "withdrawn"))
    return f"""
members AS (SELECT organisation_id FROM alliance_member WHERE alliance_id = :alliance_id),
base AS {materialized}(
    SELECT
        CASE WHEN f.sent_on >= :current_from THEN 'current' ELSE 'previous' END AS period,
        {_text(dialect, ref_key)} AS ref_key,
        {_text(dialect, unit_key)} AS unit_key,
        f.outcome,
        CASE WHEN f.outcome = 'declined' THEN 'declined'
             WHEN {undecided} THEN 'undecided' ELSE 'accepted' END AS decision,
        CASE WHEN {accepted} THEN 'accepted' ELSE 'not-accepted' END AS eq_decision,
        CASE WHEN f.outcome = 'declined' THEN 'rejected'
             WHEN {_in("f.outcome", ("withdrawn", "cancelled-after-acceptance"))} THEN 'cancelled'
             WHEN f.outcome = 'failed' THEN 'failed' END AS closed_status,
        f.reason,
        f.decision_days,
        f.contact_days,
        CASE WHEN {accepted}
             THEN CASE WHEN f.contacted THEN 'contacted' ELSE 'not-contacted' END
        END AS contact,
        CASE WHEN {accepted}
             THEN CASE WHEN f.waitlist THEN 'waitlist' ELSE 'no-waitlist' END
        END AS waitlist,
        CASE WHEN {undecided} THEN NULL
             WHEN f.decision_days <= o.response_target_days THEN 'within'
             ELSE 'outside' END AS target,
        f.borough, f.sex, f.ethnic_category, f.age_band,
        {_text(dialect, "f.sent_month")} AS month
    FROM referral_flow f
    JOIN offer o ON o.id = f.offer_id
    WHERE f.sent_on BETWEEN :previous_from AND :current_to
      AND f.referring_organisation_id IN (SELECT organisation_id FROM members)
      AND f.receiving_organisation_id IN (SELECT organisation_id FROM members)
)"""


def _grouped_sql(dialect: str) -> str:
    """SQL for the CTE ``grouped(measure, period, a, b, c, n)``: one row per group."""
    if dialect == "postgresql":
        columns = sorted({c for _, cols in COUNT_SETS for c in cols})
        sets = ", ".join(f"(period, {', '.join(cols)})" for _, cols in COUNT_SETS)
        gid = f"GROUPING({', '.join(columns)})"
        # GROUPING() sets bit (k) for column k counted from the right when it is NOT grouped.
        cases = []
        for name, cols in COUNT_SETS:
            mask = sum(1 << (len(columns) - 1 - k) for k, c in enumerate(columns) if c not in cols)
            cases.append((name, cols, mask))
        measure = "CASE " + " ".join(f"WHEN gid = {m} THEN '{n}'" for n, _, m in cases) + " END"

        def pick(pos: int) -> str:
            whens = " ".join(f"WHEN gid = {m} THEN {cols[pos]}" for _, cols, m in cases
                             if len(cols) > pos)
            return f"COALESCE(CASE {whens} END, '')"

        not_null = " OR ".join(
            f"(gid = {m} AND " + " AND ".join(f"{c} IS NOT NULL" for c in cols) + ")"
            for _, cols, m in cases)
        return f"""
grouped_sets AS (
    SELECT {gid} AS gid, period, {', '.join(columns)}, COUNT(*) AS n
    FROM base GROUP BY GROUPING SETS ({sets})
),
grouped AS (
    SELECT {measure} AS measure, period, {pick(0)} AS a, {pick(1)} AS b, {pick(2)} AS c, n
    FROM grouped_sets WHERE {not_null}
)"""
    parts = []
    for name, cols in COUNT_SETS:
        padded = list(cols) + ["''"] * (3 - len(cols))
        where = " AND ".join(f"{c} IS NOT NULL" for c in cols)
        parts.append(
            f"SELECT '{name}' AS measure, period, {padded[0]} AS a, {padded[1]} AS b, "
            f"{padded[2]} AS c, COUNT(*) AS n FROM base WHERE {where} "
            f"GROUP BY period, {', '.join(cols)}")
    return "grouped AS (\n    " + "\n    UNION ALL ".join(parts) + "\n)"


def counts_sql(dialect: str, window: Window) -> str:
    eq = "measure LIKE 'eq:%'"
    two_way = f"(measure = 'sent' OR {eq})"
    return f"""
WITH {base_cte(dialect, window)},
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
    percentile = percentile or ("percentile_cont" if dialect == "postgresql" else "window")
    samples = " UNION ALL ".join(
        f"SELECT '{m}' AS measure, period, unit_key, {m} AS x FROM base WHERE {m} IS NOT NULL "
        f"UNION ALL SELECT '{m}', period, '{ALL}', {m} FROM base WHERE {m} IS NOT NULL"
        for m in TIME_MEASURES)
    head = f"WITH {base_cte(dialect, window)},\nsamples AS ({samples})\n"
    if percentile == "percentile_cont":
        stats = ", ".join(
            f"percentile_cont({q}) WITHIN GROUP (ORDER BY x) AS {name}" for name, q in QUANTILES)
        return head + (f"SELECT measure, period, unit_key, COUNT(*) AS n, {stats} "
                       "FROM samples GROUP BY measure, period, unit_key")
    # percentile_cont without percentile_cont: rank within each group, then interpolate
    # between the values at positions floor(h) and floor(h) + 1, h = (n - 1) * q.
    picks = []
    finals = []
    for name, q in QUANTILES:
        # q as a fraction num/den so floor(h) is integer division on both engines
        # (PostgreSQL's CAST(... AS INTEGER) rounds instead of truncating).
        num, den = round(q * 10), 10
        lo = f"(((n - 1) * {num}) / {den})"
        frac = f"((((n - 1) * {num}) % {den}) * 1.0 / {den})"
        picks.append(f"MAX(CASE WHEN rn = {lo} THEN x END) AS {name}_lo")
        picks.append(f"MAX(CASE WHEN rn = {lo} + 1 THEN x END) AS {name}_hi")
        finals.append(
            f"{name}_lo + {frac} * "
            f"(COALESCE({name}_hi, {name}_lo) - {name}_lo) AS {name}")
    return head + f""",
ranked AS (
    SELECT measure, period, unit_key, x,
           ROW_NUMBER() OVER (PARTITION BY measure, period, unit_key ORDER BY x) - 1 AS rn,
           COUNT(*) OVER (PARTITION BY measure, period, unit_key) AS n
    FROM samples
),
picked AS (
    SELECT measure, period, unit_key, MAX(n) AS n, {', '.join(picks)}
    FROM ranked GROUP BY measure, period, unit_key
)
SELECT measure, period, unit_key, n, {', '.join(finals)} FROM picked"""


def journeys_flags_sql(dialect: str, window: Window) -> str:
    """Safety net (journeys discharged in the periods) and flags raised in them, tidy."""
    group_key = "j.team_id" if window.group == "team" else "t.organisation_id"
    stepped = local_date(dialect, "j.stepped_up_at", window.first, window.slack_end)
    within = ("date(j.discharged_on, '+90 days')" if dialect == "sqlite"
              else "j.discharged_on + 90")
    return f"""
WITH members AS (SELECT organisation_id FROM alliance_member WHERE alliance_id = :alliance_id),
sn AS (
    SELECT
        CASE WHEN j.discharged_on >= :current_from THEN 'current' ELSE 'previous' END AS period,
        {_text(dialect, group_key)} AS group_key,
        CASE WHEN {stepped} BETWEEN j.discharged_on AND {within} THEN 'stepped-up'
             ELSE 'not-stepped-up' END AS outcome
    FROM journey j
    JOIN team t ON t.id = j.team_id
    WHERE j.discharged_on BETWEEN :previous_from AND :current_to
      AND t.organisation_id IN (SELECT organisation_id FROM members)
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
    SELECT 'safety-net' AS measure, period, group_key AS a, outcome AS b, COUNT(*) AS n
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


def run_counts(db: Session, window: Window) -> list[tuple[str, str, str, str, str, int]]:
    dialect = db.get_bind().dialect.name
    rows = db.execute(_bind(counts_sql(dialect, window), window)).all()
    rows += db.execute(_bind(journeys_flags_sql(dialect, window), window)).all()
    return [(m, p, str(a), str(b), str(c), int(n)) for m, p, a, b, c, n in rows]


def run_times(db: Session, window: Window, percentile: str | None = None) -> list[tuple]:
    dialect = db.get_bind().dialect.name
    rows = db.execute(_bind(times_sql(dialect, window, percentile), window)).all()
    return [(m, p, str(u), int(n), _num(med), _num(p90)) for m, p, u, n, med, p90 in rows]


def _num(value) -> float | None:
    return None if value is None else float(value)

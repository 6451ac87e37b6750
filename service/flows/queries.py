# ruff: noqa: S608 -- SQL is assembled from constants, column names and integers only;
# every value that comes from a request is a bound parameter.
"""The flows figures as SQL: grouping, grouping sets, window functions, percentiles.

Nothing here loads referral rows into Python. One statement returns every count as tidy
rows ``(measure, period, a, b, c, n)`` -- already summed in SQL, including the totals
(``'*'`` in a position means "all") -- and one more returns the medians and 90th
percentiles. Journeys (safety net) and flags have their own small statements.

Counting happens over ``base``: one row per referral of the alliance sent in either
period, with every dimension a figure needs computed once (period, referring group,
receiving unit, outcome, decision, first contact, working days, equality fields). A
dimension is NULL where it does not apply (e.g. ``contact`` only for accepted referrals),
so each grouping set simply drops its NULL group.

- PostgreSQL: one ``GROUP BY GROUPING SETS`` pass over ``base`` (hash aggregation of all
  sets in a single scan), and ``percentile_cont`` for the times.
- SQLite (no grouping sets, no percentile_cont): the same sets as ``UNION ALL`` of
  ``GROUP BY`` over a ``MATERIALIZED`` ``base``, and percentiles from ``ROW_NUMBER()`` /
  ``COUNT()`` windows with the same linear interpolation as percentile_cont
  (position (n - 1) * q, interpolating between the neighbouring values).

Working days use the lookup CTE of service.flows.calendar.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import sqlalchemy as sa
from sqlmodel import Session

from service.flows.calendar import Calendar, local_ymd, london_midnight_utc, ymd

GROUPS = ("offer", "organisation", "team")
NOT_RECORDED = "not-recorded"
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

    def calendar(self) -> Calendar:
        # Decisions and contacts come after sending: a year of slack past the later of the
        # period's end and today (capped so a far-future clock cannot grow it unbounded).
        end = max(self.last, min(self.as_of.date(), self.last + timedelta(days=3 * 366)))
        return Calendar(self.first, end + timedelta(days=366))


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


def _age_band(age: str) -> str:
    bands = [(18, "0-17"), (25, "18-24"), (35, "25-34"), (45, "35-44"), (55, "45-54"),
             (65, "55-64")]
    whens = " ".join(f"WHEN {age} < {limit} THEN '{label}'" for limit, label in bands)
    return f"CASE WHEN {age} IS NULL THEN '{NOT_RECORDED}' {whens} ELSE '65+' END"


def _dob_ymd(dialect: str) -> str:
    if dialect == "sqlite":
        return "CAST(strftime('%Y%m%d', p.date_of_birth) AS INTEGER)"
    return ("(EXTRACT(YEAR FROM p.date_of_birth) * 10000 + EXTRACT(MONTH FROM p.date_of_birth)"
            " * 100 + EXTRACT(DAY FROM p.date_of_birth))::integer")


def _text(dialect: str, expr: str) -> str:
    return f"CAST({expr} AS {'TEXT' if dialect == 'sqlite' else 'VARCHAR'})"


def base_cte(dialect: str, window: Window) -> str:
    """SQL for the ``working_day``, ``first_contact`` and ``base`` CTEs (no WITH keyword)."""
    first, last = window.first, window.calendar().last
    sent = local_ymd(dialect, "r.sent_at", first, last)
    decided = local_ymd(dialect, "r.decided_at", first, last)
    contacted = local_ymd(dialect, "fc.first_at", first, last)
    ref_key = "r.referring_team_id" if window.group == "team" else "t.organisation_id"
    unit_key = "r.receiving_organisation_id" if window.group == "organisation" else "r.offer_id"
    materialized = "MATERIALIZED " if dialect == "sqlite" else ""
    return f"""
{window.calendar().cte()},
members AS (SELECT organisation_id FROM alliance_member WHERE alliance_id = :alliance_id),
first_contact AS (
    SELECT c.referral_id, MIN(c.happened_at) AS first_at
    FROM contact c JOIN referral r ON r.id = c.referral_id
    WHERE c.outcome = 'attended' AND r.sent_at >= :lo AND r.sent_at < :hi
    GROUP BY c.referral_id
),
r0 AS (
    SELECT
        CASE WHEN r.sent_at >= :current_lo THEN 'current' ELSE 'previous' END AS period,
        {_text(dialect, ref_key)} AS ref_key,
        {_text(dialect, unit_key)} AS unit_key,
        r.status,
        r.reason_code,
        r.waitlist,
        r.decided_at,
        o.response_target_days AS target_days,
        sd.ymd AS sent_ymd,
        sd.idx AS sent_idx,
        dd.idx AS decided_idx,
        cd.idx AS contact_idx,
        fc.first_at,
        p.borough, p.sex, p.ethnic_category,
        (sd.ymd - {_dob_ymd(dialect)}) / 10000 AS age
    FROM referral r
    JOIN team t ON t.id = r.referring_team_id
    JOIN offer o ON o.id = r.offer_id
    JOIN person p ON p.id = r.person_id
    JOIN working_day sd ON sd.ymd = {sent}
    LEFT JOIN working_day dd ON dd.ymd = {decided}
    LEFT JOIN first_contact fc ON fc.referral_id = r.id
    LEFT JOIN working_day cd ON cd.ymd = {contacted}
    WHERE r.sent_at >= :lo AND r.sent_at < :hi
      AND t.organisation_id IN (SELECT organisation_id FROM members)
      AND r.receiving_organisation_id IN (SELECT organisation_id FROM members)
),
base AS {materialized}(
    SELECT
        period, ref_key, unit_key,
        CASE
            WHEN status = 'rejected' THEN 'declined'
            WHEN status IN ('draft', 'requested') THEN 'awaiting'
            WHEN status = 'cancelled' AND decided_at IS NULL THEN 'withdrawn'
            WHEN status = 'cancelled' THEN 'cancelled-after-acceptance'
            WHEN status = 'completed' THEN 'completed'
            WHEN status = 'failed' THEN 'failed'
            ELSE 'in-progress'
        END AS outcome,
        CASE
            WHEN status = 'rejected' THEN 'declined'
            WHEN status IN ('draft', 'requested') THEN 'undecided'
            WHEN status = 'cancelled' AND decided_at IS NULL THEN 'undecided'
            ELSE 'accepted'
        END AS decision,
        CASE
            WHEN status = 'rejected' THEN 'not-accepted'
            WHEN status IN ('draft', 'requested') THEN 'not-accepted'
            WHEN status = 'cancelled' AND decided_at IS NULL THEN 'not-accepted'
            ELSE 'accepted'
        END AS eq_decision,
        CASE WHEN status IN ('rejected', 'cancelled', 'failed') THEN status END AS closed_status,
        CASE WHEN status IN ('rejected', 'cancelled', 'failed')
             THEN COALESCE(reason_code, '{NOT_RECORDED}') END AS reason,
        CASE WHEN decided_idx IS NOT NULL THEN decided_idx - sent_idx END AS decision_days,
        CASE WHEN contact_idx IS NOT NULL AND decided_idx IS NOT NULL
                  AND status NOT IN ('rejected', 'draft', 'requested')
             THEN contact_idx - decided_idx END AS contact_days,
        CASE WHEN status NOT IN ('rejected', 'draft', 'requested')
                  AND NOT (status = 'cancelled' AND decided_at IS NULL)
             THEN CASE WHEN first_at IS NOT NULL THEN 'contacted' ELSE 'not-contacted' END
        END AS contact,
        CASE WHEN status NOT IN ('rejected', 'draft', 'requested')
                  AND NOT (status = 'cancelled' AND decided_at IS NULL)
             THEN CASE WHEN waitlist THEN 'waitlist' ELSE 'no-waitlist' END
        END AS waitlist,
        CASE WHEN status IN ('draft', 'requested') THEN NULL
             WHEN status = 'cancelled' AND decided_at IS NULL THEN NULL
             WHEN decided_idx IS NOT NULL AND decided_idx - sent_idx <= target_days
             THEN 'within' ELSE 'outside' END AS target,
        COALESCE(borough, '{NOT_RECORDED}') AS borough,
        COALESCE(sex, '{NOT_RECORDED}') AS sex,
        COALESCE(ethnic_category, '{NOT_RECORDED}') AS ethnic_category,
        {_age_band("age")} AS age_band,
        {_text(dialect, "sent_ymd / 100")} AS month
    FROM r0
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
    cal = window.calendar()
    first, last = window.first, cal.last
    group_key = "j.team_id" if window.group == "team" else "t.organisation_id"
    stepped = local_ymd(dialect, "j.stepped_up_at", first, last)
    discharged = ("CAST(strftime('%Y%m%d', j.discharged_on) AS INTEGER)" if dialect == "sqlite"
                  else "(EXTRACT(YEAR FROM j.discharged_on) * 10000 + EXTRACT(MONTH FROM "
                       "j.discharged_on) * 100 + EXTRACT(DAY FROM j.discharged_on))::integer")
    return f"""
WITH {cal.cte()},
members AS (SELECT organisation_id FROM alliance_member WHERE alliance_id = :alliance_id),
calendar_day AS (SELECT ymd, ROW_NUMBER() OVER (ORDER BY ymd) AS dayno FROM working_day),
sn AS (
    SELECT
        CASE WHEN dd.ymd >= :current_from THEN 'current' ELSE 'previous' END AS period,
        {_text(dialect, group_key)} AS group_key,
        CASE WHEN sd.dayno - dd.dayno BETWEEN 0 AND 90 THEN 'stepped-up'
             ELSE 'not-stepped-up' END AS outcome
    FROM journey j
    JOIN team t ON t.id = j.team_id
    JOIN calendar_day dd ON dd.ymd = {discharged}
    LEFT JOIN calendar_day sd ON sd.ymd = {stepped}
    WHERE j.discharged_on IS NOT NULL
      AND dd.ymd BETWEEN :previous_from AND :current_to
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
        "current_from": ymd(cur_from),
        "current_to": ymd(cur_to),
        "previous_from": ymd(prev_from),
        "as_of": window.as_of.astimezone(UTC).replace(tzinfo=None),
    }


def _bind(statement: str, window: Window) -> sa.TextClause:
    params = parameters(window)
    clause = sa.text(statement)
    binds = []
    for name, value in params.items():
        if f":{name}" not in statement:
            continue
        kind = sa.DateTime() if isinstance(value, datetime) else sa.Integer()
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

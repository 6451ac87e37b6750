"""A realistic alliance of any size for demos and benchmarks: `flask demo-data --scale N`.

`generate(engine, n, seed=...)` adds, on top of the small demo alliance (loaded first if
absent), about one trust per 50,000 referrals and three VCSE organisations per trust with
their teams, staff (who sign in with the demo password) and offers, all members of the demo
alliance; then people in the synthetic NHS-number range, each with consents, one step-down
journey and one to three referrals to different organisations (N referrals in all), with
referral events, contacts, notes and flags consistent with each referral's story
(service.demo_scale.stories).

Rows are generated and written in chunks of about CHUNK_REFERRALS referrals, so memory stays
flat whatever N is: psycopg COPY on PostgreSQL, multi-row executemany on SQLite. Then the
flows report's monthly and daily counts are rebuilt from the flow rows, the id sequences
moved past the generated ids (PostgreSQL) and the tables analysed. Everything is one
transaction: it is loaded completely or not at all. It refuses to run twice on one database
(`AlreadyGenerated`): the generated NHS numbers and names would collide, and a benchmark wants
a known size. The same seed and `as_of` give the same rows. No audit events or outbox messages
are generated: they record what people did in the app, and nobody did this. Nor are the
sweep's timer flags (not answered, no first contact, review overdue): the first sweep after
generating raises those due at `as_of`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlmodel import Session, select

from models import Organisation
from service.demo_scale.alliance import MARKER_ODS_CODE, build_alliance
from service.demo_scale.bulk import writer_for
from service.demo_scale.stories import EXPLICIT_IDS, TABLES, FastRandom, StoryTeller
from service.flows.facts import rebuild_flow_counts

__all__ = ["CHUNK_REFERRALS", "AlreadyGenerated", "ScaleSummary", "generate"]

CHUNK_REFERRALS = 5_000


class AlreadyGenerated(RuntimeError):
    """The database already holds scaled demo data."""


@dataclass
class ScaleSummary:
    referrals: int
    rows: dict[str, int] = field(default_factory=dict)
    organisations: int = 0


def generate(engine: sa.Engine, n: int, *, seed: int = 1, as_of: datetime | None = None,
             progress: Callable[[int], None] | None = None) -> ScaleSummary:
    """Add N generated referrals (with everything around them) in one transaction.

    `as_of` (aware; default: the start of today, UTC) is the end of the two years of history.
    `progress(k)` is called after each chunk with the number of referrals it added.
    """
    from service.demo import load_demo_data
    from service.people.demo import load_demo_offers_and_people

    if n < 1:
        raise ValueError("n must be at least 1")
    as_of = as_of or datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    rnd = FastRandom(seed)
    summary = ScaleSummary(referrals=n, rows=dict.fromkeys(TABLES, 0))
    with Session(engine) as db:
        if engine.dialect.name == "postgresql":
            # A bulk load, not a request: the app's statement timeout (DB_STATEMENT_TIMEOUT_MS)
            # would cancel the recount and ANALYZE of a million rows. This transaction only.
            db.exec(sa.text("SET LOCAL statement_timeout = 0"))
        demo = load_demo_data(db)
        demo.update(load_demo_offers_and_people(db, demo))
        if db.exec(select(Organisation.id).where(
                Organisation.ods_code == MARKER_ODS_CODE)).first() is not None:
            raise AlreadyGenerated("This database already holds scaled demo data; generate it "
                                   "into a fresh database.")
        before = db.scalar(sa.select(sa.func.count()).select_from(Organisation))
        alliance = build_alliance(db, demo, n, rnd)
        db.flush()
        summary.organisations = db.scalar(
            sa.select(sa.func.count()).select_from(Organisation)) - before
        connection = db.connection()
        first = {table: connection.execute(sa.text(
            f"SELECT COALESCE(MAX(id), 0) + 1 FROM {table}")).scalar_one()  # noqa: S608
            for table in EXPLICIT_IDS}
        writer = writer_for(connection)
        teller = StoryTeller(alliance, rnd, as_of, first)
        remaining = n
        while remaining:
            rows: dict[str, list] = {table: [] for table in TABLES}
            made = 0
            while remaining and made < CHUNK_REFERRALS:
                count = teller.person(rows, remaining)
                made += count
                remaining -= count
            for table, columns in TABLES.items():
                if rows[table]:
                    writer.write(table, columns, rows[table])
                    summary.rows[table] += len(rows[table])
            del rows
            if progress is not None:
                progress(made)
        rebuild_flow_counts(db)  # the flows report's monthly and daily counts, from the rows
        writer.finish(EXPLICIT_IDS, (*TABLES, "flow_month", "flow_day"))
        db.commit()
    return summary

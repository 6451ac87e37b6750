"""Benchmark: one sweep pass over 1,000,000 open referrals on PostgreSQL with nothing to raise.

    .venv/bin/python -m bench.sweep

Loads the data with COPY (50,000 people and journeys x 20 offers = 1,000,000 open referrals in
every open state, 200,000 contacts), ANALYZEs, then times `Sweep.run()` (candidate selection in
SQL with indexes, escalation, finishing journeys) a few times. Target: under 10 s a pass. It
also prints the plans of the candidate queries, to show they use indexes rather than scans.

Settings (environment): BENCH_DATABASE_URL (default
postgresql+psycopg://postgres@127.0.0.1:5432/stepdown_bench_sweep; created if missing, its
tables rebuilt), BENCH_SWEEP_PEOPLE (50000), BENCH_SWEEP_OFFERS (20), BENCH_SWEEP_RUNS (3),
BENCH_SWEEP_KEEP=1 to reuse loaded data.
"""

from __future__ import annotations

import os
import random
import statistics
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa

from bench import report

AS_OF = datetime(2027, 1, 4, 9, 0, tzinfo=UTC)  # a Monday morning
TARGET_SECONDS = 10.0
DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/stepdown_bench_sweep"


# --- shared with bench.flags ------------------------------------------------------------------

def ensure_database(url: str) -> None:
    target = sa.engine.make_url(url)
    if not target.drivername.startswith("postgresql"):
        raise SystemExit("This benchmark runs against PostgreSQL: set BENCH_DATABASE_URL.")
    admin = sa.create_engine(target.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        exists = connection.execute(sa.text("SELECT 1 FROM pg_database WHERE datname = :n"),
                                    {"n": target.database}).scalar()
        if not exists:
            connection.execute(sa.text(f'CREATE DATABASE "{target.database}"'))
    admin.dispose()


def reset_schema(engine: sa.Engine) -> None:
    import models

    models.metadata.drop_all(engine)
    with engine.begin() as connection:
        connection.execute(sa.text("DROP TABLE IF EXISTS alembic_version"))
    models.metadata.create_all(engine)


def naive(at: datetime) -> datetime:
    """COPY bypasses the UTCDateTime type: naive UTC, as the type stores it."""
    return at.astimezone(UTC).replace(tzinfo=None)


def copy_rows(engine: sa.Engine, table: str, columns: tuple[str, ...], rows) -> int:
    """COPY an iterable of tuples into a table; returns the row count."""
    count = 0
    raw = engine.raw_connection()
    try:
        with raw.cursor() as cursor:
            with cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
                    count += 1
        raw.commit()
    finally:
        raw.close()
    return count


def vacuum_analyze(engine: sa.Engine) -> None:
    with engine.execution_options(isolation_level="AUTOCOMMIT").connect() as c:
        c.execute(sa.text("VACUUM ANALYZE"))


def seed_directory(engine: sa.Engine) -> dict:
    """One trust with a CMHT (and its manager), one VCSE organisation with a team."""
    now = naive(AS_OF)
    with engine.begin() as c:
        trust = c.execute(sa.text(
            "INSERT INTO organisation (kind, name, ods_code, created_at) "
            "VALUES ('statutory', 'Bench Trust', 'RBN', :n) RETURNING id"), {"n": now}).scalar()
        vcse = c.execute(sa.text(
            "INSERT INTO organisation (kind, name, charity_number, created_at) "
            "VALUES ('vcse', 'Bench VCSE', '1234567', :n) RETURNING id"), {"n": now}).scalar()
        team = c.execute(sa.text(
            "INSERT INTO team (organisation_id, name, email, created_at) "
            "VALUES (:o, 'Bench CMHT', 'cmht@bench.test', :n) RETURNING id"),
            {"o": trust, "n": now}).scalar()
        vcse_team = c.execute(sa.text(
            "INSERT INTO team (organisation_id, name, email, created_at) "
            "VALUES (:o, 'Bench VCSE Team', 'vcse@bench.test', :n) RETURNING id"),
            {"o": vcse, "n": now}).scalar()
    return {"trust": trust, "vcse": vcse, "team": team, "vcse_team": vcse_team}


def copy_people_and_journeys(engine: sa.Engine, ids: dict, people: int,
                             review_due: date) -> None:
    now = naive(AS_OF)
    copy_rows(engine, "person",
              ("id", "nhs_number", "given_name", "family_name", "date_of_birth",
               "created_by_organisation_id", "version", "created_at", "updated_at"),
              ((i, f"{i:010d}", "Bench", f"Person {i}", date(1980, 1, 1) + timedelta(days=i % 9000),
                ids["trust"], 1, now, now) for i in range(1, people + 1)))
    copy_rows(engine, "journey",
              ("id", "person_id", "team_id", "status", "safety_net_days", "review_due",
               "version", "created_at", "updated_at"),
              ((i, i, ids["team"], "active", 90, review_due, 1, now, now)
               for i in range(1, people + 1)))
    with engine.begin() as c:
        for table in ("person", "journey"):
            c.execute(sa.text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "  # noqa: S608
                              f"(SELECT max(id) FROM {table}))"))  # fixed table names


# --- the sweep benchmark ----------------------------------------------------------------------

def load(engine: sa.Engine, people: int, offers: int) -> dict:
    rng = random.Random(4)
    reset_schema(engine)
    ids = seed_directory(engine)
    now = naive(AS_OF)
    with engine.begin() as c:
        offer_ids = [c.execute(sa.text(
            "INSERT INTO offer (organisation_id, name, description, capacity, response_target_days,"
            " status, version, created_at, updated_at) VALUES (:o, :name, '', 'capacity', :t, "
            "'active', 1, :n, :n) RETURNING id"),
            {"o": ids["vcse"], "name": f"Offer {j}", "t": (2, 5, 10)[j % 3], "n": now}).scalar()
            for j in range(offers)]
    copy_people_and_journeys(engine, ids, people, AS_OF.date() + timedelta(days=30))

    def referrals():
        rid = 0
        for person in range(1, people + 1):
            for offer in offer_ids:
                rid += 1
                roll = rid % 20
                sent = decided = first = None
                reason = None
                if roll < 8:  # requested, sent in the last 20 hours: within every target
                    status = "requested"
                    sent = now - timedelta(minutes=rng.randrange(1, 1200))
                elif roll < 11:  # accepted this week, half not contacted yet (within 10 days)
                    status = "accepted"
                    sent = now - timedelta(days=9)
                    decided = now - timedelta(hours=rng.randrange(1, 96))
                    first = decided + timedelta(hours=2) if rid % 2 else None
                elif roll < 19:  # in progress for a while, contacted
                    status = "in-progress"
                    sent = now - timedelta(days=60)
                    decided = now - timedelta(days=rng.randrange(20, 55))
                    first = decided + timedelta(days=1)
                else:
                    status, reason = "on-hold", "person-unwell"
                    sent, decided = now - timedelta(days=90), now - timedelta(days=80)
                    first = decided + timedelta(days=2)
                yield (rid, person, person, offer, ids["team"], ids["vcse"], status, reason, False,
                       1, now, now, sent, decided, first)

    started = time.perf_counter()
    count = copy_rows(engine, "referral",
                      ("id", "journey_id", "person_id", "offer_id", "referring_team_id",
                       "receiving_organisation_id", "status", "reason_code", "waitlist", "version",
                       "created_at", "updated_at", "sent_at", "decided_at", "first_contact_at"),
                      referrals())
    # Contacts: an attended and a missed contact on a tenth of the referrals (in progress).
    contacts = copy_rows(
        engine, "contact", ("referral_id", "outcome", "happened_at", "created_at"),
        (row for rid in range(1, count + 1) if rid % 20 in (12, 13)
         for row in ((rid, "attended", now - timedelta(days=10), now),
                     (rid, "did-not-attend", now - timedelta(days=3), now))))
    with engine.begin() as c:
        c.execute(sa.text("SELECT setval(pg_get_serial_sequence('referral', 'id'), :m)"),
                  {"m": count})
    vacuum_analyze(engine)
    print(f"loaded {count:,} open referrals and {contacts:,} contacts "
          f"in {time.perf_counter() - started:.1f} s")
    return ids


def explain(engine: sa.Engine) -> None:
    from service.jobs import sweep as sweep_module

    today = sweep_module.london_date(AS_OF)
    with engine.connect() as c:
        queries = [("not-answered", q) for q in sweep_module._not_answered_queries(
            _session(engine), today)]
        queries += [("no-first-contact", sweep_module._no_first_contact_query(today)),
                    ("missed-contacts", sweep_module._missed_contacts_query()),
                    ("review-overdue", sweep_module._review_overdue_query(today))]
        for name, query in queries:
            compiled = query.compile(dialect=c.dialect, compile_kwargs={"literal_binds": True})
            plan = [r[0] for r in c.execute(sa.text(f"EXPLAIN {compiled}"))]
            scans = sorted({line.strip().lstrip("-> ").split("  (cost")[0]
                            for line in plan if "Scan" in line})
            print(f"  plan {name:<17} {'; '.join(scans)}")


def _session(engine):
    from sqlmodel import Session

    return Session(engine)


def main() -> int:
    url = os.environ.get("BENCH_DATABASE_URL", DEFAULT_URL)
    people = int(os.environ.get("BENCH_SWEEP_PEOPLE", "50000"))
    offers = int(os.environ.get("BENCH_SWEEP_OFFERS", "20"))
    runs = int(os.environ.get("BENCH_SWEEP_RUNS", "3"))
    ensure_database(url)
    engine = sa.create_engine(url)
    loaded = 0
    if os.environ.get("BENCH_SWEEP_KEEP"):
        with engine.connect() as c:
            loaded = c.execute(sa.text("SELECT count(*) FROM referral")).scalar() or 0
    if loaded != people * offers:
        load(engine, people, offers)
    else:
        vacuum_analyze(engine)

    from sqlmodel import Session

    from service import create_app
    from service.jobs.sweep import Sweep

    workdir = Path(tempfile.mkdtemp(prefix="stepdown-bench-sweep-"))
    app = create_app({"ENV": "development", "DATABASE_URL": url, "LOG_LEVEL": "WARNING",
                      "SECRET_KEY": "bench-secret-key-bench-secret-key-0123456789",
                      "TOKEN_PRIVATE_KEY_FILE": str(workdir / "token-key.pem"),
                      "RATELIMIT_ENABLED": "false"})
    explain(engine)
    timings = []
    with app.app_context():
        app_engine = app.extensions["stepdown.engine"]
        for run in range(runs):
            started = time.perf_counter()
            summary = Sweep(lambda: Session(app_engine, expire_on_commit=False), AS_OF).run()
            elapsed = time.perf_counter() - started
            timings.append(elapsed)
            print(f"  sweep pass {run + 1}: {elapsed:.2f} s, {summary.total} change(s)")
            if summary.total:
                print("  unexpected: the pass raised or changed something", file=sys.stderr)
                return 1
    with engine.connect() as c:
        open_count = c.execute(sa.text(
            "SELECT count(*) FROM referral WHERE status IN "
            "('draft', 'requested', 'accepted', 'in-progress', 'on-hold')")).scalar()
    best, median = min(timings), statistics.median(timings)
    verdict = "OK" if median < TARGET_SECONDS else "SLOW"
    print(f"sweep over {open_count:,} open referrals, nothing to raise: median {median:.2f} s, "
          f"best {best:.2f} s (target < {TARGET_SECONDS:.0f} s) {verdict}")
    report.record(f"sweep pass, {open_count:,} open referrals (median of {runs})", median, "s",
                  f"< {TARGET_SECONDS:.0f} s", median < TARGET_SECONDS)
    return 0 if median < TARGET_SECONDS else 1


if __name__ == "__main__":
    raise SystemExit(main())

# ruff: noqa: S608 -- table names are constants of this script
"""Flows benchmark: `python -m bench.flows --referrals N` against DATABASE_URL (PostgreSQL).

Bulk-generates N referrals (~5 events each, contacts for accepted ones) for the demo alliance
with COPY, then times the flows figures for a one-year range (with peak Python memory via
tracemalloc) and the flows PDF. Use a scratch database: the generated rows are kept (so
--measure-only can time them again).
"""

from __future__ import annotations

import argparse
import io
import os
import random
import tempfile
import time
import tracemalloc
from datetime import UTC, date, datetime, timedelta

import sqlalchemy as sa
from sqlmodel import Session, select

import models
from models import Alliance, Offer, Team


def _copy(connection, table: str, columns: list[str], rows) -> None:
    buffer = io.StringIO()
    for row in rows:
        buffer.write("\t".join("\\N" if v is None else str(v) for v in row) + "\n")
    raw = connection.connection.dbapi_connection
    with raw.cursor() as cursor, cursor.copy(
            f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
        copy.write(buffer.getvalue())


def generate(engine, n: int, seed: int = 7) -> None:
    rnd = random.Random(seed)
    with Session(engine) as db:
        from service.demo import load_demo_data

        demo = load_demo_data(db)
        db.commit()
        orgs = demo["organisations"]
        offers = db.exec(select(Offer)).all()
        if len(offers) < 3:
            for key, name in (("vcse-a", "Peer mentoring"), ("vcse-b", "Resilience group"),
                              ("vcse-c", "Work coaching")):
                db.add(Offer(organisation_id=orgs[key].id, name=name,
                             response_target_days=rnd.choice([2, 5, 10])))
            db.commit()
            offers = db.exec(select(Offer)).all()
        teams = [t for t in db.exec(select(Team)).all()
                 if t.organisation_id in (orgs["trust-a"].id, orgs["trust-b"].id)]
        offer_org = {o.id: o.organisation_id for o in offers}
        offer_ids = [o.id for o in offers]
    end = datetime(2026, 12, 31, tzinfo=UTC)
    start = end - timedelta(days=730)
    boroughs = ["Brent", "Harrow", "Lambeth", "Camden", "Ealing", None]
    with engine.begin() as conn:
        first_person = conn.execute(sa.text("SELECT COALESCE(MAX(id), 0) + 1 FROM person")).scalar()
        first_journey = conn.execute(sa.text("SELECT COALESCE(MAX(id), 0) + 1 FROM journey")).scalar()
        first_referral = conn.execute(sa.text("SELECT COALESCE(MAX(id), 0) + 1 FROM referral")).scalar()
        people_n = n  # one person per referral: at most one open referral per person and offer
        now = datetime.now(UTC).replace(tzinfo=None)
        _copy(conn, "person", ["id", "nhs_number", "given_name", "family_name", "date_of_birth",
                               "borough", "sex", "ethnic_category", "version", "created_at",
                               "updated_at"],
              ((first_person + i, f"{8000000000 + first_person + i}", "Bench", "Person",
                date(1950 + i % 55, 1 + i % 12, 1 + i % 28), rnd.choice(boroughs),
                rnd.choice(["male", "female", None]), rnd.choice("ABCDHJ"), 1, now, now)
               for i in range(people_n)))
        _copy(conn, "journey", ["id", "person_id", "team_id", "status", "safety_net_days",
                                "version", "created_at", "updated_at", "discharged_on",
                                "safety_net_ends", "stepped_up_at"],
              ((first_journey + i, first_person + i, teams[i % len(teams)].id, "active", 90, 1,
                now, now, (start + timedelta(days=i % 700)).date() if i % 3 == 0 else None,
                (start + timedelta(days=i % 700 + 90)).date() if i % 3 == 0 else None,
                (start + timedelta(days=i % 700 + 30)).replace(tzinfo=None) if i % 9 == 0
                else None)
               for i in range(people_n)))
        statuses = (["requested"] * 1 + ["rejected"] * 2 + ["in-progress"] * 3
                    + ["completed"] * 3 + ["cancelled"] * 1 + ["failed"] * 1)
        reasons = {"rejected": "no-capacity", "cancelled": "no-longer-needed",
                   "failed": "could-not-engage"}
        referrals, events, contacts = [], [], []
        for i in range(n):
            rid = first_referral + i
            person = i % people_n
            offer = rnd.choice(offer_ids)
            sent = (start + timedelta(minutes=rnd.randrange(730 * 24 * 60))).replace(tzinfo=None)
            status = rnd.choice(statuses)
            decided = sent + timedelta(hours=rnd.randrange(1, 400)) if status not in (
                "requested", "cancelled") else None
            referrals.append((rid, first_journey + person, first_person + person, offer,
                              teams[person % len(teams)].id, offer_org[offer], status,
                              reasons.get(status), "false", 1, sent, sent, decided, sent))
            events.append((rid, "send", "draft", "requested", sent))
            t = decided or sent + timedelta(days=1)
            follow = {"rejected": ["decline"], "requested": ["note", "note"],
                      "cancelled": ["cancel", "note"]}.get(status, ["accept", "start", "complete"])
            for k, action in enumerate(follow + ["note"] * (4 - len(follow))):
                events.append((rid, action, "requested", status, t + timedelta(hours=k)))
            if decided is not None and status != "rejected":
                contacts.append((rid, "attended", decided + timedelta(days=rnd.randrange(1, 15)),
                                 now))
        _copy(conn, "referral", ["id", "journey_id", "person_id", "offer_id", "referring_team_id",
                                 "receiving_organisation_id", "status", "reason_code", "waitlist",
                                 "version", "created_at", "sent_at", "decided_at", "updated_at"],
              referrals)
        del referrals
        _copy(conn, "referral_event", ["referral_id", "action", "from_status", "to_status", "at"],
              events)
        del events
        _copy(conn, "contact", ["referral_id", "outcome", "happened_at", "created_at"], contacts)
        for table in ("person", "journey", "referral"):
            conn.execute(sa.text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                                 f"(SELECT MAX(id) FROM {table}))"))
        conn.execute(sa.text("ANALYZE"))


def measure(url: str, n: int) -> None:
    from service import create_app
    from service.clock import FrozenClock
    from service.flows import operations as ops
    from service.flows.report import flows_pdf

    engine = sa.create_engine(url)
    models.metadata.create_all(engine)
    if n:
        t0 = time.perf_counter()
        generate(engine, n)
        print(f"generated {n:,} referrals (~{5 * n:,} events) in "
              f"{time.perf_counter() - t0:.1f} s")
    clock = FrozenClock(datetime(2027, 1, 4, 9, tzinfo=UTC))
    app = create_app({"DATABASE_URL": url, "clock": clock,
                      "SECRET_KEY": os.environ.get("SECRET_KEY", "bench-" * 8),
                      "TOKEN_PRIVATE_KEY_FILE": os.environ.get(
                          "TOKEN_PRIVATE_KEY_FILE",
                          os.path.join(tempfile.gettempdir(), "stepdown-bench-key.pem"))})
    with app.test_request_context(), Session(app.extensions["stepdown.engine"]) as db:
        alliance = db.exec(select(Alliance)).first()
        window = ops.make_window(alliance.id, date(2026, 1, 1), date(2026, 12, 31), "offer",
                                 clock.now())
        ops.build_report(db, window, alliance)  # warm up caches
        tracemalloc.start()
        t0 = time.perf_counter()
        report = ops.build_report(db, window, alliance)
        api_s = time.perf_counter() - t0
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        report["generated_by"] = "bench"
        t0 = time.perf_counter()
        pdf = flows_pdf(report)
        pdf_s = time.perf_counter() - t0
    print(f"flows API (one year, {report['flow_matrix']['total']['current']} referrals): "
          f"{api_s:.3f} s, peak Python memory {peak / 1e6:.1f} MB")
    print(f"flows PDF: {pdf_s:.3f} s ({len(pdf) / 1e3:.0f} kB)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--referrals", type=int, default=100_000)
    parser.add_argument("--measure-only", action="store_true",
                        help="time the rows already there; generate nothing")
    args = parser.parse_args()
    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith("postgresql"):
        raise SystemExit("set DATABASE_URL to a PostgreSQL database")
    measure(url, 0 if args.measure_only else args.referrals)


if __name__ == "__main__":
    main()

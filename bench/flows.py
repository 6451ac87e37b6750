# ruff: noqa: S608 -- table names are constants of this script
"""Flows benchmark: `python -m bench.flows --referrals N` against DATABASE_URL (PostgreSQL).

Bulk-generates N referrals (~5 events each, an attended contact for most accepted ones, a
flow row each) for the demo alliance with COPY, recounts the monthly and daily flow counts in SQL,
then times through the HTTP API, signed in
as the demo users:

- the flows API for a one-year range (GET /api/v1/flows), and its peak Python memory;
- the flows PDF for the same range (GET /api/v1/flows.pdf);
- one referral's handover pack (GET /api/v1/referrals/{id}/handover.pdf).

Each is run --repeat times; the best and the median are printed with the target. Use a
scratch database: the generated rows are kept, so --measure-only can time them again.
"""

from __future__ import annotations

import argparse
import io
import os
import random
import resource
import statistics
import tempfile
import time
import tracemalloc
from datetime import UTC, date, datetime, timedelta

import sqlalchemy as sa
from sqlmodel import Session, select

import models
from bench import report
from models import Alliance, Offer, Team
from models.flows import FlowInputs, flow_values
from models.working_days import is_working_day

TARGETS = {"api_s": 1.0, "api_mb": 200.0, "pdf_s": 5.0, "handover_s": 1.0}
PERIOD = (date(2026, 1, 1), date(2026, 12, 31))
CUT_PERIOD = (date(2025, 12, 15), date(2026, 12, 14))
BATCH = 50_000
DEMO_PASSWORD = "stepdown-demo"  # noqa: S105 - the demo users' published password


def _copy(connection, table: str, columns: list[str], rows) -> None:
    buffer = io.StringIO()
    for row in rows:
        buffer.write("\t".join("\\N" if v is None else str(v) for v in row) + "\n")
    raw = connection.connection.dbapi_connection
    with raw.cursor() as cursor, cursor.copy(
            f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
        copy.write(buffer.getvalue())


def _working_day_ordinals(first: date, last: date) -> dict[date, int]:
    """date -> working days on or before it, so b - a is models.working_days_between(a, b)."""
    out, n, d = {}, 0, first
    while d <= last:
        n += is_working_day(d)
        out[d] = n
        d += timedelta(days=1)
    return out


def _setup(engine, rnd: random.Random) -> tuple[list[Team], dict[int, int], dict[int, int]]:
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
        return teams, {o.id: o.organisation_id for o in offers}, {t.id: t.organisation_id
                                                                   for t in teams}


def generate(engine, n: int, seed: int = 7) -> None:
    """N referrals over the two years to the end of 2026, written by COPY in batches."""
    rnd = random.Random(seed)
    teams, offer_org, team_org = _setup(engine, rnd)
    offer_ids = sorted(offer_org)
    end = datetime(2026, 12, 31, tzinfo=UTC)
    start = end - timedelta(days=730)
    ordinal = _working_day_ordinals(start.date() - timedelta(days=5), date(2027, 12, 31))

    def days_between(a: date, b: date) -> int:
        return ordinal[b] - ordinal[a]

    boroughs = ["Brent", "Harrow", "Lambeth", "Camden", "Ealing", None]
    statuses = (["requested"] * 1 + ["rejected"] * 2 + ["in-progress"] * 3
                + ["completed"] * 3 + ["cancelled"] * 1 + ["failed"] * 1)
    reasons = {"rejected": "no-capacity", "cancelled": "no-longer-needed",
               "failed": "could-not-engage"}
    now = datetime.now(UTC).replace(tzinfo=None)
    with engine.begin() as conn:
        def next_id(table: str) -> int:
            return conn.execute(sa.text(f"SELECT COALESCE(MAX(id), 0) + 1 FROM {table}")).scalar()

        first_person, first_journey = next_id("person"), next_id("journey")
        first_referral = next_id("referral")
        for lo in range(0, n, BATCH):
            people, journeys, referrals, events, contacts, flows = [], [], [], [], [], []
            for i in range(lo, min(n, lo + BATCH)):
                # One person and journey per referral: at most one open referral per offer.
                pid, jid, rid = first_person + i, first_journey + i, first_referral + i
                born = date(1950 + i % 55, 1 + i % 12, 1 + i % 28)
                borough, sex = rnd.choice(boroughs), rnd.choice(["male", "female", None])
                ethnic = rnd.choice("ABCDHJ")
                people.append((pid, f"{8000000000 + pid}", "Bench", "Person", born, borough,
                               sex, ethnic, 1, now, now))
                team = teams[i % len(teams)]
                discharged = (start + timedelta(days=i % 700)).date() if i % 3 == 0 else None
                journeys.append((
                    jid, pid, team.id, "active", 90, 1, now, now, discharged,
                    discharged + timedelta(days=90) if discharged else None,
                    (start + timedelta(days=i % 700 + 30)).replace(tzinfo=None)
                    if i % 9 == 0 else None))
                offer = rnd.choice(offer_ids)
                sent = start + timedelta(minutes=rnd.randrange(730 * 24 * 60))
                status = rnd.choice(statuses)
                decided = sent + timedelta(hours=rnd.randrange(1, 400)) if status not in (
                    "requested", "cancelled") else None
                waitlist = decided is not None and status != "rejected" and rnd.random() < 0.1
                contact = (decided + timedelta(days=rnd.randrange(1, 15))
                           if decided is not None and status != "rejected"
                           and rnd.random() < 0.85 else None)
                naive = {k: v.replace(tzinfo=None) if v else None
                         for k, v in (("sent", sent), ("decided", decided), ("contact", contact))}
                referrals.append((rid, jid, pid, offer, team.id, offer_org[offer], status,
                                  reasons.get(status), str(waitlist).lower(), 1, naive["sent"],
                                  naive["sent"], naive["decided"], naive["contact"],
                                  naive["sent"]))
                events.append((rid, "send", "draft", "requested", naive["sent"]))
                t = naive["decided"] or naive["sent"] + timedelta(days=1)
                follow = {"rejected": ["decline"], "requested": ["note", "note"],
                          "cancelled": ["cancel", "note"]}.get(status,
                                                               ["accept", "start", "complete"])
                for k, action in enumerate(follow + ["note"] * (4 - len(follow))):
                    events.append((rid, action, "requested", status, t + timedelta(hours=k)))
                if contact is not None:
                    contacts.append((rid, "attended", naive["contact"], now))
                values = flow_values(FlowInputs(
                    status=status, reason_code=reasons.get(status), waitlist=waitlist,
                    sent_at=sent, decided_at=decided, first_attended_at=contact,
                    borough=borough, sex=sex, ethnic_category=ethnic, date_of_birth=born),
                    days_between)
                flows.append((rid, pid, values["sent_on"], values["sent_month"], team.id,
                              team_org[team.id], offer, offer_org[offer], values["outcome"],
                              values["reason"], str(values["waitlist"]).lower(),
                              str(values["contacted"]).lower(), values["decision_days"],
                              values["contact_days"], values["borough"], values["sex"],
                              values["ethnic_category"], values["age_band"]))
            _copy(conn, "person", ["id", "nhs_number", "given_name", "family_name",
                                   "date_of_birth", "borough", "sex", "ethnic_category",
                                   "version", "created_at", "updated_at"], people)
            _copy(conn, "journey", ["id", "person_id", "team_id", "status", "safety_net_days",
                                    "version", "created_at", "updated_at", "discharged_on",
                                    "safety_net_ends", "stepped_up_at"], journeys)
            _copy(conn, "referral", ["id", "journey_id", "person_id", "offer_id",
                                     "referring_team_id", "receiving_organisation_id", "status",
                                     "reason_code", "waitlist", "version", "created_at",
                                     "sent_at", "decided_at", "first_contact_at", "updated_at"],
                  referrals)
            _copy(conn, "referral_event", ["referral_id", "action", "from_status", "to_status",
                                           "at"], events)
            _copy(conn, "contact", ["referral_id", "outcome", "happened_at", "created_at"],
                  contacts)
            _copy(conn, "referral_flow", [
                "referral_id", "person_id", "sent_on", "sent_month", "referring_team_id",
                "referring_organisation_id", "offer_id", "receiving_organisation_id", "outcome",
                "reason", "waitlist", "contacted", "decision_days", "contact_days", "borough",
                "sex", "ethnic_category", "age_band"], flows)
            print(f"  {min(n, lo + BATCH):,} referrals written", flush=True)
        for table in ("person", "journey", "referral"):
            conn.execute(sa.text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                                 f"(SELECT MAX(id) FROM {table}))"))
    t0 = time.perf_counter()
    with Session(engine) as db:
        from service.flows.facts import rebuild_flow_counts

        rebuild_flow_counts(db)  # the monthly and daily counts of the flow rows, in SQL
        db.commit()
    print(f"  monthly and daily flow counts rebuilt in {time.perf_counter() - t0:.1f} s",
          flush=True)
    with engine.connect() as conn:
        conn.execution_options(isolation_level="AUTOCOMMIT").execute(sa.text("VACUUM ANALYZE"))


def _timed(call, repeat: int) -> list[float]:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        call()
        times.append(time.perf_counter() - t0)
    return times


def _line(label: str, values: list[float], target: float, unit: str, digits: int = 3) -> str:
    best, median = min(values), statistics.median(values)
    verdict = "met" if median < target else ("met at best only" if best < target else "MISSED")
    return (f"{label:<34} best {best:.{digits}f} {unit}, median {median:.{digits}f} {unit} "
            f"over {len(values)} runs; target < {target:g} {unit}: {verdict}")


def measure(url: str, n: int, repeat: int) -> None:
    from service import create_app
    from service.clock import FrozenClock

    engine = sa.create_engine(url)
    models.metadata.create_all(engine)
    if n:
        t0 = time.perf_counter()
        generate(engine, n)
        print(f"generated {n:,} referrals (~{5 * n:,} events) in "
              f"{time.perf_counter() - t0:.1f} s")
    clock = FrozenClock(datetime(2027, 1, 4, 9, tzinfo=UTC))
    app = create_app({"DATABASE_URL": url, "clock": clock, "ENV": "test",
                      "WTF_CSRF_ENABLED": False, "RATELIMIT_ENABLED": False,
                      "SECRET_KEY": os.environ.get("SECRET_KEY", "bench-" * 8),
                      "TOKEN_PRIVATE_KEY_FILE": os.environ.get(
                          "TOKEN_PRIVATE_KEY_FILE",
                          os.path.join(tempfile.gettempdir(), "stepdown-bench-key.pem"))})
    with Session(app.extensions["stepdown.engine"]) as db:
        alliance_id = db.exec(select(Alliance.id).order_by(Alliance.id)).first()
        total = db.scalar(sa.text("SELECT COUNT(*) FROM referral"))
        events = db.scalar(sa.text("SELECT COUNT(*) FROM referral_event"))
        demo_referrals = db.exec(sa.text(
            "SELECT id FROM referral WHERE sent_at IS NOT NULL ORDER BY id LIMIT 20")).all()

    def signed_in(email: str):
        client = app.test_client()
        response = client.post("/login", data={"email": email, "password": DEMO_PASSWORD})
        if response.status_code != 302:
            raise SystemExit(f"could not sign in as {email}: {response.status_code}")
        return client

    manager = signed_in("contracts@demo.stepdown.test")
    coordinator = signed_in("coordinator@demo.stepdown.test")
    query = f"alliance={alliance_id}&from={PERIOD[0]}&to={PERIOD[1]}"

    def get(client, path: str, mimetype: str) -> bytes:
        response = client.get(path)
        if response.status_code != 200 or response.mimetype != mimetype:
            raise SystemExit(f"{path}: {response.status_code} {response.get_data()[:300]!r}")
        return response.data

    handover = next((f"/api/v1/referrals/{rid}/handover.pdf" for (rid,) in demo_referrals
                     if coordinator.get(f"/api/v1/referrals/{rid}/handover.pdf").status_code
                     == 200), None)
    if handover is None:
        raise SystemExit("no demo referral the coordinator may print")
    rss_before_api = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e3  # kB on Linux
    body = manager.get(f"/api/v1/flows?{query}").get_json()  # warm up caches and plans
    api = _timed(lambda: get(manager, f"/api/v1/flows?{query}", "application/json"), repeat)
    peaks = []
    for _ in range(max(1, repeat // 2)):
        tracemalloc.start()
        get(manager, f"/api/v1/flows?{query}", "application/json")
        peaks.append(tracemalloc.get_traced_memory()[1] / 1e6)
        tracemalloc.stop()
    rss_after_api = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e3  # kB on Linux
    # For context (no target): a year that cuts months, whose cut days are read from the
    # daily counts rather than the monthly ones.
    cut_query = f"alliance={alliance_id}&from={CUT_PERIOD[0]}&to={CUT_PERIOD[1]}"
    get(manager, f"/api/v1/flows?{cut_query}", "application/json")
    cut = _timed(lambda: get(manager, f"/api/v1/flows?{cut_query}", "application/json"),
                 repeat)
    pdf_size = len(get(manager, f"/api/v1/flows.pdf?{query}", "application/pdf"))
    pdf = _timed(lambda: get(manager, f"/api/v1/flows.pdf?{query}", "application/pdf"), repeat)
    get(coordinator, handover, "application/pdf")
    pack = _timed(lambda: get(coordinator, handover, "application/pdf"), repeat)

    print(f"database: {total:,} referrals, {events:,} referral events; one-year range "
          f"{PERIOD[0]} to {PERIOD[1]}: {body['flow_matrix']['total']['current']:,} referrals "
          f"(previous year {body['flow_matrix']['total']['previous']:,})")
    print(_line("flows API (one year)", api, TARGETS["api_s"], "s"))
    print(_line("flows API peak Python memory", peaks, TARGETS["api_mb"], "MB", 1))
    print(f"{'':<34} process max RSS {rss_before_api:.0f} MB before the API runs (the app, "
          f"its libraries, sign-in), {rss_after_api:.0f} MB after them, "
          f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e3:.0f} MB at the end")
    print(_line(f"flows PDF ({pdf_size / 1e3:.0f} kB)", pdf, TARGETS["pdf_s"], "s"))
    print(_line("handover pack PDF", pack, TARGETS["handover_s"], "s"))
    print(f"{'flows API, a year cutting months':<34} best {min(cut):.3f} s, median "
          f"{statistics.median(cut):.3f} s ({CUT_PERIOD[0]} to {CUT_PERIOD[1]}; no target)")
    scale = f"{total:,} referrals"
    for name, values, target, unit in (
            (f"flows API, one year, {scale} (median)", api, TARGETS["api_s"], "s"),
            (f"flows API peak Python memory, {scale}", peaks, TARGETS["api_mb"], "MB"),
            (f"flows PDF, one year, {scale} (median)", pdf, TARGETS["pdf_s"], "s"),
            (f"handover pack PDF, {scale} (median)", pack, TARGETS["handover_s"], "s")):
        median = statistics.median(values)
        report.record(name, median, unit, f"< {target:g} {unit}", median < target)
    report.record(f"flows API, a year cutting months, {scale} (median)",
                  statistics.median(cut), "s")


SUITE_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/stepdown_bench_flows"


def run() -> None:
    """For `python -m bench`: the same measurements at BENCH_FLOWS_REFERRALS (1,000,000) in
    BENCH_FLOWS_DATABASE_URL (created if missing). The data is generated only when the
    database does not already hold that many referrals; otherwise its tables are rebuilt and
    filled again. BENCH_FLOWS_REPEAT (5) runs of each measurement."""
    from bench.sweep import ensure_database, reset_schema

    url = os.environ.get("BENCH_FLOWS_DATABASE_URL", SUITE_URL)
    n = int(os.environ.get("BENCH_FLOWS_REFERRALS", "1000000"))
    repeat = int(os.environ.get("BENCH_FLOWS_REPEAT", "5"))
    ensure_database(url)
    engine = sa.create_engine(url)
    with engine.connect() as connection:
        have = (connection.execute(sa.text("SELECT COUNT(*) FROM referral")).scalar()
                if sa.inspect(connection).has_table("referral") else 0)
    if have < n:
        reset_schema(engine)
    engine.dispose()
    measure(url, 0 if have >= n else n, repeat)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--referrals", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=5, help="runs of each measurement")
    parser.add_argument("--measure-only", action="store_true",
                        help="time the rows already there; generate nothing")
    args = parser.parse_args()
    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith("postgresql"):
        raise SystemExit("set DATABASE_URL to a PostgreSQL database")
    measure(url, 0 if args.measure_only else args.referrals, args.repeat)


if __name__ == "__main__":
    main()

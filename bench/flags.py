"""Benchmark: the duty queue's first page with 10,000 open flags, on PostgreSQL.

    .venv/bin/python -m bench.flags

Loads 10,000 open flags routed to one CMHT (plus 10,000 of another team and 10,000 resolved
ones, so the query must select), then times `GET /api/v1/flags?status=open` (first
page, 25 items, signed in as the team's duty clinician; each request also writes its 25 audit
events) through the whole Flask stack in-process. Reports p50 / p95; target: p95 under 50 ms.

Settings (environment): BENCH_DATABASE_URL (default
postgresql+psycopg://postgres@127.0.0.1:5432/stepdown_bench_flags; created if missing, its
tables rebuilt), BENCH_FLAGS (10000), BENCH_FLAGS_REQUESTS (300).
"""

from __future__ import annotations

import os
import random
import statistics
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import sqlalchemy as sa

from bench import report
from bench.sweep import (
    AS_OF,
    copy_people_and_journeys,
    copy_rows,
    ensure_database,
    naive,
    reset_schema,
    seed_directory,
    vacuum_analyze,
)

DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/stepdown_bench_flags"
TARGET_P95_MS = 50.0
EMAIL, PASSWORD = "duty@bench.test", "bench-password-1"


def load(engine: sa.Engine, flags: int) -> dict:
    from service.auth.passwords import hash_password

    rng = random.Random(7)
    reset_schema(engine)
    ids = seed_directory(engine)
    now = naive(AS_OF)
    with engine.begin() as c:
        other_team = c.execute(sa.text(
            "INSERT INTO team (organisation_id, name, email, created_at) "
            "VALUES (:o, 'Other CMHT', 'other@bench.test', :n) RETURNING id"),
            {"o": ids["trust"], "n": now}).scalar()
        user = c.execute(sa.text(
            "INSERT INTO app_user (email, display_name, password_hash, is_active, failed_logins,"
            " created_at) VALUES (:e, 'Bench Duty', :h, true, 0, :n) RETURNING id"),
            {"e": EMAIL, "h": hash_password(PASSWORD), "n": now}).scalar()
        c.execute(sa.text(
            "INSERT INTO membership (user_id, organisation_id, team_id, role, is_team_manager,"
            " created_at) VALUES (:u, :o, :t, 'duty_clinician', true, :n)"),
            {"u": user, "o": ids["trust"], "t": ids["team"], "n": now})
    people = flags * 3
    copy_people_and_journeys(engine, ids, people, AS_OF.date() + timedelta(days=30))
    urgencies = ("emergency", "urgent", "routine")

    def rows():
        for i in range(1, people + 1):
            mine = i <= flags  # the team's open queue; then another team's; then history
            status = "open" if mine else ("acknowledged" if i % 5 == 0 else "open")
            if i > 2 * flags:
                status = "resolved"
            urgency = urgencies[rng.randrange(3)]
            raised = now - timedelta(minutes=rng.randrange(1, 60 * 24 * 20))
            due = raised + {"emergency": timedelta(hours=1), "urgent": timedelta(hours=8),
                            "routine": timedelta(days=2)}[urgency]
            yield (i, i, i, "review-overdue", urgency, f"review-overdue:j{i}",
                   ids["team"] if mine or i > 2 * flags else other_team,
                   status, raised, due, "no-action" if status == "resolved" else None,
                   raised if status == "resolved" else None, 1)

    copy_rows(engine, "flag",
              ("id", "person_id", "journey_id", "trigger", "urgency", "dedupe_key",
               "routed_team_id", "status", "raised_at", "acknowledgement_due", "outcome",
               "resolved_at", "version"), rows())
    with engine.begin() as c:
        c.execute(sa.text("SELECT setval(pg_get_serial_sequence('flag', 'id'), :m)"),
                  {"m": people})
    vacuum_analyze(engine)
    return ids


def main() -> int:
    url = os.environ.get("BENCH_DATABASE_URL", DEFAULT_URL)
    flags = int(os.environ.get("BENCH_FLAGS", "10000"))
    requests = int(os.environ.get("BENCH_FLAGS_REQUESTS", "300"))
    ensure_database(url)
    engine = sa.create_engine(url)
    load(engine, flags)

    from service import create_app

    workdir = Path(tempfile.mkdtemp(prefix="stepdown-bench-flags-"))
    app = create_app({"ENV": "development", "DATABASE_URL": url, "LOG_LEVEL": "WARNING",
                      "SECRET_KEY": "bench-secret-key-bench-secret-key-0123456789",
                      "TOKEN_PRIVATE_KEY_FILE": str(workdir / "token-key.pem"),
                      "RATELIMIT_ENABLED": "false", "WTF_CSRF_ENABLED": "false"})
    client = app.test_client()
    signed_in = client.post("/login", data={"email": EMAIL, "password": PASSWORD})
    if signed_in.status_code != 302:
        print(f"could not sign in: {signed_in.status_code}")
        return 1
    with engine.connect() as c:
        open_mine = c.execute(sa.text(
            "SELECT count(*) FROM flag f JOIN membership m ON m.team_id = f.routed_team_id "
            "WHERE f.status = 'open'")).scalar()
    for _ in range(20):  # warm up
        client.get("/api/v1/flags?status=open")
    timings = []
    for _ in range(requests):
        started = time.perf_counter()
        response = client.get("/api/v1/flags?status=open")
        timings.append((time.perf_counter() - started) * 1000)
        if response.status_code != 200 or len(response.get_json()["items"]) != 25:
            print(f"unexpected answer {response.status_code}")
            return 1
    timings.sort()
    p50 = statistics.median(timings)
    p95 = timings[int(len(timings) * 0.95) - 1]
    verdict = "OK" if p95 < TARGET_P95_MS else "SLOW"
    print(f"duty queue first page ({open_mine:,} open flags for the team, {flags * 3:,} in all): "
          f"p50 {p50:.1f} ms, p95 {p95:.1f} ms over {requests} requests "
          f"(target p95 < {TARGET_P95_MS:.0f} ms) {verdict}")
    report.record(f"duty queue first page, {open_mine:,} open flags: p50", p50, "ms")
    report.record(f"duty queue first page, {open_mine:,} open flags: p95", p95, "ms",
                  f"< {TARGET_P95_MS:.0f} ms", p95 < TARGET_P95_MS)
    return 0 if p95 < TARGET_P95_MS else 1


if __name__ == "__main__":
    raise SystemExit(main())

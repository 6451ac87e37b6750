"""API benchmarks under gunicorn against PostgreSQL, with the ceiling measured in the same run.

The database holds BENCH_INBOX_ROWS (100,000) sent referrals, with statistics, before anything is
measured. Throughput is measured in BENCH_ROUNDS rounds (3), each of three phases back to back:
1. A bare Flask endpoint doing one INSERT (`bench.ceiling`), served by gunicorn with the same
   settings file (`gunicorn.conf.py`, so the same worker count) and pool size, driven by the
   same client: the ceiling of one write per request on this machine.
2. Create-and-send: `POST /api/v1/referrals` then `POST /api/v1/referrals/{id}/send` (If-Match)
   for people with consent, as the trust's EPR API client (bearer token). Throughput counts
   HTTP requests, both POSTs of each pair (referrals/s is half of it, printed beside).
3. Accept: `POST /api/v1/referrals/{id}/accept` (If-Match) as the VCSE organisation's case
   system (its own API client, bearer token).
Each round's ratios are to that round's ceiling, measured moments before on the same machine
(this machine's speed drifts by ±15 % over minutes: a ceiling from another minute would move
the ratio by as much); the figure is the median round's, and every round is printed.
4. Latency at a fixed rate (open loop: request i is due at i / rate seconds whatever happened
   before, and its latency counts from when it was due, so a backlog shows as latency):
   create-and-send, then accept, at BENCH_FIXED_RATE requests/s; p50, p95 and p99.
5. The inbox's first page, `GET /api/v1/referrals?box=inbox`, with 100,000 referrals in the
   database: latency from one client, throughput from several (as a ratio to the ceiling too),
   and latency at the fixed rate.

`main()` prints the phases and returns the figures as rows (dicts with name, value, unit,
target, met) for `bench.report`'s table, where it also records them.

Everything is bounded in count and time and talks to 127.0.0.1 only. Settings (environment):
BENCH_DATABASE_URL (default postgresql+psycopg://postgres@127.0.0.1:5432/stepdown_bench — the
database is created if missing and its tables are rebuilt), BENCH_WORKERS (default: what
gunicorn.conf.py chooses for this machine), BENCH_CLIENTS (8), BENCH_REFERRALS (12000, over
all rounds), BENCH_CEILING_REQUESTS (10000 per round), BENCH_ROUNDS (3), BENCH_INBOX_ROWS
(100000), BENCH_INBOX_REQUESTS (400),
BENCH_PHASE_SECONDS (90), BENCH_FIXED_RATE (50 requests/s), BENCH_FIXED_SECONDS (30),
BENCH_APP_PORT (8765), BENCH_CEILING_PORT (8766).
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import random
import runpy
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import nhs_number
import sqlalchemy as sa

from bench.sweep import ensure_database
from bench.sweep import reset_schema as reset_app_schema

ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
EPR_CLIENT, EPR_SECRET = "demo-epr", "demo-epr-secret"  # noqa: S105 - the demo client
VCSE_CLIENT, VCSE_SECRET = "bench-vcse", "bench-vcse-secret"  # noqa: S105 - bench only
HANDOVER = {
    "goals": "Meet people locally and rebuild a weekly routine.",
    "relapse_signs": "Stops answering texts; sleeping in the day.",
    "crisis_plan": "Crisis line; sister is the first contact.",
    "risk_summary": "No current risk to others.",
    "contact_in_hours": "Brent CMHT duty line",
    "contact_out_of_hours": "Crisis line 0800 000 0000",
}
TARGET_RATIO = 0.35
# Requests before a throughput phase counts: enough for every worker to have built and compiled
# each statement and for psycopg to have prepared it (after its fifth use on a connection).
WARM_UP = 100
TARGET_INBOX_P95_MS = 50.0


@dataclass(frozen=True)
class Settings:
    database_url: str
    workers: int | None  # None: gunicorn.conf.py decides
    clients: int
    referrals: int
    ceiling_requests: int
    inbox_rows: int
    inbox_requests: int
    phase_seconds: float
    fixed_rate: float
    fixed_seconds: float
    rounds: int
    app_port: int
    ceiling_port: int

    @classmethod
    def from_env(cls) -> Settings:
        env = os.environ.get
        return cls(
            database_url=env("BENCH_DATABASE_URL",
                             "postgresql+psycopg://postgres@127.0.0.1:5432/stepdown_bench"),
            workers=int(env("BENCH_WORKERS")) if env("BENCH_WORKERS") else None,
            clients=int(env("BENCH_CLIENTS", "8")),
            referrals=int(env("BENCH_REFERRALS", "12000")),
            ceiling_requests=int(env("BENCH_CEILING_REQUESTS", "10000")),
            inbox_rows=int(env("BENCH_INBOX_ROWS", "100000")),
            inbox_requests=int(env("BENCH_INBOX_REQUESTS", "400")),
            phase_seconds=float(env("BENCH_PHASE_SECONDS", "90")),
            fixed_rate=float(env("BENCH_FIXED_RATE", "50")),
            fixed_seconds=float(env("BENCH_FIXED_SECONDS", "30")),
            app_port=int(env("BENCH_APP_PORT", "8765")),
            ceiling_port=int(env("BENCH_CEILING_PORT", "8766")),
            rounds=max(1, int(env("BENCH_ROUNDS", "3"))),
        )

    @property
    def fixed_pairs(self) -> int:
        """Create-and-send pairs for the fixed-rate phase (two requests each)."""
        return int(self.fixed_rate * self.fixed_seconds / 2)

    def gunicorn_workers(self) -> int:
        """The worker count both servers run with: BENCH_WORKERS, else gunicorn.conf.py's."""
        if self.workers is not None:
            return self.workers
        return int(runpy.run_path(str(ROOT / "gunicorn.conf.py"))["workers"])


# --- the database -----------------------------------------------------------------------------

def reset_schema(engine: sa.Engine) -> None:
    """The app's tables and the ceiling's, empty."""
    from bench.ceiling import TABLE

    TABLE.metadata.drop_all(engine)
    reset_app_schema(engine)
    TABLE.metadata.create_all(engine)


def _nhs_numbers(start: int, count: int) -> list[str]:
    numbers, n = [], start
    while len(numbers) < count:
        stem = f"9{n:08d}"
        check = nhs_number.calculate_checksum(stem)
        if check is not None and check < 10:
            numbers.append(f"{stem}{check}")
        n += 1
    return numbers


def _insert(connection, table, rows: list[dict]) -> list[int]:
    if not rows:
        return []
    statement = table.insert().returning(table.c.id, sort_by_parameter_order=True)
    return list(connection.execute(statement, rows).scalars())


def _people_with_consent_and_journeys(connection, ids: dict, numbers: list[str],
                                      now: datetime) -> tuple[list[int], list[int]]:
    from models import Consent, Journey, Person

    people = _insert(connection, Person.__table__, [
        {"nhs_number": number, "given_name": f"Bench{i}", "family_name": "Person",
         "date_of_birth": datetime(1980, 1, 1).date(), "postcode_district": "NW10",
         "about_strengths": "Good with people.", "about_what_matters": "My family.",
         "about_what_helps": "Plain words.", "created_by_organisation_id": ids["trust"],
         "version": 1, "created_at": now, "updated_at": now}
        for i, number in enumerate(numbers)])
    connection.execute(Consent.__table__.insert(), [
        {"person_id": pid, "organisation_id": ids["vcse_a"], "purpose": "Bench",
         "lawful_basis": "public-task", "condition": "health-social-care", "method": "verbal",
         "given_at": now - timedelta(days=30), "expires_at": now + timedelta(days=365),
         "created_at": now} for pid in people])
    journeys = _insert(connection, Journey.__table__, [
        {"person_id": pid, "team_id": ids["team"], "status": "planned", "safety_net_days": 90,
         "statutory_contact_user_id": ids["coordinator"], "version": 1,
         "review_due": (now + timedelta(days=28)).date(), "created_at": now, "updated_at": now}
        for pid in people])
    return people, journeys


def seed(settings: Settings, engine: sa.Engine, workdir: Path) -> dict:
    """The demo alliance, a VCSE API client, offers, and people ready to be referred."""
    from sqlmodel import Session, select

    from models import ApiClient, Offer, Team
    from service import create_app
    from service.auth.passwords import hash_password
    from service.demo import load_demo_data

    app = create_app(_app_config(settings, workdir))  # also writes the token key file
    now = datetime.now(UTC)
    with app.app_context(), Session(engine) as db:
        demo = load_demo_data(db)
        orgs = demo["organisations"]
        db.add(ApiClient(client_id=VCSE_CLIENT, name="Bench VCSE case system",
                         organisation_id=orgs["vcse-a"].id,
                         secret_hash=hash_password(VCSE_SECRET),
                         scopes="referrals:read referrals:write"))
        offers = {}
        for key, name in (("vcse-a", "Peer mentoring"), ("vcse-a", "Peer coaching"),
                          ("vcse-b", "Community Resilience Network"),
                          ("vcse-c", "Employment support")):
            offer = Offer(organisation_id=orgs[key].id, name=name, description="Bench offer")
            db.add(offer)
            db.flush()
            offers[name] = offer.id
        team = db.exec(select(Team).where(
            Team.name == "Brent Community Mental Health Team")).one()
        ids = {"trust": orgs["trust-a"].id, "vcse_a": orgs["vcse-a"].id, "team": team.id,
               "coordinator": demo["users"]["coordinator@demo.stepdown.test"].id,
               "offers": offers}
        db.commit()
    with engine.begin() as connection:
        _people, journeys = _people_with_consent_and_journeys(
            connection, ids, _nhs_numbers(1, settings.referrals + settings.fixed_pairs), now)
    ids["journeys"] = journeys[:settings.referrals]
    ids["fixed_journeys"] = journeys[settings.referrals:]
    app.extensions["stepdown.engine"].dispose()
    return ids


def load_inbox(engine: sa.Engine, ids: dict, rows: int) -> None:
    """`rows` referrals, sent over the past year, half of them to VCSE A's two offers."""
    from models import Referral

    offers = list(ids["offers"].values())  # A1, A2, B1, C1
    people_count = -(-rows // len(offers))
    now = datetime.now(UTC)
    rng = random.Random(3)  # noqa: S311 - synthetic data
    statuses = ["requested", "accepted", "in-progress", "completed", "rejected"]
    with engine.begin() as connection:
        people, journeys = _people_with_consent_and_journeys(
            connection, ids, _nhs_numbers(10_000_000, people_count), now)
        person_of = dict(zip(journeys, people, strict=True))
        owners = dict(connection.execute(sa.text("SELECT id, organisation_id FROM offer")).all())
        batch: list[dict] = []
        made = 0
        for journey_id in journeys:
            for offer_id in offers:
                if made == rows:
                    break
                sent = now - timedelta(minutes=rng.randrange(1, 525_600))
                status = rng.choice(statuses)
                batch.append({
                    "journey_id": journey_id, "person_id": person_of[journey_id],
                    "offer_id": offer_id, "referring_team_id": ids["team"],
                    "receiving_organisation_id": owners[offer_id], "status": status,
                    "reason_code": "no-capacity" if status == "rejected" else None,
                    "waitlist": False, "version": 2, "created_at": sent - timedelta(hours=2),
                    "sent_at": sent, "updated_at": sent, **HANDOVER})
                made += 1
            if len(batch) >= 5000 or made == rows:
                connection.execute(Referral.__table__.insert(), batch)
                batch = []
        connection.execute(sa.text("ANALYZE"))


# --- servers ----------------------------------------------------------------------------------

def _app_config(settings: Settings, workdir: Path) -> dict:
    return {
        "ENV": "development",
        "DATABASE_URL": settings.database_url,
        "SECRET_KEY": "bench-secret-key-bench-secret-key-0123456789",
        "TOKEN_PRIVATE_KEY_FILE": str(workdir / "token-key.pem"),
        "RATELIMIT_ENABLED": "false",
        "LOG_LEVEL": "WARNING",
        "BASE_URL": f"http://{HOST}:{settings.app_port}",
        "DB_POOL_SIZE": "5",
    }


@dataclass
class Server:
    name: str
    process: subprocess.Popen
    port: int
    log: Path

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)


def start_server(name: str, spec: str, port: int, settings: Settings, workdir: Path,
                 ready_path: str) -> Server:
    env = dict(os.environ)
    env.update({("STEPDOWN_ENV" if k == "ENV" else k): str(v)
                for k, v in _app_config(settings, workdir).items()})
    env.update(GUNICORN_BIND=f"{HOST}:{port}", GUNICORN_MAX_REQUESTS="1000000",
               FLASK_APP="service")
    if settings.workers is not None:
        env["GUNICORN_WORKERS"] = str(settings.workers)
    log = workdir / f"{name}.log"
    process = subprocess.Popen(  # noqa: S603 - our own interpreter and gunicorn
        [sys.executable, "-m", "gunicorn", "-c", str(ROOT / "gunicorn.conf.py"),
         # --preload: the app is built once and forked, so every worker is ready together
         # (it opens no database connection before serving).
         "--control-socket", str(workdir / f"{name}.ctl"), "--preload", spec],
        cwd=ROOT, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT)
    server = Server(name, process, port, log)
    deadline = time.monotonic() + 240  # workers build the whole app; slow on a busy machine
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"{name} server exited; see {log}")
        try:
            status, _h, _b, _t = call(port, "GET", ready_path)
            if status < 500:
                return server
        except OSError:
            pass
        time.sleep(0.3)
    server.stop()
    raise SystemExit(f"{name} server did not start; see {log}")


# --- the load generator -----------------------------------------------------------------------

def call(port: int, method: str, path: str, body: dict | str | None = None,
         headers: dict | None = None) -> tuple[int, dict, bytes, float]:
    """One HTTP request on a fresh loopback connection: status, headers, body, seconds."""
    data = None
    headers = dict(headers or {})
    if isinstance(body, dict):
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    elif isinstance(body, str):
        data = body.encode()
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    started = time.perf_counter()
    connection = http.client.HTTPConnection(HOST, port, timeout=30)
    try:
        connection.request(method, path, body=data, headers=headers)
        response = connection.getresponse()
        payload = response.read()
        return (response.status, {k.lower(): v for k, v in response.getheaders()}, payload,
                time.perf_counter() - started)
    finally:
        connection.close()


def token(port: int, client_id: str, secret: str) -> str:
    basic = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    status, _h, body, _t = call(port, "POST", "/oauth/token",
                                "grant_type=client_credentials",
                                {"Authorization": f"Basic {basic}"})
    if status != 200:
        raise SystemExit(f"no token for {client_id}: {status} {body[:200]!r}")
    return json.loads(body)["access_token"]


@dataclass
class Result:
    name: str
    requests: int = 0
    errors: int = 0
    units: int = 0
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    first_error: str = ""

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def percentile(self, p: float) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))] * 1000


def run(name: str, items: list, worker: Callable[[object], list[tuple[int, float, int]]],
        clients: int, seconds: float, rate: float | None = None) -> Result:
    """Give the items to `clients` threads; each item makes one or more requests.

    `worker(item)` returns (status, latency, expected status) per request it made. Without a
    rate each thread takes the next item as soon as it is free (closed loop: throughput). With
    a rate, item i is due `i / rate` seconds after the start (open loop): a thread waits for it,
    and when it starts late (every thread busy) the delay counts in its first request's latency.
    """
    result = Result(name)
    lock = threading.Lock()
    iterator = iter(enumerate(items))
    deadline = time.monotonic() + seconds
    started = time.perf_counter()

    def loop():
        while time.monotonic() < deadline:
            with lock:
                item = next(iterator, None)
            if item is None:
                return
            index, item = item
            late = 0.0
            if rate:
                wait = started + index / rate - time.perf_counter()
                if wait > 0:
                    time.sleep(wait)
                else:
                    late = -wait
            try:
                outcomes = worker(item)
                if late and outcomes:
                    status, latency, expected = outcomes[0]
                    outcomes[0] = (status, latency + late, expected)
            except Exception as exc:  # noqa: BLE001 - counted and reported, the run goes on
                outcomes = [(0, 0.0, 1)]
                with lock:
                    result.first_error = result.first_error or repr(exc)[:200]
            with lock:
                result.units += 1
                for status, latency, expected in outcomes:
                    result.requests += 1
                    result.latencies.append(latency)
                    if status != expected:
                        result.errors += 1
                        result.first_error = result.first_error or f"HTTP {status}"

    threads = [threading.Thread(target=loop) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    result.seconds = time.perf_counter() - started
    return result


# --- the benchmarks ---------------------------------------------------------------------------

def bench_ceiling(settings: Settings, label: str, warm_up: bool = True) -> Result:
    def one(i):
        status, _h, _b, seconds = call(settings.ceiling_port, "POST", "/insert",
                                       {"n": i, "note": "one insert"})
        return [(status, seconds, 201)]

    if warm_up:
        run("warm-up", list(range(WARM_UP)), one, settings.clients, 30)
    return run(label, list(range(settings.ceiling_requests)), one, settings.clients,
               settings.phase_seconds)


def bench_create_and_send(settings: Settings, ids: dict, journeys: list[int], sent: list[int],
                          label: str, rate: float | None = None, warm_up: bool = True) -> Result:
    """`rate` is in requests/s: pairs start at half of it."""
    auth = {"Authorization": f"Bearer {token(settings.app_port, EPR_CLIENT, EPR_SECRET)}"}
    offer = ids["offers"]["Peer mentoring"]
    lock = threading.Lock()

    def one(journey_id):
        status, headers, body, t1 = call(settings.app_port, "POST", "/api/v1/referrals",
                                         {"journey_id": journey_id, "offer_id": offer,
                                          **HANDOVER}, auth)
        if status != 201:
            return [(status, t1, 201)]
        referral_id = json.loads(body)["id"]
        status2, _h, _b, t2 = call(settings.app_port, "POST",
                                   f"/api/v1/referrals/{referral_id}/send", {},
                                   {**auth, "If-Match": headers["etag"]})
        if status2 == 200:
            with lock:
                sent.append(referral_id)
        return [(status, t1, 201), (status2, t2, 200)]

    if warm_up:
        run("warm-up", journeys[:WARM_UP // 2], one, settings.clients, 30)
        journeys = journeys[WARM_UP // 2:]
    return run(label, journeys, one, settings.clients, settings.phase_seconds,
               rate / 2 if rate else None)


def bench_accept(settings: Settings, sent: list[int], label: str, rate: float | None = None,
                 warm_up: bool = True) -> Result:
    auth = {"Authorization": f"Bearer {token(settings.app_port, VCSE_CLIENT, VCSE_SECRET)}"}

    def one(referral_id):
        status, _h, _b, seconds = call(settings.app_port, "POST",
                                       f"/api/v1/referrals/{referral_id}/accept", {},
                                       {**auth, "If-Match": f'"referral-{referral_id}-v2"'})
        return [(status, seconds, 200)]

    if warm_up:
        run("warm-up", sent[:WARM_UP], one, settings.clients, 30)
        sent = sent[WARM_UP:]
    return run(label, sent, one, settings.clients, settings.phase_seconds, rate)


def bench_inbox(settings: Settings, clients: int, rate: float | None = None) -> Result:
    auth = {"Authorization": f"Bearer {token(settings.app_port, VCSE_CLIENT, VCSE_SECRET)}"}

    def one(_i):
        status, _h, _b, seconds = call(settings.app_port, "GET",
                                       "/api/v1/referrals?box=inbox&limit=25", None, auth)
        return [(status, seconds, 200)]

    run("warm-up", list(range(20)), one, 1, 30)
    if rate:
        return run(f"inbox first page at {rate:g} req/s",
                   list(range(int(rate * settings.fixed_seconds))), one, clients,
                   settings.phase_seconds, rate)
    return run(f"inbox first page, {clients} client(s)", list(range(settings.inbox_requests)),
               one, clients, settings.phase_seconds)


# --- the report -------------------------------------------------------------------------------

def _row(result: Result, ceiling_rps: float | None = None, note: str = "") -> str:
    ratio = f"{result.rps / ceiling_rps:6.0%}" if ceiling_rps else "      "
    return (f"{result.name:<40} {result.requests:>6} {result.errors:>4} {result.seconds:>7.1f} "
            f"{result.rps:>8.1f} {result.percentile(50):>7.1f} {result.percentile(95):>7.1f} "
            f"{result.percentile(99):>7.1f} {ratio}  {note}")


def _figure(name: str, value: float, unit: str, target: str = "",
            met: bool | None = None) -> dict:
    return {"name": name, "value": round(value, 3), "unit": unit, "target": target, "met": met}


@dataclass(frozen=True)
class Round:
    """One round's phases: the ceiling, then create-and-send and accept, back to back."""

    ceiling: Result
    create_send: Result
    accept: Result

    def share(self, key: str) -> float:
        ceiling = self.ceiling.rps
        return getattr(self, key).rps / ceiling if ceiling else 0.0


def _median_round(rounds: list[Round], key: str) -> Round:
    """The round whose share for `key` is the median (the lower middle for an even count)."""
    ordered = sorted(rounds, key=lambda r: r.share(key))
    return ordered[(len(ordered) - 1) // 2]


def _median_ceiling(rounds: list[Round]) -> float:
    """The median of the rounds' ceiling throughputs (the lower middle for an even count)."""
    ceilings = sorted(r.ceiling.rps for r in rounds)
    return ceilings[(len(ceilings) - 1) // 2]


def figures(settings: Settings, results: dict[str, Result], rounds: list[Round]) -> list[dict]:
    """The benchmark's figures as rows for a table: name, value, unit, target, met."""
    share = f"≥ {TARGET_RATIO:.0%} of the ceiling"
    rate = f"{settings.fixed_rate:g} req/s"
    ceiling = _median_ceiling(rounds)
    rows = [_figure(f"API ceiling: bare Flask + one INSERT (median of {len(rounds)} rounds)",
                    ceiling, "req/s")]
    for key, name in (("create_send", "create-and-send (both POSTs counted)"),
                      ("accept", "accept")):
        middle = _median_round(rounds, key)
        ratio = middle.share(key)
        rows.append(_figure(f"{name}: throughput (the median round)",
                            getattr(middle, key).rps, "req/s"))
        rows.append(_figure(f"{name}: share of its round's ceiling (median of {len(rounds)})",
                            100 * ratio, "%", share, ratio >= TARGET_RATIO))
        rows.append(_figure(f"{name}: share of the ceiling, lowest round",
                            100 * min(r.share(key) for r in rounds), "%"))
    inbox_n = results["inbox_n"]
    rows.append(_figure(f"inbox first page, {settings.clients} clients: throughput",
                        inbox_n.rps, "req/s"))
    rows.append(_figure(f"inbox first page, {settings.clients} clients: share of the ceiling",
                        100 * inbox_n.rps / ceiling if ceiling else 0.0, "%"))
    inbox1 = results["inbox1"]
    rows.append(_figure("inbox first page, one client: p50", inbox1.percentile(50), "ms"))
    rows.append(_figure("inbox first page, one client: p95", inbox1.percentile(95), "ms",
                        f"< {TARGET_INBOX_P95_MS:.0f} ms",
                        inbox1.percentile(95) < TARGET_INBOX_P95_MS))
    for key, name in (("fixed_create_send", "create-and-send"), ("fixed_accept", "accept"),
                      ("fixed_inbox", "inbox first page")):
        for p in (50, 95, 99):
            rows.append(_figure(f"{name} at {rate}: p{p}", results[key].percentile(p), "ms"))
    errors = sum(r.errors for r in results.values())
    rows.append(_figure("API requests answered with an unexpected status", errors, "requests",
                        "0", errors == 0))
    return rows


def report(settings: Settings, results: dict[str, Result], rounds: list[Round],
           inbox_rows: int) -> list[str]:
    ceiling = _median_ceiling(rounds)
    inbox1, inbox_n = results["inbox1"], results["inbox_n"]
    verdict = {True: "meets target", False: "BELOW target"}
    lines = [
        "",
        f"Stepdown API benchmark: PostgreSQL, gunicorn {settings.gunicorn_workers()} sync "
        f"workers (both servers), {settings.clients} client threads, {os.cpu_count()} CPUs, "
        f"loopback, load average {os.getloadavg()[0]:.2f} at the end",
        f"{'phase':<40} {'reqs':>6} {'err':>4} {'secs':>7} {'req/s':>8} {'p50 ms':>7} "
        f"{'p95 ms':>7} {'p99 ms':>7} {'of ceiling':>6}",
    ]
    for one in rounds:
        cs = one.create_send
        lines += [_row(one.ceiling, one.ceiling.rps),
                  _row(cs, one.ceiling.rps, f"{cs.units / cs.seconds:.1f} referrals/s"),
                  _row(one.accept, one.ceiling.rps)]
    for key, name in (("create_send", "create-and-send"), ("accept", "accept")):
        shares = ", ".join(f"{100 * r.share(key):.1f} %" for r in rounds)
        median = _median_round(rounds, key).share(key)
        lines.append(f"{name}: median share of its round's ceiling {100 * median:.1f} % "
                     f"({shares} by round); {verdict[median >= TARGET_RATIO]} "
                     f"({TARGET_RATIO:.0%} of ceiling)")
    lines += [
        _row(results["fixed_create_send"], None, "open loop; latency from when each was due"),
        _row(results["fixed_accept"], None, "open loop"),
        _row(inbox1, None, f"{inbox_rows:,} referrals; p95 "
                           f"{verdict[inbox1.percentile(95) < TARGET_INBOX_P95_MS]} "
                           f"(< {TARGET_INBOX_P95_MS:.0f} ms)"),
        _row(inbox_n, ceiling, "the same page under concurrent load"),
        _row(results["fixed_inbox"], None, "open loop"),
        f"ceiling = the median of the rounds' bare-INSERT runs: {ceiling:.1f} req/s (each "
        "round's ratios are to its own); create-and-send "
        "counts both of its requests",
    ]
    for result in results.values():
        if result.first_error:
            lines.append(f"first error in {result.name}: {result.first_error}")
    return lines


def main() -> list[dict]:
    """Run the API benchmark, print it, record its figures in `bench.report`, return them."""
    from bench import report as table

    settings = Settings.from_env()
    ensure_database(settings.database_url)
    engine = sa.create_engine(settings.database_url)
    workdir = Path(tempfile.mkdtemp(prefix="stepdown-bench-"))
    print(f"preparing {settings.database_url.rsplit('/', 1)[-1]} (logs in {workdir})",
          flush=True)
    reset_schema(engine)
    ids = seed(settings, engine, workdir)
    # Every phase runs against a database in service: 100,000 referrals already there, and
    # statistics (load_inbox ends with ANALYZE). On empty tables the planner's plans, cached by
    # each connection, scan the referral table and grow slower with every referral written.
    print(f"loading {settings.inbox_rows:,} referrals", flush=True)
    load_inbox(engine, ids, settings.inbox_rows)
    servers = []
    results: dict[str, Result] = {}
    try:
        servers.append(start_server("app", "service:create_app()", settings.app_port,
                                    settings, workdir, "/healthz"))
        servers.append(start_server("ceiling", "bench.ceiling:app", settings.ceiling_port,
                                    settings, workdir, "/"))
        print(f"measuring the ceiling, create-and-send and accept in {settings.rounds} rounds",
              flush=True)
        rounds: list[Round] = []
        per_round = len(ids["journeys"]) // settings.rounds
        for k in range(settings.rounds):
            first, label = k == 0, f"round {k + 1}"
            ceiling = bench_ceiling(settings, f"ceiling: bare Flask, one INSERT, {label}",
                                    warm_up=first)
            sent: list[int] = []
            journeys = ids["journeys"][k * per_round:(k + 1) * per_round]
            create_send = bench_create_and_send(settings, ids, journeys, sent,
                                                f"create-and-send referral, {label}",
                                                warm_up=first)
            accept = bench_accept(settings, sent, f"accept referral, {label}", warm_up=first)
            rounds.append(Round(ceiling, create_send, accept))
            results.update({f"ceiling{k}": ceiling, f"create_send{k}": create_send,
                            f"accept{k}": accept})
        rate = settings.fixed_rate
        print(f"latency at {rate:g} requests/s", flush=True)
        fixed_sent: list[int] = []
        results["fixed_create_send"] = bench_create_and_send(
            settings, ids, ids["fixed_journeys"], fixed_sent,
            f"create-and-send at {rate:g} req/s", rate, warm_up=False)
        results["fixed_accept"] = bench_accept(settings, fixed_sent, f"accept at {rate:g} req/s",
                                               rate, warm_up=False)
        with engine.connect() as connection:
            total = connection.execute(sa.text("SELECT count(*) FROM referral")).scalar()
        results["inbox1"] = bench_inbox(settings, 1)
        results["inbox_n"] = bench_inbox(settings, settings.clients)
        results["fixed_inbox"] = bench_inbox(settings, settings.clients, rate)
    finally:
        for server in servers:
            server.stop()
        engine.dispose()
    lines = report(settings, results, rounds, total)
    rows = figures(settings, results, rounds)
    for row in rows:
        table.record(**row)
    print("\n".join(lines))
    (ROOT / "instance").mkdir(exist_ok=True)
    (ROOT / "instance" / "bench-latest.txt").write_text("\n".join(lines) + "\n")
    return rows


if __name__ == "__main__":
    from bench import report as _table

    _figures = main()
    print()
    print(_table.table())
    raise SystemExit(1 if any(row["met"] is False for row in _figures) else 0)

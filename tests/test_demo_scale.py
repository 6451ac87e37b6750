"""`flask demo-data --scale N`: a generated alliance that looks and behaves like a working one,
and that the app keeps working on top of (SQLite here, PostgreSQL with TEST_DATABASE_URL)."""

from __future__ import annotations

import hashlib
from collections import Counter, defaultdict

import pytest
import sqlalchemy as sa
from sqlmodel import Session, select

import models
from models import (
    Consent,
    Contact,
    Flag,
    Journey,
    Membership,
    Organisation,
    Person,
    Referral,
    ReferralEvent,
    User,
)
from models.nhs_number import is_valid_nhs_number
from models.referral_lifecycle import ACTIONS, OPEN_STATES, REFERRAL_STATES
from service.demo_scale import AlreadyGenerated, generate
from tests.conftest import signed_in_client

N = 2_000


@pytest.fixture
def scaled(app, db, clock):
    """N generated referrals, history ending at the test clock's now."""
    with app.app_context():
        from service.db import engine

        summary = generate(engine(), N, seed=11, as_of=clock.now())
    db.expire_all()
    return summary


def _referrals(db) -> list[Referral]:
    return list(db.exec(select(Referral).order_by(Referral.id)).all())


def test_generates_n_referrals_in_every_status_over_two_years(scaled, db, clock):
    generated = referrals = _referrals(db)  # the demo's own referrals are not loaded here
    assert len(generated) == N == scaled.referrals
    statuses = Counter(r.status for r in generated)
    assert set(statuses) == set(REFERRAL_STATES), statuses
    assert statuses["completed"] > statuses["on-hold"]  # most old referrals have ended
    sent = [r.sent_at for r in generated if r.sent_at]
    assert clock.now() - min(sent) > (clock.now() - clock.now().replace(year=2025)) * 0.9
    assert max(sent) <= clock.now()
    journeys = Counter(db.exec(select(Journey.status)).all())
    assert {"planned", "active", "finished"} <= set(journeys)
    events = db.scalar(sa.select(sa.func.count()).select_from(ReferralEvent))
    assert 4 <= events / len(referrals) <= 6
    contacts = db.scalar(sa.select(sa.func.count()).select_from(Contact))
    assert contacts > N
    flags = Counter(db.exec(select(Flag.status)).all())
    assert {"open", "acknowledged", "resolved"} <= set(flags)
    organisations = Counter(db.exec(select(Organisation.kind)).all())
    assert organisations["statutory"] >= 4 and organisations["vcse"] >= 9


def test_every_referral_history_runs_from_draft_to_its_status(scaled, db):
    events = defaultdict(list)
    for event in db.exec(select(ReferralEvent).order_by(ReferralEvent.at, ReferralEvent.id)):
        events[event.referral_id].append(event)
    for referral in _referrals(db):
        chain = events[referral.id]
        assert (chain[0].action, chain[0].from_status, chain[0].to_status) == (
            "create", None, "draft")
        for before, after in zip(chain, chain[1:], strict=False):
            sources, target = ACTIONS[after.action]
            assert after.from_status == before.to_status and before.to_status in sources
            assert after.to_status == target and after.at >= before.at
        assert chain[-1].to_status == referral.status
        # version: 1 at creation, one more per action and for the assignment (no event)
        assert referral.version == len(chain) + (referral.assigned_to_user_id is not None)
        sent = [e.at for e in chain if e.action == "send"]
        assert referral.sent_at == (sent[0] if sent else None)
        if referral.status in ("rejected", "cancelled", "on-hold", "failed"):
            assert referral.reason_code == chain[-1].reason_code is not None


def test_data_satisfies_the_rules_the_app_relies_on(scaled, db, clock):
    people = db.exec(select(Person.nhs_number)).all()
    assert len(set(people)) == len(people)
    assert all(is_valid_nhs_number(number) for number in people)
    open_pairs = Counter((r.person_id, r.offer_id) for r in _referrals(db)
                         if r.status in OPEN_STATES)
    assert max(open_pairs.values()) == 1
    consents = defaultdict(list)
    for consent in db.exec(select(Consent)):
        consents[(consent.person_id, consent.organisation_id)].append(consent)
    first_attended = dict(db.exec(
        select(Contact.referral_id, sa.func.min(Contact.happened_at))
        .where(Contact.outcome == "attended").group_by(Contact.referral_id)).all())
    for referral in _referrals(db):
        if referral.sent_at is None:
            continue
        # Sent only with consent to the receiving organisation given beforehand...
        given = consents[(referral.person_id, referral.receiving_organisation_id)]
        assert any(c.given_at <= referral.sent_at for c in given), referral.id
        # ...which still covers it while it is open (or was withdrawn, cancelling it).
        if referral.status in OPEN_STATES and referral.status != "draft":
            assert any(c.status(clock.now()) == "active" for c in given), referral.id
        assert referral.first_contact_at == first_attended.get(referral.id)
    assert db.scalar(sa.select(sa.func.count()).select_from(Referral)
                     .where(Referral.reason_code == "consent-withdrawn")) > 0
    if db.get_bind().dialect.name == "sqlite":  # PostgreSQL checked each key on COPY
        assert db.connection().exec_driver_sql("PRAGMA foreign_key_check").all() == []


def _worker_of(db, organisation_id: int) -> str:
    return db.exec(select(User.email).join(Membership, Membership.user_id == User.id).where(
        Membership.organisation_id == organisation_id, Membership.role == "vcse_worker")
        .order_by(User.id)).first()


def test_a_generated_worker_signs_in_lists_the_inbox_and_accepts(scaled, app, db):
    referral = db.exec(select(Referral).where(Referral.status == "requested")
                       .order_by(Referral.sent_at.desc())).first()
    client = signed_in_client(app, _worker_of(db, referral.receiving_organisation_id))
    inbox = client.get("/api/v1/referrals?box=inbox&status=requested&limit=100")
    assert inbox.status_code == 200
    assert referral.id in [item["id"] for item in inbox.get_json()["items"]]
    etag = client.get(f"/api/v1/referrals/{referral.id}").headers["ETag"]
    accepted = client.post(f"/api/v1/referrals/{referral.id}/accept", json={},
                           headers={"If-Match": etag})
    assert accepted.status_code == 200, accepted.get_json()
    assert accepted.get_json()["status"] == "accepted"
    assert accepted.get_json()["version"] == referral.version + 1
    page = client.get(f"/referrals/{referral.id}")
    assert page.status_code == 200


def test_demo_logins_see_generated_data(scaled, app, db):
    vcse = signed_in_client(app, "vcse@demo.stepdown.test")
    items = vcse.get("/api/v1/referrals?box=inbox&limit=100").get_json()["items"]
    assert len(items) > 10
    coordinator = signed_in_client(app, "coordinator@demo.stepdown.test")
    assert len(coordinator.get("/api/v1/referrals?box=outbox&limit=100").get_json()["items"]) > 10


def test_the_sweep_and_the_flows_report_run_on_it(scaled, app, db, clock):
    result = app.test_cli_runner().invoke(
        args=["sweep", "--as-of", clock.now().isoformat(), "--quiet"])
    assert result.exit_code == 0, result.output
    # What the app raises as things happen, escalations and finished journeys are generated
    # already; the first sweep raises only the timers that are due now.
    for words in (line.split() for line in result.output.splitlines()):
        if words and words[0] in ("missed-contacts", "escalated", "finished"):
            assert words[1] == "0", words
    again = app.test_cli_runner().invoke(
        args=["sweep", "--as-of", clock.now().isoformat(), "--quiet"])
    assert again.exit_code == 0, again.output
    alliance = db.exec(select(models.Alliance)).first()
    manager = signed_in_client(app, "contracts@demo.stepdown.test")
    response = manager.get(f"/api/v1/flows?alliance={alliance.id}&from=2026-01-01&to=2026-12-31")
    assert response.status_code == 200, response.get_data(as_text=True)[:300]
    assert response.get_json()["flow_matrix"]["total"]["current"] != 0


def test_a_second_run_refuses_and_changes_nothing(scaled, app, db, clock):
    with app.app_context():
        from service.db import engine

        with pytest.raises(AlreadyGenerated):
            generate(engine(), 10, seed=11, as_of=clock.now())
    assert db.scalar(sa.select(sa.func.count()).select_from(Referral)) == N
    result = app.test_cli_runner().invoke(args=["demo-data", "--scale", "10"])
    assert result.exit_code == 1
    assert "already holds scaled demo data" in result.output


def test_command_generates_with_a_progress_bar(app, db):
    result = app.test_cli_runner().invoke(args=["demo-data", "--scale", "120", "--seed", "3",
                                                "--as-of", "2027-01-04"])
    assert result.exit_code == 0, result.output
    assert "Generating 120 referrals" in result.output
    assert "120 referral," in result.output
    sample = db.exec(select(User.email).where(User.email.like("coordinator%@scale%"))).first()
    assert sample is not None and signed_in_client(app, sample)


def _digest(url: str, clock) -> str:
    engine = sa.create_engine(url)
    models.metadata.create_all(engine)
    generate(engine, 300, seed=5, as_of=clock.now())
    digest = hashlib.sha256()
    with Session(engine) as db:
        for table in (Referral, ReferralEvent, Journey, Contact, Flag):
            for row in db.exec(select(table).order_by(table.id)):
                digest.update(repr(sorted(row.model_dump().items())).encode())
    engine.dispose()
    return digest.hexdigest()


def test_the_same_seed_gives_the_same_alliance(tmp_path, clock):
    first = _digest(f"sqlite:///{tmp_path}/a.db", clock)
    assert first == _digest(f"sqlite:///{tmp_path}/b.db", clock)


@pytest.mark.postgres
def test_postgres_sequences_continue_after_the_copied_ids(scaled, db):
    for table in ("person", "journey", "referral", "flag"):
        following, highest = db.connection().exec_driver_sql(
            f"SELECT nextval(pg_get_serial_sequence('{table}', 'id')), "  # noqa: S608
            f"(SELECT MAX(id) FROM {table})").one()
        assert following > highest, table


def test_flow_rows_and_counts_are_the_ones_the_app_would_keep(scaled, db):
    from models import FlowDay, FlowMonth, ReferralFlow
    from service.flows.facts import refresh_all_flows

    def flow_rows():
        return {row.referral_id: row.model_dump()
                for row in db.exec(select(ReferralFlow)).all()}

    def monthly_counts():
        return [sorted(tuple(row.model_dump().items()) for row in db.exec(select(model)))
                for model in (FlowMonth, FlowDay)]

    generated, counts = flow_rows(), monthly_counts()
    assert len(generated) == db.scalar(sa.select(sa.func.count()).select_from(Referral)
                                       .where(Referral.sent_at.is_not(None)))
    for table in counts:
        assert sum(dict(row)["n"] for row in table if dict(row)["measure"] == "outcome") == len(
            generated)
    refresh_all_flows(db)  # rewrites every row and moves the monthly counts with them
    db.flush()
    db.expire_all()
    assert flow_rows() == generated
    assert monthly_counts() == counts
    db.rollback()


@pytest.mark.postgres
def test_the_bulk_load_is_not_cut_short_by_the_apps_statement_timeout(app, app_config, clock):
    from service import create_app

    strict = create_app({**app_config, "DB_STATEMENT_TIMEOUT_MS": 100})
    strict_engine = strict.extensions["stepdown.engine"]

    def slow_statement_mid_load(conn, cursor, statement, *_args):  # noqa: ARG001
        # Stands in for the recount and ANALYZE of a million rows: longer than the timeout.
        if "MAX(id)" in statement and "FROM flag" in statement:
            with conn.connection.dbapi_connection.cursor() as other:
                other.execute("SELECT pg_sleep(0.3)")

    sa.event.listen(strict_engine, "after_cursor_execute", slow_statement_mid_load)
    try:
        with strict.app_context():
            from service.db import engine

            assert generate(engine(), 300, seed=2, as_of=clock.now()).referrals == 300
    finally:
        sa.event.remove(strict_engine, "after_cursor_execute", slow_statement_mid_load)
        strict_engine.dispose()

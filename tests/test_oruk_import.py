"""`flask import-oruk`: importing and updating offers from an Open Referral UK feed."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import sqlalchemy as sa
from sqlmodel import select

from models import AuditEvent, Offer, OfferArea, OfferResponsibility
from service.interop import oruk_import
from tests.oruk_support import ORUK, varied_offers

FIXTURES = Path(__file__).resolve().parent / "fixtures"
EXAMPLE_ID = "ac148810-d857-441c-9679-408f346de14b"


@pytest.fixture
def run(app, demo):
    runner = app.test_cli_runner()

    def invoke(source, organisation="1100001", *extra):
        return runner.invoke(args=["import-oruk", str(source), "--organisation", organisation,
                                   *extra])

    return invoke


def _offers(db, organisation):
    db.expire_all()
    return db.exec(select(Offer).where(Offer.organisation_id == organisation.id)
                   .order_by(Offer.id)).all()


def test_importing_the_example_feed_twice_creates_each_service_once(run, db, demo):
    org = demo["organisations"]["vcse-a"]
    first = run(ORUK / "examples" / "service_list.json")
    assert first.exit_code == 0, first.output
    assert "created 1, updated 0, unchanged 0, skipped 0" in first.output
    second = run(ORUK / "examples" / "service_list.json")
    assert "created 0, updated 0, unchanged 1, skipped 0" in second.output
    # The fully nested example of the same service adds what the list item lacks.
    full = run(ORUK / "examples" / "service_full.json")
    assert "created 0, updated 0, unchanged 1, skipped 0" in full.output
    again = run(ORUK / "examples" / "organization_full.json")
    assert again.exit_code == 0, again.output
    assert "created 0" in again.output
    [offer] = _offers(db, org)
    assert offer.external_id == EXAMPLE_ID
    assert offer.name == "Community Counselling"
    assert (offer.min_age, offer.max_age, offer.status) == (12, 100, "active")
    assert offer.url == "http://example.com/counselling"
    assert str(offer.assured_date) == "2005-01-01"
    # The example's service area is a paragraph, not a borough: reported, not imported.
    assert "service area described in more than 100 characters" in full.output
    assert db.exec(select(OfferArea).where(OfferArea.offer_id == offer.id)).all() == []


def test_each_feed_service_is_keyed_per_organisation(run, db, demo):
    run(ORUK / "examples" / "service_full.json", "1100001")
    run(ORUK / "examples" / "service_full.json", "Harrow Resilience Network")
    assert len(_offers(db, demo["organisations"]["vcse-a"])) == 1
    assert len(_offers(db, demo["organisations"]["vcse-b"])) == 1


def test_bad_records_are_reported_and_skipped(run, db, demo):
    result = run(FIXTURES / "oruk_feed.json")
    assert result.exit_code == 0, result.output
    assert "created 3, updated 0, unchanged 0, skipped 6" in result.output
    lines = result.output.splitlines()

    def reason(index):
        [line] = [x for x in lines if x.startswith((f"  skipped #{index} ", f"  skipped #{index}:"))]
        return line

    assert "name: Missing data" in reason(3)
    assert "status: Must be one of" in reason(4)
    assert "minimum_age is above maximum_age" in reason(5)
    assert "email: Not a valid email" in reason(6)
    assert "not a JSON object" in reason(7)
    assert "more than once" in reason(8)
    assert "statutory-only responsibility was not imported" in result.output

    offers = {o.external_id: o for o in _offers(db, demo["organisations"]["vcse-a"])}
    assert set(offers) == {"0e9d0001-0000-4000-8000-000000000000",
                           "0e9d0002-0000-4000-8000-000000000000", "1234"}
    walking = offers["0e9d0001-0000-4000-8000-000000000000"]
    assert (walking.min_age, walking.max_age) == (18, 100)
    assert walking.phone == "020 7946 0100"
    assert walking.eligibility == "Anyone over 18"
    assert walking.email == "walk@example.org"
    areas = db.exec(select(OfferArea.area).where(OfferArea.offer_id == walking.id)).all()
    assert sorted(areas) == ["Brent", "NW10"]
    codes = db.exec(select(OfferResponsibility.responsibility_code)
                    .where(OfferResponsibility.offer_id == walking.id)).all()
    assert codes == ["peer-support"]
    closed = offers["0e9d0002-0000-4000-8000-000000000000"]
    assert (closed.status, closed.email) == ("temporarily closed", None)


def test_changes_in_the_feed_update_the_offer(run, db, demo, tmp_path):
    feed = json.loads((FIXTURES / "oruk_feed.json").read_text())
    run(FIXTURES / "oruk_feed.json")
    [walking] = [o for o in _offers(db, demo["organisations"]["vcse-a"]) if o.name ==
                 "Good service 1"]
    version = walking.version
    feed["contents"][0]["status"] = "inactive"
    feed["contents"][0]["service_areas"] = [{"id": "1", "name": "Harrow"}]
    changed = tmp_path / "changed.json"
    changed.write_text(json.dumps(feed))
    result = run(changed)
    assert "created 0, updated 1, unchanged 2, skipped 6" in result.output
    db.refresh(walking)
    assert walking.status == "inactive"
    assert walking.version == version + 1
    assert db.exec(select(OfferArea.area).where(OfferArea.offer_id == walking.id)).all() == [
        "Harrow"]


def test_a_record_the_database_refuses_is_rolled_back_alone(run, db, demo, monkeypatch):
    real_apply = oruk_import._apply

    def failing_apply(session, organisation, mapped, now):
        outcome = real_apply(session, organisation, mapped, now)  # rows written, then...
        if mapped.external_id == "0e9d0001-0000-4000-8000-000000000000":
            raise sa.exc.IntegrityError("INSERT", {}, Exception("refused"))
        return outcome

    monkeypatch.setattr(oruk_import, "_apply", failing_apply)
    result = run(FIXTURES / "oruk_feed.json")
    assert "created 2, updated 0, unchanged 0, skipped 7" in result.output
    assert "refused by the database (IntegrityError)" in result.output
    ids = {o.external_id for o in _offers(db, demo["organisations"]["vcse-a"])}
    assert ids == {"0e9d0002-0000-4000-8000-000000000000", "1234"}
    assert db.exec(select(OfferArea)).all() == []  # nothing of the refused record remains
    assert db.exec(select(OfferResponsibility)).all() == []


def test_dry_run_saves_nothing(run, db, demo):
    result = run(FIXTURES / "oruk_feed.json", "1100001", "--dry-run")
    assert result.exit_code == 0
    assert "created 3" in result.output and "nothing was saved" in result.output
    assert db.exec(select(Offer)).all() == []


def test_imports_are_audited(run, db, demo):
    run(FIXTURES / "oruk_feed.json")
    actions = sorted(e.action for e in db.exec(select(AuditEvent)).all())
    assert actions == ["import-create"] * 3 + ["import-feed"]


@pytest.mark.parametrize("organisation, message", [
    ("nobody", "no such organisation"),
    ("RXA", "run by a VCSE organisation"),
])
def test_the_organisation_must_be_a_known_vcse(run, organisation, message):
    result = run(FIXTURES / "oruk_feed.json", organisation)
    assert result.exit_code != 0
    assert message in result.output


def test_unreadable_feeds_are_refused(run, tmp_path, db):
    missing = run(tmp_path / "missing.json")
    assert missing.exit_code != 0 and "could not read" in missing.output
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    assert "not valid JSON" in run(bad).output
    empty = tmp_path / "empty.json"
    empty.write_text('{"hello": 1}')
    assert "holds no services" in run(empty).output
    assert db.exec(select(Offer)).all() == []


def test_round_trip_of_our_own_feed(app, client, db, demo, run, tmp_path):
    """Our published services import into another organisation with the same content."""
    source = varied_offers(db, demo)[0]
    service = client.get(f"/openreferral/services/{source.id}").get_json()
    feed = tmp_path / "ours.json"
    feed.write_text(json.dumps(service))
    result = run(feed, "Harrow Resilience Network")
    assert "created 1" in result.output, result.output
    [copy] = [o for o in _offers(db, demo["organisations"]["vcse-b"])
              if o.external_id == service["id"]]
    for name in ("name", "description", "url", "email", "phone", "status", "min_age", "max_age",
                 "assured_date", "eligibility"):
        assert getattr(copy, name) == getattr(source, name), name
    areas = db.exec(select(OfferArea.area).where(OfferArea.offer_id == copy.id)).all()
    assert sorted(areas) == ["Brent", "NW10"]
    codes = db.exec(select(OfferResponsibility.responsibility_code)
                    .where(OfferResponsibility.offer_id == copy.id)).all()
    assert sorted(codes) == ["peer-support", "social-connection"]


class _Feed(BaseHTTPRequestHandler):
    """An ORUK API on loopback: two pages of list items, and /services/{id} detail."""

    services: dict = {}
    requests: list = []

    def do_GET(self):  # noqa: N802
        parts = urlsplit(self.path)
        self.requests.append(self.path)
        ids = sorted(self.services)
        if parts.path == "/api/services":
            page = int(parse_qs(parts.query).get("page", ["1"])[0])
            chunk = ids[(page - 1) * 2: page * 2]
            items = [{k: v for k, v in self.services[i].items() if k != "service_areas"}
                     for i in chunk]
            body = {"total_items": len(ids), "total_pages": 2, "page_number": page,
                    "size": len(items), "first_page": page == 1, "last_page": page == 2,
                    "empty": not items, "contents": items}
        elif parts.path.startswith("/api/services/") and parts.path[14:] in self.services:
            if parts.path.endswith("0003"):
                self.send_response(500)
                self.end_headers()
                return
            body = self.services[parts.path[14:]]
        else:
            self.send_response(404)
            self.end_headers()
            return
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


def test_import_from_a_paginated_url(run, db, demo):
    _Feed.services = {
        f"svc-000{i}": {"id": f"svc-000{i}", "name": f"Service {i}", "status": "active",
                        "service_areas": [{"id": "a", "name": f"Area {i}"}]}
        for i in (1, 2, 3, 4)
    }
    _Feed.requests = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Feed)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/api/services?per_page=2"
        result = run(url)
    finally:
        server.shutdown()
        server.server_close()
    assert result.exit_code == 0, result.output
    assert "created 3, updated 0, unchanged 0, skipped 1" in result.output
    assert "svc-0003" in result.output and "HTTP 500" in result.output
    assert any("page=2" in r for r in _Feed.requests)
    offers = _offers(db, demo["organisations"]["vcse-a"])
    assert [o.external_id for o in offers] == ["svc-0001", "svc-0002", "svc-0004"]
    areas = db.exec(select(OfferArea.area).order_by(OfferArea.area)).all()
    assert areas == ["Area 1", "Area 2", "Area 4"]


def test_unreachable_url(run, db):
    result = run("http://127.0.0.1:9/services")
    assert result.exit_code != 0
    assert "could not fetch" in result.output

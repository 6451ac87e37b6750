"""Demo offers and people: realistic, valid, and idempotent."""

from __future__ import annotations

from click.testing import CliRunner
from sqlmodel import func, select

from models import Consent, Offer, OfferArea, OfferResponsibility, Person, PersonNeed
from models.nhs_number import is_valid_nhs_number
from service.demo import load_demo_data
from service.people.demo import OFFERS, PEOPLE, load_demo_offers_and_people

TABLES = (Offer, OfferArea, OfferResponsibility, Person, PersonNeed, Consent)


def _counts(db) -> dict:
    db.expire_all()
    return {m.__name__: db.exec(select(func.count()).select_from(m)).one() for m in TABLES}


def test_demo_offers_and_people_load_twice_without_duplicates(app, db):
    with app.app_context():
        for _ in range(2):
            base = load_demo_data(db)
            loaded = load_demo_offers_and_people(db, base)
            db.commit()
    counts = _counts(db)
    assert counts["Offer"] == len(OFFERS) and counts["Person"] == len(PEOPLE)
    assert counts["Consent"] == sum(len(row[-1]) for row in PEOPLE)
    assert len(loaded["offers"]) == len(OFFERS) and len(loaded["people"]) == len(PEOPLE)
    vcse = {o.id for o in base["organisations"].values() if o.kind == "vcse"}
    offers = db.exec(select(Offer)).all()
    assert {o.organisation_id for o in offers} == vcse
    for person in db.exec(select(Person)).all():
        assert person.nhs_number.startswith("999") and is_valid_nhs_number(person.nhs_number)
        assert person.about_strengths and person.about_what_matters and person.about_what_helps


def test_demo_data_command_loads_offers_and_people_idempotently(app, db):
    runner = CliRunner()
    for _ in range(2):
        result = runner.invoke(app.cli, ["demo-data"])
        assert result.exit_code == 0, result.output
    counts = _counts(db)
    assert counts["Offer"] == len(OFFERS) and counts["Person"] == len(PEOPLE)


def test_demo_people_are_visible_to_their_teams_and_consented_vcse_not_yet(app, db, as_user):
    with app.app_context():
        base = load_demo_data(db)
        load_demo_offers_and_people(db, base)
        db.commit()
    coordinator = as_user("coordinator")
    found = coordinator.post("/api/v1/people/search", json={"nhs_number": "999 100 0011"})
    assert [p["preferred_name"] for p in found.json["items"]] == ["Amy"]
    consents = coordinator.get(f"/api/v1/people/{found.json['items'][0]['id']}/consents").json
    assert {c["organisation_name"] for c in consents["items"]} == {
        "Brent Peer Mentors", "Harrow Resilience Network"}
    assert all(c["status"] == "active" for c in consents["items"])
    # Offers are a directory: filter by need and area.
    offers = coordinator.get("/api/v1/offers?need=employment-support&area=SW9").json["items"]
    assert [o["name"] for o in offers] == ["Employment support"]
    # No referral yet, so no VCSE organisation sees anyone.
    assert as_user("vcse").post("/api/v1/people/search",
                                json={"nhs_number": "9991000011"}).json == {"items": []}

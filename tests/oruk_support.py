"""Helpers for the Open Referral UK tests: the official schemas and generated offers."""

from __future__ import annotations

import json
from datetime import date, datetime
from functools import cache
from pathlib import Path
from urllib.parse import urlsplit

from jsonschema import Draft202012Validator, FormatChecker

from models import Offer, OfferArea, OfferResponsibility

# CI runs in a fresh clone with shared/ beside the repository, as in development.
STANDARDS = Path(__file__).resolve().parents[2] / "shared" / "standards"
ORUK = STANDARDS / "openreferral-uk"


def _format_checker() -> FormatChecker:
    """jsonschema's checker, plus `uri` and `date-time` (their optional packages are absent)."""
    checker = FormatChecker()

    @checker.checks("uri", raises=ValueError)
    def _uri(value) -> bool:
        if not isinstance(value, str):
            return True
        parts = urlsplit(value)
        return bool(parts.scheme and (parts.netloc or parts.path))

    @checker.checks("date-time", raises=ValueError)
    def _date_time(value) -> bool:
        if not isinstance(value, str):
            return True
        return datetime.fromisoformat(value.replace("Z", "+00:00")).tzinfo is not None

    return checker


@cache
def validator(name: str) -> Draft202012Validator:
    """A validator for `schema/compiled/<name>.json`, checking formats (uuid, email, …)."""
    schema = json.loads((ORUK / "schema" / "compiled" / f"{name}.json").read_text())
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema, format_checker=_format_checker())


def schema_errors(name: str, instance) -> list[str]:
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
            for e in validator(name).iter_errors(instance)]


def assert_valid_page(body: dict) -> None:
    """A `/services` answer: the ORUK Page fields, each item valid as a service_list item."""
    for key, kind in (("total_items", int), ("total_pages", int), ("page_number", int),
                      ("size", int), ("first_page", bool), ("last_page", bool),
                      ("empty", bool), ("contents", list)):
        assert isinstance(body.get(key), kind), key
    assert body["size"] == len(body["contents"])
    for item in body["contents"]:
        assert schema_errors("service_list", item) == [], item["id"]


def make_offer(db, organisation, name: str, *, areas=(), responsibilities=(), **values) -> Offer:
    offer = Offer(organisation_id=organisation.id, name=name, **values)
    db.add(offer)
    db.flush()
    for area in areas:
        db.add(OfferArea(offer_id=offer.id, area=area))
    for code in responsibilities:
        db.add(OfferResponsibility(offer_id=offer.id, responsibility_code=code))
    db.flush()
    return offer


def varied_offers(db, demo) -> list[Offer]:
    """Offers covering every capacity, optional field present and absent, all statuses."""
    orgs = demo["organisations"]
    offers = [
        make_offer(db, orgs["vcse-a"], "Peer mentoring", description="Weekly mentoring.",
                   min_age=18, max_age=65, eligibility="Adults stepping down from care.",
                   capacity="capacity", url="https://peers.example.org/mentoring",
                   email="referrals@peers.example.org", phone="020 7946 0001",
                   assured_date=date(2026, 9, 1), areas=["Brent", "NW10"],
                   responsibilities=["peer-support", "social-connection"]),
        make_offer(db, orgs["vcse-b"], "Allotment group", capacity="waitlist",
                   waitlist_weeks=6, areas=["Harrow"]),
        make_offer(db, orgs["vcse-b"], "Waiting list, no estimate", capacity="waitlist"),
        make_offer(db, orgs["vcse-c"], "Employment support", capacity="no-capacity",
                   min_age=16, phone="020 7946 0002", responsibilities=["employment-support"]),
        make_offer(db, orgs["vcse-c"], "Bare offer"),
    ]
    for status in ("inactive", "defunct", "temporarily closed"):
        offers.append(make_offer(db, orgs["vcse-a"], f"Offer {status}", status=status))
    db.commit()
    return offers

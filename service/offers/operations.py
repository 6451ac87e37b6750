"""Offer use cases: a directory any signed-in staff member may read, managed by the VCSE
organisation that runs each offer (its vcse_manager, or an API client with offers:write)."""

from __future__ import annotations

import re
from collections import defaultdict

import sqlalchemy as sa
from sqlmodel import Session, select

from models import (
    Offer,
    OfferArea,
    OfferCapacityChange,
    OfferResponsibility,
    Organisation,
    Responsibility,
)
from service import clock
from service.audit import operations as audit
from service.auth import permissions as perm
from service.auth.principal import Principal
from service.errors import Forbidden, Invalid, NotFound, PreconditionFailed
from service.http import etag_of, require_if_match

POSTCODE_DISTRICT = re.compile(r"^[A-Z]{1,2}[0-9][0-9A-Z]?$")
_SPACES = re.compile(r"\s+")

_SCALAR_FIELDS = ("name", "description", "min_age", "max_age", "eligibility", "capacity",
                  "waitlist_weeks", "response_target_days", "status", "assured_date", "url",
                  "email", "phone")


def normalise_area(raw: str) -> str:
    """Postcode districts upper-case ("nw10" -> "NW10"); borough names with single spaces."""
    text = _SPACES.sub(" ", raw.strip())
    if POSTCODE_DISTRICT.match(text.upper()):
        return text.upper()
    return text


# --- reading -------------------------------------------------------------------------------

def _shape(offers: list[Offer], db: Session) -> list[dict]:
    """Offers with their areas, responsibilities and organisation name: 3 queries per page."""
    ids = [o.id for o in offers]
    areas: dict[int, list[str]] = defaultdict(list)
    codes: dict[int, list[str]] = defaultdict(list)
    names: dict[int, str] = {}
    if ids:
        for offer_id, area in db.exec(select(OfferArea.offer_id, OfferArea.area)
                                      .where(OfferArea.offer_id.in_(ids))
                                      .order_by(OfferArea.area)):
            areas[offer_id].append(area)
        for offer_id, code in db.exec(select(OfferResponsibility.offer_id,
                                             OfferResponsibility.responsibility_code)
                                      .where(OfferResponsibility.offer_id.in_(ids))
                                      .order_by(OfferResponsibility.responsibility_code)):
            codes[offer_id].append(code)
        org_ids = {o.organisation_id for o in offers}
        names = dict(db.exec(select(Organisation.id, Organisation.name)
                             .where(Organisation.id.in_(org_ids))).all())
    shaped = []
    for offer in offers:
        row = offer.model_dump()
        row.update(areas=areas[offer.id], responsibilities=codes[offer.id],
                   organisation_name=names.get(offer.organisation_id))
        shaped.append(row)
    return shaped


def list_offers(db: Session, actor: Principal, *, limit: int, after: int | None = None,
                area: str | None = None, age: int | None = None, need: str | None = None,
                capacity: str | None = None, status: str | None = None,
                organisation_id: int | None = None) -> tuple[list[dict], int | None]:
    """Offers matching the filters, keyset-paginated by id.

    An offer that lists no areas is not limited by area, so it matches any `area`.
    """
    actor.require(perm.OFFERS_READ)
    query = select(Offer).order_by(Offer.id).limit(limit + 1)
    if after is not None:
        query = query.where(Offer.id > after)
    if area:
        wanted = normalise_area(area).lower()
        any_area = sa.exists().where(OfferArea.offer_id == Offer.id)
        this_area = sa.exists().where(OfferArea.offer_id == Offer.id,
                                      sa.func.lower(OfferArea.area) == wanted)
        query = query.where(sa.or_(this_area, ~any_area))
    if age is not None:
        query = query.where(sa.or_(Offer.min_age.is_(None), Offer.min_age <= age),
                            sa.or_(Offer.max_age.is_(None), Offer.max_age >= age))
    if need:
        query = query.where(sa.exists().where(OfferResponsibility.offer_id == Offer.id,
                                              OfferResponsibility.responsibility_code == need))
    if capacity:
        query = query.where(Offer.capacity == capacity)
    if status:
        query = query.where(Offer.status == status)
    if organisation_id is not None:
        query = query.where(Offer.organisation_id == organisation_id)
    rows = list(db.exec(query).all())
    more = len(rows) > limit
    rows = rows[:limit]
    return _shape(rows, db), (rows[-1].id if more else None)


def get_offer(db: Session, actor: Principal, offer_id: int) -> dict:
    actor.require(perm.OFFERS_READ)
    offer = db.get(Offer, offer_id)
    if offer is None:
        raise NotFound("No such offer.")
    return _shape([offer], db)[0]


# --- managing ------------------------------------------------------------------------------

def _check_responsibilities(db: Session, codes: list[str]) -> list[str]:
    codes = sorted(set(codes))
    if not codes:
        return codes
    scopes = dict(db.exec(select(Responsibility.code, Responsibility.scope)
                          .where(Responsibility.code.in_(codes))).all())
    unknown = [c for c in codes if c not in scopes]
    if unknown:
        raise Invalid("The offer names an unknown responsibility.",
                      errors={"responsibilities": ["Unknown responsibility code"]})
    statutory = [c for c in codes if scopes[c] == "statutory-only"]
    if statutory:
        raise Invalid("A community offer cannot cover a statutory-only responsibility.",
                      errors={"responsibilities": [
                          "Statutory-only responsibilities cannot be covered by a community offer"]})
    return codes


def _check_fields(offer: Offer) -> None:
    if offer.min_age is not None and offer.max_age is not None and offer.min_age > offer.max_age:
        raise Invalid("The age range is the wrong way round.",
                      errors={"max_age": ["The maximum age must not be below the minimum age"]})


def _set_areas(db: Session, offer: Offer, areas: list[str]) -> None:
    wanted = {}
    for raw in areas:
        area = normalise_area(raw)
        wanted.setdefault(area.lower(), area)
    for row in db.exec(select(OfferArea).where(OfferArea.offer_id == offer.id)).all():
        db.delete(row)
    db.flush()
    for area in wanted.values():
        db.add(OfferArea(offer_id=offer.id, area=area))


def _set_responsibilities(db: Session, offer: Offer, codes: list[str]) -> None:
    for row in db.exec(select(OfferResponsibility)
                       .where(OfferResponsibility.offer_id == offer.id)).all():
        db.delete(row)
    db.flush()
    for code in codes:
        db.add(OfferResponsibility(offer_id=offer.id, responsibility_code=code))


def record_capacity(db: Session, offer: Offer, at) -> None:
    """Note the offer's capacity from `at` on (at creation and on every change), for the
    flows report's time at each capacity."""
    db.add(OfferCapacityChange(offer_id=offer.id, capacity=offer.capacity,
                               waitlist_weeks=offer.waitlist_weeks, changed_at=at))


def create_offer(db: Session, actor: Principal, data: dict) -> dict:
    actor.require(perm.OFFERS_MANAGE)
    organisation = db.get(Organisation, actor.organisation_id) if actor.organisation_id else None
    if organisation is None or organisation.kind != "vcse":
        raise Forbidden("Only a VCSE organisation runs community offers.")
    requested = data.pop("organisation_id", None)
    if requested is not None and requested != organisation.id:
        raise Forbidden("You can only add offers for your own organisation.")
    areas = data.pop("areas", [])
    codes = _check_responsibilities(db, data.pop("responsibilities", []))
    now = clock.now()
    offer = Offer(organisation_id=organisation.id, created_at=now, updated_at=now,
                  **{k: v for k, v in data.items() if k in _SCALAR_FIELDS})
    _check_fields(offer)
    db.add(offer)
    db.flush()
    record_capacity(db, offer, now)
    _set_areas(db, offer, areas)
    _set_responsibilities(db, offer, codes)
    db.flush()
    audit.record(db, actor, "create", "offer", offer.id)
    return _shape([offer], db)[0]


def _own_offer(db: Session, actor: Principal, offer_id: int, *, lock: bool = False) -> Offer:
    actor.require(perm.OFFERS_MANAGE)
    query = select(Offer).where(Offer.id == offer_id)
    if lock:
        query = query.with_for_update()
    offer = db.exec(query).first()
    if offer is None:
        raise NotFound("No such offer.")
    if offer.organisation_id != actor.organisation_id:
        audit.record_denied(actor, "update", "offer", offer_id)
        raise Forbidden("Only the organisation that runs this offer can change it.")
    return offer


def update_offer(db: Session, actor: Principal, offer_id: int, data: dict, *,
                 expected_version: int | None = None) -> dict:
    """Change an offer; the caller names the version they read: the If-Match header (API) or
    `expected_version` (a page's hidden field). Stale → 412, missing header → 428."""
    offer = _own_offer(db, actor, offer_id, lock=True)
    if expected_version is None:
        require_if_match("offer", offer.id, offer.version)
    elif expected_version != offer.version:
        raise PreconditionFailed("The offer has changed since you read it. Read it again.",
                                 headers={"ETag": etag_of("offer", offer.id, offer.version)})
    codes = None
    if "responsibilities" in data:
        codes = _check_responsibilities(db, data.pop("responsibilities"))
    areas = data.pop("areas", None)
    capacity_before = (offer.capacity, offer.waitlist_weeks)
    for name, value in data.items():
        if name in _SCALAR_FIELDS:
            setattr(offer, name, value)
    _check_fields(offer)
    if areas is not None:
        _set_areas(db, offer, areas)
    if codes is not None:
        _set_responsibilities(db, offer, codes)
    offer.version += 1
    offer.updated_at = clock.now()
    db.add(offer)
    if (offer.capacity, offer.waitlist_weeks) != capacity_before:
        record_capacity(db, offer, offer.updated_at)
    db.flush()
    audit.record(db, actor, "update", "offer", offer.id)
    return _shape([offer], db)[0]

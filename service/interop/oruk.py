"""Open Referral UK 3.0: active community offers as ORUK `service` records.

The directory is public like any service directory: offers are not personal data, so the
feed needs no caller and writes no audit events.

Identifiers. ORUK identifiers are UUIDs. A service's id embeds the offer id in a fixed
RFC 9562 version 8 layout (`5d0ffe12-0000-8000-8000-<offer id as 12 hex digits>`), so
`/services/{id}` is answered without a lookup table; the integer offer id is accepted too.
Every other identifier (organisation, service areas, contacts, attributes) is a UUIDv5 of
a stable Stepdown key, so it never changes between requests.

Mapping (DESIGN §3 "Community offer" → ORUK `service`):

| Stepdown | ORUK 3.0 |
|---|---|
| name, description, url, email, status, assured_date | same names (status vocabulary is identical) |
| min_age / max_age | minimum_age / maximum_age |
| eligibility (free text) | eligibility_description (HSDS 3.0 core field; not in the UK profile) |
| capacity `waitlist` / `no-capacity` | alert ("Waiting list…", "Not taking new referrals…") |
| areas (boroughs, postcode districts) | service_areas[].name and .service_area |
| phone, email | contacts[] (with HSDS 3.0 `phones`) |
| responsibilities covered | attributes[] with taxonomy `stepdown-responsibility` |
| organisation; charity/company number, ODS code | organization; organization_identifiers |

Identifier schemes (org-id.guide): GB-CHC charity number, GB-COH company number, GB-NHS ODS.
"""

from __future__ import annotations

import math
import uuid
from collections import defaultdict
from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Session, select

from models import Offer, OfferArea, OfferResponsibility, Organisation, Responsibility
from service.errors import NotFound

ORUK_VERSION = "3.0"
RESPONSIBILITY_TAXONOMY = "stepdown-responsibility"
RESPONSIBILITY_LINK_TYPE = "responsibility"
PUBLISHED_STATUSES = ("active",)

# UUIDv5 namespace for every derived identifier (itself uuid5(NAMESPACE_URL, ...)).
NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://stepdown.nhs.example/openreferral")
_SERVICE_PREFIX = "5d0ffe12-0000-8000-8000-"

# org-id.guide schemes for the identifiers Stepdown holds.
_IDENTIFIER_SCHEMES = (
    ("charity_number", "GB-CHC", "Charity number"),
    ("company_number", "GB-COH", "Company number"),
    ("ods_code", "GB-NHS", "ODS code"),
)


def service_uuid(offer_id: int) -> str:
    """The ORUK id of an offer (reversible: see `offer_id_from`)."""
    return f"{_SERVICE_PREFIX}{offer_id:012x}"


def offer_id_from(service_id: str) -> int | None:
    """The offer id named by an ORUK service id (our UUID layout, or a plain integer)."""
    text = service_id.strip().lower()
    if text.isdigit() and len(text) <= 12:
        return int(text)
    if len(text) == 36 and text.startswith(_SERVICE_PREFIX):
        tail = text[len(_SERVICE_PREFIX):]
        try:
            return int(tail, 16)
        except ValueError:
            return None
    return None


def derived_uuid(*key: object) -> str:
    return str(uuid.uuid5(NAMESPACE, ":".join(str(part) for part in key)))


def timestamp(value: datetime) -> str:
    """ISO 8601 UTC with millisecond accuracy, as ORUK asks for `last_modified`."""
    return f"{value:%Y-%m-%dT%H:%M:%S}.{value.microsecond // 1000:03d}Z"


# ---- Mapping ------------------------------------------------------------------------------


def organization_record(organisation: Organisation) -> dict:
    org_id = derived_uuid("organisation", organisation.id)
    if organisation.kind == "statutory":
        description = "NHS organisation"
    else:
        description = "Voluntary, community and social enterprise organisation"
    if organisation.borough:
        description += f" in {organisation.borough}"
    identifiers = [
        {
            "id": derived_uuid("organisation-identifier", organisation.id, scheme),
            "organization_id": org_id,
            "identifier_scheme": scheme,
            "identifier_type": label,
            "identifier": getattr(organisation, attribute),
        }
        for attribute, scheme, label in _IDENTIFIER_SCHEMES
        if getattr(organisation, attribute)
    ]
    return {
        "id": org_id,
        "name": organisation.name,
        "description": description + ".",
        "organization_identifiers": identifiers,
    }


def _alert(offer: Offer) -> str | None:
    if offer.capacity == "waitlist":
        if offer.waitlist_weeks:
            return f"Waiting list: new referrals wait about {offer.waitlist_weeks} weeks to start."
        return "Waiting list: new referrals may wait before they start."
    if offer.capacity == "no-capacity":
        return "Not taking new referrals at the moment."
    return None


def service_record(offer: Offer, organisation: Organisation, *, areas: list[str] | None = None,
                   responsibilities: list[Responsibility] | None = None,
                   full: bool = True) -> dict:
    """One offer as an ORUK service: fully nested (`full`) or as a list item."""
    sid = service_uuid(offer.id)
    record: dict = {"id": sid, "organization_id": derived_uuid("organisation", organisation.id),
                    "name": offer.name}
    if offer.description:
        record["description"] = offer.description
    if offer.url:
        record["url"] = offer.url
    if offer.email:
        record["email"] = offer.email
    record["status"] = offer.status
    if offer.min_age is not None:
        record["minimum_age"] = offer.min_age
    if offer.max_age is not None:
        record["maximum_age"] = offer.max_age
    if offer.assured_date is not None:
        record["assured_date"] = offer.assured_date.isoformat()
    alert = _alert(offer)
    if alert:
        record["alert"] = alert
    record["last_modified"] = timestamp(offer.updated_at)
    if offer.eligibility:
        record["eligibility_description"] = offer.eligibility
    record["organization"] = organization_record(organisation)
    if not full:
        return record
    record["service_areas"] = [
        {"id": derived_uuid("service-area", offer.id, area), "service_id": sid, "name": area,
         "service_area": area}
        for area in sorted(areas or [])
    ]
    record["contacts"] = []
    if offer.email or offer.phone:
        contact_id = derived_uuid("contact", offer.id)
        contact = {"id": contact_id, "service_id": sid, "name": organisation.name,
                   "title": "Referrals and enquiries"}
        if offer.phone:
            contact["phones"] = [{"id": derived_uuid("phone", offer.id), "contact_id": contact_id,
                                  "number": offer.phone}]
        record["contacts"].append(contact)
    record["attributes"] = [
        {
            "id": derived_uuid("attribute", offer.id, r.code),
            "link_id": sid,
            "link_type": RESPONSIBILITY_LINK_TYPE,
            "taxonomy_term_id": derived_uuid("responsibility", r.code),
            "taxonomy_term": {
                "id": derived_uuid("responsibility", r.code),
                "name": r.name,
                "description": r.description or r.name,
                "taxonomy": RESPONSIBILITY_TAXONOMY,
                "term": r.code,
            },
        }
        for r in sorted(responsibilities or [], key=lambda r: r.code)
    ]
    for empty in ("schedules", "service_at_locations", "languages", "funding", "cost_options"):
        record[empty] = []
    return record


# ---- Queries ------------------------------------------------------------------------------


def _published():
    return Offer.status.in_(PUBLISHED_STATUSES)


def list_services(db: Session, *, page: int, per_page: int, search: str | None = None,
                  minimum_age: float | None = None, maximum_age: float | None = None) -> dict:
    """A page of published services, in the ORUK `Page` shape."""
    conditions = [_published()]
    if search:
        pattern = "%" + search.lower().replace("\\", "\\\\").replace("%", "\\%").replace(
            "_", "\\_") + "%"
        conditions.append(sa.or_(sa.func.lower(Offer.name).like(pattern, escape="\\"),
                                 sa.func.lower(Offer.description).like(pattern, escape="\\")))
    if minimum_age is not None:  # "a minimum age of at least the specified value"
        conditions.append(Offer.min_age >= minimum_age)
    if maximum_age is not None:  # "a maximum age equal to or below the specified value"
        conditions.append(Offer.max_age <= maximum_age)
    total = db.scalar(sa.select(sa.func.count()).select_from(Offer).where(*conditions)) or 0
    rows = db.exec(
        select(Offer, Organisation)
        .join(Organisation, Organisation.id == Offer.organisation_id)
        .where(*conditions)
        .order_by(Offer.name, Offer.id)
        .offset((page - 1) * per_page)
        .limit(per_page)
    ).all()
    contents = [service_record(offer, organisation, full=False) for offer, organisation in rows]
    total_pages = math.ceil(total / per_page) if total else 0
    return {
        "total_items": total,
        "total_pages": total_pages,
        "page_number": page,
        "size": len(contents),
        "first_page": page == 1,
        "last_page": page >= total_pages,
        "empty": not contents,
        "contents": contents,
    }


def related(db: Session, offer_ids: list[int]) -> tuple[dict, dict]:
    """Areas and responsibilities of these offers, each keyed by offer id."""
    areas: dict[int, list[str]] = defaultdict(list)
    responsibilities: dict[int, list[Responsibility]] = defaultdict(list)
    if not offer_ids:
        return areas, responsibilities
    for row in db.exec(select(OfferArea).where(OfferArea.offer_id.in_(offer_ids))).all():
        areas[row.offer_id].append(row.area)
    for offer_id, responsibility in db.exec(
        select(OfferResponsibility.offer_id, Responsibility)
        .join(Responsibility, Responsibility.code == OfferResponsibility.responsibility_code)
        .where(OfferResponsibility.offer_id.in_(offer_ids))
    ).all():
        responsibilities[offer_id].append(responsibility)
    return areas, responsibilities


def get_service(db: Session, service_id: str) -> dict:
    """One published service, fully nested; 404 for anything else."""
    offer_id = offer_id_from(service_id)
    offer = db.get(Offer, offer_id) if offer_id is not None else None
    if offer is None or offer.status not in PUBLISHED_STATUSES:
        raise NotFound("No such service.")
    organisation = db.get(Organisation, offer.organisation_id)
    areas, responsibilities = related(db, [offer.id])
    return service_record(offer, organisation, areas=areas[offer.id],
                          responsibilities=responsibilities[offer.id])

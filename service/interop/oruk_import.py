"""Import community offers from an Open Referral UK feed (`flask import-oruk`).

    flask --app service import-oruk FILE_OR_URL --organisation <ODS code|charity|company|name>

The feed may be a file or an http(s) URL holding one service, a page of services
(`{"contents": [...]}`, later pages are fetched by `page=`), an organization with
`services`, or a JSON array of services. From a URL, list items without nested detail are
completed from `<url>/<id>` (the ORUK `/services/{id}`).

Each service becomes (or updates) an offer of the named organisation, matched by the feed's
service id (`Offer.external_id`), so running the import again creates nothing twice. Each
record is validated (marshmallow), then written in its own SAVEPOINT: a bad record is
reported and skipped, never half-imported. The feed owns the directory fields (name,
description, url, email, phone, status, ages, eligibility, assured date, service areas, and
responsibilities named with the `stepdown-responsibility` taxonomy); Stepdown keeps capacity,
waiting list and response target, which feeds do not carry.
"""

from __future__ import annotations

import json
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import click
import requests
import sqlalchemy as sa
from marshmallow import EXCLUDE, Schema, ValidationError, fields, pre_load, validate
from sqlmodel import Session, select

from models import Offer, OfferArea, OfferResponsibility, Organisation, Responsibility
from models.vocab import OFFER_STATUSES
from service import clock
from service.audit import operations as audit
from service.interop.oruk import RESPONSIBILITY_TAXONOMY
from service.offers.operations import normalise_area, record_capacity

MAX_PAGES = 10_000
FETCH_TIMEOUT = 30
AREA_MAX = 100
PHONE_MAX = 40


class FeedError(Exception):
    """The feed as a whole cannot be read."""


# ---- Reading the feed ---------------------------------------------------------------------


def _with_page(url: str, page: int) -> str:
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "page"]
    query.append(("page", str(page)))
    return urlunsplit(parts._replace(query=urlencode(query)))


def _detail_url(url: str, service_id: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=parts.path.rstrip("/") + "/" + service_id, query=""))


def _get_json(session: requests.Session, url: str) -> Any:
    try:
        response = session.get(url, timeout=FETCH_TIMEOUT, headers={"Accept": "application/json"})
    except requests.RequestException as exc:
        raise FeedError(f"could not fetch {url}: {type(exc).__name__}") from None
    if response.status_code != 200:
        raise FeedError(f"could not fetch {url}: HTTP {response.status_code}")
    try:
        return response.json()
    except ValueError:
        raise FeedError(f"{url} did not answer JSON") from None


def _records_of(document: Any) -> list:
    """The service records in one JSON document of any accepted shape."""
    if isinstance(document, list):
        return document
    if isinstance(document, dict):
        if isinstance(document.get("contents"), list):
            return document["contents"]
        if isinstance(document.get("services"), list):  # an organization with its services
            return document["services"]
        if "id" in document and "name" in document:
            return [document]
    raise FeedError("the feed holds no services (expected a service, a page with 'contents', "
                    "an organization with 'services', or a list)")


def read_feed(source: str, *, details: bool = True,
              http: requests.Session | None = None) -> list:
    """All service records of a feed (file or URL), following ORUK pagination."""
    if not source.startswith(("http://", "https://")):
        path = Path(source)
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise FeedError(f"could not read {source}: {exc.strerror}") from None
        except ValueError:
            raise FeedError(f"{source} is not valid JSON") from None
        return _records_of(document)
    http = http or requests.Session()
    document = _get_json(http, source)
    records = list(_records_of(document))
    if isinstance(document, dict) and isinstance(document.get("contents"), list):
        page = document.get("page_number") if isinstance(document.get("page_number"), int) else 1
        total_pages = document.get("total_pages") if isinstance(document.get("total_pages"),
                                                                int) else 1
        while page < min(total_pages, MAX_PAGES) and document.get("last_page") is not True:
            page += 1
            document = _get_json(http, _with_page(source, page))
            contents = _records_of(document)
            if not contents:
                break
            records.extend(contents)
        if details:
            records = [_completed(http, source, record) for record in records]
    return records


def _completed(http: requests.Session, list_url: str, record: Any) -> Any:
    """A list item with its nested detail from `/services/{id}`, or a note why not."""
    if not isinstance(record, dict) or "service_areas" in record or not record.get("id"):
        return record
    try:
        detail = _get_json(http, _detail_url(list_url, str(record["id"])))
    except FeedError as exc:
        return {"__skip__": f"full record not available ({exc})", "id": record.get("id"),
                "name": record.get("name")}
    return detail if isinstance(detail, dict) else record


# ---- Validating one record ----------------------------------------------------------------


class _Lenient(Schema):
    class Meta:
        unknown = EXCLUDE  # feeds carry much we do not use

    @pre_load
    def _blank_is_missing(self, data, **_kw):
        if not isinstance(data, dict):
            return data
        return {k: (None if isinstance(v, str) and not v.strip() else
                    v.strip() if isinstance(v, str) else v)
                for k, v in data.items()}


class _Phone(_Lenient):
    number = fields.String(allow_none=True)


class _Contact(_Lenient):
    phones = fields.List(fields.Nested(_Phone), allow_none=True)


class _Area(_Lenient):
    name = fields.String(allow_none=True)
    service_area = fields.String(allow_none=True)


class _Term(_Lenient):
    taxonomy = fields.String(allow_none=True)
    term = fields.String(allow_none=True)


class _Attribute(_Lenient):
    taxonomy_term = fields.Nested(_Term, allow_none=True)


class _FeedId(fields.Field):
    """ORUK ids are UUIDs; older feeds use integers. Either becomes text."""

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, bool) or not isinstance(value, str | int):
            raise ValidationError("Give the service id as text")
        text = str(value).strip()
        if not 1 <= len(text) <= 200:
            raise ValidationError("Give a service id of 1 to 200 characters")
        return text


class FeedServiceSchema(_Lenient):
    id = _FeedId(required=True)
    name = fields.String(required=True, validate=validate.Length(min=1, max=200))
    description = fields.String(allow_none=True, validate=validate.Length(max=4000))
    url = fields.Url(allow_none=True, schemes={"http", "https"},
                     validate=validate.Length(max=500))
    email = fields.Email(allow_none=True, validate=validate.Length(max=320))
    status = fields.String(required=True, validate=validate.OneOf(OFFER_STATUSES))
    minimum_age = fields.Float(allow_none=True, validate=validate.Range(min=0, max=150))
    maximum_age = fields.Float(allow_none=True, validate=validate.Range(min=0, max=150))
    assured_date = fields.Date(allow_none=True)
    eligibility_description = fields.String(allow_none=True, validate=validate.Length(max=2000))
    service_areas = fields.List(fields.Nested(_Area), allow_none=True)
    contacts = fields.List(fields.Nested(_Contact), allow_none=True)
    attributes = fields.List(fields.Nested(_Attribute), allow_none=True)


def _reason(messages: Any, prefix: str = "") -> str:
    """Marshmallow's messages as one line: 'name: Missing data…; status: Must be one of…'."""
    if isinstance(messages, dict):
        parts = []
        for key, value in messages.items():
            name = f"{prefix}.{key}" if prefix else str(key)
            parts.append(_reason(value, name))
        return "; ".join(parts)
    if isinstance(messages, list) and all(isinstance(m, str) for m in messages):
        return f"{prefix}: {' '.join(messages)}" if prefix else " ".join(messages)
    return f"{prefix}: {messages}"


@dataclass
class MappedOffer:
    external_id: str
    values: dict[str, Any]
    areas: set[str]
    responsibilities: set[str]
    warnings: list[str] = field(default_factory=list)


class Skip(Exception):
    """This record is not imported; the message says why."""


def map_record(record: Any, responsibility_scopes: dict[str, str]) -> MappedOffer:
    if not isinstance(record, dict):
        raise Skip("not a JSON object")
    if record.get("__skip__"):
        raise Skip(record["__skip__"])
    try:
        data = FeedServiceSchema().load(record)
    except ValidationError as exc:
        raise Skip(_reason(exc.messages)) from None
    min_age = math.floor(data["minimum_age"]) if data.get("minimum_age") is not None else None
    max_age = math.ceil(data["maximum_age"]) if data.get("maximum_age") is not None else None
    if min_age is not None and max_age is not None and min_age > max_age:
        raise Skip("minimum_age is above maximum_age")
    warnings: list[str] = []
    areas: dict[str, str] = {}
    for area in data.get("service_areas") or []:
        label = area.get("name") or area.get("service_area")
        if not label:
            continue
        label = normalise_area(label)
        if len(label) > AREA_MAX:
            warnings.append(f"a service area described in more than {AREA_MAX} characters "
                            "was not imported (use a borough or postcode district)")
            continue
        areas.setdefault(label.lower(), label)
    phone = None
    for contact in data.get("contacts") or []:
        for item in contact.get("phones") or []:
            number = item.get("number")
            if number and len(number) <= PHONE_MAX and phone is None:
                phone = number
            elif number and len(number) > PHONE_MAX:
                warnings.append(f"a phone number longer than {PHONE_MAX} characters was not "
                                "imported")
    responsibilities: set[str] = set()
    for attribute in data.get("attributes") or []:
        term = attribute.get("taxonomy_term") or {}
        if term.get("taxonomy") == RESPONSIBILITY_TAXONOMY and term.get("term"):
            scope = responsibility_scopes.get(term["term"])
            if scope is None:
                warnings.append("an unknown responsibility was not imported")
            elif scope == "statutory-only":
                warnings.append("a statutory-only responsibility was not imported (a community "
                                "offer cannot cover it)")
            else:
                responsibilities.add(term["term"])
    values = {
        "name": data["name"],
        "description": data.get("description") or "",
        "url": data.get("url"),
        "email": data.get("email"),
        "phone": phone,
        "status": data["status"],
        "min_age": min_age,
        "max_age": max_age,
        "assured_date": data.get("assured_date"),
        "eligibility": data.get("eligibility_description"),
    }
    return MappedOffer(data["id"], values, set(areas.values()), responsibilities, warnings)


# ---- Writing ------------------------------------------------------------------------------


@dataclass
class ImportSummary:
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (record, reason)
    warnings: list[tuple[str, str]] = field(default_factory=list)

    def lines(self) -> list[str]:
        out = [f"created {len(self.created)}, updated {len(self.updated)}, "
               f"unchanged {len(self.unchanged)}, skipped {len(self.skipped)}"]
        out += [f"  skipped {ref}: {reason}" for ref, reason in self.skipped]
        out += [f"  warning {ref}: {message}" for ref, message in self.warnings]
        return out


def _label(index: int, record: Any) -> str:
    """How the summary names a record: its position, id and name (offers are public data)."""
    if isinstance(record, dict):
        rid = record.get("id")
        name = record.get("name")
        if isinstance(name, str) and len(name) > 60:
            name = name[:57] + "..."
        bits = [f"#{index}"]
        if isinstance(rid, str | int) and not isinstance(rid, bool):
            bits.append(str(rid)[:80])
        if isinstance(name, str):
            bits.append(repr(name))
        return " ".join(bits)
    return f"#{index}"


def _apply(db: Session, organisation: Organisation, mapped: MappedOffer, now) -> str:
    offer = db.exec(select(Offer).where(Offer.organisation_id == organisation.id,
                                        Offer.external_id == mapped.external_id)).first()
    created = offer is None
    if created:
        offer = Offer(organisation_id=organisation.id, external_id=mapped.external_id,
                      created_at=now, updated_at=now, **mapped.values)
        db.add(offer)
        db.flush()
        record_capacity(db, offer, now)
        current_areas: set[str] = set()
        current_resps: set[str] = set()
    else:
        current_areas = set(db.exec(select(OfferArea.area)
                                    .where(OfferArea.offer_id == offer.id)).all())
        current_resps = set(db.exec(select(OfferResponsibility.responsibility_code)
                                    .where(OfferResponsibility.offer_id == offer.id)).all())
        changed = {k: v for k, v in mapped.values.items() if getattr(offer, k) != v}
        if not changed and current_areas == mapped.areas and current_resps == \
                mapped.responsibilities:
            return "unchanged"
        for name, value in changed.items():
            setattr(offer, name, value)
        offer.version += 1
        offer.updated_at = now
        db.add(offer)
    for area in current_areas - mapped.areas:
        db.execute(sa.delete(OfferArea).where(OfferArea.offer_id == offer.id,
                                              OfferArea.area == area))
    for area in sorted(mapped.areas - current_areas):
        db.add(OfferArea(offer_id=offer.id, area=area))
    for code in current_resps - mapped.responsibilities:
        db.execute(sa.delete(OfferResponsibility).where(
            OfferResponsibility.offer_id == offer.id,
            OfferResponsibility.responsibility_code == code))
    for code in sorted(mapped.responsibilities - current_resps):
        db.add(OfferResponsibility(offer_id=offer.id, responsibility_code=code))
    db.flush()
    audit.record(db, None, "import-create" if created else "import-update", "offer", offer.id)
    return "created" if created else "updated"


def import_records(db: Session, organisation: Organisation, records: list,
                   progress=None) -> ImportSummary:
    """Import each record in its own SAVEPOINT; the caller commits (or rolls back)."""
    now = clock.now()
    summary = ImportSummary()
    scopes = dict(db.exec(select(Responsibility.code, Responsibility.scope)).all())
    # A write before the first SAVEPOINT opens the real transaction (on SQLite a SAVEPOINT
    # outside one would commit on release), and records who imported what, when.
    audit.record(db, None, "import-feed", "organisation", organisation.id)
    db.flush()
    seen: set[str] = set()
    for index, record in enumerate(records, start=1):
        label = _label(index, record)
        try:
            mapped = map_record(record, scopes)
            if mapped.external_id in seen:
                raise Skip("the feed lists this service id more than once; the first was used")
            seen.add(mapped.external_id)
            with db.begin_nested():
                outcome = _apply(db, organisation, mapped, now)
        except Skip as exc:
            summary.skipped.append((label, str(exc)))
        except sa.exc.SQLAlchemyError as exc:
            summary.skipped.append((label, f"refused by the database ({type(exc).__name__})"))
        else:
            getattr(summary, outcome).append(label)
            summary.warnings.extend((label, w) for w in mapped.warnings)
        if progress is not None:
            progress(1)
    return summary


def find_organisation(db: Session, ref: str) -> Organisation | None:
    ref = ref.strip()
    return db.exec(select(Organisation).where(sa.or_(
        Organisation.ods_code == ref.upper(), Organisation.charity_number == ref,
        Organisation.company_number == ref.upper(), Organisation.name == ref,
    )).order_by(Organisation.id)).first()


@click.command("import-oruk")
@click.argument("source")
@click.option("--organisation", "organisation_ref", required=True,
              help="The organisation that runs the offers: ODS code, charity or company "
                   "number, or name.")
@click.option("--details/--no-details", default=True,
              help="From a URL, fetch /services/{id} for list items without detail.")
@click.option("--dry-run", is_flag=True, help="Check and report, but save nothing.")
def import_oruk(source: str, organisation_ref: str, details: bool, dry_run: bool) -> None:
    """Import and update community offers from an Open Referral UK feed (FILE or URL)."""
    from service.db import engine

    with Session(engine(), expire_on_commit=False) as db:
        organisation = find_organisation(db, organisation_ref)
        if organisation is None:
            raise click.BadParameter("no such organisation (use an ODS code, charity or "
                                     "company number, or the exact name)",
                                     param_hint="--organisation")
        if organisation.kind != "vcse":
            raise click.BadParameter("community offers are run by a VCSE organisation",
                                     param_hint="--organisation")
        try:
            records = read_feed(source, details=details)
        except FeedError as exc:
            raise click.ClickException(str(exc)) from None
        with click.progressbar(length=len(records), label="Importing services",
                               file=sys.stderr, show_pos=True) as bar:
            summary = import_records(db, organisation, records, progress=bar.update)
        if dry_run:
            db.rollback()
        else:
            db.commit()
    for line in summary.lines():
        click.echo(line)
    if dry_run:
        click.echo("dry run: nothing was saved")

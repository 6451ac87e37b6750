"""Administration use cases, scoped so an org admin manages only their own organisation."""

from __future__ import annotations

from sqlmodel import Session, select

from models import Organisation
from service.audit import operations as audit
from service.auth import permissions as perm
from service.auth.principal import Principal
from service.errors import Conflict, NotFound


def list_organisations(db: Session, actor: Principal, *, limit: int, after: int | None):
    actor.require(perm.ORGANISATIONS_READ)
    query = select(Organisation).order_by(Organisation.id).limit(limit + 1)
    if after is not None:
        query = query.where(Organisation.id > after)
    rows = list(db.exec(query).all())
    audit.record(db, actor, "list", "organisation")
    more = len(rows) > limit
    rows = rows[:limit]
    return rows, (rows[-1].id if more else None)


def get_organisation(db: Session, actor: Principal, organisation_id: int) -> Organisation:
    actor.require(perm.ORGANISATIONS_READ)
    organisation = db.get(Organisation, organisation_id)
    if organisation is None:
        raise NotFound("No such organisation.")
    audit.record(db, actor, "read", "organisation", organisation.id)
    return organisation


def own_organisation(db: Session, actor: Principal, organisation_id: int) -> Organisation:
    """The organisation, if the actor administers it; otherwise 404 (existence does not leak)."""
    actor.require(perm.ORGANISATION_ADMIN)
    organisation = db.get(Organisation, organisation_id)
    if organisation is None or organisation.id != actor.organisation_id:
        audit.record_denied(actor, "admin", "organisation", organisation_id)
        raise NotFound("No such organisation.")
    return organisation


def create_organisation(db: Session, actor: Principal, data: dict) -> Organisation:
    actor.require(perm.ORGANISATION_ADMIN)
    if data.get("ods_code") and db.exec(
        select(Organisation).where(Organisation.ods_code == data["ods_code"])
    ).first():
        raise Conflict("An organisation with this ODS code exists.",
                       errors={"ods_code": ["An organisation with this ODS code exists"]})
    organisation = Organisation(**data)
    db.add(organisation)
    db.flush()
    audit.record(db, actor, "create", "organisation", organisation.id)
    return organisation


def update_organisation(db: Session, actor: Principal, organisation_id: int,
                        data: dict) -> Organisation:
    organisation = own_organisation(db, actor, organisation_id)
    for name, value in data.items():
        setattr(organisation, name, value)
    db.add(organisation)
    db.flush()
    audit.record(db, actor, "update", "organisation", organisation.id)
    return organisation

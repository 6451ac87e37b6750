"""Administration use cases, scoped so an org admin manages only their own organisation.

Anything belonging to another organisation is reported as not found (404), never as
forbidden, and the refused attempt is audited with `record_denied`. Every read and
change that is allowed writes an audit event in the request's transaction.
"""

from __future__ import annotations

import secrets
from collections import defaultdict

import sqlalchemy as sa
from sqlmodel import Session, select

from models import (
    Alliance,
    AllianceManager,
    AllianceMember,
    ApiClient,
    Cis2RoleMapping,
    LoginSession,
    Membership,
    Organisation,
    OrganisationResponsibility,
    Responsibility,
    Team,
    User,
    UserIdentity,
)
from models.vocab import RESPONSIBILITY_SCOPES
from service.audit import operations as audit
from service.auth import permissions as perm
from service.auth.operations import normalise_email
from service.auth.passwords import hash_password
from service.auth.principal import Principal
from service.errors import Conflict, Invalid, NotFound
from service.http import content_etag, require_if_match_tag

# Which roles an organisation of each kind may give (DESIGN §2).
VCSE_ONLY_ROLES = frozenset({"vcse_worker", "vcse_manager"})
STATUTORY_ONLY_ROLES = frozenset({"care_coordinator", "duty_clinician"})
# Roles whose work is scoped by a team: a membership in one of them names the team.
TEAM_ROLES = frozenset({"care_coordinator", "duty_clinician", "peer_worker", "vcse_worker",
                        "vcse_manager"})
ADMIN_SCOPE = "admin"
INVALID = "The request has invalid fields."


def role_allowed(role: str, organisation_kind: str) -> bool:
    if role in VCSE_ONLY_ROLES:
        return organisation_kind == "vcse"
    if role in STATUTORY_ONLY_ROLES:
        return organisation_kind == "statutory"
    return True


def roles_for_kind(organisation_kind: str, roles) -> list[str]:
    return [role for role in roles if role_allowed(role, organisation_kind)]


def _page(db: Session, query, key, *, limit: int, after):
    """Keyset pagination: rows after `after` ordered by `key`, and the key to continue from."""
    if after is not None:
        query = query.where(key > after)
    rows = list(db.exec(query.order_by(key).limit(limit + 1)).all())
    more = len(rows) > limit
    rows = rows[:limit]
    return rows, (getattr(rows[-1], key.key) if more else None)


def _not_found(actor: Principal, record_type: str, record_id, label: str) -> NotFound:
    audit.record_denied(actor, "admin", record_type, record_id)
    return NotFound(f"No such {label}.")


def _own(db: Session, actor: Principal, organisation: Organisation, model, record_id: int,
         record_type: str, label: str):
    """The organisation's record of this type, or 404 with a denied audit row."""
    record = db.get(model, record_id)
    if record is None or record.organisation_id != organisation.id:
        raise _not_found(actor, record_type, record_id, label)
    return record


def _team_errors(db: Session, organisation: Organisation, team_id: int) -> list[str]:
    """Why this team cannot be named for the organisation (empty when it can)."""
    team = db.get(Team, team_id)
    if team is None or team.organisation_id != organisation.id:
        return ["Choose a team in your organisation"]
    return []


# ---- Organisations -----------------------------------------------------------------------

def list_organisations(db: Session, actor: Principal, *, limit: int, after: int | None):
    actor.require(perm.ORGANISATIONS_READ)
    rows, next_after = _page(db, select(Organisation), Organisation.id, limit=limit, after=after)
    audit.record(db, actor, "list", "organisation")
    return rows, next_after


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
        raise _not_found(actor, "organisation", organisation_id, "organisation")
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


def organisation_etag(organisation: Organisation) -> str:
    return content_etag("organisation", organisation.id, {
        name: getattr(organisation, name)
        for name in ("kind", "name", "ods_code", "charity_number", "company_number", "borough")})


def update_organisation(db: Session, actor: Principal, organisation_id: int,
                        data: dict) -> Organisation:
    """Change the organisation's details; the If-Match header must name what was read."""
    organisation = own_organisation(db, actor, organisation_id)
    require_if_match_tag(organisation_etag(organisation))
    for name, value in data.items():
        setattr(organisation, name, value)
    db.add(organisation)
    db.flush()
    audit.record(db, actor, "update", "organisation", organisation.id)
    return organisation


# ---- Teams -------------------------------------------------------------------------------

def _team_in(db: Session, actor: Principal, organisation: Organisation, team_id: int) -> Team:
    return _own(db, actor, organisation, Team, team_id, "team", "team")


def _check_team_name_free(db: Session, organisation: Organisation, name: str,
                          except_id: int | None = None) -> None:
    query = select(Team).where(Team.organisation_id == organisation.id, Team.name == name)
    existing = db.exec(query).first()
    if existing is not None and existing.id != except_id:
        raise Conflict("A team with this name exists.",
                       errors={"name": ["Your organisation already has a team with this name"]})


def list_teams(db: Session, actor: Principal, organisation_id: int, *, limit: int,
               after: int | None):
    organisation = own_organisation(db, actor, organisation_id)
    rows, next_after = _page(db, select(Team).where(Team.organisation_id == organisation.id),
                             Team.id, limit=limit, after=after)
    audit.record(db, actor, "list", "team")
    return rows, next_after


def get_team(db: Session, actor: Principal, organisation_id: int, team_id: int) -> Team:
    organisation = own_organisation(db, actor, organisation_id)
    team = _team_in(db, actor, organisation, team_id)
    audit.record(db, actor, "read", "team", team.id)
    return team


def create_team(db: Session, actor: Principal, organisation_id: int, data: dict) -> Team:
    organisation = own_organisation(db, actor, organisation_id)
    _check_team_name_free(db, organisation, data["name"])
    team = Team(organisation_id=organisation.id, name=data["name"], email=data.get("email"))
    db.add(team)
    db.flush()
    audit.record(db, actor, "create", "team", team.id)
    return team


def team_etag(team: Team) -> str:
    return content_etag("team", team.id, {"name": team.name, "email": team.email})


def update_team(db: Session, actor: Principal, organisation_id: int, team_id: int,
                data: dict) -> Team:
    """Rename a team or change its inbox; the If-Match header must name what was read."""
    organisation = own_organisation(db, actor, organisation_id)
    team = _team_in(db, actor, organisation, team_id)
    require_if_match_tag(team_etag(team))
    if "name" in data:
        _check_team_name_free(db, organisation, data["name"], except_id=team.id)
    for name in ("name", "email"):
        if name in data:
            setattr(team, name, data[name])
    db.add(team)
    db.flush()
    audit.record(db, actor, "update", "team", team.id)
    return team


# ---- Memberships -------------------------------------------------------------------------

def membership_errors(db: Session, organisation: Organisation, role: str,
                       team_id: int | None) -> dict[str, list[str]]:
    errors: dict[str, list[str]] = {}
    if not role_allowed(role, organisation.kind):
        kind = "VCSE" if organisation.kind == "vcse" else "statutory"
        errors["role"] = [f"Choose a role that a {kind} organisation can give"]
    if team_id is not None:
        if team_errors := _team_errors(db, organisation, team_id):
            errors["team_id"] = team_errors
    elif role in TEAM_ROLES:
        errors["team_id"] = ["Choose the team this person works in"]
    return errors


def _user_in(db: Session, actor: Principal, organisation: Organisation, user_id: int) -> User:
    """A user holding a membership in the organisation; anyone else is not found."""
    user = db.get(User, user_id)
    if user is None or db.exec(select(Membership.id).where(
            Membership.user_id == user_id,
            Membership.organisation_id == organisation.id)).first() is None:
        raise _not_found(actor, "user", user_id, "user")
    return user


def _check_membership_free(db: Session, organisation: Organisation, user_id: int, role: str,
                           team_id: int | None) -> None:
    # NULL team ids are distinct in a unique constraint, so check in code as well.
    query = select(Membership).where(
        Membership.user_id == user_id, Membership.organisation_id == organisation.id,
        Membership.role == role,
        Membership.team_id.is_(None) if team_id is None else Membership.team_id == team_id)
    if db.exec(query).first() is not None:
        raise Conflict("This person already has this role.",
                       errors={"role": ["This person already has this role in this team"]})


def list_memberships(db: Session, actor: Principal, organisation_id: int, *, limit: int,
                     after: int | None):
    organisation = own_organisation(db, actor, organisation_id)
    rows, next_after = _page(
        db, select(Membership).where(Membership.organisation_id == organisation.id),
        Membership.id, limit=limit, after=after)
    audit.record(db, actor, "list", "membership")
    return rows, next_after


def create_membership(db: Session, actor: Principal, organisation_id: int,
                      data: dict) -> Membership:
    organisation = own_organisation(db, actor, organisation_id)
    user = _user_in(db, actor, organisation, data["user_id"])
    errors = membership_errors(db, organisation, data["role"], data.get("team_id"))
    if errors:
        raise Invalid(INVALID, errors=errors)
    _check_membership_free(db, organisation, user.id, data["role"], data.get("team_id"))
    membership = Membership(user_id=user.id, organisation_id=organisation.id,
                            team_id=data.get("team_id"), role=data["role"],
                            is_team_manager=data.get("is_team_manager", False))
    db.add(membership)
    db.flush()
    audit.record(db, actor, "create", "membership", membership.id)
    return membership


def get_membership(db: Session, actor: Principal, organisation_id: int,
                   membership_id: int) -> Membership:
    organisation = own_organisation(db, actor, organisation_id)
    membership = _own(db, actor, organisation, Membership, membership_id, "membership",
                      "membership")
    audit.record(db, actor, "read", "membership", membership.id)
    return membership


def delete_membership(db: Session, actor: Principal, organisation_id: int,
                      membership_id: int) -> None:
    organisation = own_organisation(db, actor, organisation_id)
    membership = _own(db, actor, organisation, Membership, membership_id, "membership",
                      "membership")
    if actor.membership is not None and actor.membership.id == membership.id:
        raise Conflict("You cannot remove the role you are using.")
    # Sessions acting in this role end: the role is gone, so is what it allowed.
    for row in db.exec(select(LoginSession).where(LoginSession.membership_id == membership.id)):
        db.delete(row)
    db.delete(membership)
    db.flush()
    audit.record(db, actor, "delete", "membership", membership_id)


# ---- Users and identities ----------------------------------------------------------------

def _user_view(user: User, memberships: list[Membership],
               identities: list[UserIdentity]) -> dict:
    return {
        "id": user.id, "email": user.email, "display_name": user.display_name,
        "is_active": user.is_active, "has_password": bool(user.password_hash),
        "memberships": memberships, "identities": identities, "created_at": user.created_at,
    }


def _user_views(db: Session, organisation: Organisation, users: list[User]) -> list[dict]:
    ids = [u.id for u in users]
    memberships: dict[int, list[Membership]] = defaultdict(list)
    identities: dict[int, list[UserIdentity]] = defaultdict(list)
    if ids:
        for m in db.exec(select(Membership).where(Membership.user_id.in_(ids),
                                                  Membership.organisation_id == organisation.id)
                         .order_by(Membership.id)):
            memberships[m.user_id].append(m)
        for i in db.exec(select(UserIdentity).where(UserIdentity.user_id.in_(ids))
                         .order_by(UserIdentity.id)):
            identities[i.user_id].append(i)
    return [_user_view(u, memberships[u.id], identities[u.id]) for u in users]


def list_users(db: Session, actor: Principal, organisation_id: int, *, limit: int,
               after: int | None):
    """Users holding at least one membership in the organisation, with their roles there."""
    organisation = own_organisation(db, actor, organisation_id)
    members = select(Membership.user_id).where(Membership.organisation_id == organisation.id)
    rows, next_after = _page(db, select(User).where(User.id.in_(members)), User.id,
                             limit=limit, after=after)
    audit.record(db, actor, "list", "user")
    return _user_views(db, organisation, rows), next_after


def get_user(db: Session, actor: Principal, organisation_id: int, user_id: int) -> dict:
    organisation = own_organisation(db, actor, organisation_id)
    user = _user_in(db, actor, organisation, user_id)
    audit.record(db, actor, "read", "user", user.id)
    return _user_views(db, organisation, [user])[0]


def create_user(db: Session, actor: Principal, organisation_id: int, data: dict) -> dict:
    """A local account with its first membership in the admin's organisation."""
    organisation = own_organisation(db, actor, organisation_id)
    errors = membership_errors(db, organisation, data["role"], data.get("team_id"))
    if errors:
        raise Invalid(INVALID, errors=errors)
    email = normalise_email(data["email"])
    if db.exec(select(User.id).where(User.email == email)).first() is not None:
        raise Conflict("An account with this email address exists.",
                       errors={"email": ["An account with this email address already exists"]})
    user = User(email=email, display_name=data["display_name"].strip(),
                password_hash=hash_password(data["password"]) if data.get("password") else None)
    db.add(user)
    db.flush()
    membership = Membership(user_id=user.id, organisation_id=organisation.id,
                            team_id=data.get("team_id"), role=data["role"],
                            is_team_manager=data.get("is_team_manager", False))
    db.add(membership)
    db.flush()
    audit.record(db, actor, "create", "user", user.id)
    audit.record(db, actor, "create", "membership", membership.id)
    return _user_view(user, [membership], [])


def list_identities(db: Session, actor: Principal, organisation_id: int,
                    user_id: int) -> list[UserIdentity]:
    organisation = own_organisation(db, actor, organisation_id)
    user = _user_in(db, actor, organisation, user_id)
    rows = list(db.exec(select(UserIdentity).where(UserIdentity.user_id == user.id)
                        .order_by(UserIdentity.id)).all())
    audit.record(db, actor, "list", "user-identity", user.id)
    return rows


def create_identity(db: Session, actor: Principal, organisation_id: int, user_id: int,
                    data: dict) -> UserIdentity:
    """Pre-register who may sign in as this user through OIDC: (issuer, subject)."""
    organisation = own_organisation(db, actor, organisation_id)
    user = _user_in(db, actor, organisation, user_id)
    if db.exec(select(UserIdentity.id).where(UserIdentity.issuer == data["issuer"],
                                             UserIdentity.subject == data["subject"])).first():
        raise Conflict("This identity is already registered.",
                       errors={"subject": ["This identity is already registered"]})
    identity = UserIdentity(user_id=user.id, issuer=data["issuer"], subject=data["subject"])
    db.add(identity)
    db.flush()
    audit.record(db, actor, "create", "user-identity", identity.id)
    return identity


# ---- API clients -------------------------------------------------------------------------

def _client_view(client: ApiClient, secret: str | None = None) -> dict:
    view = {
        "id": client.id, "client_id": client.client_id, "organisation_id": client.organisation_id,
        "name": client.name, "team_id": client.team_id,
        "scopes": [s for s in client.scopes.split() if s], "is_active": client.is_active,
        "created_at": client.created_at,
    }
    if secret is not None:
        view["client_secret"] = secret
    return view


def list_api_clients(db: Session, actor: Principal, organisation_id: int, *, limit: int,
                     after: int | None):
    organisation = own_organisation(db, actor, organisation_id)
    rows, next_after = _page(
        db, select(ApiClient).where(ApiClient.organisation_id == organisation.id),
        ApiClient.id, limit=limit, after=after)
    audit.record(db, actor, "list", "api-client")
    return [_client_view(c) for c in rows], next_after


def _client_in(db: Session, actor: Principal, organisation: Organisation,
               client_id: int) -> ApiClient:
    return _own(db, actor, organisation, ApiClient, client_id, "api-client", "API client")


def get_api_client(db: Session, actor: Principal, organisation_id: int, client_id: int) -> dict:
    organisation = own_organisation(db, actor, organisation_id)
    client = _client_in(db, actor, organisation, client_id)
    audit.record(db, actor, "read", "api-client", client.id)
    return _client_view(client)


def create_api_client(db: Session, actor: Principal, organisation_id: int, data: dict) -> dict:
    """A client-credentials client; its secret is returned here once and stored hashed."""
    organisation = own_organisation(db, actor, organisation_id)
    scopes = list(dict.fromkeys(data["scopes"]))
    errors: dict[str, list[str]] = {}
    if ADMIN_SCOPE in scopes and actor.role != "org_admin":
        errors["scopes"] = ["Only an organisation admin can give the admin scope"]
    team_id = data.get("team_id")
    if team_id is not None and (team_errors := _team_errors(db, organisation, team_id)):
        errors["team_id"] = team_errors
    if errors:
        raise Invalid(INVALID, errors=errors)
    secret = secrets.token_urlsafe(32)
    client = ApiClient(client_id=f"sd-{secrets.token_hex(10)}", name=data["name"].strip(),
                       organisation_id=organisation.id, team_id=team_id,
                       secret_hash=hash_password(secret), scopes=" ".join(scopes))
    db.add(client)
    db.flush()
    audit.record(db, actor, "create", "api-client", client.id)
    return _client_view(client, secret)


def deactivate_api_client(db: Session, actor: Principal, organisation_id: int,
                          client_id: int) -> None:
    organisation = own_organisation(db, actor, organisation_id)
    client = _client_in(db, actor, organisation, client_id)
    client.is_active = False
    db.add(client)
    db.flush()
    audit.record(db, actor, "deactivate", "api-client", client.id)


# ---- CIS2 role mappings ------------------------------------------------------------------

def list_cis2_role_mappings(db: Session, actor: Principal, organisation_id: int, *, limit: int,
                            after: int | None):
    organisation = own_organisation(db, actor, organisation_id)
    rows, next_after = _page(
        db, select(Cis2RoleMapping).where(Cis2RoleMapping.organisation_id == organisation.id),
        Cis2RoleMapping.id, limit=limit, after=after)
    audit.record(db, actor, "list", "cis2-role-mapping")
    return rows, next_after


def create_cis2_role_mapping(db: Session, actor: Principal, organisation_id: int,
                             data: dict) -> Cis2RoleMapping:
    """Map an NHS CIS2 (ODS code, national role code) to a role in this statutory organisation."""
    organisation = own_organisation(db, actor, organisation_id)
    if organisation.kind != "statutory":
        raise Invalid("CIS2 role mappings are for statutory organisations.",
                      errors={"ods_code": ["CIS2 role mappings are for statutory organisations"]})
    errors = membership_errors(db, organisation, data["role"], data.get("team_id"))
    if data["ods_code"] != organisation.ods_code:
        errors["ods_code"] = ["Enter your organisation's own ODS code"]
    if errors:
        raise Invalid(INVALID, errors=errors)
    if db.exec(select(Cis2RoleMapping.id).where(
            Cis2RoleMapping.ods_code == data["ods_code"],
            Cis2RoleMapping.role_code == data["role_code"])).first() is not None:
        raise Conflict("This role code is already mapped.",
                       errors={"role_code": ["This role code is already mapped"]})
    mapping = Cis2RoleMapping(organisation_id=organisation.id, ods_code=data["ods_code"],
                              role_code=data["role_code"], team_id=data.get("team_id"),
                              role=data["role"])
    db.add(mapping)
    db.flush()
    audit.record(db, actor, "create", "cis2-role-mapping", mapping.id)
    return mapping


# ---- Alliances and the responsibility map ------------------------------------------------

def _visible_alliances(actor: Principal):
    """Alliances the caller's organisation belongs to, or whose contracts the caller manages."""
    conditions = []
    if actor.organisation_id is not None:
        conditions.append(Alliance.id.in_(select(AllianceMember.alliance_id).where(
            AllianceMember.organisation_id == actor.organisation_id)))
    if actor.user_id is not None:
        conditions.append(Alliance.id.in_(select(AllianceManager.alliance_id).where(
            AllianceManager.user_id == actor.user_id)))
    return sa.or_(*conditions) if conditions else sa.false()


def _alliance(db: Session, actor: Principal, alliance_id: int) -> Alliance:
    alliance = db.exec(select(Alliance).where(Alliance.id == alliance_id,
                                              _visible_alliances(actor))).first()
    if alliance is None:
        audit.record_denied(actor, "read", "alliance", alliance_id)
        raise NotFound("No such alliance.")
    return alliance


def _members(db: Session, alliance: Alliance) -> list[Organisation]:
    return list(db.exec(select(Organisation).join(
        AllianceMember, AllianceMember.organisation_id == Organisation.id)
        .where(AllianceMember.alliance_id == alliance.id).order_by(Organisation.id)).all())


def list_alliances(db: Session, actor: Principal, *, limit: int, after: int | None):
    actor.require(perm.ORGANISATIONS_READ)
    rows, next_after = _page(db, select(Alliance).where(_visible_alliances(actor)), Alliance.id,
                             limit=limit, after=after)
    audit.record(db, actor, "list", "alliance")
    return rows, next_after


def get_alliance(db: Session, actor: Principal, alliance_id: int) -> dict:
    actor.require(perm.ORGANISATIONS_READ)
    alliance = _alliance(db, actor, alliance_id)
    audit.record(db, actor, "read", "alliance", alliance.id)
    return {"id": alliance.id, "name": alliance.name, "description": alliance.description,
            "organisations": _members(db, alliance)}


def responsibility_map(db: Session, actor: Principal, alliance_id: int) -> dict:
    """Responsibilities x member organisations: who holds what, with each duty's scope."""
    actor.require(perm.ORGANISATIONS_READ)
    alliance = _alliance(db, actor, alliance_id)
    organisations = _members(db, alliance)
    org_ids = [o.id for o in organisations]
    held = set()
    if org_ids:
        held = {(r.responsibility_code, r.organisation_id) for r in db.exec(
            select(OrganisationResponsibility).where(
                OrganisationResponsibility.organisation_id.in_(org_ids)))}
    order = {scope: i for i, scope in enumerate(RESPONSIBILITY_SCOPES)}
    responsibilities = sorted(db.exec(select(Responsibility)).all(),
                              key=lambda r: (order.get(r.scope, 99), r.code))
    rows = [{"code": r.code, "name": r.name, "scope": r.scope,
             "cells": [{"organisation_id": oid, "holds": (r.code, oid) in held}
                       for oid in org_ids]}
            for r in responsibilities]
    audit.record(db, actor, "read", "responsibility-map", alliance.id)
    return {"alliance": alliance, "organisations": organisations, "responsibilities": rows}


def list_responsibilities(db: Session, actor: Principal, *, limit: int, after: str | None):
    actor.require(perm.ORGANISATIONS_READ)
    rows, next_after = _page(db, select(Responsibility), Responsibility.code, limit=limit,
                             after=after)
    audit.record(db, actor, "list", "responsibility")
    return rows, next_after

"""Org admin pages: my organisation's teams, users and roles, and API clients.

The pages call the same operations and validate with the same marshmallow schemas as the
API. A form with errors is shown again with the NHS.UK error summary, inline messages
and what was typed (never a password); a success redirects (POST-redirect-GET).
"""

from __future__ import annotations

import base64
import hashlib

from cryptography.fernet import Fernet, InvalidToken
from flask import (
    Blueprint,
    current_app,
    flash,
    g,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from marshmallow import Schema, ValidationError

from models.vocab import ROLES
from service.admin import operations as ops
from service.admin.schemas import (
    ApiClientSchema,
    Cis2RoleMappingSchema,
    MembershipSchema,
    TeamSchema,
    UserCreateSchema,
)
from service.auth import permissions as perm
from service.auth.access import requires
from service.auth.permissions import SCOPES
from service.db import get_session
from service.errors import Conflict, Invalid, NotFound

bp = Blueprint("admin_pages", __name__, url_prefix="/admin")

PAGE_SIZE = 20
LIST_PAGE_SIZE = 50
_NEW_SECRET = "admin.new_client_secret"  # noqa: S105 - a session key name

SCOPE_HINTS = {
    "referrals:read": "Read people, referrals and flags the organisation may see",
    "referrals:write": "Record consent, plan journeys, send and answer referrals, raise concerns",
    "offers:write": "Manage the organisation's community offers",
    "flows:read": "Read alliance flow figures (aggregates only)",
    "admin": "Manage this organisation's teams, users and API clients",
}
ROLE_LABELS = {
    "care_coordinator": "Care coordinator",
    "duty_clinician": "Duty clinician",
    "peer_worker": "Peer worker",
    "vcse_worker": "VCSE worker",
    "vcse_manager": "VCSE manager",
    "contract_manager": "Contract manager",
    "org_admin": "Organisation admin",
}
ROLE_HINTS = {
    "care_coordinator": "Records consent, refers, keeps the safety net (statutory teams)",
    "duty_clinician": "Works the flags queue and steps people up (statutory teams)",
    "peer_worker": "An equal member of the MDT who records the person's voice",
    "vcse_worker": "Answers handovers and records contacts (VCSE teams)",
    "vcse_manager": "A VCSE worker who also manages offers, capacity and assignment",
    "contract_manager": "Sees aggregate alliance flows only",
    "org_admin": "Manages this organisation's teams, users and API clients",
}


# ---- Form helpers ------------------------------------------------------------------------

def _raw_form(list_fields: tuple[str, ...] = ()) -> dict:
    """The submitted fields as the schema expects them: blanks left out, lists as lists."""
    raw: dict = {}
    for key in request.form:
        if key == "csrf_token":
            continue
        if key in list_fields:
            raw[key] = [v for v in request.form.getlist(key) if v.strip()]
        else:
            value = request.form.get(key, "").strip()
            if value:
                raw[key] = value
    for key in list_fields:
        raw.setdefault(key, [])
    return raw


def _flatten(messages) -> list[str]:
    if isinstance(messages, dict):
        return [m for value in messages.values() for m in _flatten(value)]
    if isinstance(messages, list | tuple):
        return [m for value in messages for m in _flatten(value)]
    return [str(messages)]


def _form_errors(messages: dict, schema: Schema) -> dict[str, list[str]]:
    """marshmallow/operation messages as {field: [messages]}; unknown fields go to the form."""
    errors: dict[str, list[str]] = {}
    for key, value in (messages or {}).items():
        field = key if key in schema.fields else "_form"
        if field == "_form":
            value = ["The form had a field this page does not use. Check your answers."]
        errors.setdefault(field, []).extend(m for m in _flatten(value)
                                            if m not in errors.get(field, []))
    return errors


def _in_form_order(errors: dict, schema: Schema) -> dict:
    """The error summary lists problems in the order of the questions (the schema's order)."""
    order = list(schema.fields)
    return dict(sorted(errors.items(),
                       key=lambda item: order.index(item[0]) if item[0] in order else -1))


def _submit(schema: Schema, action, list_fields: tuple[str, ...] = (), fixed: dict | None = None,
            also_check=None):
    """Validate the form with the schema and run the operation: (result, None) or
    (None, errors). `fixed` values come from the URL, not the form. `also_check(raw)` gives
    the operation's own field errors, so one round shows every problem."""
    raw = _raw_form(list_fields)
    raw.update(fixed or {})
    try:
        data = schema.load(raw)
    except ValidationError as exc:
        errors = _form_errors(exc.messages, schema)
        for field, messages in (also_check(raw) if also_check else {}).items():
            errors.setdefault(field, messages)
        return None, _in_form_order(errors, schema)
    try:
        return action(data), None
    except (Invalid, Conflict) as exc:
        if not exc.errors:
            return None, {"_form": [exc.detail]}
        return None, _in_form_order(_form_errors(exc.errors, schema), schema)


def _error_status(errors: dict) -> int:
    return 422 if errors else 200


def _org_id() -> int | None:
    return g.principal.organisation_id


def _organisation():
    organisation = ops.own_organisation(get_session(), g.principal, _org_id())
    return organisation


def _team_options() -> list[tuple[int, str]]:
    teams, _ = ops.list_teams(get_session(), g.principal, _org_id(), limit=200, after=None)
    return [(t.id, t.name) for t in teams]


def _role_options(organisation) -> list[tuple[str, str, str]]:
    return [(role, ROLE_LABELS.get(role, role), ROLE_HINTS.get(role, ""))
            for role in ops.roles_for_kind(organisation.kind, ROLES)]


def _scope_options() -> list[tuple[str, str, str]]:
    return [(scope, scope, SCOPE_HINTS.get(scope, "")) for scope in SCOPES]


def _role_checks(organisation):
    """The role-for-kind and team-in-organisation rules, for a form that failed the schema."""

    def check(raw: dict) -> dict:
        role = raw.get("role")
        if role not in ROLES:
            return {}
        try:
            team_id = int(raw["team_id"]) if raw.get("team_id") else None
        except ValueError:
            return {}
        return ops.membership_errors(get_session(), organisation, role, team_id)

    return check


def _after_arg() -> int | None:
    try:
        value = int(request.args.get("after", ""))
    except ValueError:
        return None
    return value if value > 0 else None


# ---- The secret shown once ---------------------------------------------------------------

def _fernet() -> Fernet:
    digest = hashlib.sha256(b"stepdown admin client secret\0"
                            + current_app.config["SECRET_KEY"].encode()).digest()
    return Fernet(base64.urlsafe_b64encode(digest))


def _keep_secret_for_next_page(client_id: int, secret: str) -> None:
    # The cookie is signed, not encrypted: encrypt the secret so it is never readable there.
    session[_NEW_SECRET] = {"id": client_id,
                            "secret": _fernet().encrypt(secret.encode()).decode()}


def _take_secret(client_id: int) -> str | None:
    kept = session.pop(_NEW_SECRET, None)
    if not kept or kept.get("id") != client_id:
        return None
    try:
        return _fernet().decrypt(kept["secret"].encode()).decode()
    except (InvalidToken, KeyError, AttributeError):
        return None


# ---- Overview and lists ------------------------------------------------------------------

@bp.get("")
@requires(perm.ORGANISATION_ADMIN)
def overview():
    db, actor = get_session(), g.principal
    organisation = _organisation()
    teams, teams_more = ops.list_teams(db, actor, organisation.id, limit=PAGE_SIZE, after=None)
    users, users_more = ops.list_users(db, actor, organisation.id, limit=PAGE_SIZE, after=None)
    clients, clients_more = ops.list_api_clients(db, actor, organisation.id, limit=PAGE_SIZE,
                                                 after=None)
    return render_template(
        "admin/overview.html", organisation=organisation, teams=teams, users=users,
        clients=clients, team_names=dict(_team_options()),
        teams_more=teams_more, users_more=users_more, clients_more=clients_more)


@bp.get("/teams")
@requires(perm.ORGANISATION_ADMIN)
def teams():
    organisation = _organisation()
    rows, next_after = ops.list_teams(get_session(), g.principal, organisation.id,
                                      limit=LIST_PAGE_SIZE, after=_after_arg())
    return render_template("admin/teams.html", organisation=organisation, teams=rows,
                           next_after=next_after, first_page=_after_arg() is None)


@bp.get("/users")
@requires(perm.ORGANISATION_ADMIN)
def users():
    organisation = _organisation()
    rows, next_after = ops.list_users(get_session(), g.principal, organisation.id,
                                      limit=LIST_PAGE_SIZE, after=_after_arg())
    return render_template("admin/users.html", organisation=organisation, users=rows,
                           team_names=dict(_team_options()), next_after=next_after,
                           first_page=_after_arg() is None)


@bp.get("/api-clients")
@requires(perm.ORGANISATION_ADMIN)
def api_clients():
    organisation = _organisation()
    rows, next_after = ops.list_api_clients(get_session(), g.principal, organisation.id,
                                            limit=LIST_PAGE_SIZE, after=_after_arg())
    return render_template("admin/api_clients.html", organisation=organisation, clients=rows,
                           next_after=next_after, first_page=_after_arg() is None)


# ---- Teams -------------------------------------------------------------------------------

@bp.route("/teams/new", methods=["GET", "POST"])
@requires(perm.ORGANISATION_ADMIN)
def new_team():
    organisation = _organisation()
    errors: dict = {}
    if request.method == "POST":
        team, errors = _submit(TeamSchema(), lambda data: ops.create_team(
            get_session(), g.principal, organisation.id, data))
        if team is not None:
            flash(f"Team added: {team.name}", "success")
            return redirect(url_for(".overview"))
    return render_template("admin/team_form.html", organisation=organisation,
                           form=request.form, errors=errors), _error_status(errors)


# ---- Users and memberships ---------------------------------------------------------------

@bp.route("/users/new", methods=["GET", "POST"])
@requires(perm.ORGANISATION_ADMIN)
def new_user():
    organisation = _organisation()
    errors: dict = {}
    if request.method == "POST":
        user, errors = _submit(UserCreateSchema(), lambda data: ops.create_user(
            get_session(), g.principal, organisation.id, data),
            also_check=_role_checks(organisation))
        if user is not None:
            flash("User added", "success")
            return redirect(url_for(".user", user_id=user["id"]))
    return render_template("admin/user_form.html", organisation=organisation,
                           form=request.form, errors=errors, teams=_team_options(),
                           roles=_role_options(organisation)), _error_status(errors)


@bp.get("/users/<int:user_id>")
@requires(perm.ORGANISATION_ADMIN)
def user(user_id: int):
    organisation = _organisation()
    view = ops.get_user(get_session(), g.principal, organisation.id, user_id)
    return render_template("admin/user.html", organisation=organisation, user=view,
                           team_names=dict(_team_options()))


@bp.route("/users/<int:user_id>/memberships/new", methods=["GET", "POST"])
@requires(perm.ORGANISATION_ADMIN)
def new_membership(user_id: int):
    organisation = _organisation()
    view = ops.get_user(get_session(), g.principal, organisation.id, user_id)
    errors: dict = {}
    if request.method == "POST":
        membership, errors = _submit(MembershipSchema(), lambda data: ops.create_membership(
            get_session(), g.principal, organisation.id, data), fixed={"user_id": user_id},
            also_check=_role_checks(organisation))
        if membership is not None:
            flash("Role added", "success")
            return redirect(url_for(".user", user_id=user_id))
    return render_template("admin/membership_form.html", organisation=organisation, user=view,
                           form=request.form, errors=errors, teams=_team_options(),
                           roles=_role_options(organisation)), _error_status(errors)


@bp.route("/memberships/<int:membership_id>/remove", methods=["GET", "POST"])
@requires(perm.ORGANISATION_ADMIN)
def remove_membership(membership_id: int):
    db, actor = get_session(), g.principal
    organisation = _organisation()
    membership = ops.get_membership(db, actor, organisation.id, membership_id)
    view = ops.get_user(db, actor, organisation.id, membership.user_id)
    errors: dict = {}
    if request.method == "POST":
        try:
            ops.delete_membership(db, actor, organisation.id, membership_id)
        except Conflict as exc:
            errors = {"_form": [exc.detail]}
        else:
            flash("Role removed", "success")
            if len(view["memberships"]) > 1:
                return redirect(url_for(".user", user_id=view["id"]))
            return redirect(url_for(".overview"))
    return render_template("admin/membership_remove.html", organisation=organisation,
                           membership=membership, user=view, team_names=dict(_team_options()),
                           errors=errors), (409 if errors else 200)


# ---- API clients -------------------------------------------------------------------------

@bp.route("/api-clients/new", methods=["GET", "POST"])
@requires(perm.ORGANISATION_ADMIN)
def new_api_client():
    organisation = _organisation()
    errors: dict = {}
    if request.method == "POST":
        client, errors = _submit(ApiClientSchema(), lambda data: ops.create_api_client(
            get_session(), g.principal, organisation.id, data), list_fields=("scopes",))
        if client is not None:
            _keep_secret_for_next_page(client["id"], client["client_secret"])
            return redirect(url_for(".api_client_created", client_id=client["id"]))
    return render_template("admin/api_client_form.html", organisation=organisation,
                           form=request.form, scopes_chosen=request.form.getlist("scopes"),
                           errors=errors, teams=_team_options(),
                           scopes=_scope_options()), _error_status(errors)


@bp.get("/api-clients/<int:client_id>/created")
@requires(perm.ORGANISATION_ADMIN)
def api_client_created(client_id: int):
    organisation = _organisation()
    client = ops.get_api_client(get_session(), g.principal, organisation.id, client_id)
    secret = _take_secret(client_id)
    return render_template("admin/api_client_created.html", organisation=organisation,
                           client=client, secret=secret)


@bp.route("/api-clients/<int:client_id>/deactivate", methods=["GET", "POST"])
@requires(perm.ORGANISATION_ADMIN)
def deactivate_api_client(client_id: int):
    db, actor = get_session(), g.principal
    organisation = _organisation()
    client = ops.get_api_client(db, actor, organisation.id, client_id)
    if request.method == "POST":
        ops.deactivate_api_client(db, actor, organisation.id, client_id)
        flash(f"API client deactivated: {client['name']}", "success")
        return redirect(url_for(".overview"))
    return render_template("admin/api_client_deactivate.html", organisation=organisation,
                           client=client)


# ---- CIS2 role mappings (statutory organisations) -----------------------------------------

def _statutory_organisation():
    organisation = _organisation()
    if organisation.kind != "statutory":
        raise NotFound("CIS2 sign-in is for NHS statutory organisations.")
    return organisation


@bp.get("/cis2-role-mappings")
@requires(perm.ORGANISATION_ADMIN)
def cis2_role_mappings():
    organisation = _statutory_organisation()
    rows, next_after = ops.list_cis2_role_mappings(get_session(), g.principal, organisation.id,
                                                   limit=LIST_PAGE_SIZE, after=_after_arg())
    return render_template("admin/cis2_role_mappings.html", organisation=organisation,
                           mappings=rows, team_names=dict(_team_options()),
                           role_labels=ROLE_LABELS, next_after=next_after,
                           first_page=_after_arg() is None)


@bp.route("/cis2-role-mappings/new", methods=["GET", "POST"])
@requires(perm.ORGANISATION_ADMIN)
def new_cis2_role_mapping():
    organisation = _statutory_organisation()
    errors: dict = {}
    if request.method == "POST":
        mapping, errors = _submit(Cis2RoleMappingSchema(), lambda data: ops.create_cis2_role_mapping(
            get_session(), g.principal, organisation.id, data),
            fixed={"ods_code": organisation.ods_code or ""}, also_check=_role_checks(organisation))
        if mapping is not None:
            flash(f"CIS2 role {mapping.role_code} now signs in as "
                  f"{ROLE_LABELS.get(mapping.role, mapping.role).lower()}", "success")
            return redirect(url_for(".cis2_role_mappings"))
    return render_template("admin/cis2_role_mapping_form.html", organisation=organisation,
                           form=request.form, errors=errors, teams=_team_options(),
                           roles=_role_options(organisation)), _error_status(errors)


def register(app) -> None:
    app.register_blueprint(bp)

"""Sign-in pages (local accounts), sign-out, role switching and the JWKS document."""

from __future__ import annotations

import logging
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    current_app,
    flash,
    g,
    jsonify,
    redirect,
    render_template,
    request,
    url_for,
)
from marshmallow import Schema, ValidationError, fields, validate

from models import Membership, User
from service.audit import operations as audit
from service.auth import sessions, tokens
from service.auth.access import public, requires
from service.auth.operations import SignInRefused, authenticate_local, memberships_of
from service.db import get_session
from service.errors import NotFound

bp = Blueprint("auth", __name__)
token_bp = Blueprint("oauth", __name__)
log = logging.getLogger(__name__)


class LoginForm(Schema):
    email = fields.String(required=True, validate=validate.Length(min=3, max=320),
                          error_messages={"required": "Enter your email address"})
    password = fields.String(required=True, validate=validate.Length(min=1, max=1000),
                             error_messages={"required": "Enter your password"})


def _safe_next(target: str | None) -> str:
    """Only same-site relative paths, so the login page is not an open redirect."""
    if not target:
        return url_for("pages.home")
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return url_for("pages.home")
    return target


def oidc_providers() -> list:
    providers = current_app.extensions.get("stepdown.oidc_providers", {})
    return list(providers.values())


@bp.route("/login", methods=["GET", "POST"])
@public
def login():
    if request.method == "GET":
        return render_template("auth/login.html", form={}, errors={},
                               oidc_providers=oidc_providers())
    raw = {k: v for k, v in request.form.items() if k in ("email", "password") and v != ""}
    try:
        data = LoginForm().load(raw)
    except ValidationError as exc:
        errors = {k: v for k, v in exc.messages.items()}
        return render_template("auth/login.html", form={"email": request.form.get("email", "")},
                               errors=errors, oidc_providers=oidc_providers())
    settings = current_app.config["SETTINGS"]
    db = get_session()
    try:
        user = authenticate_local(db, data["email"], data["password"],
                                  max_failures=settings.LOGIN_MAX_FAILURES,
                                  lockout_minutes=settings.LOGIN_LOCKOUT_MINUTES)
    except SignInRefused as exc:
        message = ("Too many failed attempts. Try again later."
                   if str(exc) == "locked" else "Enter a correct email address and password")
        # 200: the failure counter must be committed with the re-shown form.
        return render_template("auth/login.html", form={"email": data["email"]},
                               errors={"email": [message]}, oidc_providers=oidc_providers())
    memberships = memberships_of(db, user.id)
    sessions.start(user, memberships[0] if memberships else None)
    log.info("signed in (user %s)", user.id)
    return redirect(_safe_next(request.args.get("next")))


@bp.post("/logout")
@public
def logout():
    sessions.end()
    return render_template("auth/message.html", title="You have signed out",
                           message="You have signed out of Stepdown.")


@bp.get("/session-expired")
@public
def session_expired():
    return render_template(
        "auth/message.html", title="Your session has expired",
        message="You were signed out because you were inactive, or signed in too long ago. "
                "Sign in again to continue.",
    ), 401


@bp.post("/switch-role")
@requires()
def switch_role():
    user: User = g.principal.user
    if user is None:
        raise NotFound()
    try:
        membership_id = int(request.form.get("membership_id", ""))
    except ValueError:
        raise NotFound("No such role.") from None
    membership = get_session().get(Membership, membership_id)
    if membership is None or membership.user_id != user.id:
        raise NotFound("No such role.")
    sessions.switch_membership(membership)
    audit.record(get_session(), g.principal, "switch-role", "membership", membership.id)
    flash("You switched role.", "success")
    return redirect(url_for("pages.home"))


@bp.get("/.well-known/jwks.json")
@public
def jwks():
    return jsonify(tokens.keys().jwks())


def register(app, api) -> None:  # noqa: ARG001
    from service import csrf

    app.register_blueprint(bp)
    csrf.exempt(token_bp)
    app.register_blueprint(token_bp)

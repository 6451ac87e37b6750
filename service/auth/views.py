"""Sign-in pages (local accounts, OIDC / NHS CIS2), sign-out, role switching, the OAuth2
token endpoint and the JWKS document."""

from __future__ import annotations

import logging
from urllib.parse import urlsplit

import requests
from flask import (
    Blueprint,
    current_app,
    flash,
    g,
    jsonify,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from marshmallow import Schema, ValidationError, fields, validate

from models import Membership, User
from service import ratelimit
from service.audit import operations as audit
from service.auth import oauth_server, oidc, sessions, tokens
from service.auth.access import public, requires
from service.auth.operations import (
    SignInRefused,
    authenticate_local,
    memberships_of,
    sign_in_with_oidc,
)
from service.auth.principal import Principal
from service.db import get_session
from service.errors import NotFound
from service.ratelimit import limiter

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
@limiter.limit(ratelimit.LOGIN_LIMIT, methods=["POST"],
               error_message="Too many sign-in attempts from your network. Wait a minute and "
                             "try again.")
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


_OIDC_NEXT = "oidc_next"


@bp.get("/oidc/<provider>/login")
@public
def oidc_login(provider: str):
    chosen = oidc.get_provider(provider)
    if chosen is None:
        raise NotFound("No such sign-in service.")
    session[_OIDC_NEXT] = _safe_next(request.args.get("next"))
    try:
        return oidc.authorize_redirect(chosen)
    except (requests.RequestException, ValueError, KeyError, RuntimeError) as exc:
        # the discovery document is unreachable or malformed
        log.warning("OIDC provider %s unavailable: %s", chosen.name, type(exc).__name__)
        return render_template(
            "auth/message.html", title="Sign-in is not available",
            message=f"{chosen.label} is not available at the moment. Try again later, or "
                    f"sign in with your email address."), 503


def _refuse(provider: oidc.Provider, exc: oidc.LoginRefused):
    actor = Principal.for_membership(exc.user, None) if exc.user is not None else None
    audit.record_denied(actor, f"sign-in:{exc.reason}"[:60], "user",
                        exc.user.id if exc.user is not None else None)
    sessions.end()  # a refused sign-in leaves nobody signed in, not even an earlier session
    log.info("OIDC sign-in refused (%s): %s", provider.name, exc.reason)
    title = ("Sign-in is not available" if exc.status == 503 else "You cannot sign in")
    return render_template("auth/message.html", title=title, message=exc.message), exc.status


@bp.get("/oidc/<provider>/callback")
@public
def oidc_callback(provider: str):
    chosen = oidc.get_provider(provider)
    if chosen is None:
        raise NotFound("No such sign-in service.")
    target = _safe_next(session.pop(_OIDC_NEXT, None))
    db = get_session()
    try:
        claims, token = oidc.complete_sign_in(chosen)
        if chosen.is_cis2 and not ("nhsid_nrbac_roles" in claims and "selected_roleid" in claims):
            info = oidc.fetch_userinfo(chosen, token, str(claims.get("sub")))
            for key in ("nhsid_nrbac_roles", "selected_roleid"):
                if key not in claims and key in info:
                    claims[key] = info[key]
        user, membership = sign_in_with_oidc(db, claims, is_cis2=chosen.is_cis2,
                                             acr_min=chosen.acr_min)
    except oidc.LoginRefused as exc:
        return _refuse(chosen, exc)
    sessions.start(user, membership)
    principal = Principal.for_membership(user, membership)
    audit.record(db, principal, f"sign-in:{chosen.name}"[:60], "user", user.id)
    log.info("signed in with %s (user %s)", chosen.name, user.id)
    return redirect(target)


@token_bp.post("/oauth/token")
@limiter.limit(ratelimit.OAUTH_TOKEN_LIMIT,
               error_message="Too many token requests. Wait and try again.")
@public
def issue_token():
    """OAuth2 client-credentials grant (RFC 6749 §4.4): a short-lived RS256 JWT."""
    return oauth_server.create_token_response()


@bp.get("/.well-known/jwks.json")
@public
def jwks():
    return jsonify(tokens.keys().jwks())


def register(app, api) -> None:  # noqa: ARG001
    from service import csrf

    settings = app.config["SETTINGS"]
    oauth_server.init_app(app)
    oidc.init_app(app, settings)
    app.register_blueprint(bp)
    csrf.exempt(token_bp)
    app.register_blueprint(token_bp)

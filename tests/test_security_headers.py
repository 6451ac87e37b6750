"""Security headers on every response: every GET route, signed out and signed in, and HSTS when
the app runs with production settings."""

from __future__ import annotations

import re

import pytest

from service import create_app
from tests.conftest import ON_POSTGRES, TEST_DATABASE_URL
from tests.test_route_protection import _concrete

PRODUCTION_SECRET = "p" * 40  # noqa: S105 - a test value of production length


def _get_rules(app):
    return sorted({rule.rule for rule in app.url_map.iter_rules() if "GET" in rule.methods})


def _paths(app):
    paths = [_concrete(rule) for rule in _get_rules(app)]
    paths.append("/static/css/app.css" if (app.static_folder and _exists(app, "css/app.css"))
                 else "/static/does-not-exist.css")
    paths.append("/no/such/page")  # the 404 page
    paths.append("/api/v1/no-such-resource")  # a problem+json 404
    return paths


def _exists(app, relative: str) -> bool:
    from pathlib import Path

    return (Path(app.static_folder) / relative).is_file()


def _directives(csp: str) -> dict[str, list[str]]:
    out = {}
    for part in csp.split(";"):
        words = part.split()
        if words:
            out[words[0].lower()] = words[1:]
    return out


def _header_problems(path: str, response, *, production: bool = False) -> list[str]:
    where = f"GET {path} ({response.status_code})"
    problems = []
    csp = response.headers.get("Content-Security-Policy")
    if not csp:
        return [f"{where}: no Content-Security-Policy"]
    directives = _directives(csp)
    scripts = directives.get("script-src", directives.get("default-src"))
    if scripts is None:
        problems.append(f"{where}: CSP limits neither script-src nor default-src")
    elif "'unsafe-inline'" in scripts or "'unsafe-eval'" in scripts or "*" in scripts:
        problems.append(f"{where}: CSP script-src allows inline/eval/any: {scripts}")
    if directives.get("frame-ancestors") != ["'none'"]:
        problems.append(f"{where}: CSP frame-ancestors is {directives.get('frame-ancestors')}")
    if response.headers.get("X-Content-Type-Options") != "nosniff":
        problems.append(f"{where}: X-Content-Type-Options is not nosniff")
    if response.headers.get("Referrer-Policy") not in (
        "no-referrer", "same-origin", "strict-origin", "strict-origin-when-cross-origin"
    ):
        problems.append(f"{where}: Referrer-Policy is {response.headers.get('Referrer-Policy')}")
    hsts = response.headers.get("Strict-Transport-Security")
    if production:
        match = re.search(r"max-age=(\d+)", hsts or "")
        if not match or int(match.group(1)) < 15552000:  # at least 180 days
            problems.append(f"{where}: HSTS missing or short in production: {hsts}")
    return problems


def _forget_previous_principal() -> None:
    """The `db` fixture (under `demo`) holds an app context open, so requests share `g` and a
    404 (where the access gate does not run) would see the previous request's principal, now
    detached. Production pushes a fresh app context per request; do the same for `g` here."""
    from flask import g, has_app_context

    if has_app_context():
        g.pop("principal", None)


def _walk(app, client, *, production: bool = False) -> list[str]:
    problems = []
    for path in _paths(app):
        _forget_previous_principal()
        try:
            response = client.get(path)
        except Exception as exc:  # noqa: BLE001 - a server error is a finding, keep walking
            problems.append(f"GET {path}: server error {type(exc).__name__}: {exc}"[:300])
            continue
        problems += _header_problems(path, response, production=production)
    return problems


def test_every_get_route_signed_out_has_security_headers(app, client):
    assert len(_get_rules(app)) > 20
    assert _walk(app, client) == []


@pytest.mark.parametrize("user", ["admin", "coordinator", "vcse", "duty"])
def test_every_get_route_signed_in_has_security_headers(app, as_user, user):
    assert _walk(app, as_user(user)) == []


def test_api_and_token_responses_have_security_headers(app, client, demo):
    token = client.post("/oauth/token", data={
        "grant_type": "client_credentials", "client_id": "demo-epr",
        "client_secret": "demo-epr-secret", "scope": "referrals:read",
    })
    assert token.status_code == 200
    assert _header_problems("POST /oauth/token", token) == []
    bearer = {"Authorization": f"Bearer {token.get_json()['access_token']}"}
    for path in ("/api/v1/referrals", "/api/v1/openapi.json", "/.well-known/jwks.json"):
        response = client.get(path, headers=bearer)
        assert _header_problems(path, response) == []
    refused = client.post("/login", data={"email": "nobody@example.test", "password": "x"})
    assert _header_problems("POST /login", refused) == []


def test_no_hsts_outside_production(app, client):
    assert "Strict-Transport-Security" not in client.get("/healthz").headers


@pytest.fixture
def production_app(app, app_config):
    """The same app built with production settings. Validation requires PostgreSQL: use the
    test database when it is PostgreSQL; otherwise a PostgreSQL URL nothing listens on (the
    headers do not depend on the database, and routes that need it answer 503)."""
    config = dict(app_config)
    config.update(
        ENV="production",
        SECRET_KEY=PRODUCTION_SECRET,
        BASE_URL="https://stepdown.example.nhs.uk",
        DATABASE_URL=TEST_DATABASE_URL if ON_POSTGRES
        else "postgresql+psycopg://stepdown@127.0.0.1:9/stepdown-nowhere",
        TOKEN_PRIVATE_KEY_FILE=app.config["SETTINGS"].TOKEN_PRIVATE_KEY_FILE,
    )
    production = create_app(config)
    production.config["TESTING"] = True
    assert production.config["SETTINGS"].is_production
    yield production
    production.extensions["stepdown.engine"].dispose()


def test_hsts_and_headers_on_every_get_route_in_production(production_app):
    client = production_app.test_client()
    assert _walk(production_app, client, production=True) == []
    hsts = client.get("/healthz").headers["Strict-Transport-Security"]
    assert "includeSubDomains" in hsts

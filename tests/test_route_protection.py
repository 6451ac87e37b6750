"""Deny by default: every route is protected unless it is on the explicit public list."""

from __future__ import annotations

import re

from service.auth.access import PUBLIC, declared_access

# The only routes anyone may call without signing in.
PUBLIC_ROUTES = {
    "/login", "/logout", "/session-expired", "/healthz", "/readyz", "/oauth/token",
    "/.well-known/jwks.json", "/api/v1/openapi.json", "/static/<path:filename>",
    "/openreferral/services", "/openreferral/services/<int:service_id>",
    "/openreferral/services/<service_id>", "/oidc/<provider>/login", "/oidc/<provider>/callback",
}


def _concrete(rule: str) -> str:
    """A URL matching the rule: the first choice of an any() converter, else 1."""
    rule = re.sub(r"<any\(([^,)]+)[^>]*>", lambda m: m.group(1).strip(), rule)
    return re.sub(r"<(?:[^:>]+:)?[^>]+>", "1", rule)


def _routes(app):
    for rule in app.url_map.iter_rules():
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            yield rule, method


def test_every_route_declares_who_may_call_it(app):
    undeclared = [
        f"{method} {rule.rule}"
        for rule, method in _routes(app)
        if declared_access(app, rule.endpoint, method) is None
    ]
    assert undeclared == []


def test_only_listed_routes_are_public(app):
    public = {rule.rule for rule, method in _routes(app)
              if declared_access(app, rule.endpoint, method) == PUBLIC}
    assert public <= PUBLIC_ROUTES, public - PUBLIC_ROUTES


def test_no_protected_route_answers_without_authentication(app, client):
    checked = 0
    for rule, method in _routes(app):
        if declared_access(app, rule.endpoint, method) == PUBLIC:
            continue
        response = client.open(_concrete(rule.rule), method=method, json={})
        if rule.rule.startswith("/api/") or method != "GET":
            assert response.status_code == 401, f"{method} {rule.rule}: {response.status_code}"
        else:
            assert response.status_code == 302, f"{method} {rule.rule}: {response.status_code}"
            assert "/login" in response.headers["Location"]
        checked += 1
    assert checked > 0

"""Hostile input: Schemathesis (v4) generates requests for every operation in
/api/v1/openapi.json and sends them to the app, signed in as a demo care coordinator and as an
org admin. No request may cause a server error, and every response must match its documented
status codes and schema. Deterministic (derandomized) and bounded for CI."""

from __future__ import annotations

import os

import hypothesis
import pytest
import schemathesis
from hypothesis import HealthCheck
from schemathesis.checks import (
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)
from sqlmodel import Session

# Ten per operation in CI; a deeper local or nightly run: STEPDOWN_FUZZ_EXAMPLES=200.
MAX_EXAMPLES = int(os.environ.get("STEPDOWN_FUZZ_EXAMPLES", "10"))
CHECKS = [not_a_server_error, response_schema_conformance, status_code_conformance]


@pytest.fixture(params=["coordinator", "admin"])
def signed_in_schema(app, request):
    """The schema served by the app, and the session cookie of a signed-in demo user. The demo
    data is loaded in an app context that is closed again, so each generated request runs in
    its own app context (and `g`), as in production."""
    from service.db import engine
    from service.demo import load_demo_data
    from tests.conftest import signed_in_client

    with app.app_context(), Session(engine(), expire_on_commit=False) as db:
        load_demo_data(db)
        db.commit()
    client = signed_in_client(app, f"{request.param}@demo.stepdown.test")
    cookie = client.get_cookie("stepdown_session")
    assert cookie is not None
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app)
    return schema, {"stepdown_session": cookie.value}


def _operations(schema):
    for result in schema.get_all_operations():
        yield result.ok()


def _as_signed_in(case, cookies) -> None:
    """Schemathesis fills the documented security schemes (a bearer header, the session cookie)
    with generated values; replace them with the signed-in coordinator's session."""
    case.headers = {k: v for k, v in (case.headers or {}).items()
                    if k.lower() not in ("authorization", "cookie")}
    case.cookies = {**(case.cookies or {}), **cookies}


def _run(operation, cookies, statuses: list[int]) -> str | None:
    """Hypothesis-drive one operation; the first failure found (shrunk), or None."""
    @hypothesis.given(case=operation.as_strategy())
    @hypothesis.settings(max_examples=MAX_EXAMPLES, deadline=None, derandomize=True,
                         database=None, suppress_health_check=list(HealthCheck),
                         phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate,
                                 hypothesis.Phase.shrink])
    def drive(case):
        _as_signed_in(case, cookies)
        response = case.call()
        statuses.append(response.status_code)
        case.validate_response(response, checks=CHECKS)

    try:
        drive()
    except Exception as exc:  # noqa: BLE001 - collected and reported for every operation
        return f"{operation.method.upper()} {operation.path}: {exc}"[:2000]
    return None


def test_no_operation_answers_hostile_input_with_a_server_error(signed_in_schema):
    schema, cookies = signed_in_schema
    operations = list(_operations(schema))
    assert len(operations) > 30
    statuses: list[int] = []
    failures = [f for f in (_run(op, cookies, statuses) for op in operations) if f]
    assert failures == [], "\n\n".join(failures)
    assert sum(1 for s in statuses if s < 300) >= 10, "hardly any request was accepted"


# Found by STEPDOWN_FUZZ_EXAMPLES=60: an id beyond 64 bits in any <int:...> path segment reaches
# the database (SQLite: OverflowError, 500) instead of answering 404. Not strict: PostgreSQL may
# compare it as numeric and find nothing.
@pytest.mark.parametrize("path", ["/api/v1/people/31410008220714940776841216",
                                  "/api/v1/organisations/6413083914966217313484800"])
def test_an_id_too_large_for_the_database_is_not_found(signed_in_schema, app, path):
    _, cookies = signed_in_schema
    client = app.test_client()
    for name, value in cookies.items():
        client.set_cookie(name, value)
    assert client.get(path).status_code == 404

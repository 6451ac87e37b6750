"""Hostile input: Schemathesis (v4) generates requests for every operation in
/api/v1/openapi.json and sends them to the app, signed in as a demo care coordinator.
No request may cause a server error. Deterministic (derandomized) and bounded for CI."""

from __future__ import annotations

import hypothesis
import pytest
import schemathesis
from hypothesis import HealthCheck
from schemathesis.checks import not_a_server_error
from sqlmodel import Session

MAX_EXAMPLES = 10
CHECKS = [not_a_server_error]


@pytest.fixture
def signed_in_schema(app):
    """The schema served by the app, and the session cookie of a signed-in coordinator. The demo
    data is loaded in an app context that is closed again, so each generated request runs in
    its own app context (and `g`), as in production."""
    from service.db import engine
    from service.demo import load_demo_data
    from tests.conftest import signed_in_client

    with app.app_context(), Session(engine(), expire_on_commit=False) as db:
        load_demo_data(db)
        db.commit()
    client = signed_in_client(app, "coordinator@demo.stepdown.test")
    cookie = client.get_cookie("stepdown_session")
    assert cookie is not None
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app)
    return schema, {"stepdown_session": cookie.value}


def _operations(schema):
    for result in schema.get_all_operations():
        yield result.ok()


def _run(operation, cookies) -> str | None:
    """Hypothesis-drive one operation; the first failure found (shrunk), or None."""
    @hypothesis.given(case=operation.as_strategy())
    @hypothesis.settings(max_examples=MAX_EXAMPLES, deadline=None, derandomize=True,
                         database=None, suppress_health_check=list(HealthCheck),
                         phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate,
                                 hypothesis.Phase.shrink])
    def drive(case):
        case.call_and_validate(cookies=cookies, checks=CHECKS)

    try:
        drive()
    except Exception as exc:  # noqa: BLE001 - collected and reported for every operation
        return f"{operation.method.upper()} {operation.path}: {exc}"[:2000]
    return None


def test_no_operation_answers_hostile_input_with_a_server_error(signed_in_schema):
    schema, cookies = signed_in_schema
    operations = list(_operations(schema))
    assert len(operations) > 30
    failures = [f for f in (_run(op, cookies) for op in operations) if f]
    assert failures == [], "\n\n".join(failures)

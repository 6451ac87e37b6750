"""Logs carry no personal data or secrets: canary NHS numbers, names, free text, passwords, client
secrets and tokens sent through the API never appear in any captured log record."""

from __future__ import annotations

import logging

import pytest

from tests.people_fixtures import test_range_nhs_number
from tests.test_referral_support import act, create_referral, ok, world  # noqa: F401 - fixture
from tests.test_security_headers import _forget_previous_principal

CANARY_NHS = test_range_nhs_number(424242)  # Modulus 11 valid, 999 range
CANARY_NHS_SPACED = f"{CANARY_NHS[:3]} {CANARY_NHS[3:6]} {CANARY_NHS[6:]}"
CANARY_GIVEN = "Zephyrinacanary"
CANARY_FAMILY = "Quillbottomcanary"
CANARY_ABOUT = "canary-about-me-likes-kestrels"
CANARY_HANDOVER = "canary-handover-sister-lives-at-flat-9"
CANARY_CONCERN = "canary-concern-said-goodbye-to-neighbour"
CANARY_PASSWORD = "canary-password-Hunter2!"  # noqa: S105
CANARY_EMAIL = "canary.staff.member@nowhere.test"
CANARY_SECRET = "canary-client-secret-0xDEADBEEF"  # noqa: S105
CANARY_TOKEN = "canary.bearer.token-eyJhbGciOiJub25lIn0"  # noqa: S105
CANARY_JSON = "canary-malformed-json-body"
CANARY_PATH = "canary-path-Zephyrina"

CANARIES = {
    "NHS number": CANARY_NHS, "NHS number (spaced)": CANARY_NHS_SPACED,
    "given name": CANARY_GIVEN, "family name": CANARY_FAMILY, "About me": CANARY_ABOUT,
    "handover": CANARY_HANDOVER, "concern": CANARY_CONCERN, "password": CANARY_PASSWORD,
    "login email": CANARY_EMAIL, "client secret": CANARY_SECRET, "bearer token": CANARY_TOKEN,
    "malformed JSON": CANARY_JSON, "URL path": CANARY_PATH,
}


def _record_text(record: logging.LogRecord) -> str:
    parts = [str(record.msg)]
    try:
        parts.append(record.getMessage())
    except Exception:  # noqa: BLE001, S110 - a broken format still must not hide its args
        pass
    args = record.args if isinstance(record.args, tuple) else (record.args,)
    parts += [repr(a) for a in args if a is not None]
    if record.exc_info:
        parts.append(logging.Formatter().formatException(record.exc_info))
    if record.exc_text:
        parts.append(record.exc_text)
    if record.stack_info:
        parts.append(record.stack_info)
    parts += [repr(v) for k, v in vars(record).items() if k not in logging.LogRecord(
        "", 0, "", 0, "", None, None).__dict__ and k not in ("message", "asctime")]
    return "\n".join(parts)


def _leaks(records, canaries: dict[str, str]) -> list[str]:
    found = []
    for record in records:
        text = _record_text(record).lower()
        for label, value in canaries.items():
            if value.lower() in text:
                found.append(f"{label} in {record.name} {record.levelname}: "
                             f"{_record_text(record)[:200]!r}")
    return found


@pytest.fixture
def logs(caplog):
    caplog.set_level(logging.DEBUG)  # the root logger
    # Not sqlalchemy.engine: SQLAlchemy keeps its loggers at WARNING unless echo is configured,
    # and its DEBUG echo prints bound parameters by design.
    for name in ("werkzeug", "stepdown", "service", "authlib"):
        caplog.set_level(logging.DEBUG, logger=name)
    return caplog


def test_personal_data_and_secrets_never_reach_the_logs(logs, world, clock):  # noqa: F811
    w = world
    coordinator = w.coordinator

    # Register a person with canary NHS number and names, then find them by NHS number.
    body = {"nhs_number": CANARY_NHS_SPACED, "given_name": CANARY_GIVEN,
            "family_name": CANARY_FAMILY, "date_of_birth": "1990-02-03",
            "postcode_district": "NW10", "borough": "Brent", "needs": ["peer-support"]}
    person = ok(coordinator.post("/api/v1/people", json=body), 201)
    ok(coordinator.post("/api/v1/people/search", json={"nhs_number": CANARY_NHS}))
    coordinator.post("/api/v1/people/search", json={"nhs_number": CANARY_NHS[:-1] + "x"})  # invalid
    coordinator.post("/api/v1/people", json=body)  # a duplicate: 409 naming no one

    # About me, with the version just read.
    tag = coordinator.get(f"/api/v1/people/{person['id']}").headers["ETag"]
    ok(coordinator.patch(f"/api/v1/people/{person['id']}",
                         json={"about_me": {"what_helps": CANARY_ABOUT}},
                         headers={"If-Match": tag}))
    coordinator.patch(f"/api/v1/people/{person['id']}",
                      json={"about_me": {"what_helps": CANARY_ABOUT + "x" * 5000}},
                      headers={"If-Match": tag})  # too long and stale: refused

    # Referral with canary handover text, sent, accepted, then a concern with canary text.
    referral = ok(create_referral(coordinator, w.journey.id, w.offer.id,
                                  risk_summary=CANARY_HANDOVER), 201)
    ok(act(coordinator, referral["id"], "send"))
    ok(act(w.vcse, referral["id"], "accept"))
    w.vcse.get(f"/api/v1/referrals/{referral['id']}")
    ok(w.vcse.post("/api/v1/flags", json={"referral_id": referral["id"], "category":
                                          "deterioration", "urgency": "urgent",
                                          "description": CANARY_CONCERN}), 201)

    # Failing logins, bad client credentials, a bad bearer token.
    w.vcse.application.test_client().post(
        "/login", data={"email": "coordinator@demo.stepdown.test", "password": CANARY_PASSWORD})
    w.vcse.application.test_client().post(
        "/login", data={"email": CANARY_EMAIL, "password": CANARY_PASSWORD})
    anonymous = w.vcse.application.test_client()
    refused = anonymous.post("/oauth/token", data={
        "grant_type": "client_credentials", "client_id": "demo-epr",
        "client_secret": CANARY_SECRET, "scope": "referrals:read referrals:write"})
    assert refused.status_code in (400, 401)
    anonymous.post("/oauth/token", auth=("demo-epr", CANARY_SECRET),
                   data={"grant_type": "client_credentials"})
    assert anonymous.get("/api/v1/referrals",
                         headers={"Authorization": f"Bearer {CANARY_TOKEN}"}).status_code == 401

    # Malformed JSON, and 404s.
    response = coordinator.post("/api/v1/people", data='{"given_name": "' + CANARY_JSON + '",',
                                content_type="application/json")
    assert response.status_code == 400
    _forget_previous_principal()  # see tests/test_security_headers.py
    assert coordinator.get(f"/no-such-page/{CANARY_PATH}").status_code == 404
    _forget_previous_principal()
    assert coordinator.get(f"/api/v1/people/{CANARY_NHS}").status_code == 404

    assert logs.records, "no log records captured: the capture is broken"
    assert _leaks(logs.records, CANARIES) == []


def test_the_canary_check_finds_a_leak(logs):
    """The checker is not vacuous: a record carrying a canary in its args is caught."""
    logging.getLogger("stepdown.test").info("looked up %s", CANARY_NHS)
    try:
        raise ValueError(CANARY_GIVEN)
    except ValueError:
        logging.getLogger("stepdown.test").exception("failed")
    assert len(_leaks(logs.records, CANARIES)) == 2

"""GET /api/v1/referrals/{id}/fhir: a FHIR R4 (UK Core) Bundle for a referral in every state."""

from __future__ import annotations

import pytest
from sqlmodel import select

from models import AuditEvent
from tests.fhir_support import (
    NHS_NUMBER,
    ODS,
    PATHS,
    referral_in_state,
    resources,
    validate_bundle,
)
from tests.test_referral_support import act, ok, sent_referral
from tests.test_referral_support import world as _world_fixture
from tests.test_tokens import bearer, get_token

world = _world_fixture
REASONED = {"rejected": "needs-specialist-support", "on-hold": "person-unwell",
            "cancelled": "no-longer-needed", "failed": "could-not-engage"}


def _export(client, rid, headers=None):
    return client.get(f"/api/v1/referrals/{rid}/fhir", headers=headers or {})


@pytest.mark.parametrize("state", list(PATHS))
def test_every_state_exports_a_valid_uk_core_bundle(world, state):
    rid = referral_in_state(world, state, seed=3)
    response = _export(world.coordinator, rid)
    assert response.status_code == 200, response.get_json()
    assert response.mimetype == "application/fhir+json"
    body = response.get_json()
    validate_bundle(body)
    assert body["type"] == "collection"
    found = resources(body)
    for kind in ("Task", "ServiceRequest", "Patient", "Consent", "Organization",
                 "HealthcareService", "PractitionerRole", "EpisodeOfCare",
                 "QuestionnaireResponse"):
        assert kind in found, kind
    [task] = found["Task"]
    assert task["status"] == state  # FHIR Task status codes, verbatim
    if state in REASONED:
        assert task["statusReason"]["coding"][0]["code"] == REASONED[state]
    else:
        assert "statusReason" not in task
    if state == "accepted":
        assert task["businessStatus"]["coding"][0]["code"] == "waitlist"
        assert "restriction" in task
    else:
        assert "businessStatus" not in task
    [request] = found["ServiceRequest"]
    assert request["intent"] == "order"
    assert task["focus"]["reference"] == f"urn:uuid:{request['id']}"
    [patient] = found["Patient"]
    assert {"system": NHS_NUMBER, "value": world.db.get(
        type(world.person), _person_id(world, rid)).nhs_number} in patient["identifier"]
    assert patient["birthDate"] == "1991-03-14"
    statutory = [o for o in found["Organization"] if any(
        i["system"] == ODS for i in o.get("identifier", []))]
    assert [i["value"] for o in statutory for i in o["identifier"] if i["system"] == ODS] == [
        "RXA"]
    [episode] = found["EpisodeOfCare"]
    assert episode["referralRequest"][0]["reference"] == f"urn:uuid:{request['id']}"
    [service] = found["HealthcareService"]
    assert service["name"] == "Peer mentoring"
    if state == "rejected":  # declined needs-specialist-support raised a flag
        [flag] = found["Flag"]
        assert flag["status"] == "active"
        assert flag["code"]["coding"][0]["code"] == "declined-needs-specialist"
    else:
        assert "Flag" not in found


def _person_id(world, rid):
    from models import Referral

    world.db.expire_all()
    return world.db.get(Referral, rid).person_id


def test_handover_and_consent_are_in_the_bundle(world):
    rid = sent_referral(world)
    found = resources(_export(world.coordinator, rid).get_json())
    [handover] = found["QuestionnaireResponse"]
    answers = {item["linkId"]: item["answer"][0]["valueString"] for item in handover["item"]}
    assert answers["goals"] == "Meet people locally and get back to the allotment."
    assert "I'm a good cook." in answers["about-me"]  # the snapshot taken at send
    [consent] = found["Consent"]
    assert consent["status"] == "active"
    codes = {c["code"] for c in consent["policyRule"]["coding"]}
    assert codes == {"public-task", "health-social-care"}
    recipient = consent["provision"]["actor"][0]["reference"]["reference"]
    vcse = next(o for o in found["Organization"] if o["name"] == "Brent Peer Mentors")
    assert recipient == f"urn:uuid:{vcse['id']}"


def test_reading_is_audited_like_the_referral(world):
    rid = sent_referral(world)
    before = len(world.db.exec(select(AuditEvent)).all())
    assert _export(world.coordinator, rid).status_code == 200
    world.db.expire_all()
    events = world.db.exec(select(AuditEvent).order_by(AuditEvent.id)).all()[before:]
    assert [(e.action, e.record_type, e.record_id, e.person_id) for e in events] == [
        ("read", "referral", str(rid), world.person.id)]


def test_vcse_gets_the_minimum_necessary(world):
    rid = referral_in_state(world, "rejected", seed=5)  # with a flag on the referral
    response = _export(world.vcse, rid)
    assert response.status_code == 200
    body = response.get_json()
    validate_bundle(body)
    found = resources(body)
    [patient] = found["Patient"]
    assert all(i["system"] != NHS_NUMBER for i in patient["identifier"])
    assert "birthDate" not in patient
    assert "Flag" not in found
    assert patient["name"][0]["family"] == "Okafor"


def test_out_of_scope_is_404_operation_outcome_and_audited(world):
    rid = sent_referral(world)
    response = _export(world.vcse_b, rid)
    assert response.status_code == 404
    assert response.mimetype == "application/fhir+json"
    outcome = response.get_json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert outcome["issue"][0]["code"] == "not-found"
    world.db.expire_all()
    denied = world.db.exec(select(AuditEvent).where(AuditEvent.outcome == "denied")).all()
    assert [(e.record_type, e.record_id) for e in denied] == [("referral", str(rid))]
    assert _export(world.coordinator, 99999).status_code == 404


def test_a_draft_is_not_the_receivers_business(world):
    rid = referral_in_state(world, "draft", seed=6)
    assert _export(world.vcse, rid).status_code == 404


def test_unauthenticated_is_401_operation_outcome(client, world):
    rid = sent_referral(world)
    response = client.get(f"/api/v1/referrals/{rid}/fhir")
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert response.get_json()["issue"][0]["code"] == "login"


def test_api_client_exports_with_a_token(app, world):
    rid = sent_referral(world)
    client = app.test_client()
    token = get_token(client)
    response = _export(client, rid, bearer(token))
    assert response.status_code == 200
    validate_bundle(response.get_json())


def test_after_consent_withdrawal_the_vcse_keeps_only_the_task(world):
    rid = sent_referral(world)
    ok(act(world.vcse, rid, "accept"))
    ok(world.coordinator.post(f"/api/v1/consents/{world.consent.id}/withdraw",
                              json={"reason": "Changed their mind"}))
    response = _export(world.vcse, rid)
    assert response.status_code == 200
    body = response.get_json()
    validate_bundle(body)
    [entry] = body["entry"]
    task = entry["resource"]
    assert task["resourceType"] == "Task" and task["status"] == "cancelled"
    assert task["statusReason"]["coding"][0]["code"] == "consent-withdrawn"
    text = response.get_data(as_text=True)
    assert "Amara" not in text and "Okafor" not in text and "NW10" not in text
    # The referring team still gets everything, the consent now inactive.
    found = resources(_export(world.coordinator, rid).get_json())
    assert found["Consent"][0]["status"] == "inactive"

"""POST /api/v1/fhir/referrals: an EPR creates a DRAFT referral from a FHIR Bundle."""

from __future__ import annotations

import copy
import json

import pytest
from sqlmodel import select

from models import AuditEvent, Consent, Journey, Person, Referral
from tests.fhir_support import NHS_NUMBER, resources, validate_bundle
from tests.test_referral_support import HANDOVER, act, make_offer, nhs, ok, sent_referral
from tests.test_referral_support import world as _world_fixture
from tests.test_tokens import bearer, get_token

world = _world_fixture
FHIR = "application/fhir+json"
URL = "/api/v1/fhir/referrals"


@pytest.fixture
def epr(app, world):
    """The demo EPR's API client (trust A, Brent CMHT) with a bearer token."""
    client = app.test_client()
    token = get_token(client)

    def post(body, **headers):
        data = body if isinstance(body, str | bytes) else json.dumps(body)
        return client.post(URL, data=data, headers={**bearer(token), "Content-Type": FHIR,
                                                    **headers})

    return post


def _counts(db):
    db.expire_all()
    return tuple(len(db.exec(select(model)).all()) for model in (Person, Journey, Referral,
                                                                  Consent))


def exported(world, rid) -> dict:
    response = world.coordinator.get(f"/api/v1/referrals/{rid}/fhir")
    assert response.status_code == 200
    return response.get_json()


def _resource(bundle, kind):
    return next(e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == kind)


def _issues(response):
    assert response.mimetype == FHIR
    outcome = response.get_json()
    assert outcome["resourceType"] == "OperationOutcome"
    return outcome["issue"]


def new_patient_bundle(world, seed=77, given="Jordan", family="Reid") -> dict:
    """An exported referral's Bundle, re-pointed at a person Stepdown does not know yet."""
    rid = sent_referral(world)
    ok(act(world.coordinator, rid, "cancel", {"reason_code": "sent-in-error"}))
    bundle = exported(world, rid)
    patient = _resource(bundle, "Patient")
    patient["identifier"] = [{"system": NHS_NUMBER, "value": nhs(seed)}]
    patient["name"] = [{"use": "official", "family": family, "given": [given]}]
    patient["birthDate"] = "1999-05-01"
    return bundle


def test_round_trip_keeps_person_offer_handover_and_consent(world, epr):
    rid = sent_referral(world)
    ok(act(world.coordinator, rid, "cancel", {"reason_code": "sent-in-error"}))
    bundle = exported(world, rid)
    response = epr(bundle)
    assert response.status_code == 201, response.get_json()
    issues = _issues(response)
    assert issues[0]["severity"] == "information"
    new_id = int(response.headers["Location"].rsplit("/", 1)[1])
    assert new_id != rid
    world.db.expire_all()
    draft = world.db.get(Referral, new_id)
    original = world.db.get(Referral, rid)
    assert draft.status == "draft"
    assert draft.person_id == original.person_id  # matched by NHS number
    assert draft.offer_id == original.offer_id
    for name in HANDOVER:
        assert getattr(draft, name) == getattr(original, name), name
    assert draft.journey_id == original.journey_id  # the team's open journey
    consents = world.db.exec(select(Consent).where(Consent.person_id == draft.person_id)).all()
    assert len(consents) == 1  # the same consent is not recorded twice
    # The new draft exports again, with the same person, offer, handover and consent.
    again = exported(world, new_id)
    validate_bundle(again)
    for kind in ("Patient", "HealthcareService", "Consent"):
        first, second = _resource(bundle, kind), _resource(again, kind)
        assert first["id"] == second["id"], kind
    first, second = _resource(bundle, "QuestionnaireResponse"), _resource(again,
                                                                          "QuestionnaireResponse")
    assert [i for i in first["item"] if i["linkId"] != "about-me"] == second["item"]


def test_round_trip_into_another_trust_matches_the_person(app, world, db, demo, clock):
    """Elsewhere: trust B's EPR posts trust A's export; the person is matched, not copied."""
    from models import ApiClient
    from service.auth.passwords import hash_password

    rid = sent_referral(world)
    ok(act(world.coordinator, rid, "cancel", {"reason_code": "sent-in-error"}))
    bundle = exported(world, rid)
    # The Bundle's Consent is the one Stepdown holds already: it is not recorded twice.
    team_b = demo["teams"]["Lambeth Community Mental Health Team"]
    db.add(ApiClient(client_id="epr-b", name="Trust B EPR",
                     organisation_id=demo["organisations"]["trust-b"].id, team_id=team_b.id,
                     secret_hash=hash_password("epr-b-secret"),
                     scopes="referrals:read referrals:write"))
    from models import Membership, User

    manager = User(email="lead-b@demo.stepdown.test", display_name="Lee Lead",
                   password_hash=None)
    db.add(manager)
    db.flush()
    db.add(Membership(user_id=manager.id, organisation_id=team_b.organisation_id,
                      team_id=team_b.id, role="care_coordinator", is_team_manager=True))
    db.commit()
    client = app.test_client()
    import base64

    basic = base64.b64encode(b"epr-b:epr-b-secret").decode()
    token = client.post("/oauth/token", data={"grant_type": "client_credentials"},
                        headers={"Authorization": f"Basic {basic}"}).get_json()["access_token"]
    response = client.post(URL, data=json.dumps(bundle),
                           headers={**bearer(token), "Content-Type": FHIR})
    assert response.status_code == 201, response.get_json()
    new_id = int(response.headers["Location"].rsplit("/", 1)[1])
    db.expire_all()
    draft = db.get(Referral, new_id)
    assert draft.person_id == world.person.id
    journey = db.get(Journey, draft.journey_id)
    assert journey.team_id == team_b.id and journey.statutory_contact_user_id == manager.id
    # Trust B now sees the person through its own journey, and can export its draft.
    assert client.get(f"/api/v1/referrals/{new_id}/fhir", headers=bearer(token)
                      ).status_code == 200
    assert len(db.exec(select(Consent).where(Consent.person_id == world.person.id)).all()) == 1


def test_a_new_person_is_registered_in_the_callers_organisation(world, epr, demo):
    bundle = new_patient_bundle(world)
    response = epr(bundle)
    assert response.status_code == 201, response.get_json()
    world.db.expire_all()
    person = world.db.exec(select(Person).where(Person.nhs_number == nhs(77))).one()
    assert (person.given_name, person.family_name, str(person.date_of_birth)) == (
        "Jordan", "Reid", "1999-05-01")
    assert person.created_by_organisation_id == demo["organisations"]["trust-a"].id
    [consent] = world.db.exec(select(Consent).where(Consent.person_id == person.id)).all()
    assert (consent.organisation_id, consent.lawful_basis, consent.condition,
            consent.method) == (demo["organisations"]["vcse-a"].id, "public-task",
                                "health-social-care", "verbal")
    journey = world.db.exec(select(Journey).where(Journey.person_id == person.id)).one()
    assert journey.status == "planned"
    assert journey.statutory_contact_user_id == demo["users"]["coordinator@demo.stepdown.test"].id


def test_a_signed_in_coordinator_may_post_too(world):
    bundle = new_patient_bundle(world, seed=78)
    response = world.coordinator.post(URL, data=json.dumps(bundle),
                                      headers={"Content-Type": FHIR})
    assert response.status_code == 201, response.get_json()


def test_idempotency_key_replays(world, epr):
    bundle = new_patient_bundle(world, seed=79)
    first = epr(bundle, **{"Idempotency-Key": "k-1"})
    second = epr(bundle, **{"Idempotency-Key": "k-1"})
    assert first.status_code == second.status_code == 201
    assert second.headers["Idempotent-Replayed"] == "true"
    assert first.headers["Location"] == second.headers["Location"]


def _assert_nothing_created(world, before):
    assert _counts(world.db) == before


@pytest.mark.parametrize("body, where", [
    ("{not json", None),
    ({"resourceType": "Patient"}, "Bundle"),
    ({"resourceType": "Bundle", "type": "collection",
      "entry": [{"resource": {"resourceType": "Patient", "birthDate": "not a date"}}]},
     "Bundle.entry[0].resource.birthDate"),
    ({"resourceType": "Bundle", "type": "collection",
      "entry": [{"resource": {"resourceType": "Nonsense"}}]}, "Bundle.entry.resource"),
])
def test_malformed_bundles_are_400(world, epr, body, where):
    before = _counts(world.db)
    response = epr(body)
    assert response.status_code == 400
    issues = _issues(response)
    assert issues[0]["code"] == "structure"
    if where:
        assert issues[0]["expression"] == [where]
    _assert_nothing_created(world, before)


def test_wrong_media_type_is_415(world, epr):
    response = epr("<Bundle/>", **{"Content-Type": "application/xml"})
    assert response.status_code == 415
    assert _issues(response)[0]["code"] == "not-supported"


def test_unknown_offer(world, epr):
    bundle = new_patient_bundle(world, seed=80)
    before = _counts(world.db)
    service = _resource(bundle, "HealthcareService")
    service["identifier"] = [{"system": "http://localhost/Id/offer", "value": "9999"}]
    response = epr(bundle)
    assert response.status_code == 422
    [issue] = [i for i in _issues(response) if i["severity"] == "error"]
    assert issue["code"] == "not-found" and issue["expression"] == ["ServiceRequest.performer"]
    _assert_nothing_created(world, before)


def test_offer_by_open_referral_id(world, epr, client):
    bundle = new_patient_bundle(world, seed=81)
    service = _resource(bundle, "HealthcareService")
    oruk = [i for i in service["identifier"] if i["system"].endswith("/openreferral/services")]
    service["identifier"] = oruk
    assert epr(bundle).status_code == 201


def test_inactive_offer_is_refused(world, epr, db, demo):
    bundle = new_patient_bundle(world, seed=82)
    closed = make_offer(db, demo, name="Closed offer", status="temporarily closed")
    _resource(bundle, "HealthcareService")["identifier"] = [
        {"system": "http://localhost/Id/offer", "value": str(closed.id)}]
    response = epr(bundle)
    assert response.status_code == 422
    assert "temporarily closed" in _issues(response)[0]["diagnostics"]


def test_invalid_nhs_number(world, epr):
    bundle = new_patient_bundle(world, seed=83)
    before = _counts(world.db)
    bad = nhs(83)[:9] + str((int(nhs(83)[9]) + 1) % 10)
    _resource(bundle, "Patient")["identifier"] = [{"system": NHS_NUMBER, "value": bad}]
    response = epr(bundle)
    assert response.status_code == 422
    [issue] = [i for i in _issues(response) if i["severity"] == "error"]
    assert issue["expression"] == ["Patient.identifier"]
    assert bad not in response.get_data(as_text=True)  # never echoed
    _assert_nothing_created(world, before)


def test_missing_nhs_number_and_names(world, epr):
    bundle = new_patient_bundle(world, seed=84)
    patient = _resource(bundle, "Patient")
    patient["identifier"] = []
    assert _issues(epr(bundle))[0]["expression"] == ["Patient.identifier"]
    patient["identifier"] = [{"system": NHS_NUMBER, "value": nhs(84)}]
    del patient["name"]
    expressions = {e for i in _issues(epr(bundle)) for e in i.get("expression", [])}
    assert {"Patient.name.given", "Patient.name.family"} <= expressions


def test_a_known_nhs_number_with_other_details_is_refused_and_audited(world, epr):
    rid = sent_referral(world)
    ok(act(world.coordinator, rid, "cancel", {"reason_code": "sent-in-error"}))
    bundle = exported(world, rid)
    _resource(bundle, "Patient")["birthDate"] = "1990-01-01"
    before = _counts(world.db)
    response = epr(bundle)
    assert response.status_code == 422
    assert "does not match" in _issues(response)[0]["diagnostics"]
    _assert_nothing_created(world, before)
    denied = world.db.exec(select(AuditEvent).where(AuditEvent.outcome == "denied",
                                                    AuditEvent.action == "match-fhir")).all()
    assert [e.person_id for e in denied] == [world.person.id]


def test_missing_consent_is_refused(world, epr):
    bundle = new_patient_bundle(world, seed=85)
    bundle["entry"] = [e for e in bundle["entry"] if e["resource"]["resourceType"] != "Consent"]
    before = _counts(world.db)
    response = epr(bundle)
    assert response.status_code == 422
    [issue] = [i for i in _issues(response) if i["severity"] == "error"]
    assert issue["code"] == "business-rule" and issue["expression"] == ["Consent"]
    assert "Brent Peer Mentors" in issue["diagnostics"]
    _assert_nothing_created(world, before)


def test_an_existing_consent_in_stepdown_is_enough(world, epr):
    rid = sent_referral(world)
    ok(act(world.coordinator, rid, "cancel", {"reason_code": "sent-in-error"}))
    bundle = exported(world, rid)
    bundle["entry"] = [e for e in bundle["entry"] if e["resource"]["resourceType"] != "Consent"]
    assert epr(bundle).status_code == 201


def test_inactive_consent_in_the_bundle_does_not_count(world, epr):
    bundle = new_patient_bundle(world, seed=86)
    _resource(bundle, "Consent")["status"] = "inactive"
    response = epr(bundle)
    assert response.status_code == 422
    severities = {i["severity"] for i in _issues(response)}
    assert severities == {"error", "warning"}


def test_consent_without_lawful_basis_codes(world, epr):
    bundle = new_patient_bundle(world, seed=87)
    consent = _resource(bundle, "Consent")
    consent["policyRule"] = {"text": "Share with the peer mentors"}
    consent["category"] = [consent["category"][0]]
    before = _counts(world.db)
    response = epr(bundle)
    assert response.status_code == 422
    expressions = [i["expression"][0] for i in _issues(response)]
    assert expressions.count("Consent.policyRule.coding") == 2
    assert "Consent.category" in expressions
    _assert_nothing_created(world, before)


def test_missing_handover_fields(world, epr):
    bundle = new_patient_bundle(world, seed=88)
    handover = _resource(bundle, "QuestionnaireResponse")
    handover["item"] = [i for i in handover["item"] if i["linkId"] != "crisis-plan"]
    response = epr(bundle)
    assert response.status_code == 422
    [issue] = [i for i in _issues(response) if i["severity"] == "error"]
    assert issue["expression"] == ["QuestionnaireResponse.item.where(linkId='crisis-plan')"]
    assert issue["code"] == "required"


def test_every_problem_is_reported_at_once(world, epr):
    bundle = new_patient_bundle(world, seed=89)
    _resource(bundle, "Patient")["identifier"] = [{"system": NHS_NUMBER, "value": "123"}]
    _resource(bundle, "HealthcareService")["identifier"] = []
    bundle["entry"] = [e for e in bundle["entry"]
                       if e["resource"]["resourceType"] != "QuestionnaireResponse"]
    expressions = {i["expression"][0] for i in _issues(epr(bundle)) if i.get("expression")}
    assert {"Patient.identifier", "ServiceRequest.performer",
            "ServiceRequest.supportingInfo"} <= expressions


def test_an_open_referral_to_the_same_offer_is_a_conflict(world, epr):
    rid = sent_referral(world)  # still open
    bundle = exported(world, rid)
    before = _counts(world.db)
    response = epr(bundle)
    assert response.status_code == 409
    assert _issues(response)[0]["code"] == "conflict"
    _assert_nothing_created(world, before)


def test_only_referrers_may_post(world, app):
    bundle = new_patient_bundle(world, seed=90)
    response = world.vcse.post(URL, data=json.dumps(bundle), headers={"Content-Type": FHIR})
    assert response.status_code == 403
    assert _issues(response)[0]["code"] == "forbidden"
    peer = world.peer.post(URL, data=json.dumps(bundle), headers={"Content-Type": FHIR})
    assert peer.status_code == 403


def test_exactly_one_service_request(world, epr):
    bundle = new_patient_bundle(world, seed=91)
    request = _resource(bundle, "ServiceRequest")
    bundle["entry"].append({"fullUrl": "urn:uuid:00000000-0000-4000-8000-000000000001",
                            "resource": copy.deepcopy(request)})
    response = epr(bundle)
    assert response.status_code == 422
    assert "exactly one ServiceRequest" in _issues(response)[0]["diagnostics"]


def test_the_created_draft_exports_as_a_draft(world, epr):
    response = epr(new_patient_bundle(world, seed=92))
    new_id = int(response.headers["Location"].rsplit("/", 1)[1])
    found = resources(exported(world, new_id))
    assert found["Task"][0]["status"] == "draft"
    assert found["ServiceRequest"][0]["status"] == "draft"


def test_a_partial_birth_date_is_not_enough(world, epr):
    bundle = new_patient_bundle(world, seed=93)
    _resource(bundle, "Patient")["birthDate"] = "1999"
    response = epr(bundle)
    assert response.status_code == 422
    [issue] = [i for i in _issues(response) if i["severity"] == "error"]
    assert issue["expression"] == ["Patient.birthDate"]

"""Helpers for the FHIR tests: referrals in every state, and validation with fhir.resources."""

from __future__ import annotations

from datetime import timedelta

from fhir.resources.R4B import get_fhir_model_class
from fhir.resources.R4B.bundle import Bundle

from tests.test_referral_support import (
    act,
    create_referral,
    give_consent,
    make_journey,
    make_person,
    ok,
)

UK_CORE = "https://fhir.hl7.org.uk/StructureDefinition/UKCore-"
NHS_NUMBER = "https://fhir.nhs.uk/Id/nhs-number"
ODS = "https://fhir.nhs.uk/Id/ods-organization-code"

# How to reach each state from a fresh draft: (client name, action, body) steps.
PATHS = {
    "draft": [],
    "requested": [("coordinator", "send", None)],
    "accepted": [("coordinator", "send", None), ("vcse", "accept", "waitlist")],
    "rejected": [("coordinator", "send", None),
                 ("vcse", "decline", {"reason_code": "needs-specialist-support",
                                      "reason_text": "Needs a psychologist"})],
    "in-progress": [("coordinator", "send", None), ("vcse", "accept", None),
                    ("vcse", "start", None)],
    "on-hold": [("coordinator", "send", None), ("vcse", "accept", None), ("vcse", "start", None),
                ("vcse", "hold", {"reason_code": "person-unwell"})],
    "completed": [("coordinator", "send", None), ("vcse", "accept", None),
                  ("vcse", "start", None), ("vcse", "complete", None)],
    "cancelled": [("coordinator", "send", None),
                  ("coordinator", "cancel", {"reason_code": "no-longer-needed",
                                             "reason_text": "Moved away"})],
    "failed": [("coordinator", "send", None), ("vcse", "accept", None), ("vcse", "start", None),
               ("vcse", "fail", {"reason_code": "could-not-engage"})],
}


def referral_in_state(world, state: str, seed: int) -> int:
    """A referral of a new person (own journey and consent) taken to `state` through the API."""
    person = make_person(world.db, world.demo, seed=seed, given=f"Person{seed}")
    give_consent(world.db, world.demo, person, "vcse-a", world.clock)
    journey = make_journey(world.db, world.demo, person, world.clock)
    rid = ok(create_referral(world.coordinator, journey.id, world.offer.id), 201)["id"]
    for who, action, body in PATHS[state]:
        if body == "waitlist":
            start = (world.clock.now().date() + timedelta(weeks=3)).isoformat()
            body = {"waitlist": True, "expected_start": start}
        ok(act(getattr(world, who), rid, action, body))
    return rid


def resources(bundle_json: dict) -> dict[str, list[dict]]:
    by_type: dict[str, list[dict]] = {}
    for entry in bundle_json["entry"]:
        by_type.setdefault(entry["resource"]["resourceType"], []).append(entry["resource"])
    return by_type


def validate_bundle(bundle_json: dict) -> Bundle:
    """Parse the Bundle and every resource with fhir.resources; check profiles and references."""
    bundle = Bundle.parse_obj(bundle_json)
    full_urls = {entry["fullUrl"] for entry in bundle_json["entry"]}
    for entry in bundle_json["entry"]:
        resource = entry["resource"]
        model = get_fhir_model_class(resource["resourceType"])
        parsed = model.parse_obj(resource)
        assert parsed.id and entry["fullUrl"] == f"urn:uuid:{parsed.id}"
        assert parsed.meta.profile == [f"{UK_CORE}{resource['resourceType']}"]
    for reference in _references(bundle_json):
        assert reference in full_urls, reference  # every reference resolves inside the Bundle
    return bundle


def _references(value):
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "reference" and isinstance(item, str):
                yield item
            else:
                yield from _references(item)
    elif isinstance(value, list):
        for item in value:
            yield from _references(item)

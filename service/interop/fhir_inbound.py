"""Inbound FHIR: an EPR creates a DRAFT referral by POSTing a Bundle.

The Bundle holds a ServiceRequest (the order), the Patient it names (`subject`), optionally
Consent resources, a QuestionnaireResponse with the handover (the questionnaire
`HANDOVER_QUESTIONNAIRE`, linked from `ServiceRequest.supportingInfo` or simply present), and
whatever Organization, HealthcareService and PractitionerRole resources its references point
to — exactly what `GET /referrals/{id}/fhir` produces, so an exported referral can be posted back.

Resolution:
- the offer: `ServiceRequest.performer` → a HealthcareService (or a reference identifier) with
  the Stepdown offer identifier (`<BASE_URL>/Id/offer`) or its Open Referral UK service id
  (`<BASE_URL>/openreferral/services`);
- the person: the Patient's NHS number. A person already registered must also match on family
  name and date of birth (a mismatch is refused and audited: nobody attaches to a record by
  guessing NHS numbers). A new person is registered in the caller's organisation;
- the journey: the person's open journey owned by the caller's team, or a new `planned` one
  (review due in 12 weeks) with the requester as named statutory contact. The requester is
  `ServiceRequest.requester` → a PractitionerRole naming a Stepdown user of the caller's
  organisation (by `<BASE_URL>/Id/user` identifier or work email); failing that, the signed-in
  user, or the team's manager;
- consents: each `active` Consent whose `provision.actor` is an Organization known to Stepdown
  (ODS code, charity or company number), with `policyRule` codings for the UK GDPR article 6
  basis and article 9 condition and a `category` coding for the method (the code systems the
  export uses). Inactive Consents are ignored with a warning.

Missing consent (decision): a draft can only ever be sent to an organisation an active consent
names (DESIGN §5 rule 1), and the EPR is where consent is taken. So the Bundle must carry an
active Consent naming the offer's organisation, unless Stepdown already holds one for that
person; otherwise nothing is created and the OperationOutcome says so. Sharing without consent
(an alternative lawful basis) stays a decision made in Stepdown by someone holding that
permission, when the draft is sent.

Validation uses the same marshmallow schemas as the JSON API (people, consents, referrals), and
the same operations create the records, so the rules, permissions and audit are identical.
Every problem found is reported at once as an OperationOutcome issue with a FHIRPath
`expression`; nothing is written unless the whole Bundle is good (one transaction).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from fhir.resources.R4B.bundle import Bundle
from marshmallow import ValidationError
from pydantic.v1 import ValidationError as FhirValidationError
from sqlmodel import Session, select

from models import Consent, Journey, Membership, Offer, Organisation, Person, Team, User
from service import clock
from service.audit import operations as audit
from service.auth.principal import Principal
from service.errors import Forbidden, StepdownError
from service.interop import fhir
from service.interop.oruk import offer_id_from
from service.journeys import operations as journeys
from service.people import operations as people
from service.people.schemas import ConsentCreateSchema, PersonCreateSchema
from service.referrals import operations as referrals
from service.referrals.schemas import ReferralCreateSchema
from service.scoping import consent_covers, person_visible

REVIEW_AFTER = timedelta(weeks=12)
DEFAULT_PURPOSE = "Sharing for a step-down referral, as recorded in the referring record"
_HANDOVER_FIELDS = {link_id: attribute for link_id, attribute, _label in fhir.HANDOVER_ITEMS
                    if attribute != "about_me"}  # About me is the person's own, snapshot at send

# Where each field of the JSON API's schemas lives in the Bundle (for issue expressions).
PERSON_PATHS = {
    "nhs_number": "Patient.identifier", "given_name": "Patient.name.given",
    "family_name": "Patient.name.family", "preferred_name": "Patient.name",
    "date_of_birth": "Patient.birthDate", "postcode_district": "Patient.address.postalCode",
    "borough": "Patient.address.district", "sex": "Patient.gender",
}
CONSENT_PATHS = {
    "organisation_id": "Consent.provision.actor.reference", "purpose": "Consent.policyRule.text",
    "lawful_basis": "Consent.policyRule.coding", "condition": "Consent.policyRule.coding",
    "method": "Consent.category", "given_at": "Consent.dateTime",
    "expires_at": "Consent.provision.period.end",
}
HANDOVER_PATHS = {attribute: f"QuestionnaireResponse.item.where(linkId='{link_id}')"
                  for link_id, attribute in _HANDOVER_FIELDS.items()}
REFERRAL_PATHS = {**HANDOVER_PATHS, "offer_id": "ServiceRequest.performer",
                  "journey_id": "ServiceRequest", "team_id": "ServiceRequest.requester",
                  "statutory_contact_user_id": "ServiceRequest.requester",
                  "review_due": "ServiceRequest", "consent": "Consent", "nhs_number":
                  "Patient.identifier"}

# OperationOutcome issue codes for an HTTP status (http://hl7.org/fhir/issue-type).
ISSUE_CODES = {400: "structure", 401: "login", 403: "forbidden", 404: "not-found",
               409: "conflict", 412: "conflict", 413: "too-long", 415: "not-supported",
               422: "invalid", 428: "required", 429: "throttled", 503: "transient"}


@dataclass
class Issue:
    diagnostics: str
    expression: str | None = None
    code: str = "invalid"
    severity: str = "error"

    def as_fhir(self) -> dict:
        issue: dict[str, Any] = {"severity": self.severity, "code": self.code,
                                 "diagnostics": self.diagnostics}
        if self.expression:
            issue["expression"] = [self.expression]
        return issue


class FhirInvalid(StepdownError):
    """Bad FHIR input: every problem found, as OperationOutcome issues."""

    status = 422
    title = "Unprocessable content"

    def __init__(self, issues: list[Issue], *, status: int = 422,
                 detail: str = "The Bundle cannot be accepted.") -> None:
        super().__init__(detail)
        self.status = status
        self.issues = issues


def issues_from_errors(messages: Any, paths: dict[str, str], prefix: str = "") -> list[Issue]:
    """marshmallow / StepdownError field messages → issues with FHIRPath expressions."""
    issues: list[Issue] = []
    if isinstance(messages, dict):
        for name, value in messages.items():
            if isinstance(value, dict):
                issues += issues_from_errors(value, paths, prefix)
                continue
            texts = value if isinstance(value, list) else [value]
            expression = paths.get(str(name), prefix or None)
            for text in texts:
                issues.append(Issue(str(text), expression,
                                    "required" if "Missing data" in str(text) else "invalid"))
    elif messages:
        issues.append(Issue(str(messages), prefix or None))
    return issues


# ---- Reading the Bundle -------------------------------------------------------------------


def _pydantic_path(loc: tuple) -> str:
    path = "Bundle"
    for part in loc:
        if part == "__root__":
            continue
        path += f"[{part}]" if isinstance(part, int) else f".{part}"
    return path


def parse_bundle(raw: bytes) -> Bundle:
    """A Bundle validated by fhir.resources, or 400 with the structural problems."""
    try:
        document = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise FhirInvalid([Issue("The body is not JSON.", code="structure")], status=400,
                          detail="The body is not a FHIR Bundle.") from None
    if not isinstance(document, dict) or document.get("resourceType") != "Bundle":
        raise FhirInvalid([Issue("Send a Bundle (resourceType Bundle).", "Bundle",
                                 code="structure")], status=400,
                          detail="The body is not a FHIR Bundle.")
    try:
        return Bundle.parse_obj(document)
    except FhirValidationError as exc:
        issues = [Issue(f"{err['msg']}", _pydantic_path(err["loc"]), code="structure")
                  for err in exc.errors()[:50]]
        raise FhirInvalid(issues, status=400, detail="The Bundle is not valid FHIR R4.") from None
    except (LookupError, TypeError, ValueError):
        raise FhirInvalid([Issue("The Bundle holds a resource type that is not FHIR R4.",
                                 "Bundle.entry.resource", code="structure")], status=400,
                          detail="The Bundle is not valid FHIR R4.") from None


class Entries:
    """The Bundle's resources, findable by type and by reference (fullUrl or Type/id)."""

    def __init__(self, bundle: Bundle):
        self.by_ref: dict[str, Any] = {}
        self.resources: list[Any] = []
        for entry in bundle.entry or []:
            resource = entry.resource
            if resource is None:
                continue
            self.resources.append(resource)
            if entry.fullUrl:
                self.by_ref[entry.fullUrl] = resource
            if resource.id:
                self.by_ref[f"{resource.resource_type}/{resource.id}"] = resource

    def of_type(self, resource_type: str) -> list[Any]:
        return [r for r in self.resources if r.resource_type == resource_type]

    def resolve(self, reference, resource_type: str | None = None):
        if reference is None or not reference.reference:
            return None
        target = self.by_ref.get(reference.reference)
        if target is None:
            # An absolute URL ending in Type/id also resolves to that entry.
            tail = "/".join(reference.reference.rstrip("/").split("/")[-2:])
            target = self.by_ref.get(tail)
        if target is not None and resource_type and target.resource_type != resource_type:
            return None
        return target


def _identifier_value(identifiers, system: str) -> str | None:
    for identifier in identifiers or []:
        if identifier.system == system and identifier.value:
            return identifier.value.strip()
    return None


def _coding(concepts, system: str) -> str | None:
    for concept in concepts or []:
        for coding in concept.coding or []:
            if coding.system == system and coding.code:
                return coding.code
    return None


# ---- Resolving what the Bundle names ------------------------------------------------------


@dataclass
class Inbound:
    issues: list[Issue] = field(default_factory=list)
    warnings: list[Issue] = field(default_factory=list)
    offer: Offer | None = None
    nhs_number: str | None = None
    person_data: dict | None = None
    person: Person | None = None
    handover: dict = field(default_factory=dict)
    consents: list[dict] = field(default_factory=list)
    contact_user_id: int | None = None


def _offer(db: Session, entries: Entries, request, base_url: str, found: Inbound) -> None:
    offer_system = fhir.id_system(base_url, "offer")
    oruk_system = f"{base_url.rstrip('/')}/openreferral/services"
    for performer in request.performer or []:
        identifiers = []
        target = entries.resolve(performer, "HealthcareService")
        if target is not None:
            identifiers += target.identifier or []
        if performer.identifier is not None:
            identifiers.append(performer.identifier)
        offer_id = None
        value = _identifier_value(identifiers, offer_system)
        if value and value.isdigit():
            offer_id = int(value)
        value = _identifier_value(identifiers, oruk_system)
        if offer_id is None and value:
            offer_id = offer_id_from(value)
        if offer_id is not None:
            found.offer = db.get(Offer, offer_id)
            if found.offer is not None:
                if found.offer.status != "active":
                    found.issues.append(Issue(f"The offer is {found.offer.status}: it is not "
                                              "taking referrals.", "ServiceRequest.performer",
                                              "business-rule"))
                return
    found.issues.append(Issue(
        "No community offer matches ServiceRequest.performer: reference a HealthcareService "
        "with a Stepdown offer identifier or an Open Referral UK service id.",
        "ServiceRequest.performer", "not-found"))


def _person(db: Session, actor: Principal, patient, found: Inbound) -> None:
    raw: dict[str, Any] = {}
    nhs = _identifier_value(patient.identifier, fhir.NHS_NUMBER)
    if nhs is None:
        found.issues.append(Issue(f"The Patient needs an identifier with system "
                                  f"{fhir.NHS_NUMBER}.", "Patient.identifier", "required"))
        return
    raw["nhs_number"] = nhs
    names = patient.name or []
    official = next((n for n in names if n.use == "official"), names[0] if names else None)
    if official is not None:
        if official.family:
            raw["family_name"] = official.family
        if official.given:
            raw["given_name"] = official.given[0]
    usual = next((n for n in names if n.use == "usual" and n.given), None)
    if usual is not None:
        raw["preferred_name"] = usual.given[0]
    if patient.birthDate is not None:  # a partial date ("1980") fails the schema's Date
        born = patient.birthDate
        raw["date_of_birth"] = born.isoformat() if isinstance(born, date) else str(born)
    address = (patient.address or [None])[0]
    if address is not None:
        if address.postalCode:
            raw["postcode_district"] = address.postalCode.split()[0]
        if address.district:
            raw["borough"] = address.district
    if patient.gender:
        raw["sex"] = {"unknown": "not-known"}.get(patient.gender, patient.gender)
    try:
        data = PersonCreateSchema().load(raw)
    except ValidationError as exc:
        found.issues += issues_from_errors(exc.messages, PERSON_PATHS, "Patient")
        return
    found.nhs_number = data["nhs_number"]
    existing = db.exec(select(Person).where(Person.nhs_number == data["nhs_number"])).first()
    if existing is None:
        found.person_data = data
        return
    if (existing.family_name.casefold() != data["family_name"].casefold()
            or existing.date_of_birth != data["date_of_birth"]):
        audit.record_denied(actor, "match-fhir", "person", existing.id, person_id=existing.id)
        found.issues.append(Issue(
            "The Patient's family name or birth date does not match the record held for this "
            "NHS number.", "Patient", "business-rule"))
        return
    found.person = existing
    found.warnings.append(Issue("The Patient matched a person already registered in Stepdown "
                                "(by NHS number, family name and birth date).", "Patient",
                                "informational", "information"))


def _organisation(db: Session, entries: Entries, reference, base_url: str) -> Organisation | None:
    identifiers = []
    target = entries.resolve(reference, "Organization")
    if target is not None:
        identifiers += target.identifier or []
    if reference is not None and reference.identifier is not None:
        identifiers.append(reference.identifier)
    lookups = (
        (fhir.ODS_CODE, Organisation.ods_code), (fhir.CHARITY_NUMBER, Organisation.charity_number),
        (fhir.COMPANY_NUMBER, Organisation.company_number),
    )
    for system, column in lookups:
        value = _identifier_value(identifiers, system)
        if value:
            organisation = db.exec(select(Organisation).where(column == value)).first()
            if organisation is not None:
                return organisation
    value = _identifier_value(identifiers, fhir.id_system(base_url, "organisation"))
    if value and value.isdigit():
        return db.get(Organisation, int(value))
    return None


def _consents(db: Session, entries: Entries, base_url: str, found: Inbound) -> None:
    for index, consent in enumerate(entries.of_type("Consent")):
        where = f"Bundle.entry.resource.ofType(Consent)[{index}]"
        if consent.status != "active":
            found.warnings.append(Issue(f"A Consent with status {consent.status} was ignored.",
                                        where, "informational", "warning"))
            continue
        actors = consent.provision.actor if consent.provision and consent.provision.actor else []
        organisation = None
        for actor in actors:
            organisation = _organisation(db, entries, actor.reference, base_url)
            if organisation is not None:
                break
        if organisation is None:
            found.issues.append(Issue("The Consent does not name an organisation known to "
                                      "Stepdown in provision.actor (ODS code, charity or company "
                                      "number).", f"{where}.provision.actor", "not-found"))
            continue
        period = consent.provision.period if consent.provision else None
        given = consent.dateTime or (period.start if period else None)
        raw = {
            "organisation_id": organisation.id,
            "purpose": (consent.policyRule.text if consent.policyRule and consent.policyRule.text
                        else DEFAULT_PURPOSE),
            "lawful_basis": _coding([consent.policyRule] if consent.policyRule else [],
                                    fhir.ART6_SYSTEM),
            "condition": _coding([consent.policyRule] if consent.policyRule else [],
                                 fhir.ART9_SYSTEM),
            "method": _coding(consent.category, fhir.CONSENT_METHOD_SYSTEM),
            "given_at": (given.isoformat() if isinstance(given, datetime | date)
                         else str(given) if given else None),
            "expires_at": (period.end.isoformat()
                           if period is not None and isinstance(period.end, datetime | date)
                           else None),
        }
        missing = {
            "lawful_basis": f"Code the UK GDPR article 6 basis in policyRule ({fhir.ART6_SYSTEM})",
            "condition": f"Code the UK GDPR article 9 condition in policyRule "
                         f"({fhir.ART9_SYSTEM})",
            "method": f"Code how consent was given in category ({fhir.CONSENT_METHOD_SYSTEM})",
            "given_at": "Give the date consent was given (dateTime)",
        }
        problems = {name: [message] for name, message in missing.items() if raw[name] is None}
        if problems:
            found.issues += issues_from_errors(problems, CONSENT_PATHS)
            continue
        try:
            data = ConsentCreateSchema().load(raw)
        except ValidationError as exc:
            found.issues += issues_from_errors(exc.messages, CONSENT_PATHS, where)
            continue
        if data["expires_at"] is not None and data["expires_at"] <= clock.now():
            found.warnings.append(Issue("An expired Consent was ignored.", where,
                                        "informational", "warning"))
            continue
        found.consents.append(data)


def _handover(entries: Entries, request, found: Inbound) -> None:
    response = None
    for info in request.supportingInfo or []:
        response = entries.resolve(info, "QuestionnaireResponse")
        if response is not None:
            break
    if response is None:
        response = next((r for r in entries.of_type("QuestionnaireResponse")
                         if r.questionnaire == fhir.HANDOVER_QUESTIONNAIRE), None)
    raw: dict[str, Any] = {}
    for item in (response.item or []) if response is not None else []:
        attribute = _HANDOVER_FIELDS.get(item.linkId)
        if attribute and item.answer and item.answer[0].valueString:
            raw[attribute] = item.answer[0].valueString
    try:
        found.handover = ReferralCreateSchema(exclude=("journey_id", "offer_id")).load(raw)
    except ValidationError as exc:
        if response is None:
            found.issues.append(Issue(
                f"Include the handover as a QuestionnaireResponse for "
                f"{fhir.HANDOVER_QUESTIONNAIRE}, referenced from ServiceRequest.supportingInfo.",
                "ServiceRequest.supportingInfo", "required"))
        else:
            found.issues += issues_from_errors(exc.messages, HANDOVER_PATHS)


def _user_in_organisation(db: Session, user_id: int | None, organisation_id: int) -> int | None:
    if user_id is None:
        return None
    return db.exec(select(User.id).join(Membership, Membership.user_id == User.id).where(
        User.id == user_id, User.is_active.is_(True),
        Membership.organisation_id == organisation_id)).first()


def _requester(db: Session, actor: Principal, entries: Entries, request, base_url: str,
               found: Inbound) -> None:
    user_id = None
    role = entries.resolve(request.requester, "PractitionerRole")
    if role is not None:
        value = _identifier_value(role.identifier, fhir.id_system(base_url, "user"))
        if value and value.isdigit():
            user_id = _user_in_organisation(db, int(value), actor.organisation_id)
        if user_id is None:
            for point in role.telecom or []:
                if point.system == "email" and point.value:
                    match = db.exec(select(User.id).where(
                        User.email == point.value.strip().lower())).first()
                    user_id = _user_in_organisation(db, match, actor.organisation_id)
                    if user_id:
                        break
    if user_id is None:
        user_id = _user_in_organisation(db, actor.user_id, actor.organisation_id)
    if user_id is None and actor.team_id is not None:
        user_id = db.exec(select(Membership.user_id).join(User, User.id == Membership.user_id)
                          .where(Membership.team_id == actor.team_id,
                                 Membership.is_team_manager.is_(True),
                                 User.is_active.is_(True))
                          .order_by(Membership.id)).first()
    if user_id is None:
        found.issues.append(Issue("ServiceRequest.requester must be a PractitionerRole naming a "
                                  "Stepdown user of your organisation (identifier or work "
                                  "email).", "ServiceRequest.requester", "required"))
    found.contact_user_id = user_id


def read_inbound(db: Session, actor: Principal, bundle: Bundle, base_url: str) -> Inbound:
    """Everything the Bundle names, resolved and validated; `issues` lists what is wrong."""
    entries = Entries(bundle)
    found = Inbound()
    requests = entries.of_type("ServiceRequest")
    if len(requests) != 1:
        found.issues.append(Issue("The Bundle must hold exactly one ServiceRequest.",
                                  "Bundle.entry.resource.ofType(ServiceRequest)", "structure"))
        return found
    request = requests[0]
    patient = entries.resolve(request.subject, "Patient")
    if patient is None:
        found.issues.append(Issue("ServiceRequest.subject must reference a Patient in the "
                                  "Bundle.", "ServiceRequest.subject", "structure"))
    else:
        _person(db, actor, patient, found)
    _offer(db, entries, request, base_url, found)
    _handover(entries, request, found)
    _consents(db, entries, base_url, found)
    _requester(db, actor, entries, request, base_url, found)
    if found.offer is not None and found.nhs_number is not None and not any(
            i.expression and i.expression.startswith(("Bundle.entry.resource.ofType(Consent)",
                                                      "Consent")) for i in found.issues):
        covered = any(c["organisation_id"] == found.offer.organisation_id for c in found.consents)
        if not covered and found.person is not None:
            covered = consent_covers(db, found.person.id, found.offer.organisation_id)
        if not covered:
            organisation = db.get(Organisation, found.offer.organisation_id)
            found.issues.append(Issue(
                f"No active consent names {organisation.name}, which runs the offer: include the "
                "person's Consent (provision.actor naming that organisation).", "Consent",
                "business-rule"))
    return found


# ---- Creating the draft -------------------------------------------------------------------


def _journey(db: Session, actor: Principal, person: Person, contact_user_id: int) -> Journey:
    """The person's open journey owned by the caller's team, or a new planned one."""
    if actor.team_id is None:
        raise FhirInvalid([Issue("This API client acts for no team, and journeys are owned by "
                                 "a team: ask your organisation admin to give it one.",
                                 "ServiceRequest.requester", "business-rule")])
    journey = db.exec(select(Journey).where(Journey.person_id == person.id,
                                            Journey.team_id == actor.team_id,
                                            Journey.status.in_(("planned", "active")))
                      .order_by(Journey.created_at.desc(), Journey.id.desc())).first()
    if journey is not None:
        return journey
    review_due = clock.now().date() + REVIEW_AFTER
    data = {"person_id": person.id, "statutory_contact_user_id": contact_user_id,
            "review_due": review_due, "members": []}
    if person_visible(db, actor, person.id):
        return journeys.create_journey(db, actor, data)
    # A person registered elsewhere whose NHS number, family name and birth date the caller
    # gave: the new journey is what brings them into this team's care (create_journey's rules,
    # without its visibility check, which exists to stop exactly this kind of lookup).
    if actor.organisation_kind != "statutory":
        raise Forbidden("Journeys are owned by statutory teams.")
    team = db.get(Team, actor.team_id)
    now = clock.now()
    journey = Journey(person_id=person.id, team_id=team.id,
                      statutory_contact_user_id=contact_user_id, status="planned",
                      review_due=review_due, created_by_user_id=actor.user_id, created_at=now,
                      updated_at=now)
    db.add(journey)
    db.flush()
    audit.record(db, actor, "create", "journey", journey.id, person_id=person.id)
    return journey


def _already_recorded(db: Session, person_id: int, data: dict) -> bool:
    return bool(db.scalar(sa.select(sa.exists().where(
        Consent.person_id == person_id, Consent.organisation_id == data["organisation_id"],
        Consent.given_at == data["given_at"], Consent.lawful_basis == data["lawful_basis"],
        Consent.withdrawn_at.is_(None)))))


def create_draft_from_bundle(db: Session, actor: Principal, raw: bytes,
                             base_url: str) -> tuple[Any, list[Issue]]:
    """Create the draft referral a Bundle describes; FhirInvalid lists every problem."""
    if actor.organisation_kind != "statutory":
        raise Forbidden("Referrals are made by statutory teams.")
    bundle = parse_bundle(raw)
    found = read_inbound(db, actor, bundle, base_url)
    if found.issues:
        raise FhirInvalid(found.issues + found.warnings)
    try:
        person = found.person
        if person is not None:  # matched on NHS number, family name and birth date
            audit.record(db, actor, "match-fhir", "person", person.id, person_id=person.id)
        else:
            shaped = people.register_person(db, actor, dict(found.person_data))
            person = db.get(Person, shaped["id"])
        journey = _journey(db, actor, person, found.contact_user_id)
        referral = referrals.create_referral(db, actor, {"journey_id": journey.id,
                                                         "offer_id": found.offer.id,
                                                         **found.handover})
        for data in found.consents:
            if not _already_recorded(db, person.id, data):
                people.record_consent(db, actor, person.id, dict(data))
    except FhirInvalid:
        raise
    except StepdownError as exc:
        issues = issues_from_errors(exc.errors, REFERRAL_PATHS) if exc.errors else []
        code = ISSUE_CODES.get(exc.status, "processing")
        issues = issues or [Issue(exc.detail, None, code)]
        for issue in issues:
            issue.code = code if issue.code == "invalid" else issue.code
        raise FhirInvalid(issues, status=exc.status, detail=exc.detail) from None
    db.flush()
    return referral, found.warnings

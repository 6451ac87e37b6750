"""FHIR R4 (UK Core) resources for a referral, built with `fhir.resources` (its R4B models).

A referral exports as a `collection` Bundle:

| Stepdown | FHIR | UK Core profile |
|---|---|---|
| referral (the order) | ServiceRequest | UKCore-ServiceRequest |
| referral (its fulfilment, status verbatim) | Task | UKCore-Task |
| handover | QuestionnaireResponse (`ServiceRequest.supportingInfo`) | UKCore-QuestionnaireResponse |
| person | Patient (`https://fhir.nhs.uk/Id/nhs-number`) | UKCore-Patient |
| consents naming the receiving organisation | Consent | UKCore-Consent |
| organisations and the referring team | Organization (ODS code for statutory bodies) | UKCore-Organization |
| offer | HealthcareService | UKCore-HealthcareService |
| named statutory contact, assigned worker | PractitionerRole | UKCore-PractitionerRole |
| journey | EpisodeOfCare (`referralRequest` → the ServiceRequest) | UKCore-EpisodeOfCare |
| flags of the referral and its journey | Flag | UKCore-Flag |

Every resource's `id` is a UUIDv5 of the Stepdown record, and its `fullUrl` is `urn:uuid:<id>`;
references inside the Bundle use those URNs. Business identifiers use systems under the
deployment's BASE_URL (`<BASE_URL>/Id/referral`, `/Id/offer`, …); the HealthcareService also
carries the Open Referral UK service id (`<BASE_URL>/openreferral/services`).

Minimum necessary (DESIGN §5 rule 2): a VCSE caller gets no NHS number, date of birth or
alternative-basis justification, and no Flags; flags go to callers who may read them and to
whom they are routed. A VCSE caller whose consent was withdrawn gets the Task alone.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime

import sqlalchemy as sa
from fhir.resources.R4B.bundle import Bundle, BundleEntry
from fhir.resources.R4B.codeableconcept import CodeableConcept
from fhir.resources.R4B.coding import Coding
from fhir.resources.R4B.consent import Consent as FhirConsent
from fhir.resources.R4B.consent import ConsentProvision, ConsentProvisionActor
from fhir.resources.R4B.contactpoint import ContactPoint
from fhir.resources.R4B.episodeofcare import EpisodeOfCare
from fhir.resources.R4B.flag import Flag as FhirFlag
from fhir.resources.R4B.healthcareservice import HealthcareService, HealthcareServiceEligibility
from fhir.resources.R4B.humanname import HumanName
from fhir.resources.R4B.identifier import Identifier
from fhir.resources.R4B.meta import Meta
from fhir.resources.R4B.organization import Organization
from fhir.resources.R4B.patient import Patient
from fhir.resources.R4B.period import Period
from fhir.resources.R4B.practitionerrole import PractitionerRole
from fhir.resources.R4B.questionnaireresponse import (
    QuestionnaireResponse,
    QuestionnaireResponseItem,
    QuestionnaireResponseItemAnswer,
)
from fhir.resources.R4B.reference import Reference
from fhir.resources.R4B.servicerequest import ServiceRequest
from fhir.resources.R4B.task import Task, TaskRestriction
from sqlmodel import Session, select

from models import (
    Consent,
    Flag,
    Journey,
    Offer,
    OfferResponsibility,
    Organisation,
    Person,
    Referral,
    Responsibility,
    Team,
    User,
)
from service.interop.oruk import NAMESPACE, service_uuid

FHIR_JSON = "application/fhir+json"

NHS_NUMBER = "https://fhir.nhs.uk/Id/nhs-number"
ODS_CODE = "https://fhir.nhs.uk/Id/ods-organization-code"
CHARITY_NUMBER = "https://org-id.guide/list/GB-CHC"
COMPANY_NUMBER = "https://org-id.guide/list/GB-COH"
SNOMED = "http://snomed.info/sct"
UK_CORE = "https://fhir.hl7.org.uk/StructureDefinition/UKCore-"

# Stepdown's own code systems (stable canonical URLs, not per deployment).
CANONICAL = "https://stepdown.nhs.example/fhir"
REASON_SYSTEM = f"{CANONICAL}/CodeSystem/referral-reason"
BUSINESS_STATUS_SYSTEM = f"{CANONICAL}/CodeSystem/referral-business-status"
RESPONSIBILITY_SYSTEM = f"{CANONICAL}/CodeSystem/responsibility"
FLAG_TRIGGER_SYSTEM = f"{CANONICAL}/CodeSystem/flag-trigger"
CONCERN_SYSTEM = f"{CANONICAL}/CodeSystem/concern-category"
URGENCY_SYSTEM = f"{CANONICAL}/CodeSystem/flag-urgency"
ART6_SYSTEM = f"{CANONICAL}/CodeSystem/uk-gdpr-article-6-basis"
ART9_SYSTEM = f"{CANONICAL}/CodeSystem/uk-gdpr-article-9-condition"
CONSENT_METHOD_SYSTEM = f"{CANONICAL}/CodeSystem/consent-method"
HANDOVER_QUESTIONNAIRE = f"{CANONICAL}/Questionnaire/stepdown-handover"

REASON_STATES = ("rejected", "cancelled", "on-hold", "failed")
# referral status → ServiceRequest.status (request-status)
REQUEST_STATUS = {
    "draft": "draft", "requested": "active", "accepted": "active", "in-progress": "active",
    "on-hold": "on-hold", "completed": "completed", "rejected": "revoked",
    "cancelled": "revoked", "failed": "revoked",
}
GENDER = {"male": "male", "female": "female", "other": "other", "not-known": "unknown",
          "not-stated": "unknown"}
# Handover questions: (linkId, Referral attribute, label). about-me is the snapshot at send.
HANDOVER_ITEMS = (
    ("about-me", "about_me", "About me, in the person's own words"),
    ("goals", "goals", "Goals"),
    ("relapse-signs", "relapse_signs", "Early signs of relapse"),
    ("crisis-plan", "crisis_plan", "Crisis plan"),
    ("risk-summary", "risk_summary", "Risk summary"),
    ("contact-in-hours", "contact_in_hours", "Who to call in hours"),
    ("contact-out-of-hours", "contact_out_of_hours", "Who to call out of hours"),
)
_SAFETY_CATEGORIES = ("risk-to-self", "risk-to-others", "safeguarding")


def profile(resource_type: str) -> Meta:
    return Meta(profile=[f"{UK_CORE}{resource_type}"])


def resource_id(resource_type: str, key: object) -> str:
    return str(uuid.uuid5(NAMESPACE, f"fhir:{resource_type}:{key}"))


def urn(resource_type: str, key: object) -> str:
    return f"urn:uuid:{resource_id(resource_type, key)}"


def ref(resource_type: str, key: object, display: str | None = None) -> Reference:
    return Reference(reference=urn(resource_type, key), type=resource_type, display=display)


def id_system(base_url: str, kind: str) -> str:
    return f"{base_url.rstrip('/')}/Id/{kind}"


def _label(code: str) -> str:
    return code.replace("-", " ").capitalize()


def coded(system: str, code: str, text: str | None = None) -> CodeableConcept:
    return CodeableConcept(coding=[Coding(system=system, code=code, display=_label(code))],
                           text=text or _label(code))


# ---- What a referral's Bundle is made of ---------------------------------------------------


@dataclass
class ReferralRecord:
    referral: Referral
    person: Person
    offer: Offer
    journey: Journey
    referring_team: Team
    referring_organisation: Organisation
    receiving_organisation: Organisation
    statutory_contact: User | None = None
    assignee: User | None = None
    responsibilities: list[Responsibility] = field(default_factory=list)
    consents: list[Consent] = field(default_factory=list)
    flags: list[Flag] = field(default_factory=list)


def load_record(db: Session, referral: Referral, flags: list[Flag] | None = None) -> ReferralRecord:
    journey = db.get(Journey, referral.journey_id)
    team = db.get(Team, referral.referring_team_id)
    record = ReferralRecord(
        referral=referral,
        person=db.get(Person, referral.person_id),
        offer=db.get(Offer, referral.offer_id),
        journey=journey,
        referring_team=team,
        referring_organisation=db.get(Organisation, team.organisation_id),
        receiving_organisation=db.get(Organisation, referral.receiving_organisation_id),
        statutory_contact=(db.get(User, journey.statutory_contact_user_id)
                           if journey.statutory_contact_user_id else None),
        assignee=db.get(User, referral.assigned_to_user_id) if referral.assigned_to_user_id
        else None,
        flags=flags or [],
    )
    record.responsibilities = list(db.exec(
        select(Responsibility)
        .join(OfferResponsibility, OfferResponsibility.responsibility_code == Responsibility.code)
        .where(OfferResponsibility.offer_id == referral.offer_id)
        .order_by(Responsibility.code)).all())
    record.consents = list(db.exec(
        select(Consent).where(Consent.person_id == referral.person_id,
                              Consent.organisation_id == referral.receiving_organisation_id)
        .order_by(Consent.given_at, Consent.id)).all())
    return record


# ---- Resources ----------------------------------------------------------------------------


def organisation_identifiers(organisation: Organisation) -> list[Identifier]:
    identifiers = []
    if organisation.ods_code:
        identifiers.append(Identifier(system=ODS_CODE, value=organisation.ods_code))
    if organisation.charity_number:
        identifiers.append(Identifier(system=CHARITY_NUMBER, value=organisation.charity_number))
    if organisation.company_number:
        identifiers.append(Identifier(system=COMPANY_NUMBER, value=organisation.company_number))
    return identifiers


def organization_resource(organisation: Organisation, base_url: str) -> Organization:
    kind = "prov" if organisation.kind == "statutory" else "cg"
    return Organization(
        id=resource_id("Organization", organisation.id), meta=profile("Organization"),
        identifier=[*organisation_identifiers(organisation),
                    Identifier(system=id_system(base_url, "organisation"),
                               value=str(organisation.id))],
        active=True,
        type=[CodeableConcept(coding=[Coding(
            system="http://terminology.hl7.org/CodeSystem/organization-type", code=kind,
            display="Healthcare Provider" if kind == "prov" else "Community group")])],
        name=organisation.name,
    )


def team_resource(team: Team, organisation: Organisation, base_url: str) -> Organization:
    telecom = [ContactPoint(system="email", value=team.email, use="work")] if team.email else None
    return Organization(
        id=resource_id("Organization", f"team-{team.id}"), meta=profile("Organization"),
        identifier=[Identifier(system=id_system(base_url, "team"), value=str(team.id))],
        active=True,
        type=[CodeableConcept(coding=[Coding(
            system="http://terminology.hl7.org/CodeSystem/organization-type", code="team",
            display="Organizational team")])],
        name=team.name, telecom=telecom,
        partOf=ref("Organization", organisation.id, organisation.name),
    )


def patient_resource(person: Person, base_url: str, *, full: bool) -> Patient:
    identifiers = [Identifier(system=id_system(base_url, "person"), value=str(person.id))]
    if full:
        identifiers.insert(0, Identifier(system=NHS_NUMBER, value=person.nhs_number))
    names = [HumanName(use="official", family=person.family_name, given=[person.given_name])]
    if person.preferred_name:
        names.append(HumanName(use="usual", given=[person.preferred_name]))
    address = None
    if person.postcode_district or person.borough:
        address = [{"use": "home", "district": person.borough,
                    "postalCode": person.postcode_district}]
    return Patient(
        id=resource_id("Patient", person.id), meta=profile("Patient"), identifier=identifiers,
        name=names,
        gender=GENDER.get(person.sex) if full and person.sex else None,
        birthDate=person.date_of_birth if full else None,
        address=address,
    )


def practitioner_role_resource(user: User, organisation: Organisation, role: str,
                               base_url: str) -> PractitionerRole:
    return PractitionerRole(
        id=resource_id("PractitionerRole", f"{user.id}-{organisation.id}"),
        meta=profile("PractitionerRole"),
        identifier=[Identifier(system=id_system(base_url, "user"), value=str(user.id))],
        active=user.is_active,
        practitioner=Reference(display=user.display_name,
                               identifier=Identifier(system=id_system(base_url, "user"),
                                                     value=str(user.id))),
        organization=ref("Organization", organisation.id, organisation.name),
        code=[CodeableConcept(text=role)],
        telecom=[ContactPoint(system="email", value=user.email, use="work")],
    )


def _role_ref(user: User, organisation: Organisation) -> Reference:
    return ref("PractitionerRole", f"{user.id}-{organisation.id}", user.display_name)


def _alert(offer: Offer) -> str | None:
    if offer.capacity == "waitlist":
        weeks = f" of about {offer.waitlist_weeks} weeks" if offer.waitlist_weeks else ""
        return f"Waiting list{weeks}."
    if offer.capacity == "no-capacity":
        return "Not taking new referrals at the moment."
    return None


def healthcare_service_resource(offer: Offer, organisation: Organisation,
                                responsibilities: list[Responsibility],
                                base_url: str) -> HealthcareService:
    telecom = []
    if offer.phone:
        telecom.append(ContactPoint(system="phone", value=offer.phone, use="work"))
    if offer.email:
        telecom.append(ContactPoint(system="email", value=offer.email, use="work"))
    if offer.url:
        telecom.append(ContactPoint(system="url", value=offer.url, use="work"))
    eligibility = []
    ages = []
    if offer.min_age is not None:
        ages.append(f"from {offer.min_age}")
    if offer.max_age is not None:
        ages.append(f"up to {offer.max_age}")
    if offer.eligibility or ages:
        eligibility.append(HealthcareServiceEligibility(
            code=CodeableConcept(text="Ages " + " ".join(ages)) if ages else None,
            comment=offer.eligibility))
    return HealthcareService(
        id=resource_id("HealthcareService", offer.id), meta=profile("HealthcareService"),
        identifier=[Identifier(system=id_system(base_url, "offer"), value=str(offer.id)),
                    Identifier(system=f"{base_url.rstrip('/')}/openreferral/services",
                               value=service_uuid(offer.id))],
        active=offer.status == "active",
        providedBy=ref("Organization", organisation.id, organisation.name),
        name=offer.name,
        comment=offer.description or None,
        type=[coded(RESPONSIBILITY_SYSTEM, r.code, r.name) for r in responsibilities] or None,
        telecom=telecom or None,
        eligibility=eligibility or None,
        availabilityExceptions=_alert(offer),
    )


def service_request_resource(record: ReferralRecord, base_url: str, *,
                             full: bool) -> ServiceRequest:
    r = record.referral
    requester = (_role_ref(record.statutory_contact, record.referring_organisation)
                 if record.statutory_contact else
                 ref("Organization", record.referring_organisation.id,
                     record.referring_organisation.name))
    notes = []
    if r.alternative_basis:
        text = f"Shared without consent on the {r.alternative_basis} basis."
        if full and r.alternative_justification:
            text += f" Justification: {r.alternative_justification}"
        notes.append({"text": text})
    return ServiceRequest(
        id=resource_id("ServiceRequest", r.id), meta=profile("ServiceRequest"),
        identifier=[Identifier(system=id_system(base_url, "referral"), value=str(r.id))],
        status=REQUEST_STATUS[r.status], intent="order",
        category=[CodeableConcept(coding=[Coding(system=SNOMED, code="3457005",
                                                 display="Patient referral")])],
        code=CodeableConcept(text=record.offer.name),
        subject=ref("Patient", record.person.id),
        authoredOn=r.sent_at or r.created_at,
        requester=requester,
        performer=[ref("HealthcareService", record.offer.id, record.offer.name),
                   ref("Organization", record.receiving_organisation.id,
                       record.receiving_organisation.name)],
        supportingInfo=[ref("QuestionnaireResponse", r.id)],
        note=notes or None,
    )


def task_resource(record: ReferralRecord | None, base_url: str, *, referral: Referral | None = None,
                  minimal: bool = False) -> Task:
    """The referral's fulfilment. `minimal`: no people or references (webhooks, tombstones)."""
    r = record.referral if record is not None else referral
    status_reason = None
    if r.status in REASON_STATES and r.reason_code:
        status_reason = coded(REASON_SYSTEM, r.reason_code, r.reason_text)
    business_status = None
    restriction = None
    if r.status == "accepted" and r.waitlist:
        when = f": expected start {r.expected_start.isoformat()}" if r.expected_start else ""
        business_status = coded(BUSINESS_STATUS_SYSTEM, "waitlist", f"On the waiting list{when}")
        if r.expected_start:
            restriction = TaskRestriction(period=Period(start=r.expected_start))
    period = Period(start=r.started_at, end=r.ended_at) if r.started_at or r.ended_at else None
    task = Task(
        id=resource_id("Task", r.id), meta=profile("Task"),
        identifier=[Identifier(system=id_system(base_url, "referral"), value=str(r.id))],
        status=r.status, statusReason=status_reason, businessStatus=business_status,
        intent="order",
        code=CodeableConcept(coding=[Coding(system="http://hl7.org/fhir/CodeSystem/task-code",
                                            code="fulfill", display="Fulfill the focal request")]),
        authoredOn=r.created_at, lastModified=r.updated_at, executionPeriod=period,
        restriction=restriction,
    )
    if minimal or record is None:
        task.focus = Reference(type="ServiceRequest", identifier=Identifier(
            system=id_system(base_url, "referral"), value=str(r.id)))
        return task
    task.focus = ref("ServiceRequest", r.id)
    task.basedOn = [ref("ServiceRequest", r.id)]
    task.for_fhir = ref("Patient", record.person.id)
    task.requester = (_role_ref(record.statutory_contact, record.referring_organisation)
                      if record.statutory_contact else
                      ref("Organization", record.referring_organisation.id))
    task.owner = (_role_ref(record.assignee, record.receiving_organisation) if record.assignee
                  else ref("Organization", record.receiving_organisation.id,
                           record.receiving_organisation.name))
    return task


def handover_resource(record: ReferralRecord) -> QuestionnaireResponse:
    r = record.referral
    items = [
        QuestionnaireResponseItem(linkId=link_id, text=label, answer=[
            QuestionnaireResponseItemAnswer(valueString=getattr(r, attribute))])
        for link_id, attribute, label in HANDOVER_ITEMS if getattr(r, attribute)
    ]
    return QuestionnaireResponse(
        id=resource_id("QuestionnaireResponse", r.id), meta=profile("QuestionnaireResponse"),
        questionnaire=HANDOVER_QUESTIONNAIRE,
        status="in-progress" if r.status == "draft" else "completed",
        subject=ref("Patient", record.person.id),
        authored=r.sent_at or r.updated_at,
        item=items or None,
    )


def consent_status(consent: Consent, now: datetime) -> str:
    return "active" if consent.status(now) == "active" else "inactive"


def consent_resource(consent: Consent, organisation: Organisation, now: datetime) -> FhirConsent:
    end = consent.withdrawn_at or consent.expires_at
    return FhirConsent(
        id=resource_id("Consent", consent.id), meta=profile("Consent"),
        status=consent_status(consent, now),
        scope=CodeableConcept(coding=[Coding(
            system="http://terminology.hl7.org/CodeSystem/consentscope", code="patient-privacy",
            display="Privacy Consent")]),
        category=[
            CodeableConcept(coding=[Coding(system="http://loinc.org", code="59284-0",
                                           display="Patient Consent")]),
            coded(CONSENT_METHOD_SYSTEM, consent.method),
        ],
        patient=ref("Patient", consent.person_id),
        dateTime=consent.given_at,
        performer=[ref("Patient", consent.person_id)],
        policyRule=CodeableConcept(
            coding=[Coding(system=ART6_SYSTEM, code=consent.lawful_basis),
                    Coding(system=ART9_SYSTEM, code=consent.condition)],
            text=consent.purpose),
        provision=ConsentProvision(
            type="permit",
            period=Period(start=consent.given_at, end=end),
            actor=[ConsentProvisionActor(
                role=CodeableConcept(coding=[Coding(
                    system="http://terminology.hl7.org/CodeSystem/v3-ParticipationType",
                    code="IRCP", display="information recipient")]),
                reference=ref("Organization", organisation.id, organisation.name))],
        ),
    )


def episode_resource(record: ReferralRecord, base_url: str) -> EpisodeOfCare:
    journey = record.journey
    end = None
    if journey.status in ("finished", "cancelled"):
        end = journey.safety_net_ends or journey.updated_at
    return EpisodeOfCare(
        id=resource_id("EpisodeOfCare", journey.id), meta=profile("EpisodeOfCare"),
        identifier=[Identifier(system=id_system(base_url, "journey"), value=str(journey.id))],
        status=journey.status,
        type=[CodeableConcept(text="Step-down journey")],
        patient=ref("Patient", record.person.id),
        managingOrganization=ref("Organization", record.referring_organisation.id,
                                 record.referring_organisation.name),
        period=Period(start=journey.created_at, end=end),
        careManager=(_role_ref(record.statutory_contact, record.referring_organisation)
                     if record.statutory_contact else None),
        referralRequest=[ref("ServiceRequest", record.referral.id)],
    )


def flag_resource(flag: Flag, base_url: str, organisations: set[int]) -> FhirFlag:
    if flag.category in _SAFETY_CATEGORIES:
        kind = "safety"
    elif flag.trigger == "concern":
        kind = "clinical"
    else:
        kind = "admin"
    codings = [Coding(system=FLAG_TRIGGER_SYSTEM, code=flag.trigger, display=_label(flag.trigger))]
    if flag.category:
        codings.append(Coding(system=CONCERN_SYSTEM, code=flag.category,
                              display=_label(flag.category)))
    author = None
    if flag.raised_by_organisation_id in organisations:
        author = ref("Organization", flag.raised_by_organisation_id)
    return FhirFlag(
        id=resource_id("Flag", flag.id), meta=profile("Flag"),
        identifier=[Identifier(system=id_system(base_url, "flag"), value=str(flag.id))],
        status="inactive" if flag.status == "resolved" else "active",
        category=[
            CodeableConcept(coding=[Coding(
                system="http://terminology.hl7.org/CodeSystem/flag-category", code=kind)]),
            coded(URGENCY_SYSTEM, flag.urgency),
        ],
        code=CodeableConcept(coding=codings,
                             text=flag.description or "Specialist statutory pick-up needed"),
        subject=ref("Patient", flag.person_id),
        period=Period(start=flag.raised_at, end=flag.resolved_at),
        author=author,
    )


# ---- The Bundle ---------------------------------------------------------------------------


def _entry(resource) -> BundleEntry:
    return BundleEntry(fullUrl=f"urn:uuid:{resource.id}", resource=resource)


def referral_bundle(record: ReferralRecord, *, base_url: str, now: datetime,
                    full: bool) -> Bundle:
    """Every resource of one referral. `full`: the statutory view (NHS number, birth date)."""
    orgs = {record.referring_organisation.id: record.referring_organisation,
            record.receiving_organisation.id: record.receiving_organisation}
    resources = [
        task_resource(record, base_url),
        service_request_resource(record, base_url, full=full),
        handover_resource(record),
        patient_resource(record.person, base_url, full=full),
        *[consent_resource(c, record.receiving_organisation, now) for c in record.consents],
        *[organization_resource(o, base_url) for o in orgs.values()],
        team_resource(record.referring_team, record.referring_organisation, base_url),
        healthcare_service_resource(record.offer, record.receiving_organisation,
                                    record.responsibilities, base_url),
    ]
    if record.statutory_contact:
        resources.append(practitioner_role_resource(
            record.statutory_contact, record.referring_organisation, "Named statutory contact",
            base_url))
    if record.assignee:
        resources.append(practitioner_role_resource(
            record.assignee, record.receiving_organisation, "Assigned worker", base_url))
    resources.append(episode_resource(record, base_url))
    resources += [flag_resource(f, base_url, set(orgs)) for f in record.flags]
    return Bundle(
        id=str(uuid.uuid4()),
        identifier=Identifier(system=id_system(base_url, "fhir-bundle"), value=str(uuid.uuid4())),
        type="collection", timestamp=now,
        entry=[_entry(resource) for resource in resources],
    )


def tombstone_bundle(referral: Referral, *, base_url: str, now: datetime) -> Bundle:
    """What a VCSE organisation keeps after consent was withdrawn: the Task, nothing personal."""
    return Bundle(id=str(uuid.uuid4()), type="collection", timestamp=now,
                  entry=[_entry(task_resource(None, base_url, referral=referral, minimal=True))])


def flags_for_export(referral: Referral):
    """Flags about this referral, or about its journey without a referral."""
    return select(Flag).where(
        Flag.journey_id == referral.journey_id,
        sa.or_(Flag.referral_id == referral.id, Flag.referral_id.is_(None)),
    ).order_by(Flag.raised_at, Flag.id)

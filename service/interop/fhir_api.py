"""FHIR API: `GET /api/v1/referrals/{id}/fhir` (export) and `POST /api/v1/fhir/referrals`
(inbound draft). Both speak `application/fhir+json`; every error on these routes is an
OperationOutcome with the HTTP status of the matching problem+json."""

from __future__ import annotations

from flask import Response, g, request
from werkzeug.exceptions import HTTPException

from service.api_blueprint import Blueprint
from service.auth import permissions as perm
from service.auth.access import requires
from service.db import get_session
from service.errors import StepdownError
from service.http import idempotent
from service.interop import operations as ops
from service.interop.fhir import FHIR_JSON
from service.interop.fhir_inbound import (
    ISSUE_CODES,
    FhirInvalid,
    Issue,
    create_draft_from_bundle,
    issues_from_errors,
)

fhir_bp = Blueprint("fhir", __name__, url_prefix="/api/v1",
                    description="FHIR R4 (UK Core): referral export and inbound drafts")

_ACCEPTED_TYPES = ("application/fhir+json", "application/json", "application/json+fhir")


def operation_outcome(issues: list[Issue]) -> dict:
    from fhir.resources.R4B.operationoutcome import OperationOutcome

    outcome = OperationOutcome(
        meta={"profile": ["https://fhir.hl7.org.uk/StructureDefinition/UKCore-OperationOutcome"]},
        issue=[issue.as_fhir() for issue in issues])
    return outcome


def fhir_response(resource, status: int = 200, headers: dict | None = None) -> Response:
    response = Response(resource.json(), status=status, mimetype=FHIR_JSON)
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def _outcome_for(status: int, detail: str, errors=None, issues=None) -> list[Issue]:
    if issues:
        return issues
    code = ISSUE_CODES.get(status, "exception" if status >= 500 else "processing")
    found = issues_from_errors(errors, {}) if errors else []
    for issue in found:
        issue.code = code
    return found or [Issue(detail, None, code, "fatal" if status >= 500 else "error")]


@fhir_bp.errorhandler(StepdownError)
def _stepdown_error(exc: StepdownError):
    headers = dict(exc.headers)
    if exc.status == 401:
        headers.setdefault("WWW-Authenticate", 'Bearer realm="stepdown"')
    issues = exc.issues if isinstance(exc, FhirInvalid) else None
    return fhir_response(operation_outcome(_outcome_for(exc.status, exc.detail, exc.errors,
                                                        issues)), exc.status, headers)


@fhir_bp.errorhandler(HTTPException)
def _http_error(exc: HTTPException):
    status = exc.code or 500
    headers = {}
    if status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="stepdown"'
    return fhir_response(operation_outcome(_outcome_for(status, exc.description or exc.name)),
                         status, headers)


@fhir_bp.route("/referrals/<int:referral_id>/fhir", methods=["GET"])
@requires(perm.REFERRALS_READ)
@fhir_bp.doc(summary="The referral as a FHIR R4 Bundle (UK Core profiles)",
             responses={200: {"description": "A collection Bundle (application/fhir+json)"}})
def export_referral(referral_id: int):
    """ServiceRequest, Task, Patient, Consent, Organization, HealthcareService, PractitionerRole,
    EpisodeOfCare and Flags. Same access rules and audit as reading the referral."""
    bundle = ops.export_referral(get_session(), g.principal, referral_id)
    return fhir_response(bundle)


@fhir_bp.route("/fhir/referrals", methods=["POST"])
@requires(perm.REFERRALS_REFER)
@idempotent
@fhir_bp.doc(summary="Create a draft referral from a FHIR Bundle",
             responses={201: {"description": "OperationOutcome: the draft was created"},
                        400: {"description": "OperationOutcome: not a valid FHIR Bundle"},
                        422: {"description": "OperationOutcome: what is wrong, nothing created"}})
def create_from_fhir():
    """A Bundle with a ServiceRequest, the Patient, optional Consents and the handover
    (QuestionnaireResponse) creates a DRAFT referral; the person is matched by NHS number.
    `Idempotency-Key` is honoured."""
    content_type = (request.mimetype or "").lower()
    if content_type not in _ACCEPTED_TYPES:
        raise FhirInvalid([Issue("Send the Bundle as application/fhir+json.", None,
                                 "not-supported")], status=415,
                          detail="Unsupported media type.")
    referral, warnings = create_draft_from_bundle(get_session(), g.principal,
                                                  request.get_data(cache=True), ops.base_url())
    issues = [Issue(f"Draft referral {referral.id} created.", "ServiceRequest", "informational",
                    "information"), *warnings]
    return fhir_response(operation_outcome(issues), 201,
                         {"Location": f"/api/v1/referrals/{referral.id}",
                          "Content-Location": f"/api/v1/referrals/{referral.id}/fhir"})


def register(app, api) -> None:  # noqa: ARG001
    from service import csrf

    api.register_blueprint(fhir_bp)
    csrf.exempt(fhir_bp)

"""The printable handover pack: what a non-clinical worker needs, on one or two pages.

Same access rules as reading the referral (a VCSE organisation whose consent was withdrawn
gets 404, not even a tombstone), and its own audit event, since a printout leaves the system.
"""

from __future__ import annotations

import sqlalchemy as sa
from flask import Blueprint as FlaskBlueprint
from flask import Response, g
from flask.views import MethodView
from sqlmodel import Session, select

from models import Consent
from service import clock
from service.api_blueprint import Blueprint
from service.audit import operations as audit
from service.auth import permissions as perm
from service.auth.access import requires
from service.auth.principal import Principal
from service.db import get_session
from service.referrals.operations import referral_view
from service.reports.pdf import render_pdf
from service.scoping import FULL, require_referral

bp = Blueprint("handover", __name__, url_prefix="/api/v1/referrals",
               description="Printable handover pack")
pages_bp = FlaskBlueprint("handover_pages", __name__)


def sharing_basis(db: Session, referral, now) -> dict:
    if referral.alternative_basis:
        return {"kind": "alternative", "basis": referral.alternative_basis}
    consent = db.exec(
        select(Consent).where(
            Consent.person_id == referral.person_id,
            Consent.organisation_id == referral.receiving_organisation_id,
            Consent.withdrawn_at.is_(None),
            sa.or_(Consent.expires_at.is_(None), Consent.expires_at > now),
        ).order_by(Consent.given_at.desc())
    ).first()
    if consent is None:
        return {"kind": "none"}
    return {"kind": "consent", "purpose": consent.purpose, "lawful_basis": consent.lawful_basis,
            "condition": consent.condition, "method": consent.method,
            "given_on": consent.given_at.date(), "expires_on":
            consent.expires_at.date() if consent.expires_at else None}


def handover_pack(db: Session, actor: Principal, referral_id: int) -> bytes:
    """Render the handover pack PDF for a referral the caller may read in full."""
    actor.require(perm.REFERRALS_READ)
    referral, level = require_referral(db, actor, referral_id, action="print-handover")
    if level != FULL:  # pragma: no cover - require_referral refuses tombstones by default
        raise AssertionError("tombstone")
    now = clock.now()
    view = referral_view(db, actor, referral, FULL, detail=False)
    audit.record(db, actor, "print-handover", "referral", referral.id,
                 person_id=referral.person_id)
    viewer = actor.user.display_name if actor.user else actor.client.name
    return render_pdf("reports/handover.html", referral=view, basis=sharing_basis(db, referral, now),
                      printed_by=viewer, printed_at=now.strftime("%d %B %Y %H:%M UTC"))


def _pdf_response(pdf: bytes, referral_id: int) -> Response:
    response = Response(pdf, mimetype="application/pdf")
    response.headers["Content-Disposition"] = (
        f'inline; filename="handover-{referral_id}.pdf"')
    return response


@bp.route("/<int:referral_id>/handover.pdf")
class HandoverPack(MethodView):
    @requires(perm.REFERRALS_READ)
    @bp.doc(responses={"200": {"description": "The handover pack",
                               "content": {"application/pdf": {"schema": {
                                   "type": "string", "format": "binary"}}}},
                       "404": {"description": "No such referral in your scope"}})
    def get(self, referral_id):
        """The printable handover pack (PDF), audited like reading the referral."""
        return _pdf_response(handover_pack(get_session(), g.principal, referral_id), referral_id)


@pages_bp.get("/referrals/<int:referral_id>/handover.pdf")
@requires(perm.REFERRALS_READ)
def handover_page(referral_id: int):
    return _pdf_response(handover_pack(get_session(), g.principal, referral_id), referral_id)


def register(app, api) -> None:
    from service import csrf

    api.register_blueprint(bp)
    csrf.exempt(bp)
    app.register_blueprint(pages_bp)

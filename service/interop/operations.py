"""Interop use cases that read referrals: the FHIR export.

Access and audit are the referral area's own (`service.referrals.operations.get_referral`):
the same scope, the same 404 for out-of-scope referrals, the same "read" audit event.
"""

from __future__ import annotations

from fhir.resources.R4B.bundle import Bundle
from flask import current_app
from sqlmodel import Session

from service import clock
from service.audit import operations as audit
from service.auth import permissions as perm
from service.auth.principal import Principal
from service.flags.operations import routed_to_me
from service.interop import fhir
from service.referrals.operations import get_referral
from service.scoping import TOMBSTONE


def base_url() -> str:
    return current_app.config["SETTINGS"].BASE_URL


def export_referral(db: Session, actor: Principal, referral_id: int) -> Bundle:
    """The referral as a FHIR Bundle, shaped for the caller like the JSON view."""
    referral, level = get_referral(db, actor, referral_id)
    now = clock.now()
    if level == TOMBSTONE:
        return fhir.tombstone_bundle(referral, base_url=base_url(), now=now)
    statutory = actor.organisation_kind == "statutory"
    flags = []
    if statutory and actor.can(perm.FLAGS_READ):
        flags = [f for f in db.exec(fhir.flags_for_export(referral)).all()
                 if routed_to_me(actor, f, db)]
        for flag in flags:  # flags hold personal data: one audit event each, as in the queue
            audit.record(db, actor, "read", "flag", flag.id, person_id=flag.person_id)
    record = fhir.load_record(db, referral, flags)
    db.flush()
    return fhir.referral_bundle(record, base_url=base_url(), now=now, full=statutory)

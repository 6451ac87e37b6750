"""The printable handover pack: readable, access-checked like the referral, and audited."""

from __future__ import annotations

import io

from pypdf import PdfReader
from sqlmodel import select

from models import AuditEvent
from tests.test_referral_support import HANDOVER, sent_referral
from tests.test_referral_support import world as _world_fixture

world = _world_fixture


def _text(pdf: bytes) -> tuple[str, int]:
    reader = PdfReader(io.BytesIO(pdf))
    return "\n".join(page.extract_text() for page in reader.pages), len(reader.pages)


def test_vcse_worker_prints_the_handover_with_their_name_in_the_footer(world):
    referral_id = sent_referral(world)
    response = world.vcse.get(f"/api/v1/referrals/{referral_id}/handover.pdf")
    assert response.status_code == 200
    assert response.mimetype == "application/pdf"
    text, pages = _text(response.data)
    assert 1 <= pages <= 2
    for heading in ("Who to call", "About me, in my own words", "Goals", "Crisis plan",
                    "Risk summary", "Basis for sharing"):
        assert heading in text
    assert "sister is the first contact" in text  # the crisis plan, as written
    assert "Quiet places, not clinics." in text  # About me, in the person's words
    assert "Printed by Val Worker" in text
    assert world.person.nhs_number not in text  # minimum necessary for a VCSE reader
    assert "public-task" in text  # the consent basis


def test_printing_is_audited_with_the_person(world, db):
    referral_id = sent_referral(world)
    world.vcse.get(f"/api/v1/referrals/{referral_id}/handover.pdf")
    events = db.exec(select(AuditEvent).where(AuditEvent.action == "print-handover")).all()
    assert [(e.record_id, e.person_id, e.outcome) for e in events] == [
        (str(referral_id), world.person.id, "allowed")]


def test_other_organisations_and_withdrawn_consent_get_404(world, db):
    referral_id = sent_referral(world)
    assert world.vcse_b.get(f"/api/v1/referrals/{referral_id}/handover.pdf").status_code == 404
    response = world.coordinator.post(f"/api/v1/consents/{world.consent.id}/withdraw",
                                      json={"reason": "Changed their mind"})
    assert response.status_code == 200, response.get_json()
    gone = world.vcse.get(f"/api/v1/referrals/{referral_id}/handover.pdf")
    assert gone.status_code == 404
    assert gone.mimetype == "application/problem+json"
    assert world.person.given_name not in gone.get_data(as_text=True)


def test_page_button_route_serves_the_same_pack(world):
    referral_id = sent_referral(world)
    response = world.coordinator.get(f"/referrals/{referral_id}/handover.pdf")
    assert response.status_code == 200 and response.mimetype == "application/pdf"
    assert HANDOVER["goals"] in _text(response.data)[0]

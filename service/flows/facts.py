"""Keep each sent referral's flow row (models.flows.ReferralFlow) current, in the same
transaction as the change that moves it.

What moves a row, and who calls `refresh_flows`:
- a referral status change (send, accept, decline, start, hold, resume, complete, fail,
  cancel -- also consent withdrawal and step-up holds): the `on_status_change` listener of
  service.referrals.hooks, registered with the flows area;
- an attended contact (first contact and its working days): service.referrals.operations;
- an edit of the person's borough, sex, ethnic category or date of birth:
  service.people.operations;
- data loaded around the operations (demo data, test factories): they call it themselves.

A referral that was never sent has no row. Rows are rewritten from the referral's current
state, so calling this again is always safe.
"""

from __future__ import annotations

from collections.abc import Iterable

import sqlalchemy as sa
from sqlmodel import Session, select

from models import Contact, Person, Referral, ReferralEvent, ReferralFlow, Team
from models.flows import FlowInputs, flow_values

PERSON_FIELDS = frozenset({"borough", "sex", "ethnic_category", "date_of_birth"})
_CHUNK = 500


def _rows(db: Session, ids: list[int]) -> list[dict]:
    found = db.exec(
        select(Referral, Person, Team.organisation_id)
        .join(Person, Person.id == Referral.person_id)
        .join(Team, Team.id == Referral.referring_team_id)
        .where(Referral.id.in_(ids), Referral.sent_at.is_not(None))
    ).all()
    first = dict(db.exec(
        select(Contact.referral_id, sa.func.min(Contact.happened_at))
        .where(Contact.referral_id.in_(ids), Contact.outcome == "attended")
        .group_by(Contact.referral_id)
    ).all())
    rows = []
    for referral, person, referring_organisation_id in found:
        inputs = FlowInputs(
            status=referral.status, reason_code=referral.reason_code,
            waitlist=referral.waitlist, sent_at=referral.sent_at,
            decided_at=referral.decided_at, first_attended_at=first.get(referral.id),
            borough=person.borough, sex=person.sex, ethnic_category=person.ethnic_category,
            date_of_birth=person.date_of_birth)
        rows.append({
            "referral_id": referral.id, "person_id": referral.person_id,
            "referring_team_id": referral.referring_team_id,
            "referring_organisation_id": referring_organisation_id,
            "offer_id": referral.offer_id,
            "receiving_organisation_id": referral.receiving_organisation_id,
            **flow_values(inputs),
        })
    return rows


def refresh_flows(db: Session, referral_ids: Iterable[int]) -> None:
    """Rewrite the flow rows of these referrals from their current state."""
    ids = sorted(set(referral_ids))
    for start in range(0, len(ids), _CHUNK):
        chunk = ids[start:start + _CHUNK]
        rows = _rows(db, chunk)
        db.exec(sa.delete(ReferralFlow).where(ReferralFlow.referral_id.in_(chunk))
                .execution_options(synchronize_session=False))
        if rows:
            db.exec(sa.insert(ReferralFlow), params=rows)


def refresh_person_flows(db: Session, person_id: int) -> None:
    """After an edit of the person: their referrals' equality fields and age bands."""
    refresh_flows(db, db.exec(select(Referral.id).where(Referral.person_id == person_id,
                                                        Referral.sent_at.is_not(None))).all())


def refresh_all_flows(db: Session) -> None:
    """Every sent referral's row (demo data, or after loading referrals in bulk)."""
    refresh_flows(db, db.exec(select(Referral.id).where(Referral.sent_at.is_not(None))).all())


def on_status_change(db: Session, referral: Referral, event: ReferralEvent) -> None:  # noqa: ARG001
    """The STATUS_LISTENERS hook (service.referrals.hooks)."""
    refresh_flows(db, [referral.id])


def register_listener() -> None:
    from service.referrals.hooks import STATUS_LISTENERS

    if on_status_change not in STATUS_LISTENERS:
        STATUS_LISTENERS.append(on_status_change)

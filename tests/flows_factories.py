"""Build journeys, referrals, events, contacts and flags directly with the models, for the
flows tests: `seed_flows(db, demo)` lays down the known scenario the tests hand-compute.

Scenario (the demo alliance; clock Monday 4 Jan 2027; current period Q4 2026, previous Q3):
offers A1 (Brent Peer Mentors, target 5 working days), B1 (Harrow Resilience Network,
target 2) and C1 (Lambeth Work and Wellbeing, target 10); referrals from the Brent CMHT
(trust A) and the Lambeth CMHT (trust B). Christmas 2026: Fri 25 Dec and Mon 28 Dec
(substitute for Boxing Day) are bank holidays.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from models import (
    Alliance,
    AllianceMember,
    Contact,
    Flag,
    Journey,
    Offer,
    OfferCapacityChange,
    Organisation,
    Person,
    Referral,
    ReferralEvent,
    Team,
)
from models.working_days import acknowledgement_due
from service.flows.facts import refresh_all_flows

SECRET_TEXT = "Loves gardening with the allotment group on Thursdays"


def at(y: int, m: int, d: int, hh: int = 9, mm: int = 0) -> datetime:
    return datetime(y, m, d, hh, mm, tzinfo=UTC)


def _nhs_number(n: int) -> str:
    """A Modulus 11 valid 10-digit number, unique per n."""
    k = 0
    while True:
        base = f"{(900000000 + n * 37 + k) % 1000000000:09d}"
        total = sum(int(ch) * (10 - i) for i, ch in enumerate(base))
        check = 11 - total % 11
        if check == 11:
            check = 0
        if check != 10:
            return base + str(check)
        k += 1


@dataclass
class Seeded:
    offers: dict[str, Offer] = field(default_factory=dict)
    people: list[Person] = field(default_factory=list)
    referrals: dict[str, Referral] = field(default_factory=dict)


def make_person(db, n: int, *, dob: date, borough: str | None, sex: str | None,
                ethnic: str | None, org_id: int | None = None) -> Person:
    person = Person(nhs_number=_nhs_number(n), given_name=f"Givenname{n:03d}",
                    family_name=f"Familyname{n:03d}", date_of_birth=dob, borough=borough,
                    sex=sex, ethnic_category=ethnic, postcode_district="NW10",
                    about_strengths=f"{SECRET_TEXT} ({n})", about_what_matters="My cat Biscuit",
                    created_by_organisation_id=org_id)
    db.add(person)
    db.flush()
    return person


def make_journey(db, person: Person, team: Team, *, discharged_on: date | None = None,
                 stepped_up_at: datetime | None = None) -> Journey:
    journey = Journey(person_id=person.id, team_id=team.id, status="active",
                      discharged_on=discharged_on, stepped_up_at=stepped_up_at,
                      safety_net_ends=(discharged_on + timedelta(days=90)
                                       if discharged_on else None),
                      step_up_trigger="deterioration" if stepped_up_at else None,
                      step_up_note="Private step-up note" if stepped_up_at else None)
    db.add(journey)
    db.flush()
    return journey


def make_offer(db, org: Organisation, name: str, *, target: int, capacity: str = "capacity",
               waitlist_weeks: int | None = None,
               history: tuple[tuple[datetime, str], ...] | None = None) -> Offer:
    """An offer with its capacity changes (by default: its capacity since 1 January 2026)."""
    offer = Offer(organisation_id=org.id, name=name, response_target_days=target,
                  capacity=capacity, waitlist_weeks=waitlist_weeks)
    db.add(offer)
    db.flush()
    for when, status in history or ((at(2026, 1, 1, 0), capacity),):
        db.add(OfferCapacityChange(offer_id=offer.id, capacity=status, changed_at=when,
                                   waitlist_weeks=waitlist_weeks if status == "waitlist"
                                   else None))
    db.flush()
    return offer


def make_referral(db, person: Person, journey: Journey, team: Team, offer: Offer, *,
                  sent: datetime, status: str = "requested", decided: datetime | None = None,
                  reason: str | None = None, waitlist: bool = False,
                  contacts: tuple[tuple[datetime, str], ...] = (),
                  ended: datetime | None = None) -> Referral:
    """A referral with the events that led to `status` (decided = accept or decline time)."""
    referral = Referral(
        journey_id=journey.id, person_id=person.id, offer_id=offer.id,
        referring_team_id=team.id, receiving_organisation_id=offer.organisation_id,
        status=status, reason_code=reason, reason_text="Free text about the person" if reason
        else None, waitlist=waitlist, sent_at=sent, decided_at=decided, created_at=sent,
        about_me=SECRET_TEXT, risk_summary="Private risk summary",
        first_contact_at=min((c[0] for c in contacts), default=None))
    db.add(referral)
    db.flush()
    events = [("send", "draft", "requested", None, sent)]
    if status == "rejected":
        events.append(("decline", "requested", "rejected", reason, decided))
    elif decided is not None:
        events.append(("accept", "requested", "accepted", None, decided))
        if status in ("in-progress", "completed", "failed", "on-hold"):
            events.append(("start", "accepted", "in-progress", None, decided + timedelta(hours=1)))
        if status in ("completed", "failed", "cancelled"):
            action = {"completed": "complete", "failed": "fail", "cancelled": "cancel"}[status]
            events.append((action, "in-progress" if status != "cancelled" else "accepted",
                           status, reason, ended or decided + timedelta(days=1)))
    elif status == "cancelled":
        events.append(("cancel", "requested", "cancelled", reason, ended or sent + timedelta(1)))
    for action, frm, to, code, when in events:
        db.add(ReferralEvent(referral_id=referral.id, action=action, from_status=frm,
                             to_status=to, reason_code=code, at=when))
    for when, outcome in contacts:
        db.add(Contact(referral_id=referral.id, outcome=outcome, happened_at=when,
                       note="Private contact note"))
    db.flush()
    return referral


def make_flag(db, journey: Journey, team: Team, *, trigger: str, urgency: str,
              raised: datetime, acknowledged: datetime | None = None,
              resolved: datetime | None = None, key: str) -> Flag:
    status = "resolved" if resolved else ("acknowledged" if acknowledged else "open")
    flag = Flag(person_id=journey.person_id, journey_id=journey.id, trigger=trigger,
                category="deterioration" if trigger == "concern" else None, urgency=urgency,
                dedupe_key=key, description="Private flag description", routed_team_id=team.id,
                status=status, raised_at=raised,
                acknowledgement_due=acknowledgement_due(urgency, raised),
                acknowledged_at=acknowledged, resolved_at=resolved,
                outcome="advice-given" if resolved else None)
    db.add(flag)
    db.flush()
    return flag


# (key, team, offer, sent, status, decided, reason, waitlist, contacts)
_A, _B, _C = "A1", "B1", "C1"
_BRENT, _LAMBETH = "Brent Community Mental Health Team", "Lambeth Community Mental Health Team"
ATT, DNA = "attended", "did-not-attend"
CURRENT = [
    ("r1", _BRENT, _A, at(2026, 12, 14, 10), "completed", at(2026, 12, 23, 10), None, False,
     ((at(2026, 12, 29), ATT),)),
    ("r2", _BRENT, _A, at(2026, 12, 24), "in-progress", at(2026, 12, 29), None, True,
     ((at(2026, 12, 30), ATT),)),
    ("r3", _BRENT, _A, at(2026, 11, 2, 10), "rejected", at(2026, 11, 4), "no-capacity", False, ()),
    ("r4", _BRENT, _A, at(2026, 11, 3), "rejected", at(2026, 11, 13), "not-eligible", False, ()),
    # 23:30 UTC on 30 Sep is 00:30 on 1 Oct in London (BST): the current period.
    ("r5", _BRENT, _A, at(2026, 9, 30, 23, 30), "failed", at(2026, 10, 1, 14),
     "could-not-engage", False, ((at(2026, 10, 5), DNA),)),
    ("r6", _BRENT, _A, at(2026, 10, 5), "requested", None, None, False, ()),
    ("r7", _BRENT, _A, at(2026, 10, 6), "cancelled", None, "no-longer-needed", False, ()),
    ("r8", _LAMBETH, _A, at(2026, 12, 7), "in-progress", at(2026, 12, 8), None, False,
     ((at(2026, 12, 9), DNA), (at(2026, 12, 10), ATT))),
    ("r9", _LAMBETH, _A, at(2026, 12, 7), "rejected", at(2026, 12, 7, 15),
     "needs-specialist-support", False, ()),
    ("r10", _LAMBETH, _A, at(2026, 12, 9), "cancelled", at(2026, 12, 16), "person-declined",
     False, ()),
    ("r11", _BRENT, _B, at(2026, 11, 16), "completed", at(2026, 11, 17), None, False,
     ((at(2026, 11, 18), ATT),)),
    ("r12", _BRENT, _B, at(2026, 11, 16), "completed", at(2026, 11, 18), None, False,
     ((at(2026, 11, 19), ATT),)),
    ("r13", _BRENT, _B, at(2026, 11, 16), "in-progress", at(2026, 11, 19), None, False,
     ((at(2026, 11, 23), ATT),)),
    ("r14", _BRENT, _B, at(2026, 11, 16), "in-progress", at(2026, 11, 20), None, False,
     ((at(2026, 11, 20, 15), ATT),)),
    ("r15", _BRENT, _B, at(2026, 11, 16), "completed", at(2026, 11, 16, 15), None, False,
     ((at(2026, 11, 17), ATT),)),
    ("r16", _BRENT, _B, at(2026, 11, 16), "rejected", at(2026, 11, 17), "no-capacity", False,
     ()),
    ("r17", _BRENT, _C, at(2026, 10, 12), "in-progress", at(2026, 10, 19), None, False, ()),
    ("r18", _BRENT, _C, at(2026, 10, 12), "requested", None, None, False, ()),
    ("r19", _LAMBETH, _C, at(2026, 10, 20), "completed", at(2026, 10, 27), None, False,
     ((at(2026, 10, 28), ATT),)),
    ("r20", _LAMBETH, _C, at(2026, 10, 20), "completed", at(2026, 10, 22), None, False,
     ((at(2026, 10, 23), ATT),)),
    ("r21", _LAMBETH, _C, at(2026, 10, 20), "rejected", at(2026, 10, 30),
     "returned-with-advice", False, ()),
    ("r22", _LAMBETH, _C, at(2026, 10, 20), "rejected", at(2026, 11, 3), "not-eligible", False,
     ()),
    ("r23", _LAMBETH, _C, at(2026, 10, 20), "rejected", at(2026, 11, 5), "not-eligible", False,
     ()),
    ("r24", _LAMBETH, _C, at(2026, 10, 20), "requested", None, None, False, ()),
    ("r25", _LAMBETH, _C, at(2026, 10, 20), "cancelled", None, "sent-in-error", False, ()),
]
PREVIOUS = [
    *[(f"p{i}", _BRENT, _A, at(2026, 7, 6), "in-progress", at(2026, 7, 8), None, False,
       ((at(2026, 7, 10), ATT),)) for i in range(1, 7)],
    ("p7", _BRENT, _B, at(2026, 7, 7), "rejected", at(2026, 7, 7, 15), "no-capacity", False, ()),
    # 22:00 UTC on 30 Sep is 23:00 in London: still the previous period.
    ("p8", _LAMBETH, _C, at(2026, 9, 30, 22), "requested", None, None, False, ()),
]


def _person_fields(key: str) -> dict:
    """Equality fields of the person behind each referral (see the tests' expectations)."""
    n = int(key[1:])
    if key.startswith("p"):
        return {"dob": date(1990, 6, 15), "borough": {7: "Harrow", 8: "Lambeth"}.get(n, "Brent"),
                "sex": "female", "ethnic": "A"}
    borough = "Brent" if n <= 10 else "Harrow" if n <= 18 else "Lambeth" if n <= 24 else None
    dob = (date(1990, 6, 15) if n <= 5 else date(2008, 10, 5) if n == 6
           else date(2008, 10, 7) if n == 7 else date(1960, 1, 1))
    sex = "female" if n <= 12 else "male" if n <= 20 else None
    ethnic = "A" if n <= 20 else "N" if n <= 23 else None
    return {"dob": dob, "borough": borough, "sex": sex, "ethnic": ethnic}


def seed_flows(db, demo) -> Seeded:
    orgs, teams = demo["organisations"], demo["teams"]
    seeded = Seeded()
    seeded.offers = {
        _A: make_offer(db, orgs["vcse-a"], "Peer mentoring", target=5),
        # Taking referrals until a waiting list from Monday 16 November.
        _B: make_offer(db, orgs["vcse-b"], "Resilience group", target=2, capacity="waitlist",
                       waitlist_weeks=6, history=((at(2026, 1, 1, 0), "capacity"),
                                                  (at(2026, 11, 16, 0), "waitlist"))),
        # Its capacity recorded only from 1 December.
        _C: make_offer(db, orgs["vcse-c"], "Work coaching", target=10, capacity="no-capacity",
                       history=((at(2026, 12, 1, 0), "no-capacity"),)),
    }
    n = 0
    for spec in CURRENT + PREVIOUS:
        key, team_name, offer_key, sent, status, decided, reason, waitlist, contacts = spec
        n += 1
        fields = _person_fields(key)
        team = teams[team_name]
        person = make_person(db, n, **fields, org_id=team.organisation_id)
        seeded.people.append(person)
        journey = make_journey(db, person, team)
        seeded.referrals[key] = make_referral(
            db, person, journey, team, seeded.offers[offer_key], sent=sent, status=status,
            decided=decided, reason=reason, waitlist=waitlist, contacts=contacts)

    # Never counted: sent before the previous period; a referring team outside the
    # alliance; an offer outside the alliance; a draft.
    outsider = Organisation(kind="statutory", name="Elsewhere NHS Trust", ods_code="RZZ")
    other_vcse = Organisation(kind="vcse", name="Faraway Charity", charity_number="9999999")
    db.add_all([outsider, other_vcse])
    db.flush()
    outsider_team = Team(organisation_id=outsider.id, name="Elsewhere CMHT")
    db.add(outsider_team)
    other_alliance = Alliance(name="Another Alliance")
    db.add(other_alliance)
    db.flush()
    db.add_all([AllianceMember(alliance_id=other_alliance.id, organisation_id=outsider.id),
                AllianceMember(alliance_id=other_alliance.id, organisation_id=other_vcse.id)])
    far_offer = make_offer(db, other_vcse, "Faraway befriending", target=5)
    brent = teams[_BRENT]
    for i, (team, offer, sent, status) in enumerate([
        (brent, seeded.offers[_A], at(2026, 6, 30, 12), "requested"),
        (outsider_team, seeded.offers[_A], at(2026, 11, 2), "requested"),
        (brent, far_offer, at(2026, 11, 2), "requested"),
        (brent, seeded.offers[_B], None, "draft"),
    ]):
        person = make_person(db, 100 + i, dob=date(1980, 1, 1), borough="Brent", sex="male",
                             ethnic="A")
        seeded.people.append(person)
        journey = make_journey(db, person, team)
        referral = Referral(journey_id=journey.id, person_id=person.id, offer_id=offer.id,
                            referring_team_id=team.id,
                            receiving_organisation_id=offer.organisation_id, status=status,
                            sent_at=sent, created_at=sent or at(2026, 11, 2))
        db.add(referral)
    db.flush()

    # Safety net: journeys discharged in the periods.
    lambeth = teams[_LAMBETH]
    for i, (team, discharged, stepped) in enumerate([
        (brent, date(2026, 10, 5), at(2026, 12, 1)),      # 57 days: within 90
        (brent, date(2026, 10, 10), None),
        (brent, date(2026, 11, 1), None),
        (lambeth, date(2026, 10, 1), at(2026, 12, 31)),   # 91 days: not within 90
        (lambeth, date(2026, 12, 1), at(2026, 12, 2, 23, 30)),  # next day
        (brent, date(2026, 8, 1), at(2026, 8, 10)),       # previous period
        (brent, date(2026, 6, 1), at(2026, 6, 2)),        # before both periods
    ]):
        person = make_person(db, 200 + i, dob=date(1975, 3, 3), borough="Brent",
                             sex="female", ethnic="B")
        seeded.people.append(person)
        make_journey(db, person, team, discharged_on=discharged, stepped_up_at=stepped)

    # Flags on the referral journeys' teams.
    j_brent = db.get(Journey, seeded.referrals["r1"].journey_id)
    j_lambeth = db.get(Journey, seeded.referrals["r8"].journey_id)
    make_flag(db, j_brent, brent, trigger="concern", urgency="emergency",
              raised=at(2026, 11, 2, 10), acknowledged=at(2026, 11, 2, 10, 30), key="f1")
    make_flag(db, j_brent, brent, trigger="concern", urgency="urgent",
              raised=at(2026, 11, 2, 10), acknowledged=at(2026, 11, 2, 15), key="f2")
    make_flag(db, j_lambeth, lambeth, trigger="not-answered", urgency="routine",
              raised=at(2026, 11, 3), acknowledged=at(2026, 11, 4), key="f3")
    make_flag(db, j_lambeth, lambeth, trigger="not-answered", urgency="routine",
              raised=at(2026, 12, 29, 10), key="f4")
    make_flag(db, j_brent, brent, trigger="not-answered", urgency="routine",
              raised=at(2026, 12, 31, 10), key="f5")
    make_flag(db, j_brent, brent, trigger="responsibility-gap", urgency="urgent",
              raised=at(2026, 10, 15), resolved=at(2026, 10, 15, 10, 30), key="f6")
    make_flag(db, j_brent, brent, trigger="concern", urgency="routine",
              raised=at(2026, 8, 3), acknowledged=at(2026, 8, 3, 12), key="f7")
    db.flush()
    # The rows above were made directly, not by the operations that keep flow rows current.
    refresh_all_flows(db)
    db.flush()
    return seeded

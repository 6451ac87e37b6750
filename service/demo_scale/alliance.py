"""The scaled alliance's organisations, teams, staff and offers, joined to the demo alliance.

Sizes grow with the number of referrals (a million referrals over two years is a region, not
a borough): about one trust per 50,000 referrals (at least two) and three VCSE organisations
per trust, each VCSE organisation running two to four offers. The demo alliance's own
organisations, teams, users and active offers take part too, so the demo logins see the
scaled data in their inboxes, queues and flows.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from sqlmodel import Session, select

from models import (
    AllianceMember,
    Membership,
    Offer,
    OfferArea,
    OfferResponsibility,
    Organisation,
    OrganisationResponsibility,
    Team,
    User,
)
from service.auth.passwords import hash_password

# The first generated trust's ODS code: its presence means the scaled data is already loaded.
MARKER_ODS_CODE = "RZ001"
EMAIL_DOMAIN = "scale.stepdown.test"

PLACES = ["Thameside", "Northfield", "Riverside", "Eastgate", "Westmoor", "Kingsbridge",
          "Southwark Vale", "Highcross", "Lea Valley", "Greenhill", "Marshfield", "Oakwood",
          "Colne", "Wandle", "Ravensbourne", "Brentwater", "Crane Valley", "Pinn", "Beverley",
          "Hogsmill", "Quaggy", "Fleet", "Tyburn", "Effra", "Westbourne", "Walbrook",
          "Moselle", "Silk Stream", "Dollis", "Yeading"]
BOROUGHS = ["Barnet", "Brent", "Camden", "Ealing", "Enfield", "Hackney", "Haringey", "Harrow",
            "Hillingdon", "Hounslow", "Islington", "Lambeth", "Lewisham", "Newham", "Southwark",
            "Tower Hamlets", "Waltham Forest", "Wandsworth", "Westminster", "Croydon"]
DISTRICTS = ["N1", "N7", "N15", "N17", "NW2", "NW6", "NW10", "E5", "E8", "E15", "SE5", "SE11",
             "SE15", "SW2", "SW9", "W3", "W12", "HA0", "HA1", "HA9", "UB3", "TW3", "CR0", "EN3"]
VCSE_KINDS = [
    ("Peer Network", ["peer-support", "social-connection"],
     [("Peer mentoring", ["peer-support"]), ("Peer support group", ["peer-support",
                                                                    "social-connection"])]),
    ("Community Connectors", ["social-connection", "housing-advice"],
     [("Community link work", ["social-connection"]), ("Housing advice", ["housing-advice"])]),
    ("Work and Wellbeing", ["employment-support", "benefits-advice"],
     [("Employment support", ["employment-support"]), ("Benefits advice", ["benefits-advice"]),
      ("Volunteering pathway", ["employment-support", "social-connection"])]),
    ("Recovery College", ["peer-support", "social-connection", "employment-support"],
     [("Recovery courses", ["peer-support"]), ("Wellbeing walks", ["social-connection"]),
      ("Creative arts group", ["social-connection"]), ("Return to learning",
                                                       ["employment-support"])]),
]
TRUST_HOLDS = ["medication-management", "crisis-response", "risk-assessment",
               "care-coordination", "peer-support"]


@dataclass
class StatutoryTeam:
    id: int
    name: str
    email: str
    coordinators: list[int]
    peers: list[int]
    duty: list[int]


@dataclass
class Trust:
    id: int
    borough: str
    safeguarding_team_id: int | None
    cmhts: list[StatutoryTeam]
    local_vcse: list[VcseOrg] = field(default_factory=list)


@dataclass
class VcseOrg:
    id: int
    workers: list[int]
    offers: list[tuple[int, int]]  # (offer id, response target in working days)


@dataclass
class ScaledAlliance:
    alliance_id: int
    trusts: list[Trust]
    vcse: list[VcseOrg]


def sizes(n: int) -> tuple[int, int]:
    """(new trusts, new VCSE organisations) for n referrals."""
    trusts = min(60, max(2, round(n / 50_000)))
    return trusts, 3 * trusts


def _users(db: Session, password_hash: str, prefix: str, count: int) -> list[User]:
    users = [User(email=f"{prefix}.{i}@{EMAIL_DOMAIN}", display_name=f"{prefix.title()} {i}",
                  password_hash=password_hash) for i in range(1, count + 1)]
    db.add_all(users)
    return users


def _member(db: Session, users: list[User], org_id: int, team_id: int | None, role: str,
            manager: bool = False) -> None:
    db.flush()
    for user in users:
        db.add(Membership(user_id=user.id, organisation_id=org_id, team_id=team_id, role=role,
                          is_team_manager=manager))


def build_alliance(db: Session, demo: dict, n: int, rnd: random.Random) -> ScaledAlliance:
    """Add the scaled organisations, teams, staff (demo password) and offers; flush only."""
    from service.demo import DEMO_PASSWORD

    password_hash = hash_password(DEMO_PASSWORD)
    alliance = demo["alliance"]
    new_trusts, new_vcse = sizes(n)
    trusts: list[Trust] = []
    vcse: list[VcseOrg] = []
    staff = 0

    def prefix(role: str) -> str:
        nonlocal staff
        staff += 1
        return f"{role}{staff}"

    for i in range(1, new_trusts + 1):
        place = PLACES[(i - 1) % len(PLACES)] + ("" if i <= len(PLACES) else f" {i}")
        borough = BOROUGHS[(i - 1) % len(BOROUGHS)]
        org = Organisation(kind="statutory", name=f"{place} Mental Health NHS Trust",
                           ods_code=f"RZ{i:03d}", borough=borough)
        db.add(org)
        db.flush()
        for code in TRUST_HOLDS:
            db.add(OrganisationResponsibility(organisation_id=org.id, responsibility_code=code))
        db.add(AllianceMember(alliance_id=alliance.id, organisation_id=org.id))
        safeguarding = Team(organisation_id=org.id, name="Safeguarding Team",
                            email=f"safeguarding.rz{i:03d}@{EMAIL_DOMAIN}")
        db.add(safeguarding)
        db.flush()
        org.safeguarding_team_id = safeguarding.id
        _member(db, _users(db, password_hash, prefix("safeguarding"), 1), org.id,
                safeguarding.id, "duty_clinician", manager=True)
        cmhts = []
        for area in ("North", "Central", "South"):
            team = Team(organisation_id=org.id, name=f"{place} {area} Community Mental Health Team",
                        email=f"cmht.{area.lower()}.rz{i:03d}@{EMAIL_DOMAIN}")
            db.add(team)
            db.flush()
            coordinators = _users(db, password_hash, prefix("coordinator"), 3)
            peers = _users(db, password_hash, prefix("peer"), 1)
            _member(db, coordinators, org.id, team.id, "care_coordinator")
            _member(db, peers, org.id, team.id, "peer_worker")
            duty = _users(db, password_hash, prefix("duty"), 1)
            _member(db, duty, org.id, team.id, "duty_clinician", manager=True)
            cmhts.append(StatutoryTeam(team.id, team.name, team.email,
                                       [u.id for u in coordinators], [u.id for u in peers],
                                       [u.id for u in duty]))
        trusts.append(Trust(org.id, borough, safeguarding.id, cmhts))

    for i in range(1, new_vcse + 1):
        kind, holds, offers = VCSE_KINDS[(i - 1) % len(VCSE_KINDS)]
        borough = BOROUGHS[(i - 1) % len(BOROUGHS)]
        org = Organisation(kind="vcse", name=f"{borough} {kind} {i}", borough=borough,
                           charity_number=f"12{i:05d}")
        db.add(org)
        db.flush()
        for code in holds:
            db.add(OrganisationResponsibility(organisation_id=org.id, responsibility_code=code))
        db.add(AllianceMember(alliance_id=alliance.id, organisation_id=org.id))
        team = Team(organisation_id=org.id, name=f"{kind} Team",
                    email=f"team.vcse{i}@{EMAIL_DOMAIN}")
        db.add(team)
        db.flush()
        workers = _users(db, password_hash, prefix("vcse-worker"), 3)
        _member(db, workers, org.id, team.id, "vcse_worker")
        _member(db, _users(db, password_hash, prefix("vcse-manager"), 1), org.id, team.id,
                "vcse_manager", manager=True)
        offer_rows = []
        for name, codes in offers:
            offer = Offer(organisation_id=org.id, name=name,
                          description=f"{name} run by {org.name} for people stepping down from "
                                      "secondary mental-health care.",
                          min_age=18, capacity=rnd.choice(["capacity", "capacity", "waitlist"]),
                          response_target_days=rnd.choice([3, 5, 5, 10]), status="active",
                          email=team.email)
            db.add(offer)
            db.flush()
            db.add(OfferArea(offer_id=offer.id, area=borough))
            for code in codes:
                db.add(OfferResponsibility(offer_id=offer.id, responsibility_code=code))
            offer_rows.append((offer.id, offer.response_target_days))
        vcse.append(VcseOrg(org.id, [u.id for u in workers], offer_rows))
    db.flush()
    _add_demo_organisations(db, demo, trusts, vcse)
    for index, org in enumerate(vcse):  # each VCSE organisation works mostly with one trust
        trusts[index % len(trusts)].local_vcse.append(org)
    return ScaledAlliance(alliance.id, trusts, vcse)


def _add_demo_organisations(db: Session, demo: dict, trusts: list[Trust],
                            vcse: list[VcseOrg]) -> None:
    """The demo's trusts (their community teams) and VCSE organisations (active offers) take
    referrals too; demo staff act on them where the demo has someone in that role."""
    memberships = db.exec(select(Membership)).all()

    def staff(team_id: int, role: str) -> list[int]:
        return [m.user_id for m in memberships if m.team_id == team_id and m.role == role]

    for org in demo["organisations"].values():
        teams = db.exec(select(Team).where(Team.organisation_id == org.id)
                        .order_by(Team.id)).all()
        if org.kind == "statutory":
            cmhts = [StatutoryTeam(t.id, t.name, t.email or "", staff(t.id, "care_coordinator"),
                                   staff(t.id, "peer_worker"), staff(t.id, "duty_clinician"))
                     for t in teams if t.id != org.safeguarding_team_id]
            if cmhts:
                trusts.append(Trust(org.id, org.borough or "", org.safeguarding_team_id, cmhts))
        else:
            offers = db.exec(select(Offer).where(Offer.organisation_id == org.id,
                                                 Offer.status == "active")
                             .order_by(Offer.id)).all()
            if offers:
                workers = [w for t in teams for w in staff(t.id, "vcse_worker")]
                vcse.append(VcseOrg(org.id, workers,
                                    [(o.id, o.response_target_days) for o in offers]))

"""Demo data: a fictional London alliance (idempotent: running it twice changes nothing)."""

from __future__ import annotations

from sqlmodel import Session, select

from models import (
    Alliance,
    AllianceManager,
    AllianceMember,
    ApiClient,
    Membership,
    Organisation,
    OrganisationResponsibility,
    Responsibility,
    Team,
    User,
)
from service.auth.passwords import hash_password

DEMO_PASSWORD = "stepdown-demo"  # noqa: S105 - fictional demo accounts only
DEMO_CLIENT_SECRET = "demo-epr-secret"  # noqa: S105

RESPONSIBILITIES = [
    ("medication-management", "Medication management", "statutory-only"),
    ("crisis-response", "Crisis response", "statutory-only"),
    ("risk-assessment", "Risk assessment", "statutory-only"),
    ("care-coordination", "Care coordination", "statutory-only"),
    ("peer-support", "Peer support", "shared"),
    ("social-connection", "Social connection", "vcse-only"),
    ("housing-advice", "Housing advice", "shared"),
    ("employment-support", "Employment support", "shared"),
    ("benefits-advice", "Benefits advice", "vcse-only"),
]

ORGANISATIONS = [
    # (key, kind, name, ods, charity, company, borough, responsibilities)
    ("trust-a", "statutory", "North Thames Mental Health NHS Trust", "RXA", None, None, "Brent",
     ["medication-management", "crisis-response", "risk-assessment", "care-coordination",
      "peer-support"]),
    ("trust-b", "statutory", "South Thames Community Health NHS Trust", "RXB", None, None,
     "Lambeth", ["medication-management", "crisis-response", "risk-assessment",
                 "care-coordination"]),
    ("vcse-a", "vcse", "Brent Peer Mentors", None, "1100001", None, "Brent",
     ["peer-support", "social-connection"]),
    ("vcse-b", "vcse", "Harrow Resilience Network", None, "1100002", None, "Harrow",
     ["social-connection", "housing-advice", "benefits-advice"]),
    ("vcse-c", "vcse", "Lambeth Work and Wellbeing", None, None, "LW123456", "Lambeth",
     ["employment-support", "benefits-advice"]),
]

TEAMS = [
    ("trust-a", "Brent Community Mental Health Team", "brent-cmht@demo.stepdown.test"),
    ("trust-a", "Safeguarding Team", "safeguarding-a@demo.stepdown.test"),
    ("trust-b", "Lambeth Community Mental Health Team", "lambeth-cmht@demo.stepdown.test"),
    ("vcse-a", "Peer Mentoring Team", "mentoring@demo.stepdown.test"),
    ("vcse-b", "Resilience Network Team", "resilience@demo.stepdown.test"),
    ("vcse-c", "Employment Team", "employment@demo.stepdown.test"),
]

USERS = [
    # (email, name, org key, team name, role, manager)
    ("coordinator@demo.stepdown.test", "Casey Coordinator", "trust-a",
     "Brent Community Mental Health Team", "care_coordinator", False),
    ("duty@demo.stepdown.test", "Dana Duty", "trust-a", "Brent Community Mental Health Team",
     "duty_clinician", True),
    ("peer@demo.stepdown.test", "Pat Peer", "trust-a", "Brent Community Mental Health Team",
     "peer_worker", False),
    ("vcse@demo.stepdown.test", "Val Worker", "vcse-a", "Peer Mentoring Team", "vcse_worker",
     False),
    ("vcse-manager@demo.stepdown.test", "Morgan Manager", "vcse-a", "Peer Mentoring Team",
     "vcse_manager", True),
    ("vcse-b@demo.stepdown.test", "Riley Resilience", "vcse-b", "Resilience Network Team",
     "vcse_worker", False),
    ("contracts@demo.stepdown.test", "Chris Contracts", "trust-a", None, "contract_manager",
     False),
    ("admin@demo.stepdown.test", "Alex Admin", "trust-a", None, "org_admin", False),
    ("admin-b@demo.stepdown.test", "Bailey Admin", "vcse-a", None, "org_admin", False),
    ("safeguarding@demo.stepdown.test", "Sam Safeguarding", "trust-a", "Safeguarding Team",
     "duty_clinician", True),
]


def _get_or_create(db: Session, model, lookup: dict, **values):
    row = db.exec(select(model).filter_by(**lookup)).first()
    if row is None:
        row = model(**lookup, **values)
        db.add(row)
        db.flush()
    return row


def load_demo_data(db: Session) -> dict:
    """Create the demo alliance if absent; return the objects by key for later seeding."""
    for code, name, scope in RESPONSIBILITIES:
        _get_or_create(db, Responsibility, {"code": code}, name=name, scope=scope)
    orgs: dict[str, Organisation] = {}
    for key, kind, name, ods, charity, company, borough, holds in ORGANISATIONS:
        org = _get_or_create(db, Organisation, {"name": name}, kind=kind, ods_code=ods,
                             charity_number=charity, company_number=company, borough=borough)
        orgs[key] = org
        for code in holds:
            _get_or_create(db, OrganisationResponsibility,
                           {"organisation_id": org.id, "responsibility_code": code})
    teams: dict[str, Team] = {}
    for org_key, name, email in TEAMS:
        teams[name] = _get_or_create(db, Team, {"organisation_id": orgs[org_key].id, "name": name},
                                     email=email)
    orgs["trust-a"].safeguarding_team_id = teams["Safeguarding Team"].id
    db.add(orgs["trust-a"])
    alliance = _get_or_create(db, Alliance, {"name": "North West London Step-down Alliance"},
                              description="Trusts and VCSE partners stepping people down "
                                          "into community offers.")
    for org in orgs.values():
        _get_or_create(db, AllianceMember, {"alliance_id": alliance.id,
                                            "organisation_id": org.id})
    users: dict[str, User] = {}
    password_hash = None
    for email, name, org_key, team_name, role, manager in USERS:
        user = db.exec(select(User).where(User.email == email)).first()
        if user is None:
            password_hash = password_hash or hash_password(DEMO_PASSWORD)
            user = User(email=email, display_name=name, password_hash=password_hash)
            db.add(user)
            db.flush()
        users[email] = user
        team_id = teams[team_name].id if team_name else None
        _get_or_create(db, Membership, {"user_id": user.id, "organisation_id": orgs[org_key].id,
                                        "team_id": team_id, "role": role},
                       is_team_manager=manager)
    _get_or_create(db, AllianceManager, {"alliance_id": alliance.id,
                                         "user_id": users["contracts@demo.stepdown.test"].id})
    if db.exec(select(ApiClient).where(ApiClient.client_id == "demo-epr")).first() is None:
        db.add(ApiClient(client_id="demo-epr", name="Demo electronic patient record",
                         organisation_id=orgs["trust-a"].id,
                         team_id=teams["Brent Community Mental Health Team"].id,
                         secret_hash=hash_password(DEMO_CLIENT_SECRET),
                         scopes="referrals:read referrals:write"))
    db.flush()
    return {"organisations": orgs, "teams": teams, "users": users, "alliance": alliance}
